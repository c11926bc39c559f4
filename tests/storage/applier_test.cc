// Tests storage/applier.cc: only released events reach the state machine,
// in seq order; waiters see OK, DEADLINE_EXCEEDED or CANCELLED; a restarted
// applier replays the binlog from the state machine's position.
#include "storage/applier.h"

#include <chrono>
#include <filesystem>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "storage/binlog.h"
#include "storage/state_machine.h"
#include "tests/storage/test_util.h"

namespace relaykv {
namespace {

namespace fs = std::filesystem;
using testing::HangGuardDeadline;
using testing::PutEvent;
using testing::TempDir;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using Value = std::optional<std::string>;

class ApplierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binlog_ = testing::OpenBinlog(dir_.path() / "binlog");
    ASSERT_NE(binlog_, nullptr);
    OpenState();
  }

  void OpenState() {
    auto sm = StateMachine::Open(dir_.path() / "db");
    ASSERT_TRUE(sm.ok()) << sm.status();
    state_ = *std::move(sm);
  }

  // Commits "key1".."key<n>" continuing the binlog; they get seqs in order.
  void Commit(uint64_t n) {
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t seq = binlog_->LastVisible().seq + 1;
      v1::Event e = PutEvent("key" + std::to_string(seq), "v" + std::to_string(seq));
      ASSERT_TRUE(binlog_->Commit(&e).ok());
      ASSERT_EQ(e.gtid().seq(), seq);
    }
  }

  Value Get(uint64_t seq) {
    auto v = state_->Get("key" + std::to_string(seq));
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : Value();
  }

  void ExpectAppliedThrough(uint64_t seq) {
    for (uint64_t s = 1; s <= seq; ++s) EXPECT_EQ(Get(s), Value("v" + std::to_string(s))) << s;
    EXPECT_EQ(state_->Applied().seq, seq);
  }

  TempDir dir_;
  std::unique_ptr<Binlog> binlog_;
  std::unique_ptr<StateMachine> state_;
};

TEST_F(ApplierTest, ReleasedEventsAreApplied) {
  Applier applier(binlog_.get(), state_.get());
  ASSERT_TRUE(applier.Start().ok());
  EXPECT_TRUE(applier.running());
  Commit(3);
  applier.Release(3);
  ASSERT_TRUE(applier.WaitApplied(3, HangGuardDeadline()).ok());
  EXPECT_EQ(applier.applied(), 3u);
  ExpectAppliedThrough(3);
}

TEST_F(ApplierTest, EventsBeyondTheReleasePointAreNotApplied) {
  Applier applier(binlog_.get(), state_.get());
  ASSERT_TRUE(applier.Start().ok());
  Commit(3);
  applier.Release(1);
  ASSERT_TRUE(applier.WaitApplied(1, HangGuardDeadline()).ok());
  EXPECT_EQ(applier.WaitApplied(2, Clock::now() + milliseconds(200)).code(),
            absl::StatusCode::kDeadlineExceeded);
  applier.ApplyReleased();  // offering to help must not go past the release point either
  EXPECT_EQ(Get(2), std::nullopt);
  EXPECT_EQ(Get(3), std::nullopt);
  EXPECT_EQ(applier.applied(), 1u);
  ExpectAppliedThrough(1);
  applier.Release(3);
  applier.ApplyReleased();
  ASSERT_TRUE(applier.WaitApplied(3, HangGuardDeadline()).ok());
  ExpectAppliedThrough(3);
}

TEST_F(ApplierTest, ReleaseAndApplyHasAppliedWhenItReturns) {
  Applier applier(binlog_.get(), state_.get());
  ASSERT_TRUE(applier.Start().ok());
  Commit(3);
  applier.ReleaseAndApply(2);  // nobody else is applying: done on this thread
  EXPECT_EQ(applier.applied(), 2u);
  ExpectAppliedThrough(2);
  EXPECT_EQ(Get(3), std::nullopt);
}

TEST_F(ApplierTest, ManyWaitersOnDifferentSeqsAreEachWoken) {
  Applier applier(binlog_.get(), state_.get());
  ASSERT_TRUE(applier.Start().ok());
  Commit(8);
  std::vector<std::future<absl::Status>> waiters;
  for (uint64_t seq = 8; seq >= 1; --seq) {
    waiters.push_back(std::async(std::launch::async,
                                 [&, seq] { return applier.WaitApplied(seq, HangGuardDeadline()); }));
  }
  applier.Release(4);
  for (size_t i = 4; i < 8; ++i) {  // seqs 4..1
    ASSERT_EQ(waiters[i].wait_for(testing::kHangGuard), std::future_status::ready) << 8 - i;
    EXPECT_TRUE(waiters[i].get().ok());
  }
  for (size_t i = 0; i < 4; ++i) {  // seqs 8..5: not released
    EXPECT_EQ(waiters[i].wait_for(milliseconds(0)), std::future_status::timeout) << 8 - i;
  }
  applier.Release(8);
  for (size_t i = 0; i < 4; ++i) EXPECT_TRUE(waiters[i].get().ok()) << 8 - i;
  ExpectAppliedThrough(8);
}

