// UnappliedTimes: a replica's memory of when the events it received but has
// not applied yet were written, for Seconds_Behind_Master and the lag its
// primary shows (ApplyProgress): MySQL's "now - timestamp of the event being
// applied", 0 when the SQL thread has applied everything received.
//
// The IO thread records each received event's (seq, timestamp_us); a query
// drops what is applied and answers the oldest remaining timestamp. At most
// kMaxEvents are remembered (16 bytes each): past that, and for events
// received before this object existed (a restart with an unapplied relay log
// tail), the answer falls back to the timestamp of the last applied event,
// which overstates the lag by at most the gap between two events.
//
// Threads: thread-safe; one mutex, never held while calling out.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <utility>

#include "proto/event.pb.h"
#include "storage/thread_annotations.h"

namespace relaykv {

class UnappliedTimes {
 public:
  static constexpr size_t kMaxEvents = 65536;

  // Events just appended to the relay log, in seq order. A seq at or below
  // the last one remembered means the relay log was rewound: start over.
  void Received(std::span<const v1::Event> events) EXCLUDES(mu_) {
    std::lock_guard l(mu_);
    for (const v1::Event& e : events) {
      const uint64_t seq = e.gtid().seq();
      if (!times_.empty() && seq <= times_.back().first) times_.clear();
      if (times_.size() < kMaxEvents) times_.emplace_back(seq, e.timestamp_us());
    }
  }

  // timestamp_us of the oldest event in (applied_seq, received_seq]; 0 when
  // that range is empty (caught up). last_applied_us: the applier's
  // timestamp of event applied_seq (0 if unknown), the fallback above.
  int64_t OldestUnapplied(uint64_t applied_seq, uint64_t received_seq,
                          int64_t last_applied_us) EXCLUDES(mu_) {
    std::lock_guard l(mu_);
    while (!times_.empty() && times_.front().first <= applied_seq) times_.pop_front();
    if (applied_seq >= received_seq) return 0;
    if (!times_.empty() && times_.front().first == applied_seq + 1) return times_.front().second;
    if (last_applied_us > 0) return last_applied_us;
    return times_.empty() ? 0 : times_.front().second;
  }

 private:
  std::mutex mu_;
  std::deque<std::pair<uint64_t, int64_t>> times_ GUARDED_BY(mu_);  // (seq, timestamp_us)
};

}  // namespace relaykv
