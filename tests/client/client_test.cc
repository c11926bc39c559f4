// relaykv::Client against embedded nodes (real gRPC on 127.0.0.1): shared by
// many threads, read-your-writes on a replica, following the primary hint.
#include "relaykv/client.h"

#include <thread>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "proto/watch.grpc.pb.h"
#include "relaykv/node.h"
#include "tests/client/embedded_node.h"
#include "tests/common/fake_grpc_server.h"
#include "tests/common/temp_dir.h"

namespace relaykv {
namespace {

using testing::TempDir;
using testing::WaitFor;

using testing::Addr;
using testing::OpenNode;

TEST(ClientTest, SixteenThreadsShareOneClientAndGetEveryReplyRight) {
  TempDir dir;
  auto node = OpenNode(dir.path() / "p");
  auto client = *Client::Connect({Addr(*node)});
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        const std::string key = "t" + std::to_string(t) + "/" + std::to_string(i);
        const std::string value = std::to_string(t * 1000 + i);
        auto g = i % 3 == 2 ? client->Write({Mutation::Put(key, value), Mutation::Put(key + "b", value)})
                            : client->Put(key, value);
        if (!g.ok() || g->seq == 0) ++failures;
        auto v = client->Get(key);
        if (!v.ok() || *v != std::optional<std::string>(value)) ++failures;
        if (i % 10 == 0) {
          if (!client->Delete(key).ok()) ++failures;
          auto gone = client->Get(key);
          if (!gone.ok() || gone->has_value()) ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(node->binlog_gtid().seq, 16u * 110u);
}

TEST(ClientTest, ReadYourWritesOnAReplica) {
  TempDir dir;
  auto primary = OpenNode(dir.path() / "p");
  auto replica = OpenNode(dir.path() / "r", Addr(*primary), 2);
  auto client = *Client::Connect({Addr(*primary), Addr(*replica)});
  ASSERT_TRUE(replica->StopReplica(ReplicaThreads::kSql).ok());
  auto g = client->Put("fresh", "1");
  ASSERT_TRUE(g.ok());
  // The SQL thread is stopped: waiting for the GTID is a clear error.
  auto stale = client->Get("fresh", {Addr(*replica), *g, std::chrono::milliseconds(300)});
  EXPECT_FALSE(stale.ok());
  ASSERT_TRUE(replica->StartReplica(ReplicaThreads::kSql).ok());
  ASSERT_TRUE(replica->StopReplica(ReplicaThreads::kIo).ok());
  auto g2 = client->Put("fresh", "2");
  ASSERT_TRUE(g2.ok());
  // IO stopped: the replica can't reach the GTID before the deadline.
  auto late = client->Get("fresh", {Addr(*replica), *g2, std::chrono::milliseconds(300)});
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded) << late.status();
  ASSERT_TRUE(replica->StartReplica(ReplicaThreads::kIo).ok());
  auto v = client->Get("fresh", {Addr(*replica), *g2, std::chrono::seconds(20)});
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, std::optional<std::string>("2"));
}

TEST(ClientTest, WritesToAReplicaFollowThePrimaryHintWhenAskedTo) {
  TempDir dir;
  auto primary = OpenNode(dir.path() / "p");
  auto replica = OpenNode(dir.path() / "r", Addr(*primary), 2);
  auto strict = *Client::Connect({Addr(*replica)});
  auto refused = strict->Put("k", "v");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find(Addr(*primary)), std::string::npos);
  auto follower = *Client::Connect({Addr(*replica)}, {std::chrono::seconds(30), true});
  auto g = follower->Put("k", "v");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(follower->write_target(), Addr(*primary));
  EXPECT_EQ(*primary->Get("k"), std::optional<std::string>("v"));
}

TEST(ClientTest, BadAddressesAndDownNodesGiveClearErrors) {
  EXPECT_EQ(Client::Connect({}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Client::Connect({"nonsense"}).status().code(), absl::StatusCode::kInvalidArgument);
  auto client = *Client::Connect({"127.0.0.1:1"}, {std::chrono::milliseconds(500), false});
  EXPECT_EQ(client->Put("k", "v").status().code(), absl::StatusCode::kUnavailable);
}

TEST(ClientTest, AdminCalls) {
  TempDir dir;
  auto node = OpenNode(dir.path() / "p");
  auto client = *Client::Connect({Addr(*node)});
  ASSERT_TRUE(client->SetVariable("rpl_semi_sync_source_timeout", "1234").ok());
  EXPECT_EQ((*client->ShowVariables("rpl_semi_sync_master_timeout"))["rpl_semi_sync_master_timeout"], "1234");
  EXPECT_EQ(client->SetVariable("nope", "1").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*client->ShowStatus("Rpl_semi_sync_master_status"))["Rpl_semi_sync_master_status"], "OFF");
  ASSERT_TRUE(client->Put("a", "b").ok());
  auto c = client->Checksum();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->keys, 1u);
  EXPECT_EQ(c->hash, node->Checksum()->hash);
}

