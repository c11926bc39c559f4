// etcd_client/etcd_client against a real etcd 3.4 on loopback.
#include "etcd_client/etcd_client.h"

#include <condition_variable>
#include <mutex>
#include <vector>

#include "gtest/gtest.h"
#include "tests/common/etcd_process.h"
#include "tests/common/tcp_proxy.h"
#include "tests/common/temp_dir.h"

namespace relaykv::etcd {
namespace {

using relaykv::testing::EtcdCluster;
using relaykv::testing::TcpProxy;
using relaykv::testing::TempDir;
using relaykv::testing::WaitFor;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Collects what a watch delivers, for the test thread to wait on.
class WatchLog {
 public:
  WatchCallback Callback() {
    return [this](const WatchResponse& r) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!r.status.ok()) {
        error_ = r.status;
      } else {
        for (const auto& e : r.events) events_.push_back(e);
      }
      cv_.notify_all();
    };
  }
  // Waits (hang guard) until `n` events arrived; returns them.
  std::vector<WatchEvent> WaitEvents(size_t n, milliseconds guard = seconds(30)) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, guard, [&] { return events_.size() >= n || !error_.ok(); });
    return events_;
  }
  absl::Status WaitError(milliseconds guard = seconds(30)) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, guard, [&] { return !error_.ok(); });
    return error_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<WatchEvent> events_;
  absl::Status error_;
};

class EtcdClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RELAYKV_SKIP_WITHOUT_ETCD();
    auto c = EtcdCluster::Start(dir_.path());
    ASSERT_TRUE(c.ok()) << c.status();
    etcd_ = std::move(*c);
    client_ = NewClient(etcd_->client_endpoints(), seconds(3));
  }
  static std::unique_ptr<EtcdClient> NewClient(std::vector<std::string> endpoints,
                                               milliseconds timeout) {
    auto c = EtcdClient::Create({std::move(endpoints), timeout});
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  TempDir dir_;
  std::unique_ptr<EtcdCluster> etcd_;
  std::unique_ptr<EtcdClient> client_;
};

TEST_F(EtcdClientTest, PutGetDeleteRoundTrip) {
  auto rev1 = client_->Put("/t/a", "one");
  ASSERT_TRUE(rev1.ok()) << rev1.status();
  EXPECT_GT(*rev1, 0);
  auto got = client_->Get("/t/a");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].key, "/t/a");
  EXPECT_EQ(got->kvs[0].value, "one");
  EXPECT_EQ(got->kvs[0].create_revision, *rev1);
  EXPECT_EQ(got->kvs[0].mod_revision, *rev1);
  EXPECT_EQ(got->kvs[0].version, 1);
  EXPECT_GE(got->revision, *rev1);

  auto rev2 = client_->Put("/t/a", "two");
  ASSERT_TRUE(rev2.ok()) << rev2.status();
  EXPECT_GT(*rev2, *rev1);
  ASSERT_TRUE(client_->Put("/t/b", "bee").ok());
  ASSERT_TRUE(client_->Put("/u", "outside").ok());
  auto prefix = client_->GetPrefix("/t/");
  ASSERT_TRUE(prefix.ok()) << prefix.status();
  ASSERT_EQ(prefix->kvs.size(), 2u);
  EXPECT_EQ(prefix->kvs[0].value, "two");
  EXPECT_EQ(prefix->kvs[0].create_revision, *rev1);
  EXPECT_EQ(prefix->kvs[0].mod_revision, *rev2);
  EXPECT_EQ(prefix->kvs[0].version, 2);
  EXPECT_EQ(prefix->kvs[1].key, "/t/b");

  auto deleted = client_->Delete("/t/a");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 1);
  got = client_->Get("/t/a");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->kvs.empty());
  deleted = client_->Delete("/t/", /*prefix=*/true);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 1);  // /t/b; /u is outside the prefix
  got = client_->Get("/u");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->kvs.size(), 1u);
}

TEST_F(EtcdClientTest, PrefixRangeEndIncrementsTheLastByteWithCarry) {
  EXPECT_EQ(PrefixRangeEnd("/a/"), "/a0");
  EXPECT_EQ(PrefixRangeEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixRangeEnd(std::string("\xff\xff", 2)), std::string(1, '\0'));
  EXPECT_EQ(EtcdClient::ParseEndpoints("http://127.0.0.1:1, 127.0.0.1:2"),
            (std::vector<std::string>{"127.0.0.1:1", "127.0.0.1:2"}));
}

