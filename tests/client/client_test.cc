// relaykv::Client against embedded nodes (real gRPC on 127.0.0.1): shared by
// many threads, read-your-writes on a replica, following the primary hint.
#include "relaykv/client.h"

#include <thread>

#include "gtest/gtest.h"
#include "relaykv/node.h"
#include "tests/client/embedded_node.h"
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

}  // namespace
}  // namespace relaykv
