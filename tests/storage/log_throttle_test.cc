// Tests storage/log_throttle.h: the first line passes, the rest of an
// interval are counted, and the next line that passes says how many.
#include "storage/log_throttle.h"

#include <chrono>
#include <cstdint>

#include "gtest/gtest.h"

namespace relaykv {
namespace {

TEST(LogThrottleTest, TheFirstLinePassesAndTheRestOfTheIntervalAreCounted) {
  LogThrottle throttle(std::chrono::hours(1));
  uint64_t held = 99;
  ASSERT_TRUE(throttle.ShouldLog(&held));
  EXPECT_EQ(held, 0u);
  for (int i = 0; i < 7; ++i) EXPECT_FALSE(throttle.ShouldLog(&held));
}

TEST(LogThrottleTest, AfterTheIntervalTheNextLineSaysHowManyWereHeldBack) {
  LogThrottle throttle(std::chrono::milliseconds(0));
  uint64_t held = 99;
  ASSERT_TRUE(throttle.ShouldLog(&held));
  EXPECT_EQ(held, 0u);
  ASSERT_TRUE(throttle.ShouldLog(&held));  // the interval has passed
  EXPECT_EQ(held, 0u);

  LogThrottle slow(std::chrono::milliseconds(30));
  ASSERT_TRUE(slow.ShouldLog(&held));
  int held_back = 0;
  const auto start = std::chrono::steady_clock::now();
  while (!slow.ShouldLog(&held)) {
    ++held_back;
    ASSERT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10)) << "hang guard";
  }
  EXPECT_EQ(held, static_cast<uint64_t>(held_back));
}

// Review s37b 3: a new episode of trouble soon after the last one ended is
// logged at once, not hidden by the last episode's interval.
TEST(LogThrottleTest, AfterResetTheNextLinePassesAtOnce) {
  LogThrottle throttle(std::chrono::hours(1));
  uint64_t held = 99;
  ASSERT_TRUE(throttle.ShouldLog(&held));
  EXPECT_FALSE(throttle.ShouldLog(&held));
  EXPECT_FALSE(throttle.ShouldLog(&held));
  throttle.Reset();
  ASSERT_TRUE(throttle.ShouldLog(&held));
  EXPECT_EQ(held, 0u) << "the held-back lines belonged to the last episode";
  EXPECT_FALSE(throttle.ShouldLog(&held));
}

}  // namespace
}  // namespace relaykv
