// Reading samples back out of a Prometheus text exposition in tests.
#pragma once

#include <optional>
#include <sstream>
#include <string>

namespace relaykv::testing {

// The value of the sample whose name and labels are exactly `series`
// (e.g. `relaykv_up` or `relaykv_commit_duration_seconds_count{wait_point="async"}`);
// nullopt if absent.
inline std::optional<double> SampleValue(const std::string& exposition, const std::string& series) {
  std::istringstream in(exposition);
  for (std::string line; std::getline(in, line);) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return std::nullopt;
}

}  // namespace relaykv::testing
