// server/leader_lease against a real etcd, with a TCP proxy to cut the
// holder off from etcd (and only the holder).
#include "server/leader_lease.h"

#include <atomic>
#include <mutex>

#include "gtest/gtest.h"
#include "tests/common/etcd_fixture.h"
#include "tests/common/etcd_process.h"
#include "tests/common/tcp_proxy.h"
#include "tests/common/temp_dir.h"

namespace relaykv {
namespace {

using relaykv::testing::TcpProxy;
using relaykv::testing::WaitFor;
using std::chrono::milliseconds;
using std::chrono::seconds;

LeaderLease::Options Fast(const std::string& value) {
  LeaderLease::Options o;
  o.cluster = "c1";
  o.value = value;
  o.ttl = seconds(4);
  o.renew_interval = milliseconds(300);
  o.retry_interval = milliseconds(200);
  o.margin = milliseconds(1500);
  return o;
}

using LeaderLeaseTest = relaykv::testing::OneEtcdTest;

TEST_F(LeaderLeaseTest, HolderRenewsPastTheTtlAndASecondCandidateIsRefused) {
  std::atomic<int> losses{0};
  const auto before = LeaseClock::now();
  auto a = LeaderLease::Acquire(direct_.get(), Fast("node-a"), [&](const absl::Status&) { ++losses; });
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE((*a)->Valid());
  // Counted from before the grant was sent, never from the reply.
  EXPECT_LE((*a)->safe_until(), LeaseClock::now() + seconds(4) - milliseconds(1500));
  EXPECT_GE((*a)->safe_until(), before + seconds(4) - milliseconds(1500));
  auto got = direct_->Get(LeaderLease::LeaderKey("c1"));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].value, "node-a");
  EXPECT_EQ(got->kvs[0].lease, (*a)->lease_id());
  EXPECT_EQ(got->kvs[0].create_revision, (*a)->create_revision());

  auto b = LeaderLease::Acquire(direct_.get(), Fast("node-b"), nullptr);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition) << b.status();
  EXPECT_NE(b.status().message().find("node-a"), std::string::npos) << b.status();

  // Longer than the TTL: renewals keep the key and the validity moving.
  const auto first = (*a)->safe_until();
  std::this_thread::sleep_for(seconds(5));
  EXPECT_TRUE((*a)->Valid());
  EXPECT_GT((*a)->safe_until(), first + seconds(3));
  EXPECT_EQ(losses.load(), 0);
  got = direct_->Get(LeaderLease::LeaderKey("c1"));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->kvs.size(), 1u);

  ASSERT_TRUE((*a)->Release().ok());
  EXPECT_FALSE((*a)->Valid());
  EXPECT_EQ(losses.load(), 0);  // a release is not a loss
  b = LeaderLease::Acquire(direct_.get(), Fast("node-b"), nullptr);
  EXPECT_TRUE(b.ok()) << b.status();
}

TEST_F(LeaderLeaseTest, RefusesOptionsThatLeaveNoRenewalBeforeValidityEnds) {
  auto o = Fast("x");
  o.margin = seconds(4);
  EXPECT_EQ(LeaderLease::Acquire(direct_.get(), o, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = Fast("x");
  o.renew_interval = seconds(3);
  EXPECT_EQ(LeaderLease::Acquire(direct_.get(), o, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The holder is cut off from etcd (only it): its validity ends before etcd
// expires the key, and then another node can claim it.
TEST_F(LeaderLeaseTest, CutOffHolderLosesValidityBeforeEtcdExpiresTheKey) {
  auto proxy = TcpProxy::Start(etcd_->client_endpoint(0));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto via = etcd::EtcdClient::Create({{(*proxy)->address()}, milliseconds(500)});
  ASSERT_TRUE(via.ok()) << via.status();

  std::mutex mu;
  std::condition_variable cv;
  absl::Status loss;
  LeaseClock::time_point lost_at{}, deleted_at{};
  auto a = LeaderLease::Acquire(via->get(), Fast("node-a"), [&](const absl::Status& why) {
    std::lock_guard<std::mutex> lock(mu);
    loss = why;
    lost_at = LeaseClock::now();
    cv.notify_all();
  });
  ASSERT_TRUE(a.ok()) << a.status();
  auto watch = direct_->WatchKey(LeaderLease::LeaderKey("c1"), false, 0,
                                 [&](const etcd::WatchResponse& r) {
                                   std::lock_guard<std::mutex> lock(mu);
                                   for (const auto& e : r.events) {
                                     if (e.type == etcd::WatchEvent::Type::kDelete) {
                                       deleted_at = LeaseClock::now();
                                     }
                                   }
                                   cv.notify_all();
                                 });
  ASSERT_TRUE(watch.ok()) << watch.status();
  std::this_thread::sleep_for(seconds(1));  // a few renewals through the proxy
  ASSERT_TRUE((*a)->Valid());

  (*proxy)->Cut();
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, seconds(30), [&] { return !loss.ok(); }));
    ASSERT_TRUE(cv.wait_for(lock, seconds(30), [&] { return deleted_at != LeaseClock::time_point{}; }))
        << "etcd never expired the leader key";
    EXPECT_EQ(loss.code(), absl::StatusCode::kDeadlineExceeded) << loss;
    EXPECT_LT((*a)->safe_until(), deleted_at);
    EXPECT_LT(lost_at, deleted_at) << "the holder learnt of its loss after etcd deleted the key";
  }
  EXPECT_FALSE((*a)->Valid());
  auto b = LeaderLease::Acquire(direct_.get(), Fast("node-b"), nullptr);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE((*b)->Valid());
  (*proxy)->Heal();
  // The old holder does not come back: its lease is gone.
  EXPECT_TRUE(WaitFor([&] {
    return (*via)->LeaseKeepAliveOnce((*a)->lease_id()).status().code() ==
           absl::StatusCode::kNotFound;
  }, seconds(30)));
  EXPECT_FALSE((*a)->Valid());
  (*watch)->Stop();
}

}  // namespace
}  // namespace relaykv
