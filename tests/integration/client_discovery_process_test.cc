// Clients find the primary in etcd (issue 16 item 8; ClientOptions::
// etcd_endpoints/cluster, client/primary_discovery.h): a real etcd, real
// relaykvd processes, and the leader record written by the test the way the
// server's coordinator will write it. A failover by hand (README "Failover")
// moves the record; the client follows it, never back to an older epoch, and
// a write cut by the failover is reported as outcome unknown.
#include <thread>

#include "etcd_client/etcd_client.h"
#include "gtest/gtest.h"
#include "proto/coordination.pb.h"
#include "relaykv/write_outcome.h"
#include "tests/common/etcd_process.h"
#include "tests/common/leader_record.h"
#include "tests/common/temp_dir.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class ClientDiscoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RELAYKV_SKIP_WITHOUT_ETCD();
    auto c = EtcdCluster::Start(dir_.path() / "etcd");
    ASSERT_TRUE(c.ok()) << c.status();
    etcd_ = std::move(*c);
    auto e = etcd::EtcdClient::Create({etcd_->client_endpoints(), seconds(5)});
    ASSERT_TRUE(e.ok()) << e.status();
    etcd_client_ = std::move(*e);
  }
  void PutLeader(const std::string& cluster, const std::string& value) {
    auto rev = etcd_client_->Put("/relaykv/" + cluster + "/leader", value);
    ASSERT_TRUE(rev.ok()) << rev.status();
  }
  // A client that knows only etcd and the cluster's name.
  std::unique_ptr<Client> Discovering(const std::string& cluster, milliseconds timeout,
                                      bool pipelined = false) {
    ClientOptions o;
    o.etcd_endpoints = etcd_->client_endpoints();
    o.cluster = cluster;
    o.timeout = timeout;
    o.pipelined = pipelined;
    auto c = Client::Connect({}, o);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  TempDir dir_;
  std::unique_ptr<EtcdCluster> etcd_;
  std::unique_ptr<etcd::EtcdClient> etcd_client_;
};

class ClientDiscoveryFailoverTest : public ClientDiscoveryTest,
                                    public ::testing::WithParamInterface<bool> {};

TEST_P(ClientDiscoveryFailoverTest, WritesFollowTheLeaderRecordAndACutWriteIsOutcomeUnknown) {
  // Semi-sync with a long timeout: a write the replica does not ACK waits.
  auto primary = Relaykvd::Start(dir_.path() / "p", {"--server-id=1", "--rpl_semi_sync_master_enabled=ON",
                                                     "--rpl_semi_sync_master_timeout=600000"});
  ASSERT_NE(primary, nullptr);
  auto replica = StartSemiSyncReplica(dir_.path() / "r", *primary, 2, 1);
  ASSERT_NE(replica, nullptr);
  // The primary's epoch: a fresh binlog has none until its first write.
  auto seed = primary->Put("seed", "0");
  ASSERT_TRUE(seed.ok()) << seed.status();
  const uint64_t old_epoch = seed->epoch;
  ASSERT_GT(old_epoch, 0u);
  PutLeader("c", LeaderRecordJson(1, old_epoch, primary->address()));

  auto client = Discovering("c", seconds(20), GetParam());
  ASSERT_NE(client, nullptr);
  auto g = client->Put("a", "1");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->epoch, old_epoch);
  EXPECT_EQ(client->write_target(), primary->address());
  auto on_primary = primary->Get("a");
  ASSERT_TRUE(on_primary.ok()) << on_primary.status();
  EXPECT_EQ(*on_primary, "1");
  auto read = client->Get("a");  // no node named: the primary
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "1");
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*primary, *replica); }, seconds(30)));

  // Failover by hand. The replica promises the next epoch first (it stops
  // ACKing the old primary), so the next write waits for an ACK...
  const uint64_t next_epoch = old_epoch + 1;
  ASSERT_TRUE(replica->client().Revoke(next_epoch).ok());
  ASSERT_TRUE(WaitFor([&] { return primary->Status()["Rpl_semi_sync_master_clients"] == "0"; }));
  absl::StatusOr<Gtid> cut = Gtid{};
  std::thread writer([&] { cut = client->Put("cut", "x"); });
  ASSERT_TRUE(WaitFor([&] { return primary->Status()["Rpl_semi_sync_master_wait_sessions"] == "1"; }));
  // ... until the old primary is revoked: the write is cut by the failover.
  auto fenced = primary->client().Revoke(next_epoch);
  ASSERT_TRUE(fenced.ok()) << fenced.status();
  writer.join();
  ASSERT_FALSE(cut.ok());
  EXPECT_TRUE(WriteOutcomeUnknown(cut.status())) << cut.status();
  EXPECT_TRUE(absl::IsUnavailable(cut.status()) || absl::IsDeadlineExceeded(cut.status()))
      << cut.status();

  ASSERT_TRUE(replica->client().StopReplica().ok());
  auto start = replica->client().ResetReplicaAll();
  ASSERT_TRUE(start.ok()) << start.status();
  ASSERT_EQ(start->epoch, next_epoch);
  PutLeader("c", LeaderRecordJson(2, next_epoch, replica->address()));
  ASSERT_TRUE(WaitFor([&] { return client->write_target() == replica->address(); }, seconds(30)));
  EXPECT_GE(client->epoch_seen(), next_epoch);

  auto after = client->Put("b", "2");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->epoch, next_epoch);
  auto on_new = replica->Get("b");
  ASSERT_TRUE(on_new.ok()) << on_new.status();
  EXPECT_EQ(*on_new, "2");
  auto lost = replica->Get("cut");
  ASSERT_TRUE(lost.ok()) << lost.status();
  EXPECT_EQ(*lost, std::nullopt) << "the cut write was never ACKed: not in the new history";

  // A record of the older epoch (a stale writer) is ignored: writes still
  // go to the new primary. (primary_discovery_test checks it deterministically.)
  PutLeader("c", LeaderRecordJson(1, old_epoch, primary->address()));
  for (int i = 0; i < 3; ++i) {
    auto again = client->Put("after-stale-" + std::to_string(i), "y");
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->epoch, next_epoch);
  }
  EXPECT_EQ(client->write_target(), replica->address());
  auto stale_side = primary->Get("after-stale-2");
  ASSERT_TRUE(stale_side.ok()) << stale_side.status();
  EXPECT_EQ(*stale_side, std::nullopt);
}