TEST_F(EtcdClientTest, TxnCreateRevisionZeroIsPutIfAbsent) {
  const std::vector<Compare> absent = {
      Compare::CreateRevision("/t/leader", Compare::Result::kEqual, 0)};
  auto first = client_->Txn(absent, {TxnOp::Put("/t/leader", "node-1")},
                            {TxnOp::Range("/t/leader")});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->succeeded);
  ASSERT_EQ(first->results.size(), 1u);  // the put's (empty) result

  auto second = client_->Txn(absent, {TxnOp::Put("/t/leader", "node-2")},
                             {TxnOp::Range("/t/leader")});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(second->succeeded);
  ASSERT_EQ(second->results.size(), 1u);
  ASSERT_EQ(second->results[0].range.kvs.size(), 1u);
  EXPECT_EQ(second->results[0].range.kvs[0].value, "node-1");  // the holder, unchanged
}

TEST_F(EtcdClientTest, TxnModRevisionCompareRefusesAStaleRevision) {
  auto rev = client_->Put("/t/epoch", "1");
  ASSERT_TRUE(rev.ok()) << rev.status();
  auto txn = client_->Txn({Compare::ModRevision("/t/epoch", Compare::Result::kEqual, *rev)},
                          {TxnOp::Put("/t/epoch", "2"), TxnOp::Put("/t/history/2", "h")});
  ASSERT_TRUE(txn.ok()) << txn.status();
  EXPECT_TRUE(txn->succeeded);
  // The same compare again: the epoch key moved on, nothing is written.
  txn = client_->Txn({Compare::ModRevision("/t/epoch", Compare::Result::kEqual, *rev)},
                     {TxnOp::Put("/t/epoch", "3")}, {TxnOp::Delete("/t/history/", true)});
  ASSERT_TRUE(txn.ok()) << txn.status();
  EXPECT_FALSE(txn->succeeded);
  ASSERT_EQ(txn->results.size(), 1u);
  EXPECT_EQ(txn->results[0].deleted, 1);  // the else branch ran
  auto got = client_->Get("/t/epoch");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].value, "2");
  // Value and version compares are passed through as well.
  txn = client_->Txn({Compare::Value("/t/epoch", Compare::Result::kEqual, "2"),
                      Compare::Version("/t/epoch", Compare::Result::kGreater, 1)},
                     {TxnOp::Put("/t/epoch", "3")});
  ASSERT_TRUE(txn.ok()) << txn.status();
  EXPECT_TRUE(txn->succeeded);
}

TEST_F(EtcdClientTest, LeaseKeepsKeyWhileRenewedAndItDisappearsAfterTtl) {
  auto lease = client_->LeaseGrant(2);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_GT(lease->id, 0);
  EXPECT_GE(lease->ttl_s, 2);
  ASSERT_TRUE(client_->Put("/t/leased", "x", lease->id).ok());
  auto got = client_->Get("/t/leased");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].lease, lease->id);

  // Renewed every 500 ms for 3 s (longer than the TTL): the key stays.
  for (int i = 0; i < 6; ++i) {
    auto ttl = client_->LeaseKeepAliveOnce(lease->id);
    ASSERT_TRUE(ttl.ok()) << ttl.status();
    EXPECT_EQ(*ttl, lease->ttl_s);
    std::this_thread::sleep_for(milliseconds(500));
  }
  got = client_->Get("/t/leased");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->kvs.size(), 1u) << "the key went away although its lease was renewed";

  // Not renewed: etcd deletes it after the TTL.
  const auto stopped = std::chrono::steady_clock::now();
  EXPECT_TRUE(WaitFor([&] {
    auto g = client_->Get("/t/leased");
    return g.ok() && g->kvs.empty();
  }, seconds(30)));
  EXPECT_GE(std::chrono::steady_clock::now() - stopped, milliseconds(1000));
  auto ttl = client_->LeaseKeepAliveOnce(lease->id);
  EXPECT_EQ(ttl.status().code(), absl::StatusCode::kNotFound) << ttl.status();
}

