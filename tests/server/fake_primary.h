// A fake primary for replica tests: a Replication service on 127.0.0.1 (an
// OS port) that answers every replica's hello with a script of messages,
// then holds the stream open until the replica ends it (or, with
// `end_after_script`, ends it at once with UNAVAILABLE), counting
// connections (a replica that stops for good does not come back).
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "proto/replication.grpc.pb.h"
#include "relaykv/node.h"
#include "tests/common/temp_dir.h"
#include "tests/server/node_harness.h"

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
  explicit FakePrimary(std::vector<v1::PrimaryMessage> script, bool end_after_script = false)
      : script_(std::move(script)), end_after_script_(end_after_script) {
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
    if (end_after_script_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake primary: stream ended");
    while (!ctx->IsCancelled() && stream->Read(&in)) {
    }
    return grpc::Status::OK;
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_.load(); }

 private:
  const std::vector<v1::PrimaryMessage> script_;
  const bool end_after_script_;
  std::atomic<int> connections_{0};
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// A test whose replica (an embedded Node, server_id 2) replicates from a
// FakePrimary playing a script.
class ReplicaOfFakePrimaryTest : public ::testing::Test {
 protected:
  // Starts the replica of a fake primary playing `script`, waits (up to
  // `hang_guard`) for its IO thread to stop, and returns Last_IO_Error (a
  // test failure and "" if it kept running).
  std::string StopErrorFor(std::vector<v1::PrimaryMessage> script,
                           std::chrono::seconds hang_guard = std::chrono::seconds(30)) {
    primary_ = std::make_unique<FakePrimary>(std::move(script));
    replica_ = OpenServingNode(dir_.path() / "replica", {{"server_id", "2"}}, primary_->address());
    if (replica_ == nullptr) return "";
    const bool stopped = WaitFor(
        [&] {
          return primary_->connections() > 0 &&
                 Field(replica_->ReplicaStatus(), "Slave_IO_Running") == "No";
        },
        hang_guard);
    EXPECT_TRUE(stopped) << "the IO thread kept running; Last_IO_Error: "
                         << Field(replica_->ReplicaStatus(), "Last_IO_Error");
    return stopped ? Field(replica_->ReplicaStatus(), "Last_IO_Error") : "";
  }

  TempDir dir_;
  std::unique_ptr<FakePrimary> primary_;  // outlives the replica
  std::unique_ptr<Node> replica_;
};

}  // namespace relaykv::testing
