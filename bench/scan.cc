#include "bench/scan.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "bench/cluster.h"
#include "relaykv/client.h"

namespace relaykv::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::string KeyName(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "scan/%09llu", static_cast<unsigned long long>(i));
  return buf;
}

// One pass over the whole range: {seconds, pages}, or an error if a key is
// missing, repeated or out of order.
absl::StatusOr<std::pair<double, uint64_t>> Pass(Client& client, const ScanOptions& o,
                                                 bool keys_only) {
  ScanRange range;
  range.prefix = "scan/";
  range.keys_only = keys_only;
  range.limit = o.page;
  ReadOptions read;
  read.timeout = std::chrono::seconds(60);
  uint64_t seen = 0, pages = 0;
  const auto began = Clock::now();
  for (;;) {
    auto page = client.Scan(range, read);
    if (!page.ok()) return page.status();
    ++pages;
    for (const KeyValue& kv : page->rows) {
      if (kv.key != KeyName(seen) || (!keys_only && kv.value.size() != o.value_size)) {
        return absl::InternalError("scan returned " + kv.key + " where " + KeyName(seen) +
                                   " was expected");
      }
      ++seen;
    }
    if (page->done()) break;
    range.continuation = std::move(page->continuation);
  }
  const double s = std::chrono::duration<double>(Clock::now() - began).count();
  if (seen != o.keys) {
    return absl::InternalError("scan returned " + std::to_string(seen) + " keys of " +
                               std::to_string(o.keys));
  }
  return std::make_pair(s, pages);
}

}  // namespace

std::vector<ScanPoint> RunScan(const std::string& relaykvd, const std::string& work_dir,
                               const ScanOptions& o) {
  const std::filesystem::path root = std::filesystem::path(work_dir) / "scan";
  auto cluster = Cluster::Start(relaykvd, root, 0, {}, {});
  if (!cluster.ok()) {
    std::cerr << "relaykv-bench --scan: " << cluster.status() << "\n";
    return {};
  }
  auto client = Client::Connect({(*cluster)->primary_address()});
  if (!client.ok()) {
    std::cerr << "relaykv-bench --scan: " << client.status() << "\n";
    return {};
  }
  // Loaded in atomic batches of 1000 (the load is not what is measured).
  const std::string value(o.value_size, 'v');
  for (uint64_t i = 0; i < o.keys;) {
    std::vector<Mutation> batch;
    for (; i < o.keys && batch.size() < 1000; ++i) batch.push_back(Mutation::Put(KeyName(i), value));
    if (auto s = (*client)->Write(batch); !s.ok()) {
      std::cerr << "relaykv-bench --scan: loading: " << s.status() << "\n";
      return {};
    }
  }
  std::vector<ScanPoint> points;
  for (bool keys_only : {false, true}) {
    std::vector<std::pair<double, uint64_t>> passes;
    for (int r = 0; r < std::max(1, o.repeat); ++r) {
      auto pass = Pass(**client, o, keys_only);
      if (!pass.ok()) {
        std::cerr << "relaykv-bench --scan: " << pass.status() << "\n";
        return {};
      }
      passes.push_back(*pass);
    }
    std::sort(passes.begin(), passes.end());
    const auto& median = passes[passes.size() / 2];
    points.push_back({keys_only ? "keys-only" : "values",
                      median.first > 0 ? static_cast<double>(o.keys) / median.first : 0,
                      median.first * 1000, median.second});
  }
  return points;
}

void PrintScan(const ScanOptions& o, const std::vector<ScanPoint>& points, std::ostream& out) {
  out << "scan of " << o.keys << " keys (" << o.value_size << "-byte values), pages of " << o.page
      << " keys, median of " << o.repeat << "\n";
  char line[160];
  std::snprintf(line, sizeof(line), "%-10s %12s %10s %8s\n", "mode", "keys/s", "pass ms", "pages");
  out << line;
  for (const ScanPoint& p : points) {
    std::snprintf(line, sizeof(line), "%-10s %12.0f %10.1f %8llu\n", p.mode.c_str(), p.keys_per_s,
                  p.pass_ms, static_cast<unsigned long long>(p.pages));
    out << line;
  }
}

}  // namespace relaykv::bench
