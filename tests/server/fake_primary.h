// A fake primary for replica tests: a Replication service on 127.0.0.1 (an
// OS port) that answers every replica's hello with a script of messages,
// then holds the stream open until the replica ends it, counting
// connections (a replica that stops for good does not come back).
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "proto/replication.grpc.pb.h"

namespace relaykv::testing {

inline v1::PrimaryMessage BatchOf(const std::vector<v1::Event>& events) {
  v1::PrimaryMessage msg;
  v1::EventBatch* batch = msg.mutable_batch();
  for (const v1::Event& ev : events) batch->add_events(ev.SerializeAsString());
  if (!events.empty()) *batch->mutable_primary_last_gtid() = events.back().gtid();
  return msg;
}

class FakePrimary final : public v1::Replication::Service {
 public:
  explicit FakePrimary(std::vector<v1::PrimaryMessage> script) : script_(std::move(script)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakePrimary() override {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }

  grpc::Status Subscribe(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::PrimaryMessage, v1::ReplicaMessage>* stream) override {
    ++connections_;
    v1::ReplicaMessage in;
    if (!stream->Read(&in) || !in.has_hello()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "expected a hello");
    }
    for (const v1::PrimaryMessage& msg : script_) {
      if (!stream->Write(msg)) return grpc::Status::OK;
    }
    while (!ctx->IsCancelled() && stream->Read(&in)) {
    }
    return grpc::Status::OK;
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_.load(); }

 private:
  const std::vector<v1::PrimaryMessage> script_;
  std::atomic<int> connections_{0};
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace relaykv::testing
