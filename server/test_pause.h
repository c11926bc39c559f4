// Test hooks. A process started with RELAYKV_TEST_PAUSE=<point> logs
// "test pause at <point>" and stops for a minute (RELAYKV_TEST_PAUSE_SECONDS
// if set) when it reaches that point, so a test can SIGKILL it exactly
// there, or act while it waits; <point>,<point>,... pauses at each of them
// (every time one is reached). Never set outside tests; costs one
// comparison per call when unset.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string_view>
#include <thread>

#include "spdlog/spdlog.h"

namespace relaykv {

inline void PauseHereForTesting(std::string_view point) {
  static const char* const want = std::getenv("RELAYKV_TEST_PAUSE");
  if (want == nullptr) return;
  bool listed = false;
  for (std::string_view rest = want; !listed;) {
    const size_t comma = rest.find(',');
    listed = rest.substr(0, comma) == point;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (!listed) return;
  static const char* const seconds = std::getenv("RELAYKV_TEST_PAUSE_SECONDS");
  spdlog::warn("test pause at {}", point);
  std::this_thread::sleep_for(
      std::chrono::seconds(seconds != nullptr ? std::strtoull(seconds, nullptr, 10) : 60));
}

// RELAYKV_TEST_FAIL=<point>: true the first time the process reaches that
// point (it logs "test fault at <point>"), so a test can see how the rest
// of the system deals with that failure; false ever after, and when unset.
inline bool FailOnceHereForTesting(std::string_view point) {
  static const char* const want = std::getenv("RELAYKV_TEST_FAIL");
  if (want == nullptr || point != want) return false;
  static std::atomic<bool> failed{false};
  if (failed.exchange(true)) return false;
  spdlog::warn("test fault at {}", point);
  return true;
}

}  // namespace relaykv
