// The change-stream benchmark (relaykv-bench --watchers N): a primary
// (AFTER_SYNC, one semi-sync replica, relaykvd processes) under `clients`
// closed-loop writers, measured alternately without watchers and with 1
// and N watchers — each a Client::Watch of every key from now, on its own
// thread and channel, in a child process. Reports commits/s each way (what watching costs the
// commit path) and the changes/s delivered to the watchers.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "bench/load.h"

namespace relaykv::bench {

struct WatchersPoint {
  int watchers = 0;
  int clients = 0;
  double commits_per_s = 0;       // median of the repeats
  double changes_per_s = 0;       // delivered, all watchers together (median)
  double p50_us = 0, p99_us = 0;  // commit latency of the median run
  uint64_t watch_errors = 0;      // watches that ended with an error
};

// `lo` gives clients, duration, warm-up, key space and value size.
// `prefix`: what the watchers watch (empty: every key; one that matches
// no key measures what watching costs with nothing to deliver).
// The watchers run in a child process (relaykv-bench --watch-child), as a
// deployment's do, or with `in_process` in this one, beside the writers.
std::vector<WatchersPoint> RunWatchers(const std::string& relaykvd, const std::string& work_dir,
                                       int watchers, const std::string& prefix, LoadOptions lo,
                                       int repeat, bool in_process);
// The child: `n` watchers of `prefix` on `target`; prints "changes errors"
// every 20 ms on stdout until stdin closes. Returns the exit code.
int RunWatcherChild(const std::string& target, const std::string& prefix, int n);
void PrintWatchers(const std::vector<WatchersPoint>& points, std::ostream& out);

}  // namespace relaykv::bench
