// Lets one line of a repeated error through per interval and counts the
// rest. A full disk fails every commit group, thousands a second: one line
// each would bury the log (perhaps on the disk that is full) without saying
// more. The first line always passes, so the start of trouble is exact.
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace relaykv {

class LogThrottle {
 public:
  using Clock = std::chrono::steady_clock;

  explicit LogThrottle(Clock::duration interval) : interval_(interval) {}

  // True when the caller should log now; then *suppressed is how many
  // calls were held back since the last line that passed.
  bool ShouldLog(uint64_t* suppressed) {
    std::lock_guard l(mu_);
    const Clock::time_point now = Clock::now();
    if (logged_once_ && now < next_) {
      ++held_;
      return false;
    }
    logged_once_ = true;
    next_ = now + interval_;
    *suppressed = held_;
    held_ = 0;
    return true;
  }

  // The trouble is over: the next ShouldLog() passes at once, so a new
  // episode's start is as exact as the first one's. The caller's own line
  // says how the last one ended.
  void Reset() {
    std::lock_guard l(mu_);
    logged_once_ = false;
    held_ = 0;
  }

 private:
  const Clock::duration interval_;
  std::mutex mu_;
  bool logged_once_ = false;
  Clock::time_point next_;
  uint64_t held_ = 0;
};

}  // namespace relaykv
