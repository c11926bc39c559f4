// CapturedLog: makes the default spdlog logger write into a string while it
// lives, for tests that check what the storage or server code logged.
#pragma once

#include <memory>
#include <sstream>
#include <string>

// relaykv_storage links spdlog privately, so its compile definitions do not
// reach the tests: use the compiled library as the storage code does, so the
// test swaps the logger of the one registry the storage code logs through.
#ifndef SPDLOG_COMPILED_LIB
#define SPDLOG_COMPILED_LIB
#endif
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace relaykv::testing {

class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("captured", sink));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;

  // The first line holding `needle`; empty if none does.
  std::string LineWith(const std::string& needle) const {
    std::istringstream in(out_.str());
    for (std::string line; std::getline(in, line);) {
      if (line.find(needle) != std::string::npos) return line;
    }
    return "";
  }
  // How many lines hold `needle`.
  int CountLinesWith(const std::string& needle) const {
    std::istringstream in(out_.str());
    int n = 0;
    for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
    return n;
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

}  // namespace relaykv::testing
