// client/primary_discovery: the leader record read and watched in a real etcd
// (tests/common/etcd_process.h); no relaykvd needed.
#include "client/primary_discovery.h"

#include "etcd_client/etcd_client.h"
#include "gtest/gtest.h"
#include "proto/coordination.pb.h"
#include "tests/common/etcd_process.h"
#include "tests/common/leader_record.h"
#include "tests/common/temp_dir.h"

namespace relaykv {
namespace {

using relaykv::testing::EtcdCluster;
using relaykv::testing::LeaderRecordJson;
using relaykv::testing::TempDir;
using relaykv::testing::WaitFor;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

TEST(ParseLeaderRecordTest, ReadsProtobufJsonAndIgnoresUnknownFields) {
  auto r = ParseLeaderRecord(R"({"serverId": 7, "epoch": "12", "address": "10.0.0.7:7400",
                                 "addedLater": true})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->server_id, 7u);
  EXPECT_EQ(r->epoch, 12u);
  EXPECT_EQ(r->address, "10.0.0.7:7400");
}

TEST(ParseLeaderRecordTest, GarbageAndBadAddressesAreInvalidArgument) {
  EXPECT_TRUE(absl::IsInvalidArgument(ParseLeaderRecord("{not json").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ParseLeaderRecord("").status()));
  auto no_port = ParseLeaderRecord(R"({"epoch": "3", "address": "db1"})");
  EXPECT_TRUE(absl::IsInvalidArgument(no_port.status()));
  EXPECT_NE(no_port.status().message().find("'db1' is not HOST:PORT"), std::string::npos)
      << no_port.status();
  // Review s44e M5: an epoch no relaykv cluster has would make every later
  // (real) leader record look older, leaving the client no primary.
  auto huge = ParseLeaderRecord(
      R"({"serverId": 1, "epoch": "18446744073709551615", "address": "10.0.0.7:7400"})");
  EXPECT_TRUE(absl::IsInvalidArgument(huge.status())) << huge.status();
}

