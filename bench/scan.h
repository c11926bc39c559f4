// The range-read benchmark (relaykv-bench --scan): a spawned primary
// (relaykvd process, no replica) loaded with `keys` keys of `value_size`
// bytes, then the whole range read through Client::Scan, page after page
// by the continuation token — with values, and keys-only. Each pass is
// checked to return every key exactly once, in order; keys/s is the
// median of `repeat` passes.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace relaykv::bench {

struct ScanOptions {
  uint64_t keys = 100000;
  size_t value_size = 100;
  uint32_t page = 1000;  // keys per page (ScanRange::limit)
  int repeat = 3;
};

struct ScanPoint {
  std::string mode;     // "values" or "keys-only"
  double keys_per_s = 0;  // median of the passes
  double pass_ms = 0;     // the median pass's duration
  uint64_t pages = 0;     // pages per pass
};

// Empty (after printing why to stderr) on failure.
std::vector<ScanPoint> RunScan(const std::string& relaykvd, const std::string& work_dir,
                               const ScanOptions& options);
void PrintScan(const ScanOptions& options, const std::vector<ScanPoint>& points,
               std::ostream& out);

}  // namespace relaykv::bench
