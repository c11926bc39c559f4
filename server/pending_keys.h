// PendingKeys: what the binlog's writes not yet applied to RocksDB did to
// each key, so that a conditional write (server/conditional_write.h) is
// checked against the state every earlier write leaves — not RocksDB's,
// which under AFTER_SYNC lags by every write still waiting for its ACKs.
//
// Record() sees every write of this primary at GTID assignment, in seq
// order (Binlog::Assigned); entries go once RocksDB has applied their seq.
// Writes that bypass Record() (a replica's relay log, an epoch marker)
// leave a gap in the recorded seqs, and a group whose write failed gives
// its seqs out again (its entries name writes that never happened): either
// way the state is then known only once RocksDB has applied everything
// before the first write recorded after it.
// Memory: one entry per key changed by a write assigned and not applied —
// bounded by the writes in flight.
//
// Threads: any; calls are serialized by a mutex (in practice they come
// from the binlog's group leader, one at a time).
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "absl/status/statusor.h"
#include "proto/event.pb.h"
#include "storage/state_machine.h"
#include "storage/thread_annotations.h"

namespace relaykv {

class PendingKeys {
 public:
  explicit PendingKeys(const StateMachine* state) : state_(state) {}

  // `event` (its GTID assigned) changes its keys as of its seq.
  void Record(const v1::Event& event) EXCLUDES(mu_);

  // `key` as every write before seq `before` leaves it: nullopt if absent.
  // UNAVAILABLE if that state is not known yet (RocksDB still applying
  // writes that were not recorded). Without `with_value` the value is left
  // empty and never copied or read (a version or absence compare).
  [[nodiscard]] absl::StatusOr<std::optional<StateMachine::Versioned>> Lookup(
      const std::string& key, uint64_t before, bool with_value = true) EXCLUDES(mu_);

  // Whether a write assigned next could be checked, given the binlog's
  // last visible seq (a cheap early refusal; Lookup decides).
  bool CaughtUp(uint64_t binlog_end) EXCLUDES(mu_);

 private:
  struct Entry {
    uint64_t seq = 0;
    Gtid version;
    bool deleted = false;
    std::string value;
  };
  bool KnownLocked(uint64_t before, uint64_t applied) REQUIRES(mu_);
  // Drops entries RocksDB has applied (their seq <= applied).
  void Prune(uint64_t applied) REQUIRES(mu_);

  const StateMachine* const state_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> latest_ GUARDED_BY(mu_);
  std::deque<std::pair<uint64_t, std::string>> order_ GUARDED_BY(mu_);  // (seq, key), seq order
  // Recorded seqs since the last gap: [first_, last_] (0: none yet).
  uint64_t first_ GUARDED_BY(mu_) = 0;
  uint64_t last_ GUARDED_BY(mu_) = 0;
};

}  // namespace relaykv
