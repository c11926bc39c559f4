// The change stream (public API): what Node::Watch and Client::Watch take
// and give. README "Change stream (Watch)".
//
// A watch delivers every committed change of a key range — the key, its new
// value or a delete, the GTID and commit time of the write — in GTID order,
// from a starting GTID, until the watcher stops. A write that touches
// several keys comes as one WatchEvent holding those of its changes that
// are in the range; a write touching none of them is not delivered, but
// `progress` moves past it.
//
// Where from (`after`, EXCLUSIVE): nullopt — from now; {0,0} — from the
// beginning of the history; else the first change after that GTID, so a
// watcher resumes with the last GTID it saw (a WatchEvent's, or the last
// batch's `progress`) and gets every later change exactly once. With
// epoch 0 only the seq is used; with an epoch, the GTID must be this
// node's at that seq (FAILED_PRECONDITION "not in this node's history"
// otherwise; UNAVAILABLE from a fenced or held primary, which cannot tell
// whether a newer primary has it). A GTID whose successors were purged
// from the binlog is OUT_OF_RANGE "purged: ..." naming the oldest GTID
// still available.
//
// committed_only (default): only what readers of the node may see — under
// AFTER_SYNC a change arrives after wait_for_slave_count replicas ACKed it
// (or after the semi-sync timeout made it async), exactly when Get first
// returns it; on a replica, once it applied it. false: every change durable
// in the node's binlog (a replica's relay log), which a failover may lose.
//
// Backpressure: the node reads the binlog only as fast as the watcher takes
// batches, so a watcher holds one batch of memory however far behind it
// is. But it must keep up: every change visible at some moment must be
// delivered within watch_max_lag_seconds of it, or the watch ends with
// RESOURCE_EXHAUSTED naming the variable (resume from the last GTID seen).
// At most max_watchers watch at once (RESOURCE_EXHAUSTED beyond).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "relaykv/gtid.h"
#include "relaykv/mutation.h"

namespace relaykv {

// [start, end) (empty end: to the end of the keyspace), or a prefix (then
// start and end must be empty); all empty: every key. start > end and
// bounds longer than a key may be are INVALID_ARGUMENT.
struct WatchRange {
  std::string start;
  std::string end;
  std::string prefix;
  static WatchRange Prefix(std::string p) { return {{}, {}, std::move(p)}; }
};

struct WatchEvent {
  Gtid gtid;
  int64_t timestamp_us = 0;        // commit time on the originating primary
  std::vector<Mutation> changes;   // those in the range, in the write's order
};

// What one delivery carries: zero or more events, and how far the watch
// has looked (`progress`: resume after it) and the node is (`head`: what
// it has applied, for committed_only). Right after a node restarted,
// `head` may be behind a resumed `progress` (its state machine is still
// replaying, or holds a tail back): compute lag as a signed difference.
struct WatchBatch {
  std::vector<WatchEvent> events;
  Gtid progress;
  Gtid head;
};

struct WatchOptions {
  WatchRange range;
  std::optional<Gtid> after;  // see the header comment; nullopt: from now
  bool committed_only = true;
  // A batch (maybe with no events) at least this often, and one at once
  // when the watch starts (naming its starting point).
  std::chrono::milliseconds progress_interval{1000};
  std::function<bool()> cancelled;  // may be empty; asked between batches
};

// Called with each batch, in order, on the watching thread. Return false
// to stop the watch (Watch then returns OK).
using WatchDeliver = std::function<bool(const WatchBatch&)>;

}  // namespace relaykv