TEST(PrimaryDiscoveryStartTest, NeedsEndpointsAndACluster) {
  EXPECT_TRUE(absl::IsInvalidArgument(PrimaryDiscovery::Start({{"127.0.0.1:2379"}, ""}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(PrimaryDiscovery::Start({{}, "c"}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(PrimaryDiscovery::Start({{"nohostport"}, "c"}).status()));
}

// With etcd unreachable, the destructor still returns (within about one
// etcd call's timeout).
TEST(PrimaryDiscoveryStartTest, StopsCleanlyWhileEtcdIsUnreachable) {
  auto d = PrimaryDiscovery::Start({{"127.0.0.1:1"}, "c", milliseconds(300)});
  ASSERT_TRUE(d.ok()) << d.status();
  auto none = (*d)->WaitForPrimary(Clock::now() + milliseconds(500));
  EXPECT_TRUE(absl::IsUnavailable(none.status())) << none.status();
  const auto start = Clock::now();
  d->reset();
  EXPECT_LT(Clock::now() - start, seconds(10));  // hang guard
}

class PrimaryDiscoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RELAYKV_SKIP_WITHOUT_ETCD();
    auto c = EtcdCluster::Start(dir_.path());
    ASSERT_TRUE(c.ok()) << c.status();
    etcd_ = std::move(*c);
    auto e = etcd::EtcdClient::Create({etcd_->client_endpoints(), seconds(5)});
    ASSERT_TRUE(e.ok()) << e.status();
    etcd_client_ = std::move(*e);
  }
  std::unique_ptr<PrimaryDiscovery> Discover(const std::string& cluster) {
    auto d = PrimaryDiscovery::Start({etcd_->client_endpoints(), cluster});
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? std::move(*d) : nullptr;
  }
  // Puts the key and waits until `d` has applied it (hang guard).
  void PutSeen(PrimaryDiscovery& d, const std::string& value) {
    auto rev = etcd_client_->Put(LeaderKey(d.cluster()), value);
    ASSERT_TRUE(rev.ok()) << rev.status();
    ASSERT_TRUE(WaitFor([&] { return d.applied_revision() >= *rev; }, seconds(30)));
  }

  TempDir dir_;
  std::unique_ptr<EtcdCluster> etcd_;
  std::unique_ptr<etcd::EtcdClient> etcd_client_;
};

TEST_F(PrimaryDiscoveryTest, NoLeaderKeyIsUnavailableNamingTheCluster) {
  auto d = Discover("empty");
  auto p = d->WaitForPrimary(Clock::now() + milliseconds(500));
  ASSERT_TRUE(absl::IsUnavailable(p.status())) << p.status();
  EXPECT_NE(p.status().message().find("no primary in cluster empty: leader key /relaykv/empty/leader is absent"),
            std::string::npos)
      << p.status();
}

TEST_F(PrimaryDiscoveryTest, MalformedRecordIsNoPrimary) {
  auto d = Discover("bad");
  PutSeen(*d, "{\"epoch\": \"1\", \"address\": ");
  EXPECT_FALSE(d->Current().has_value());
  auto p = d->WaitForPrimary(Clock::now() + milliseconds(300));
  ASSERT_TRUE(absl::IsUnavailable(p.status())) << p.status();
  EXPECT_NE(p.status().message().find("no primary in cluster bad: leader key /relaykv/bad/leader "
                                      "holds no valid record"),
            std::string::npos)
      << p.status();
  // A valid record afterwards is taken.
  PutSeen(*d, LeaderRecordJson(1, 1, "127.0.0.1:7401"));
  ASSERT_TRUE(d->Current().has_value());
  EXPECT_EQ(d->Current()->address, "127.0.0.1:7401");
}

TEST_F(PrimaryDiscoveryTest, FollowsNewerEpochsAndIgnoresOlderOnes) {
  auto d = Discover("c1");
  PutSeen(*d, LeaderRecordJson(1, 2, "127.0.0.1:7401"));
  auto p = d->WaitForPrimary(Clock::now() + seconds(30));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->address, "127.0.0.1:7401");
  EXPECT_EQ(p->epoch, 2u);

  PutSeen(*d, LeaderRecordJson(2, 3, "127.0.0.1:7402"));
  EXPECT_EQ(d->Current()->address, "127.0.0.1:7402");

  // An older epoch (a stale writer): ignored, the newer primary stays.
  PutSeen(*d, LeaderRecordJson(1, 2, "127.0.0.1:7401"));
  ASSERT_TRUE(d->Current().has_value());
  EXPECT_EQ(d->Current()->address, "127.0.0.1:7402");
  EXPECT_EQ(d->highest_epoch(), 3u);
  // Review s44f F3: an epoch far past every one seen is garbled: ignored,
  // or every real record after it would look older.
  PutSeen(*d, LeaderRecordJson(9, 3 + (1u << 20), "127.0.0.1:7409"));
  ASSERT_TRUE(d->Current().has_value());
  EXPECT_EQ(d->Current()->address, "127.0.0.1:7402");
  EXPECT_EQ(d->highest_epoch(), 3u);

  // The lease ended: no primary until the next election's record.
  auto del = etcd_client_->Delete(LeaderKey("c1"));
  ASSERT_TRUE(del.ok()) << del.status();
  ASSERT_TRUE(WaitFor([&] { return !d->Current().has_value(); }, seconds(30)));
  auto none = d->WaitForPrimary(Clock::now() + milliseconds(200));
  EXPECT_NE(none.status().message().find("is absent"), std::string::npos) << none.status();

  // A waiter is woken by the new record.
  std::thread put([&] {
    std::this_thread::sleep_for(milliseconds(200));
    ASSERT_TRUE(etcd_client_->Put(LeaderKey("c1"), LeaderRecordJson(3, 4, "127.0.0.1:7403")).ok());
  });
  auto next = d->WaitForPrimary(Clock::now() + seconds(30));
  put.join();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->address, "127.0.0.1:7403");
  EXPECT_EQ(next->epoch, 4u);
}

TEST_F(PrimaryDiscoveryTest, AskingForANewerEpochThanTheRecordIsUnavailable) {
  auto d = Discover("c2");
  PutSeen(*d, LeaderRecordJson(1, 5, "127.0.0.1:7401"));
  auto p = d->WaitForPrimary(Clock::now() + milliseconds(200), /*min_epoch=*/6);
  ASSERT_TRUE(absl::IsUnavailable(p.status())) << p.status();
  EXPECT_NE(p.status().message().find("of epoch 5, older than epoch 6 this client has seen"),
            std::string::npos)
      << p.status();
}

// The watch breaks when etcd stops; the follower re-reads and re-watches
// once it is back, and sees records put after the restart.
TEST_F(PrimaryDiscoveryTest, ReWatchesAfterEtcdRestarts) {
  auto d = Discover("c3");
  PutSeen(*d, LeaderRecordJson(1, 1, "127.0.0.1:7401"));
  etcd_->StopMember(0);
  ASSERT_TRUE(etcd_->RestartMember(0).ok());
  // The last known primary stays the answer through the outage.
  EXPECT_EQ(d->Current()->address, "127.0.0.1:7401");
  auto rev = etcd_client_->Put(LeaderKey("c3"), LeaderRecordJson(2, 2, "127.0.0.1:7402"));
  ASSERT_TRUE(rev.ok()) << rev.status();
  ASSERT_TRUE(WaitFor([&] { return d->Current() && d->Current()->epoch == 2; }, seconds(30)));
  EXPECT_EQ(d->Current()->address, "127.0.0.1:7402");
}

}  // namespace
}  // namespace relaykv
