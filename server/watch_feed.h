// WatchFeed: the binlog's newest events, read and decoded once for all the
// watchers of a node (server/node_watch.cc). Watchers at the head — the
// usual case — take their events from here, so N of them cost one binlog
// read and decode, not N; a watcher further behind reads the binlog itself
// until it reaches the window.
//
// Each event comes with its encoding as a Watch answer's entry
// (server/watch_wire.h), made once here for every gRPC watcher to copy.
//
// Contents: a window of consecutive events, filled on demand by Fetch (one
// caller fills at a time; the others wait for it or take what is there)
// and trimmed from the front to `max_bytes` (binlog payload and wire
// encoding). A fill reads at most one batch's bytes of binlog payload; a watcher that holds events past a trim keeps
// them alive (shared_ptr): memory is the window plus one batch per watcher.
//
// Why a cached event stays right: while a node runs its binlog only grows
// and loses whole segments at the front (PURGE, retention); truncation
// happens only before the binlog opens (Node::Impl::OpenCoordinator). So
// the event cached at seq S is the binlog's event at S for the node's life.
//
// Errors: none cross this class — a read error (a purged segment, a bad
// record) empties the window and Fetch returns nothing, and the watcher
// then reads the binlog itself, which reports the error as it always did.
//
// Threads: every method is thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "proto/event.pb.h"
#include "storage/binlog.h"
#include "storage/binlog_reader.h"
#include "storage/thread_annotations.h"

namespace relaykv {

class WatchFeed {
 public:
  struct Item {
    v1::Event event;
    std::string wire;  // AppendWatchEvent(event, all changes); empty for a marker
  };
  using EventPtr = std::shared_ptr<const Item>;

  WatchFeed(Binlog* binlog, size_t max_bytes) : binlog_(binlog), max_bytes_(max_bytes) {}

  // The events of seqs [from, min(up_to, from + max_events - 1)], in seq
  // order, from the first; `up_to` must be visible in the binlog. Reads the
  // binlog for the part not in the window yet, at most `max_bytes` of it
  // (at least one event), so it may return fewer. Empty (read the binlog
  // yourself) when `from` is before the window, or on a read error.
  std::vector<EventPtr> Fetch(uint64_t from, uint64_t up_to, size_t max_events, size_t max_bytes)
      EXCLUDES(fill_mu_, window_mu_);

  // Drops the window and the reader (and so its open segment file, which
  // may have been purged): for when no watcher is left.
  void Release() EXCLUDES(fill_mu_, window_mu_);

 private:
  // The window's events of seqs [from, last]; `from` is not before it.
  std::vector<EventPtr> CopyOut(uint64_t from, uint64_t last) const REQUIRES(window_mu_);
  void Clear() REQUIRES(window_mu_);
  // Seq after the window's last event; 0 when the window is empty.
  uint64_t WindowEnd() const REQUIRES(window_mu_);

  Binlog* const binlog_;  // borrowed; outlives the feed
  const size_t max_bytes_;

  // Held by the one caller that reads the binlog into the window.
  std::mutex fill_mu_;
  // Positioned at the seq after the window's last event when the window is
  // not empty; null until the first fill, after a read error or Release().
  std::unique_ptr<BinlogReader> reader_ GUARDED_BY(fill_mu_);

  mutable std::mutex window_mu_;
  struct Entry {
    EventPtr event;
    size_t bytes;  // its payload's size in the binlog and its wire's
  };
  std::deque<Entry> window_ GUARDED_BY(window_mu_);  // consecutive seqs
  uint64_t front_seq_ GUARDED_BY(window_mu_) = 0;       // seq of window_.front()
  size_t bytes_ GUARDED_BY(window_mu_) = 0;             // Entry::bytes summed over window_
};

}  // namespace relaykv
