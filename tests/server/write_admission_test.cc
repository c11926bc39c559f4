// WriteAdmission (server/write_admission.h): admits within the caps, queues
// past them in order, refuses a waiter at its timeout and at once when the
// queue is full, and refuses every waiter at Close().
#include "server/write_admission.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/common/temp_dir.h"

namespace relaykv {
namespace {

using testing::WaitFor;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// What each Admit() was answered, by index.
struct Answers {
  std::mutex mu;
  std::vector<std::pair<int, absl::Status>> got;
  WriteAdmission::Admitted For(int i) {
    return [this, i](absl::Status s) {
      std::lock_guard l(mu);
      got.emplace_back(i, std::move(s));
    };
  }
  size_t size() {
    std::lock_guard l(mu);
    return got.size();
  }
  std::pair<int, absl::Status> at(size_t k) {
    std::lock_guard l(mu);
    return got[k];
  }
};

const auto kFar = Clock::time_point::max();

TEST(WriteAdmissionTest, AdmitsWithinTheCountAndQueuesPastItInOrder) {
  WriteAdmission a([] { return WriteAdmission::Limits{2, 1 << 20, 10000}; });
  Answers ans;
  a.Admit(10, kFar, ans.For(0));
  a.Admit(10, kFar, ans.For(1));
  ASSERT_EQ(ans.size(), 2u) << "within the cap: admitted on the caller's thread";
  a.Admit(10, kFar, ans.For(2));
  a.Admit(10, kFar, ans.For(3));
  EXPECT_EQ(ans.size(), 2u);
  EXPECT_EQ(a.stats().queued, 2u);
  a.Release(10);
  ASSERT_TRUE(WaitFor([&] { return ans.size() == 3; }));
  EXPECT_EQ(ans.at(2).first, 2) << "the oldest waiter first";
  EXPECT_TRUE(ans.at(2).second.ok());
  a.Release(10);
  ASSERT_TRUE(WaitFor([&] { return ans.size() == 4; }));
  EXPECT_EQ(ans.at(3).first, 3);
  EXPECT_EQ(a.stats().waits, 2u);
  EXPECT_EQ(a.stats().refused, 0u);
  a.Release(10);
  a.Release(10);
  EXPECT_EQ(a.stats().in_flight, 0u);
}

TEST(WriteAdmissionTest, TheByteCapQueuesButALoneBigWriteIsAdmitted) {
  WriteAdmission a([] { return WriteAdmission::Limits{100, 1000, 10000}; });
  Answers ans;
  a.Admit(5000, kFar, ans.For(0));  // over the cap by itself, nothing else in flight
  ASSERT_EQ(ans.size(), 1u);
  EXPECT_TRUE(ans.at(0).second.ok());
  a.Admit(10, kFar, ans.For(1));
  EXPECT_EQ(ans.size(), 1u) << "5000 + 10 bytes is over max_inflight_write_bytes";
  a.Release(5000);
  ASSERT_TRUE(WaitFor([&] { return ans.size() == 2; }));
  EXPECT_TRUE(ans.at(1).second.ok());
  a.Release(10);
}

TEST(WriteAdmissionTest, AWaiterIsRefusedAtItsTimeoutNamingTheLimits) {
  WriteAdmission a([] { return WriteAdmission::Limits{1, 1 << 20, 200}; });
  Answers ans;
  a.Admit(10, kFar, ans.For(0));
  const auto start = Clock::now();
  a.Admit(10, kFar, ans.For(1));
  ASSERT_TRUE(WaitFor([&] { return ans.size() == 2; }));
  EXPECT_GE(Clock::now() - start, milliseconds(190));
  const absl::Status s = ans.at(1).second;
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_NE(s.message().find("max_inflight_writes=1"), std::string::npos) << s;
  EXPECT_NE(s.message().find("write_queue_timeout_ms"), std::string::npos) << s;
  EXPECT_EQ(a.stats().refused, 1u);
  EXPECT_EQ(a.stats().queued, 0u);
  a.Release(10);
}

TEST(WriteAdmissionTest, AWaiterIsRefusedAtItsOwnEarlierDeadline) {
  WriteAdmission a([] { return WriteAdmission::Limits{1, 1 << 20, 60000}; });
  Answers ans;
  a.Admit(10, kFar, ans.For(0));
  a.Admit(10, Clock::now() + milliseconds(100), ans.For(1));
  ASSERT_TRUE(WaitFor([&] { return ans.size() == 2; }, std::chrono::seconds(10)));
  EXPECT_EQ(ans.at(1).second.code(), absl::StatusCode::kResourceExhausted);
  a.Release(10);
}

TEST(WriteAdmissionTest, AFullQueueRefusesAtOnce) {
  WriteAdmission a([] { return WriteAdmission::Limits{1, 1 << 20, 60000}; });
  Answers ans;
  a.Admit(10, kFar, ans.For(0));  // in flight
  a.Admit(10, kFar, ans.For(1));  // queued: the queue holds max_writes (1)
  a.Admit(10, kFar, ans.For(2));  // refused on this thread
  ASSERT_EQ(ans.size(), 2u);
  EXPECT_EQ(ans.at(1).first, 2);
  EXPECT_EQ(ans.at(1).second.code(), absl::StatusCode::kResourceExhausted);
  a.Release(10);
  ASSERT_TRUE(WaitFor([&] { return ans.size() == 3; }));
  a.Release(10);
}

TEST(WriteAdmissionTest, ZeroQueueTimeoutRefusesAtOnce) {
  WriteAdmission a([] { return WriteAdmission::Limits{1, 1 << 20, 0}; });
  Answers ans;
  a.Admit(10, kFar, ans.For(0));
  a.Admit(10, kFar, ans.For(1));
  ASSERT_EQ(ans.size(), 2u);
  EXPECT_EQ(ans.at(1).second.code(), absl::StatusCode::kResourceExhausted);
  a.Release(10);
}

TEST(WriteAdmissionTest, CloseRefusesEveryWaiterAndEveryLaterWrite) {
  WriteAdmission a([] { return WriteAdmission::Limits{1, 1 << 20, 60000}; });
  Answers ans;
  a.Admit(10, kFar, ans.For(0));
  a.Admit(10, kFar, ans.For(1));
  a.Close();
  ASSERT_EQ(ans.size(), 2u);
  EXPECT_EQ(ans.at(1).second.code(), absl::StatusCode::kUnavailable);
  a.Admit(10, kFar, ans.For(2));
  ASSERT_EQ(ans.size(), 3u);
  EXPECT_EQ(ans.at(2).second.code(), absl::StatusCode::kUnavailable);
  a.Release(10);
}

}  // namespace
}  // namespace relaykv
