// Closed-loop load: `clients` clients, each with one request in flight,
// sending the next as soon as the last one is answered (Put of a random key
// from the keyspace, or Get). Over gRPC each client has its own channel and
// asynchronous calls on two threads drive them all; against an embedded
// node each client is a chain of asynchronous writes, the next issued from
// the last one's callback; with put_blocking, a thread per client. Either way no thread waits per client, so the
// generator stays light. Every latency is kept: the percentiles are exact.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "relaykv/tls.h"

namespace relaykv::bench {

struct LoadOptions {
  std::string target;  // HOST:PORT
  TlsOptions tls;      // the clients' channels (--tls)
  int clients = 1;
  double warmup_s = 1;
  double duration_s = 5;
  uint64_t keyspace = 100000;
  size_t value_size = 100;
  bool reads = false;  // Get instead of Put
  // Set: clients write through this (an embedded node's WriteAsync) instead
  // of gRPC channels; `target` is then unused. `done` must be called exactly
  // once, maybe before put_async returns.
  using PutDone = std::function<void(absl::Status)>;
  std::function<void(std::string key, std::string value, PutDone done)> put_async;
  // Set (and put_async not): each client is a thread calling this in a loop
  // (a blocking relaykv::Client call: --stream shares one Client, so one
  // WriteStream, among all of them); `target` is then unused.
  std::function<absl::Status(std::string key, std::string value)> put_blocking;
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
