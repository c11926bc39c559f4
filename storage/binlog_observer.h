// BinlogObserver: how a binlog (or relay log) reports what its group commit
// costs, without storage/ knowing who listens (server/ turns it into
// metrics; storage/ depends on nothing above it).
//
// Threads: both calls come from the group's leader thread (a committer or
// the binlog's committer thread), one group at a time, with no binlog lock
// held. They sit on the commit path: an implementation must not block,
// lock or allocate (atomic counters only).
//
// Ownership: BinlogOptions::observer borrows the observer; it must outlive
// the Binlog.
#pragma once

#include <chrono>
#include <cstdint>

namespace relaykv {

class BinlogObserver {
 public:
  virtual ~BinlogObserver() = default;
  // One fdatasync of a segment file that completed successfully (a group's
  // sync, a sync-only group, or the sync that seals a segment at rotation),
  // and how long the call took.
  virtual void OnSync(std::chrono::nanoseconds took) = 0;
  // One group written (published or not): the number of events in it (> 0).
  virtual void OnGroup(uint64_t events) = 0;
};

}  // namespace relaykv