TEST_F(EtcdClientTest, LeaseRevokeDeletesItsKeysAndUnknownLeaseIsNotFound) {
  auto lease = client_->LeaseGrant(60);
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_TRUE(client_->Put("/t/leased", "x", lease->id).ok());
  ASSERT_TRUE(client_->LeaseRevoke(lease->id).ok());
  auto got = client_->Get("/t/leased");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->kvs.empty());
  EXPECT_EQ(client_->LeaseRevoke(lease->id).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->LeaseKeepAliveOnce(lease->id).status().code(), absl::StatusCode::kNotFound);
  // A put on a lease that does not exist is refused by etcd.
  EXPECT_FALSE(client_->Put("/t/leased", "x", lease->id).ok());
  EXPECT_EQ(client_->LeaseGrant(0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(EtcdClientTest, WatchFromARevisionSeesPutsAndDeletesInOrder) {
  auto first = client_->Put("/w/a", "1");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(client_->Put("/w/b", "2").ok());
  ASSERT_TRUE(client_->Delete("/w/a").ok());
  ASSERT_TRUE(client_->Put("/elsewhere", "x").ok());

  WatchLog log;
  auto watch = client_->WatchKey("/w/", /*prefix=*/true, *first, log.Callback());
  ASSERT_TRUE(watch.ok()) << watch.status();
  // History first, then a live put.
  ASSERT_TRUE(client_->Put("/w/c", "3").ok());
  auto events = log.WaitEvents(4);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].type, WatchEvent::Type::kPut);
  EXPECT_EQ(events[0].kv.key, "/w/a");
  EXPECT_EQ(events[0].kv.value, "1");
  EXPECT_EQ(events[0].kv.mod_revision, *first);
  EXPECT_EQ(events[1].kv.key, "/w/b");
  EXPECT_EQ(events[2].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(events[2].kv.key, "/w/a");
  EXPECT_EQ(events[3].type, WatchEvent::Type::kPut);
  EXPECT_EQ(events[3].kv.key, "/w/c");
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_GT(events[i].kv.mod_revision, events[i - 1].kv.mod_revision);
  }
  (*watch)->Stop();
  // After Stop() nothing more is delivered.
  ASSERT_TRUE(client_->Put("/w/d", "4").ok());
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_EQ(log.WaitEvents(5, milliseconds(100)).size(), 4u);
}

TEST_F(EtcdClientTest, WatchOfOneKeyFromNowSeesOnlyThatKey) {
  WatchLog log;
  auto watch = client_->WatchKey("/w/leader", /*prefix=*/false, 0, log.Callback());
  ASSERT_TRUE(watch.ok()) << watch.status();
  ASSERT_TRUE(client_->Put("/w/leaderless", "no").ok());
  ASSERT_TRUE(client_->Put("/w/leader", "n1").ok());
  ASSERT_TRUE(client_->Delete("/w/leader").ok());
  auto events = log.WaitEvents(2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kv.key, "/w/leader");
  EXPECT_EQ(events[0].kv.value, "n1");
  EXPECT_EQ(events[1].type, WatchEvent::Type::kDelete);
}

TEST_F(EtcdClientTest, WatchReportsUnavailableWhenEtcdStops) {
  WatchLog log;
  auto watch = client_->WatchKey("/w/", true, 0, log.Callback());
  ASSERT_TRUE(watch.ok()) << watch.status();
  etcd_->StopMember(0);
  const absl::Status error = log.WaitError();
  EXPECT_EQ(error.code(), absl::StatusCode::kUnavailable) << error;
}

// With etcd gone every call comes back with an error status, within its
// deadline; after a restart the same client works again.
TEST_F(EtcdClientTest, CallsFailWithStatusWhileEtcdIsDownAndRecoverAfterRestart) {
  auto lease = client_->LeaseGrant(60);
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_TRUE(client_->Put("/t/k", "v").ok());
  etcd_->StopMember(0);
  auto c = NewClient(etcd_->client_endpoints(), milliseconds(1000));
  ASSERT_NE(c, nullptr);
  // The client that was connected fails too (its deadline is 3 s: one call
  // is enough); the fresh one (1 s) goes through every kind of call.
  EXPECT_FALSE(client_->Put("/t/k", "w").ok());
  for (EtcdClient* client : {c.get()}) {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(client->Get("/t/k").ok());
    EXPECT_FALSE(client->Put("/t/k", "w").ok());
    EXPECT_FALSE(client->Delete("/t/k").ok());
    EXPECT_FALSE(client->Txn({}, {TxnOp::Put("/t/k", "x")}).ok());
    EXPECT_FALSE(client->LeaseGrant(5).ok());
    EXPECT_FALSE(client->LeaseKeepAliveOnce(lease->id).ok());
    EXPECT_FALSE(client->LeaseRevoke(lease->id).ok());
    WatchLog log;
    EXPECT_FALSE(client->WatchKey("/t/", true, 0, log.Callback()).ok());
    // Eight calls, each within its deadline (1 s): a hang guard.
    EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(30));
  }
  auto status = c->Get("/t/k").status();
  EXPECT_TRUE(status.code() == absl::StatusCode::kUnavailable ||
              status.code() == absl::StatusCode::kDeadlineExceeded)
      << status;
  EXPECT_NE(status.message().find(etcd_->client_endpoint(0)), std::string::npos) << status;

  ASSERT_TRUE(etcd_->RestartMember(0).ok());
  EXPECT_TRUE(WaitFor([&] { return client_->Get("/t/k").ok(); }, seconds(30)));
  auto got = client_->Get("/t/k");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].value, "v");  // etcd kept its data; nothing of the failed calls landed
  EXPECT_TRUE(client_->LeaseKeepAliveOnce(lease->id).ok());
}

