#include "bench/watchers.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <thread>

#include "bench/cluster.h"
#include "relaykv/client.h"

namespace relaykv::bench {
namespace {

using Clock = std::chrono::steady_clock;

// N watchers of `prefix` (every key when empty) from now, counting the
// changes they receive.
class WatcherPool {
 public:
  WatcherPool(const std::string& target, const std::string& prefix, int n) {
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this, target, prefix] {
        auto client = Client::Connect({target});
        if (!client.ok()) {
          errors_++;
          started_++;
          return;
        }
        ClientWatchOptions o;
        o.progress_interval = std::chrono::milliseconds(100);
        bool first = true;
        absl::Status s = (*client)->Watch(WatchRange::Prefix(prefix), o, [&](const WatchBatch& b) {
          if (first) started_++;
          first = false;
          uint64_t n = 0;
          for (const WatchEvent& e : b.events) n += e.changes.size();
          changes_ += n;
          return !stop_.load();
        });
        if (first) started_++;
        if (!s.ok()) {
          errors_++;
          std::fprintf(stderr, "watcher: %s\n", s.ToString().c_str());
        }
      });
    }
    while (started_.load() < n) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ~WatcherPool() {
    stop_ = true;
    for (auto& t : threads_) t.join();
  }
  uint64_t changes() const { return changes_.load(); }
  uint64_t errors() const { return errors_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> started_{0};
  std::atomic<uint64_t> changes_{0};
  std::atomic<uint64_t> errors_{0};
  std::vector<std::thread> threads_;
};

struct Try {
  double commits_per_s = 0, changes_per_s = 0, p50_us = 0, p99_us = 0;
  uint64_t errors = 0;
};

Try MeasureOnce(const std::string& target, const std::string& prefix, LoadOptions lo, int watchers) {
  std::unique_ptr<WatcherPool> pool;
  if (watchers > 0) pool = std::make_unique<WatcherPool>(target, prefix, watchers);
  uint64_t changes_at_start = 0;
  Clock::time_point measuring_since{};
  bool measuring = false;
  lo.tick = [&](double, bool now_measuring) {
    if (now_measuring && !measuring && pool) {
      changes_at_start = pool->changes();
      measuring_since = Clock::now();
    }
    measuring = measuring || now_measuring;
  };
  LoadResult r = RunLoad(lo);
  Try t;
  t.commits_per_s = r.ops_per_s();
  t.p50_us = r.Percentile(50);
  t.p99_us = r.Percentile(99);
  if (pool) {
    const double s = std::chrono::duration<double>(Clock::now() - measuring_since).count();
    if (measuring && s > 0) t.changes_per_s = static_cast<double>(pool->changes() - changes_at_start) / s;
    t.errors = pool->errors();
  }
  return t;
}

}  // namespace

std::vector<WatchersPoint> RunWatchers(const std::string& relaykvd, const std::string& work_dir,
                                       int watchers, const std::string& prefix, LoadOptions lo,
                                       int repeat) {
  std::vector<WatchersPoint> out;
  const std::filesystem::path root = std::filesystem::path(work_dir) / "watchers";
  auto cluster = Cluster::Start(relaykvd, root, 1,
                                {"--rpl_semi_sync_master_enabled=ON",
                                 "--rpl_semi_sync_master_wait_point=AFTER_SYNC"},
                                {"--rpl_semi_sync_slave_enabled=ON"});
  if (!cluster.ok()) {
    std::fprintf(stderr, "cannot start the cluster: %s\n", cluster.status().ToString().c_str());
    return out;
  }
  const std::string target = (*cluster)->primary_address();
  lo.target = target;
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the replica connects
  std::vector<int> counts = {0, 1};
  if (watchers > 1) counts.push_back(watchers);
  // Repeats alternate over the watcher counts: a drifting machine weighs
  // on each alike.
  std::map<int, std::vector<Try>> tries;
  for (int i = 0; i < repeat; ++i) {
    for (int w : counts) {
      std::fprintf(stderr, "watchers %d, %d clients, try %d ...\n", w, lo.clients, i + 1);
      tries[w].push_back(MeasureOnce(target, prefix, lo, w));
    }
  }
  for (int w : counts) {
    auto& t = tries[w];
    std::sort(t.begin(), t.end(), [](const Try& a, const Try& b) { return a.commits_per_s < b.commits_per_s; });
    const Try& median = t[t.size() / 2];
    std::vector<double> changes;
    uint64_t errors = 0;
    for (const Try& x : t) {
      changes.push_back(x.changes_per_s);
      errors += x.errors;
    }
    std::sort(changes.begin(), changes.end());
    out.push_back({w, lo.clients, median.commits_per_s, changes[changes.size() / 2], median.p50_us,
                   median.p99_us, errors});
  }
  return out;
}

void PrintWatchers(const std::vector<WatchersPoint>& points, std::ostream& out) {
  const double base = points.empty() ? 0 : points.front().commits_per_s;
  out << "AFTER_SYNC, 1 semi-sync replica: commits with watchers of every key (median)\n";
  out << "watchers  clients  commits/s  vs 0 watchers  p50 us  p99 us  changes/s delivered  per watcher  errors\n";
  for (const WatchersPoint& p : points) {
    char line[256];
    std::snprintf(line, sizeof line, "%8d  %7d  %9.0f  %12.1f%%  %6.0f  %6.0f  %19.0f  %11.0f  %6llu\n",
                  p.watchers, p.clients, p.commits_per_s,
                  base > 0 ? 100.0 * (p.commits_per_s - base) / base : 0.0, p.p50_us, p.p99_us,
                  p.changes_per_s, p.watchers > 0 ? p.changes_per_s / p.watchers : 0.0,
                  static_cast<unsigned long long>(p.watch_errors));
    out << line;
  }
}

}  // namespace relaykv::bench