TEST_F(ApplierTest, ReleaseNeverGoesBack) {
  Applier applier(binlog_.get(), state_.get());
  ASSERT_TRUE(applier.Start().ok());
  Commit(5);
  applier.Release(4);
  applier.Release(2);
  EXPECT_EQ(applier.released(), 4u);
  ASSERT_TRUE(applier.WaitApplied(4, HangGuardDeadline()).ok());
  ExpectAppliedThrough(4);
}

TEST_F(ApplierTest, WaitAppliedPastItsDeadlineIsDeadlineExceeded) {
  Applier applier(binlog_.get(), state_.get());
  ASSERT_TRUE(applier.Start().ok());
  const auto deadline = Clock::now() + milliseconds(100);
  EXPECT_EQ(applier.WaitApplied(1, deadline).code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_GE(Clock::now(), deadline);
  EXPECT_TRUE(applier.running()) << "a timed-out waiter does not stop the applier";
}

TEST_F(ApplierTest, StopCancelsWaiters) {
  Applier applier(binlog_.get(), state_.get());
  ASSERT_TRUE(applier.Start().ok());
  Commit(2);
  auto waiter = std::async(std::launch::async,
                           [&] { return applier.WaitApplied(2, HangGuardDeadline()); });
  ASSERT_EQ(waiter.wait_for(milliseconds(100)), std::future_status::timeout)
      << "returned before seq 2 was released";
  applier.Stop();
  ASSERT_EQ(waiter.wait_for(testing::kHangGuard), std::future_status::ready) << "Stop() did not wake it";
  EXPECT_EQ(waiter.get().code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(applier.running());
  EXPECT_EQ(applier.WaitApplied(2, HangGuardDeadline()).code(), absl::StatusCode::kCancelled)
      << "a waiter arriving after Stop()";
  applier.Release(2);
  applier.ApplyReleased();
  EXPECT_EQ(Get(1), std::nullopt) << "a stopped applier applies nothing";
}

TEST_F(ApplierTest, StartTwiceIsFailedPrecondition) {
  Applier applier(binlog_.get(), state_.get());
  ASSERT_TRUE(applier.Start().ok());
  EXPECT_EQ(applier.Start().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(applier.running());
}

TEST_F(ApplierTest, RestartFromAnEarlierStateReplaysTheRest) {
  Commit(10);
  {
    Applier applier(binlog_.get(), state_.get());
    ASSERT_TRUE(applier.Start().ok());
    applier.Release(4);
    ASSERT_TRUE(applier.WaitApplied(4, HangGuardDeadline()).ok());
    applier.Stop();
  }
  // A restart: the state machine comes back at 4, the binlog holds 1..10.
  state_.reset();
  OpenState();
  ASSERT_EQ(state_->Applied().seq, 4u);
  Applier applier(binlog_.get(), state_.get());
  ASSERT_TRUE(applier.Start().ok());
  EXPECT_EQ(applier.applied(), 4u);
  applier.Release(10);
  ASSERT_TRUE(applier.WaitApplied(10, HangGuardDeadline()).ok());
  ExpectAppliedThrough(10);
}

TEST_F(ApplierTest, EmptyStateReplaysTheWholeBinlog) {
  Commit(20);
  Applier applier(binlog_.get(), state_.get());
  ASSERT_TRUE(applier.Start().ok());
  applier.Release(20);
  ASSERT_TRUE(applier.WaitApplied(20, HangGuardDeadline()).ok());
  ExpectAppliedThrough(20);
}

TEST_F(ApplierTest, StartFailsWhenTheStateIsAheadOfTheBinlog) {
  std::vector<v1::Event> ahead = {testing::At(1, 1, PutEvent("a", "1")),
                                  testing::At(1, 2, PutEvent("b", "2"))};
  ASSERT_TRUE(state_->Apply(ahead).ok());
  Applier applier(binlog_.get(), state_.get());  // the binlog is empty
  const absl::Status s = applier.Start();
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
  EXPECT_FALSE(applier.running());
}

TEST_F(ApplierTest, ConcurrentCommittersEachSeeTheirOwnWriteApplied) {
  // The primary's commit path: commit, release, help apply, wait.
  Applier applier(binlog_.get(), state_.get());
  ASSERT_TRUE(applier.Start().ok());
  constexpr int kThreads = 8, kPerThread = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string key = "t" + std::to_string(t) + "-" + std::to_string(i);
        v1::Event e = PutEvent(key, "v");
        ASSERT_TRUE(binlog_->Commit(&e).ok());
        applier.Release(e.gtid().seq());
        applier.ApplyReleased();
        ASSERT_TRUE(applier.WaitApplied(e.gtid().seq(), HangGuardDeadline()).ok());
        auto v = state_->Get(key);
        ASSERT_TRUE(v.ok());
        ASSERT_EQ(*v, Value("v")) << key << " not readable after WaitApplied";
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(state_->Applied().seq, uint64_t{kThreads * kPerThread});
}

}  // namespace
}  // namespace relaykv