// A paused etcd accepts connections but never answers: every call ends at
// its deadline with DEADLINE_EXCEEDED instead of hanging.
TEST_F(EtcdClientTest, CallsToAPausedEtcdEndAtTheirDeadline) {
  ASSERT_TRUE(client_->Put("/t/k", "v").ok());  // connected
  auto c = NewClient(etcd_->client_endpoints(), milliseconds(500));
  ASSERT_TRUE(c->Get("/t/k").ok());
  etcd_->PauseMember(0);
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto got = c->Get("/t/k");
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kDeadlineExceeded) << got.status();
    EXPECT_GE(took, milliseconds(400));
    EXPECT_LT(took, seconds(10));
  }
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(c->LeaseKeepAliveOnce(1).ok());
  WatchLog log;
  EXPECT_EQ(c->WatchKey("/t/", true, 0, log.Callback()).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(10));
  etcd_->ResumeMember(0);
  EXPECT_TRUE(WaitFor([&] { return c->Get("/t/k").ok(); }, seconds(30)));
}

// A connection that took a request and never answered (an etcd that
// accepted it while restarting, a peer gone without a FIN) is not used
// again: the next call opens a new one. gRPC alone kept sending every call
// into it until its keepalive gave up (~15 s) — in a nemesis run, a node's
// coordinator could not read etcd for 12 s after an etcd restart and the
// cluster had no primary meanwhile.
TEST_F(EtcdClientTest, ACallAfterOneThatWasNeverAnsweredUsesANewConnection) {
  auto proxy = TcpProxy::Start(etcd_->client_endpoint(0));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto c = NewClient({(*proxy)->address()}, milliseconds(1000));
  ASSERT_TRUE(c->Put("/t/k", "v").ok());
  ASSERT_EQ((*proxy)->open_connections(), 1u);
  (*proxy)->Blackhole();
  auto hung = c->Get("/t/k");
  EXPECT_EQ(hung.status().code(), absl::StatusCode::kDeadlineExceeded) << hung.status();
  for (int i = 0; i < 3; ++i) {
    auto got = c->Get("/t/k");
    ASSERT_TRUE(got.ok()) << "call " << i << " after the unanswered one: " << got.status();
    ASSERT_EQ(got->kvs.size(), 1u);
    EXPECT_EQ(got->kvs[0].value, "v");
  }
  EXPECT_EQ((*proxy)->accepted(), 2u);
  // A watch that is never confirmed does the same.
  (*proxy)->Blackhole();
  WatchLog log;
  EXPECT_EQ(c->WatchKey("/t/", true, 0, log.Callback()).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(c->Get("/t/k").ok());
  EXPECT_EQ((*proxy)->accepted(), 3u);
}

TEST(EtcdClientCreateTest, RefusesNoEndpointsAndNonPositiveTimeout) {
  EXPECT_EQ(EtcdClient::Create({{}, seconds(1)}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EtcdClient::Create({{""}, seconds(1)}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EtcdClient::Create({{"127.0.0.1:1"}, milliseconds(0)}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Three members: with one stopped, a client given all endpoints carries on.
TEST(EtcdClusterClientTest, ThreeMembersSurviveOneStoppedMember) {
  RELAYKV_SKIP_WITHOUT_ETCD();
  TempDir dir;
  auto etcd = EtcdCluster::Start(dir.path(), 3);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  auto c = EtcdClient::Create({(*etcd)->client_endpoints(), seconds(5)});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE((*c)->Put("/t/k", "1").ok());
  (*etcd)->StopMember(0);
  // The first endpoint is gone: calls go to another member.
  EXPECT_TRUE(WaitFor([&] { return (*c)->Put("/t/k", "2").ok(); }, seconds(30)));
  auto got = (*c)->Get("/t/k");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].value, "2");
  ASSERT_TRUE((*etcd)->RestartMember(0).ok());
  EXPECT_TRUE((*etcd)->Healthy(0));
}

}  // namespace
}  // namespace relaykv::etcd
