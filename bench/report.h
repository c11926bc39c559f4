// What relaykv-bench measured, and how it is written out: a table on
// stdout, JSON and CSV files for other tools, and a gnuplot PNG.
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "bench/floor.h"

namespace relaykv::bench {

struct Run {
  std::string mode;  // none | async | after_commit | after_sync | reads | target
  int replicas = 0;
  int wait_count = 0;
  int clients = 0;
  bool tls = false;  // --tls: servers, replication and clients over mutual TLS
  // "unary": one Put RPC per write; "stream": writes of all clients share
  // one WriteStream through relaykv::Client (--stream).
  std::string transport = "unary";
  double ops_per_s = 0, p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
  uint64_t yes_tx = 0, no_tx = 0, tx_avg_wait_time_us = 0;
  uint64_t errors = 0;
  long rss_start_kb = 0, rss_peak_kb = 0, rss_end_kb = 0;  // primary, measured window
  // At one client: the floor measured right before and right after this run
  // (LowerFloor), the part of it this mode pays, and p50 over that. 0 otherwise.
  Floor floor;
  double floor_us = 0;
  double ratio_to_floor = 0;
  std::vector<std::pair<double, double>> cdf;  // (latency µs, fraction), for plotting
  // With --repeat N: this is the median of N runs of the point, ranked by
  // MedianKey; here every run's key, ascending.
  std::vector<double> repeat_keys;
};

// What ranks repeated runs of one point: p50 over the floor at one client,
// throughput otherwise.
double MedianKey(const Run& r);
// The median of `runs` (one point measured several times) by MedianKey (the
// upper middle one for an even count), carrying every run's key; its errors
// and no_tx are the sums over all runs.
Run MedianRun(std::vector<Run> runs);

struct Report {
  Floor floor;
  std::vector<Run> runs;
  std::map<std::string, std::string> settings;
};

void PrintTable(const Report& r, std::ostream& out);
absl::Status WriteJson(const Report& r, const std::string& path);
absl::Status WriteCsv(const Report& r, const std::string& path);
// Throughput and p99 against clients per mode, and the latency CDF at
// `cdf_clients`. Needs gnuplot; UNAVAILABLE (and nothing written) without it.
absl::Status WritePlot(const Report& r, const std::string& png, int cdf_clients);

}  // namespace relaykv::bench
