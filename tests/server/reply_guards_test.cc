// Tests ReplyGuards' byte budget for stream messages (server/reply_guards.h):
// Watch batches wait for room, and together hold at most half of
// max_inflight_reply_bytes, so that reads keep the other half (review s44d
// L2: a fan-out of a large change to slow watchers refused every large read).
#include "server/reply_guards.h"

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "server/connection_slots.h"
#include "tests/common/temp_dir.h"

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

// Messages over kSmallStreamMessageBytes waiting for room go in the order
// they came: newcomers that would fit do not pass an older one that does
// not yet, which a stream of such messages could otherwise keep waiting for
// good (review s46c M1, s46d M1). Once the others are sent it goes, even
// over half the budget. Small messages go whenever they fit, so one large
// batch at the head does not hold up every other watcher (review s46e M1).
class ReplyGuardsOrderTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kLarge = ReplyGuards::kSmallStreamMessageBytes + 1;
  static constexpr uint64_t kBudget = 4 * kLarge;
  const std::function<bool()> never_ = [] { return false; };
  std::atomic<uint64_t> max_connections_{10};
  ConnectionSlots slots_{&max_connections_};
  ReplyGuards guards_{&slots_, [] { return std::chrono::seconds(10); }, [] { return kBudget; },
                      {}};
};

TEST_F(ReplyGuardsOrderTest, LargerWaitingMessagesGoInTheOrderTheyCame) {
  ASSERT_TRUE(guards_.ReserveBytes(kLarge, "Watch batch", Clock::now() + 1s, never_).ok());
  // Over the half with the one held: it waits.
  auto first = std::async(std::launch::async, [&] {
    return guards_.ReserveBytes(kLarge + 10, "Watch batch", Clock::now() + 20s, never_);
  });
  ASSERT_TRUE(testing::WaitFor([&] { return guards_.waiting_bytes() == kLarge + 10; }));
  // A small one goes past it (within ReplyGuards::kSmallMessagesPass of its wait).
  EXPECT_TRUE(guards_.ReserveBytes(100, "Watch batch", Clock::now() + 200ms, never_).ok());
  guards_.ReleaseBytes(100);
  // Fits beside the one held, but the first waits before it.
  const absl::Status second =
      guards_.ReserveBytes(kLarge, "Watch batch", Clock::now() + 200ms, never_);
  EXPECT_EQ(second.code(), absl::StatusCode::kResourceExhausted) << second;
  EXPECT_NE(second.message().find("waited behind older stream messages"), std::string::npos)
      << second;
  guards_.ReleaseBytes(kLarge);
  ASSERT_EQ(first.wait_for(20s), std::future_status::ready);
  EXPECT_TRUE(first.get().ok()) << "its turn, and alone now";
  EXPECT_EQ(guards_.reply_bytes(), kLarge + 10);
  guards_.ReleaseBytes(kLarge + 10);
  EXPECT_TRUE(guards_.ReserveBytes(kLarge, "Watch batch", Clock::now() + 1s, never_).ok())
      << "nobody waits any more";
  guards_.ReleaseBytes(kLarge);
  EXPECT_EQ(guards_.reply_bytes(), 0u);
  EXPECT_EQ(guards_.waiting_bytes(), 0u);
}

// Small messages pass a waiting larger one only for kSmallMessagesPass:
// four watchers' small messages, each held a few ms, nearly always hold
// some room, and a message over half the budget needs none held; it went
// only by luck before (review s46f M1).
TEST_F(ReplyGuardsOrderTest, SmallMessagesCannotKeepALargeOneWaitingForGood) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> small;
  for (int i = 0; i < 4; ++i) {
    small.emplace_back([&] {
      for (int n = 0; n < 20000 && !stop.load(); ++n) {
        if (guards_.ReserveBytes(100, "Watch batch", Clock::now() + 10s, never_).ok()) {
          std::this_thread::sleep_for(5ms);
          guards_.ReleaseBytes(100);
        }
      }
    });
  }
  std::this_thread::sleep_for(100ms);
  const auto start = Clock::now();
  const absl::Status large =
      guards_.ReserveBytes(3 * kLarge, "Watch batch", Clock::now() + 8s, never_);
  const auto took = Clock::now() - start;
  stop = true;
  if (large.ok()) guards_.ReleaseBytes(3 * kLarge);  // the small ones queued behind it go
  for (auto& t : small) t.join();
  EXPECT_TRUE(large.ok()) << large;
  EXPECT_LT(took, 5s);
  EXPECT_EQ(guards_.reply_bytes(), 0u);
  EXPECT_EQ(guards_.waiting_bytes(), 0u);
}

}  // namespace
}  // namespace relaykv
