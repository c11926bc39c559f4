// NodeMetrics: the histograms a node records on its hot paths (commit
// latency per wait point, fsync latency and group commit sizes of the
// binlog or relay log). Everything else /metrics shows is read at scrape
// time from what the node already counts for SHOW STATUS, SHOW SLAVE STATUS
// and SHOW BINARY LOGS (node_metrics.cc: Node::MetricsText), never counted
// twice.
//
// Threads: every member is lock-free and may be touched from any thread;
// recording is two relaxed atomic adds (server/metrics.h), no lock and no
// allocation, so it may sit on the commit path.
//
// Ownership: owned by Node::Impl, declared before the binlog that borrows
// it as its BinlogObserver (so it outlives the binlog).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "server/metrics.h"
#include "storage/binlog_observer.h"

namespace relaykv {

class NodeMetrics : public BinlogObserver {
 public:
  NodeMetrics() = default;
  NodeMetrics(const NodeMetrics&) = delete;
  NodeMetrics& operator=(const NodeMetrics&) = delete;

  // How a successful commit's reply was decided: by replica ACKs, labelled
  // with the wait point the commit was made under (AFTER_SYNC, or
  // AFTER_COMMIT — applied before its ACKs, or after them when it had to
  // wait behind an unreleased AFTER_SYNC commit or held tail), or without
  // any ACK (semi-sync disabled, OFF, or timed out: async).
  enum class WaitPoint { kAfterSync, kAfterCommit, kAsync };
  // A commit answered OK, `took` from CommitAsync's entry to its answer.
  void ObserveCommit(WaitPoint wait_point, std::chrono::steady_clock::duration took) {
    Histogram& h = wait_point == WaitPoint::kAfterSync     ? commit_after_sync
                   : wait_point == WaitPoint::kAfterCommit ? commit_after_commit
                                                           : commit_async;
    h.Observe(Nanos(took));
  }
  // A WriteStream message of `writes` writes arrived: how well clients
  // combine their pipelined writes (each message is one read, one parse).
  void ObserveStreamMessage(uint64_t writes) { write_stream_message.Observe(writes); }
  // A commit answered with an error (refused, failed, cancelled, deadline).
  void CountFailedCommit() { failed_commits.fetch_add(1, std::memory_order_relaxed); }

  // The node's role, for telling binlog from relay-log groups and fsyncs:
  // set wherever the node's primary is set or cleared.
  void set_replica_role(bool replica) { replica_role_.store(replica, std::memory_order_relaxed); }

  // BinlogObserver: the leader's thread, no binlog lock held.
  void OnSync(std::chrono::nanoseconds took) override {
    (replica_role_.load(std::memory_order_relaxed) ? relay_log_fsync : binlog_fsync)
        .Observe(Nanos(took));
  }
  void OnGroup(uint64_t events) override {
    (replica_role_.load(std::memory_order_relaxed) ? relay_log_group : binlog_group)
        .Observe(events);
  }

  Histogram commit_after_sync{LatencyBucketsNanos()};
  Histogram commit_after_commit{LatencyBucketsNanos()};
  Histogram commit_async{LatencyBucketsNanos()};
  Histogram binlog_fsync{LatencyBucketsNanos()};
  Histogram relay_log_fsync{LatencyBucketsNanos()};
  Histogram binlog_group{GroupSizeBuckets()};
  Histogram relay_log_group{GroupSizeBuckets()};
  Histogram write_stream_message{GroupSizeBuckets()};
  std::atomic<uint64_t> failed_commits{0};

 private:
  static uint64_t Nanos(std::chrono::steady_clock::duration d) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    return ns > 0 ? static_cast<uint64_t>(ns) : 0;
  }
  std::atomic<bool> replica_role_{false};
};

}  // namespace relaykv
