// KvService: the gRPC face of a Node's key-value API (proto/kv.proto).
// Thin: every call goes to the Node, whose Status comes back as the gRPC
// status with the same code and message. The client's deadline bounds the
// commit wait; a client that goes away stops it (CANCELLED, never OK).
//
// Writes (Put, Delete, Write) are served asynchronously from a completion
// queue: a write in flight holds no thread while the binlog syncs and the
// replicas ACK — it is answered from whichever thread completes its commit
// (Node::Impl::CommitAsync). With a thread parked per write, the primary
// spent most of its CPU switching between those threads. Get stays
// synchronous: it never waits for anything but the applier.
//
// Lifecycle: register, then Start() with the queue added to the builder,
// once the server is built; Stop() after the server's Shutdown().
#pragma once

#include <memory>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "proto/kv.grpc.pb.h"

namespace relaykv {

class Node;

class KvService final
    : public v1::Kv::WithAsyncMethod_Put<
          v1::Kv::WithAsyncMethod_Delete<v1::Kv::WithAsyncMethod_Write<v1::Kv::Service>>> {
 public:
  // Borrows `node`, which must outlive the gRPC server this is registered on.
  explicit KvService(Node* node) : node_(node) {}
  ~KvService() override;

  grpc::Status Get(grpc::ServerContext* ctx, const v1::GetRequest* req, v1::GetReply* reply) override;
  // Synchronous like Get: it waits for nothing but the applier, and a long
  // walk checks the call's deadline and cancellation as it goes.
  grpc::Status Scan(grpc::ServerContext* ctx, const v1::ScanRequest* req,
                    v1::ScanReply* reply) override;

  // Starts serving writes from `cq` (from ServerBuilder::AddCompletionQueue).
  void Start(std::unique_ptr<grpc::ServerCompletionQueue> cq);
  // After the server's Shutdown(): drains the queue and joins its threads.
  void Stop();

 private:
  class Call;
  template <typename Request>
  class WriteCall;

  // A call's answer must be started before the queue shuts down (gRPC
  // aborts otherwise): answers started from a queue thread hold this
  // shared; commits answered later by other threads all end before Stop()
  // (the node drains its commits before shutting the server down).
  std::shared_mutex stop_mu_;
  bool stopping_ = false;  // guarded by stop_mu_
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::vector<std::thread> threads_;
  Node* const node_;
};

}  // namespace relaykv