INSTANTIATE_TEST_SUITE_P(UnaryAndPipelined, ClientDiscoveryFailoverTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Pipelined" : "Unary"; });

TEST_F(ClientDiscoveryTest, NoLeaderKeyFailsUnavailableNamingTheCluster) {
  auto client = Discovering("nobody", milliseconds(1000));
  ASSERT_NE(client, nullptr);
  auto w = client->Put("k", "v");
  ASSERT_TRUE(absl::IsUnavailable(w.status())) << w.status();
  EXPECT_NE(w.status().message().find("no primary in cluster nobody: "), std::string::npos) << w.status();
  EXPECT_NE(w.status().message().find("/relaykv/nobody/leader is absent"), std::string::npos)
      << w.status();
  auto r = client->Get("k");
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_EQ(client->write_target(), "");
}

TEST_F(ClientDiscoveryTest, MalformedLeaderRecordFailsUnavailableWithoutACrash) {
  PutLeader("bad", "{\"serverId\": 1, \"epoch\": ");
  auto client = Discovering("bad", milliseconds(1000));
  ASSERT_NE(client, nullptr);
  auto w = client->Put("k", "v");
  ASSERT_TRUE(absl::IsUnavailable(w.status())) << w.status();
  EXPECT_NE(w.status().message().find("no primary in cluster bad: leader key /relaykv/bad/leader "
                                      "holds no valid record"),
            std::string::npos)
      << w.status();
}

TEST_F(ClientDiscoveryTest, ConnectNeedsBothEtcdAndCluster) {
  ClientOptions o;
  o.etcd_endpoints = etcd_->client_endpoints();
  EXPECT_TRUE(absl::IsInvalidArgument(Client::Connect({}, o).status()));
  ClientOptions only_cluster;
  only_cluster.cluster = "c";
  EXPECT_TRUE(absl::IsInvalidArgument(Client::Connect({}, only_cluster).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(Client::Connect({}, {}).status()));
}

TEST_F(ClientDiscoveryTest, CliFindsThePrimaryInEtcd) {
  auto primary = Relaykvd::Start(dir_.path() / "p", {"--server-id=1"});
  ASSERT_NE(primary, nullptr);
  auto seed = primary->Put("seed", "0");
  ASSERT_TRUE(seed.ok()) << seed.status();
  PutLeader("cli", LeaderRecordJson(1, seed->epoch, primary->address()));
  const std::string endpoints = etcd_->client_endpoint(0);

  CliRun put = RunCli({"--etcd", endpoints, "--cluster", "cli", "-e", "PUT k1 'v1'"});
  EXPECT_EQ(put.status, 0) << put.err;
  auto v1 = primary->Get("k1");
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_EQ(*v1, "v1");

  CliRun sub = RunCli({"--etcd", "http://" + endpoints, "--cluster", "cli", "put", "k2", "v2"});
  EXPECT_EQ(sub.status, 0) << sub.err;
  EXPECT_EQ(sub.out.rfind(std::to_string(seed->epoch) + ":", 0), 0u) << sub.out;  // the GTID
  auto v2 = primary->Get("k2");
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(*v2, "v2");

  CliRun none = RunCli({"--etcd", endpoints, "--cluster", "nobody", "--timeout", "1", "-e", "PUT k v"});
  EXPECT_EQ(none.status, 1);
  EXPECT_NE(none.err.find("no primary in cluster nobody"), std::string::npos) << none.err;

  CliRun both = RunCli({"-H", primary->address(), "--etcd", endpoints, "--cluster", "cli", "-e", "GET k1"});
  EXPECT_EQ(both.status, 1);
  EXPECT_NE(both.err.find("not both"), std::string::npos) << both.err;
  CliRun half = RunCli({"--etcd", endpoints, "-e", "GET k1"});
  EXPECT_EQ(half.status, 1);
  EXPECT_NE(half.err.find("go together"), std::string::npos) << half.err;
}

}  // namespace
}  // namespace relaykv::testing
