// Gtid: the (epoch, seq) position of an event in the replicated history.
// Ordered by seq: seq is dense across the whole history (1, 2, 3, ...) and
// epoch never decreases along it (it is bumped when a replica is promoted).
// {0, 0} means "nothing yet". operator<=> compares epoch, then seq: along one
// history that is seq order; across diverged histories the newer epoch ranks
// higher, as failover ranks nodes (server/failover_rules.h).
#pragma once

#include <compare>
#include <cstdint>
#include <string>

namespace relaykv {

struct Gtid {
  uint64_t epoch = 0;
  uint64_t seq = 0;

  friend bool operator==(const Gtid&, const Gtid&) = default;
  friend auto operator<=>(const Gtid&, const Gtid&) = default;

  bool empty() const { return seq == 0; }
  // "epoch:seq", e.g. "1:42"; what logs, status and the CLI show.
  std::string ToString() const { return std::to_string(epoch) + ":" + std::to_string(seq); }
};

}  // namespace relaykv
