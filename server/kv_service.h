// KvService: the gRPC face of a Node's key-value API (proto/kv.proto).
// Thin: every call goes to the Node, whose Status comes back as the gRPC
// status with the same code and message. The client's deadline bounds the
// commit wait.
#pragma once

#include "proto/kv.grpc.pb.h"

namespace relaykv {

class Node;

class KvService final : public v1::Kv::Service {
 public:
  // Borrows `node`, which must outlive the gRPC server this is registered on.
  explicit KvService(Node* node) : node_(node) {}

  grpc::Status Put(grpc::ServerContext* ctx, const v1::PutRequest* req, v1::WriteReply* reply) override;
  grpc::Status Delete(grpc::ServerContext* ctx, const v1::DeleteRequest* req,
                      v1::WriteReply* reply) override;
  grpc::Status Write(grpc::ServerContext* ctx, const v1::WriteRequest* req,
                     v1::WriteReply* reply) override;
  grpc::Status Get(grpc::ServerContext* ctx, const v1::GetRequest* req, v1::GetReply* reply) override;

 private:
  Node* const node_;
};

}  // namespace relaykv
