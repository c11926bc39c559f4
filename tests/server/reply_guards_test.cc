// Tests ReplyGuards' byte budget for stream messages (server/reply_guards.h):
// Watch batches wait for room, and together hold at most half of
// max_inflight_reply_bytes, so that reads keep the other half (review s44d
// L2: a fan-out of a large change to slow watchers refused every large read).
#include "server/reply_guards.h"

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "gtest/gtest.h"
#include "server/connection_slots.h"

namespace relaykv {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

class ReplyGuardsTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kBudget = 100;
  const std::function<bool()> never_ = [] { return false; };
  std::atomic<uint64_t> max_connections_{10};
  ConnectionSlots slots_{&max_connections_};
  ReplyGuards guards_{&slots_, [] { return std::chrono::seconds(10); }, [] { return kBudget; },
                      {}};
};

TEST_F(ReplyGuardsTest, StreamMessagesTogetherHoldAtMostHalfTheBudget) {
  ASSERT_TRUE(guards_.ReserveBytes(30, "Watch batch", Clock::now() + 1s, never_).ok());
  ASSERT_TRUE(guards_.ReserveBytes(20, "Watch batch", Clock::now() + 1s, never_).ok());
  EXPECT_EQ(guards_.reply_bytes(), 50u);
  // 70 of 100 would fit the budget, not the streams' half of it.
  const absl::Status s = guards_.ReserveBytes(20, "Watch batch", Clock::now() + 200ms, never_);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_NE(s.message().find("half of max_inflight_reply_bytes=100"), std::string::npos) << s;
  EXPECT_EQ(guards_.reply_bytes(), 50u);

  // A release lets the waiting message through.
  auto waiting = std::async(std::launch::async, [&] {
    return guards_.ReserveBytes(20, "Watch batch", Clock::now() + 10s, never_);
  });
  EXPECT_EQ(waiting.wait_for(200ms), std::future_status::timeout) << "it waits for room";
  guards_.ReleaseBytes(30);
  ASSERT_EQ(waiting.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(waiting.get().ok());
  EXPECT_EQ(guards_.reply_bytes(), 40u);
  guards_.ReleaseBytes(20);
  guards_.ReleaseBytes(20);
  EXPECT_EQ(guards_.reply_bytes(), 0u);
}

TEST_F(ReplyGuardsTest, AStreamMessageAloneIsLetThroughWhateverItsSize) {
  ASSERT_TRUE(guards_.ReserveBytes(80, "Watch batch", Clock::now() + 1s, never_).ok());
  EXPECT_EQ(guards_.ReserveBytes(1, "Watch batch", Clock::now() + 100ms, never_).code(),
            absl::StatusCode::kResourceExhausted);
  guards_.ReleaseBytes(80);
  ASSERT_TRUE(guards_.ReserveBytes(500, "Watch batch", Clock::now() + 1s, never_).ok());
  guards_.ReleaseBytes(500);
  EXPECT_EQ(guards_.reply_bytes(), 0u);
}

// Messages waiting for room go in the order they came: newcomers that
// would fit do not pass an older one that does not yet, which a stream of
// small messages could otherwise keep waiting for good (review s46c M1,
// s46d M1). Once the others are sent it goes, even over half the budget.
TEST_F(ReplyGuardsTest, WaitingMessagesGoInTheOrderTheyCame) {
  ASSERT_TRUE(guards_.ReserveBytes(1, "Watch batch", Clock::now() + 1s, never_).ok());
  auto large = std::async(std::launch::async, [&] {
    return guards_.ReserveBytes(60, "Watch batch", Clock::now() + 10s, never_);
  });
  EXPECT_EQ(large.wait_for(200ms), std::future_status::timeout) << "1 + 60 passes the half";
  const absl::Status small = guards_.ReserveBytes(1, "Watch batch", Clock::now() + 200ms, never_);
  EXPECT_EQ(small.code(), absl::StatusCode::kResourceExhausted) << "behind the waiting one";
  EXPECT_NE(small.message().find("older ones wait before it"), std::string::npos) << small;
  guards_.ReleaseBytes(1);
  ASSERT_EQ(large.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(large.get().ok()) << "alone now";
  EXPECT_EQ(guards_.reply_bytes(), 60u);
  guards_.ReleaseBytes(60);
  ASSERT_TRUE(guards_.ReserveBytes(1, "Watch batch", Clock::now() + 1s, never_).ok())
      << "nobody waits any more";
  guards_.ReleaseBytes(1);
}

}  // namespace
}  // namespace relaykv
