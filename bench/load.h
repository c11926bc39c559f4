// Closed-loop load over gRPC: `clients` clients, each with its own channel
// and one request in flight, sending the next as soon as the last one is
// answered (Put of a random key from the keyspace, or Get). Asynchronous
// calls on two threads drive them all, so the generator stays light. Every
// latency is kept, so the percentiles are exact.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace relaykv::bench {

struct LoadOptions {
  std::string target;  // HOST:PORT
  int clients = 1;
  double warmup_s = 1;
  double duration_s = 5;
  uint64_t keyspace = 100000;
  size_t value_size = 100;
  bool reads = false;  // Get instead of Put
  // Set: each client is a thread calling this (an embedded node's Put)
  // instead of a gRPC channel; `target` is then unused.
  std::function<absl::Status(std::string key, std::string value)> put;
  // Called ~4x a second from the calling thread: seconds left, and whether
  // the measured window has begun (warm-up is over).
  std::function<void(double seconds_left, bool measuring)> tick;
};

struct LoadResult {
  uint64_t ops = 0;                // answered OK during the measured window
  uint64_t errors = 0;
  std::string first_error;
  double seconds = 0;              // measured window
  std::vector<double> latency_us;  // sorted ascending
  double Percentile(double p) const;  // p in [0, 100]
  double ops_per_s() const { return seconds > 0 ? static_cast<double>(ops) / seconds : 0; }
};

LoadResult RunLoad(const LoadOptions& options);

}  // namespace relaykv::bench