// The replication statements through the library: a DBA's failover and a
// purge, each answered as the embedded node itself answers.
TEST(ClientTest, ReplicationAdminCallsDoAFailover) {
  TempDir dir;
  auto primary = OpenNode(dir.path() / "p");
  auto replica = OpenNode(dir.path() / "r", Addr(*primary), 2);
  auto client = *Client::Connect({Addr(*primary), Addr(*replica)});
  const std::string r = Addr(*replica);
  auto g = client->Put("k", "v");
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_TRUE(WaitFor([&] {
    ReadOptions at_replica;
    at_replica.node = r;
    auto read = client->Read("k", at_replica);
    return read.ok() && read->value == std::optional<std::string>("v") && read->applied == *g;
  }));
  auto status = client->ShowReplicaStatus(r);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ((*status)["Slave_IO_Running"], "Yes");
  EXPECT_TRUE(client->ShowReplicaStatus()->empty()) << "the primary is not a replica";
  auto logs = client->ShowBinaryLogs();
  ASSERT_TRUE(logs.ok()) << logs.status();
  ASSERT_EQ(logs->size(), 1u);
  auto master = client->ShowMasterStatus();
  ASSERT_TRUE(master.ok()) << master.status();
  EXPECT_EQ(master->file, logs->front().name);
  EXPECT_EQ(master->executed, *g);
  auto purged = client->PurgeBinaryLogsTo(master->file);
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(purged->purged, 0) << "the active segment is never purged";

  EXPECT_EQ(client->ResetReplicaAll(r).status().code(), absl::StatusCode::kFailedPrecondition)
      << "its IO thread still runs";
  ASSERT_TRUE(client->StopReplica(ReplicaThreads::kIo, r).ok());
  EXPECT_EQ((*client->ShowReplicaStatus(r))["Slave_IO_Running"], "No");
  auto start = client->ResetReplicaAll(r);
  ASSERT_TRUE(start.ok()) << start.status();
  EXPECT_EQ(*start, (Gtid{g->epoch + 1, g->seq + 1}));
  ASSERT_TRUE(client->ChangeMaster("127.0.0.1", replica->bound_port()).ok()) << "the old primary follows";
  ASSERT_TRUE(client->StartReplica().ok());
  ASSERT_TRUE(WaitFor([&] { return client->Checksum() == client->Checksum(r); }));
  EXPECT_EQ(client->ChangeMaster("bad\nhost", 1).code(), absl::StatusCode::kInvalidArgument);
}


