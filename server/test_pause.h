// Test hook: a process started with RELAYKV_TEST_PAUSE=<point> logs
// "test pause at <point>" and stops for a minute when it reaches that point,
// so a test can SIGKILL it exactly there. Never set outside tests; costs one
// comparison per call when unset.
#pragma once

#include <chrono>
#include <cstdlib>
#include <string_view>
#include <thread>

#include "spdlog/spdlog.h"

namespace relaykv {

inline void PauseHereForTesting(std::string_view point) {
  static const char* const want = std::getenv("RELAYKV_TEST_PAUSE");
  if (want == nullptr || point != want) return;
  spdlog::warn("test pause at {}", point);
  std::this_thread::sleep_for(std::chrono::seconds(60));
}

}  // namespace relaykv