// A fake node's handler: waits until its call is cancelled, at most `most`.
void UntilCancelled(grpc::ServerContext* ctx, std::chrono::seconds most) {
  const auto until = std::chrono::steady_clock::now() + most;
  while (!ctx->IsCancelled() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// A fake node's answer with no change: progress only, at (1, seq).
v1::WatchResponse ProgressOnly(uint64_t seq) {
  v1::WatchResponse r;
  r.mutable_progress()->set_epoch(1);
  r.mutable_progress()->set_seq(seq);
  return r;
}

// A watch of everything from the beginning, a progress message every 100 ms.
ClientWatchOptions FromTheStart() {
  ClientWatchOptions options;
  options.after = Gtid{0, 0};
  options.progress_interval = std::chrono::milliseconds(100);
  return options;
}

// Review s44e M1: a node whose watch progress goes back, or that sends a
// change where the watch already stood, would have changes delivered
// twice (the client resumes from the progress it was given). The watch
// ends with DATA_LOSS instead, nothing delivered twice.
class ReplayingWatchSource final : public v1::ChangeStream::Service {
 public:
  explicit ReplayingWatchSource(bool repeat_event) : repeat_event_(repeat_event) {}
  grpc::Status Watch(grpc::ServerContext*, const v1::WatchRequest*,
                     grpc::ServerWriter<v1::WatchResponse>* w) override {
    w->Write(Batch(5, 5));
    if (repeat_event_) {
      w->Write(Batch(5, 6));  // the same change again
    } else {
      w->Write(ProgressOnly(3));  // progress going back
    }
    return grpc::Status::OK;
  }

 private:
  static v1::WatchResponse Batch(uint64_t event_seq, uint64_t progress_seq) {
    v1::WatchResponse r;
    v1::WatchEvent* e = r.add_events();
    e->mutable_gtid()->set_epoch(1);
    e->mutable_gtid()->set_seq(event_seq);
    v1::Mutation* m = e->add_changes();
    m->set_op(v1::Mutation::PUT);
    m->set_key("k");
    m->set_value("v");
    r.mutable_progress()->set_epoch(1);
    r.mutable_progress()->set_seq(progress_seq);
    r.mutable_head()->set_epoch(1);
    r.mutable_head()->set_seq(progress_seq);
    return r;
  }
  const bool repeat_event_;
};

TEST(ClientTest, AWatchWhoseNodeGoesBackEndsWithoutDeliveringTwice) {
  for (const bool repeat_event : {false, true}) {
    ReplayingWatchSource source(repeat_event);
    testing::FakeGrpcServer server(&source);
    auto client = Client::Connect({server.address()});
    ASSERT_TRUE(client.ok()) << client.status();
    int events = 0;
    const ClientWatchOptions options = FromTheStart();
    absl::Status s = (*client)->Watch(WatchRange{}, options, [&](const WatchBatch& b) {
      events += static_cast<int>(b.events.size());
      return true;
    });
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    EXPECT_EQ(events, 1) << (repeat_event ? "the same change twice" : "progress went back");
  }
}

// Review s44f F5: the progress interval a watch asks for is the server's
// default (1 s) for 0 or less, and at most an hour. A negative one went
// out as 2^32-1 ms (progress every 49 days) while the client cut the
// stream after 10 s of silence: an idle watch was cut every 10 s.
class IntervalRecordingSource final : public v1::ChangeStream::Service {
 public:
  grpc::Status Watch(grpc::ServerContext*, const v1::WatchRequest* req,
                     grpc::ServerWriter<v1::WatchResponse>*) override {
    asked.store(req->progress_interval_ms());
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "recorded");
  }
  std::atomic<uint32_t> asked{0};
};

TEST(ClientTest, AWatchAsksForAProgressIntervalBetweenTheDefaultAndAnHour) {
  IntervalRecordingSource source;
  testing::FakeGrpcServer server(&source);
  auto client = Client::Connect({server.address()});
  ASSERT_TRUE(client.ok()) << client.status();
  const std::vector<std::pair<std::chrono::milliseconds, uint32_t>> cases = {
      {std::chrono::milliseconds(0), 1000},
      {std::chrono::milliseconds(-5), 1000},
      {std::chrono::milliseconds(250), 250},
      {std::chrono::hours(24 * 365), 3600 * 1000}};
  for (const auto& [interval, asked] : cases) {
    ClientWatchOptions options = FromTheStart();
    options.progress_interval = interval;
    const absl::Status s = (*client)->Watch(WatchRange{}, options, [](const WatchBatch&) {
      return true;
    });
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_EQ(source.asked.load(), asked) << interval.count() << " ms";
  }
}

// Review s44e M2: a node that keeps the stream up and sends nothing (not
// even the progress messages it owes every progress_interval) held the
// watch for ever; it is cut off as a broken stream (UNAVAILABLE, which a
// watch with resume_for resumes). (The fake gives up after 30 s, so that
// the old client failed rather than hung.)
class SilentWatchSource final : public v1::ChangeStream::Service {
 public:
  grpc::Status Watch(grpc::ServerContext* ctx, const v1::WatchRequest*,
                     grpc::ServerWriter<v1::WatchResponse>* w) override {
    w->Write(ProgressOnly(1));  // the starting point, then nothing
    UntilCancelled(ctx, std::chrono::seconds(30));
    return grpc::Status::OK;
  }
};

TEST(ClientTest, AWatchedNodeThatFallsSilentIsCutOff) {
  SilentWatchSource source;
  testing::FakeGrpcServer server(&source);
  auto client = Client::Connect({server.address()});
  ASSERT_TRUE(client.ok()) << client.status();
  const ClientWatchOptions options = FromTheStart();
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = (*client)->Watch(WatchRange{}, options, [](const WatchBatch&) { return true; });
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_NE(s.message().find("nothing received for 10000 ms"), std::string::npos) << s;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(25));
}

// Review s44f F1, F2: the silence limit is the node's, not the caller's: a
// node that says nothing before its first message (a replica waiting for
// the GTID a watch resumes after) and a deliver that takes longer than the
// limit do not cut a healthy watch off.
class SlowStartingWatchSource final : public v1::ChangeStream::Service {
 public:
  grpc::Status Watch(grpc::ServerContext* ctx, const v1::WatchRequest*,
                     grpc::ServerWriter<v1::WatchResponse>* w) override {
    UntilCancelled(ctx, std::chrono::seconds(11));
    for (uint64_t seq = 1; !ctx->IsCancelled() && seq < 200; ++seq) {
      if (!w->Write(ProgressOnly(seq))) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return grpc::Status::OK;
  }
};

TEST(ClientTest, ASlowFirstMessageOrASlowDeliverIsNotSilence) {
  SlowStartingWatchSource source;
  testing::FakeGrpcServer server(&source);
  auto client = Client::Connect({server.address()});
  ASSERT_TRUE(client.ok()) << client.status();
  const ClientWatchOptions options = FromTheStart();
  int batches = 0;
  absl::Status s = (*client)->Watch(WatchRange{}, options, [&](const WatchBatch&) {
    if (++batches == 1) std::this_thread::sleep_for(std::chrono::seconds(11));
    return batches < 2;
  });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(batches, 2);
}

}  // namespace
}  // namespace relaykv
