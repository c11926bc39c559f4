// The nemesis tests' record of what clients were told, and the checker that
// holds it against what the nodes keep once the cluster has healed
// (FAILOVER.md §4). The checker knows nothing of relaykv's own failover code:
// it restates the promises from the outside, so a bug there cannot hide in a
// shared helper.
//
// Promises checked (each violation is one line naming node, key and GTID):
//   1. every write answered OK is on every node with its value and the GTID
//      it was answered with, unless an epoch forced by an operator started
//      before it;
//   2. a write answered "failed" is on no node (fail means "not applied":
//      outcome-unknown errors must be recorded as unknown);
//   3. one GTID names one change on every node, and each key the test wrote
//      once is changed at most once on a node (unknown writes at most once);
//   4. no node keeps an errant GTID: (e, s) with s past the point where the
//      next recorded epoch after e started;
//   5. one primary per epoch in the epoch records, start points never go
//      back, and every OK write of epoch e lies at or before the start of
//      the next epoch;
//   6. no quarantined (truncated) GTID is one a client was told was OK.
// Liveness (a primary within lease TTL + election time) is timed by the
// test itself, not here.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "relaykv/gtid.h"

namespace relaykv::testing {

enum class Outcome { kPending, kOk, kFail, kUnknown };

struct WriteOp {
  int client = 0;
  std::string key;
  std::string value;
  Outcome outcome = Outcome::kPending;
  Gtid gtid;           // kOk: the GTID the primary answered with
  std::string detail;  // kFail / kUnknown: the status the client got
};

// Thread-safe: writer threads call Invoke before sending and exactly one of
// Ok/Fail/Unknown with the id it returned once the answer (or its absence)
// is known. A write still pending at the end counts as unknown.
class OpHistory {
 public:
  size_t Invoke(int client, std::string key, std::string value);
  void Ok(size_t id, Gtid gtid);
  void Fail(size_t id, std::string why);
  void Unknown(size_t id, std::string why);

  std::vector<WriteOp> Ops() const;
  // One line per write ("client outcome gtid key value detail"), for the
  // logs a failed round keeps.
  absl::Status WriteLog(const std::filesystem::path& path) const;

 private:
  void Finish(size_t id, Outcome outcome, Gtid gtid, std::string detail);

  mutable std::mutex mu_;
  std::vector<WriteOp> ops_;
};

// One change as a node keeps it in its binlog (or relay log).
struct KeptEvent {
  Gtid gtid;
  std::string key;
  std::string value;
  bool deleted = false;
};

// What one node holds after healing.
struct NodeState {
  std::string name;
  // Its whole history, in order. Events that change no key (a transaction
  // whose branch was empty) may be left out, so seqs may skip.
  std::vector<KeptEvent> events;
  struct Version {
    std::string value;
    Gtid gtid;
  };
  std::map<std::string, Version> keys;  // its state machine: key -> value, version
  std::vector<Gtid> quarantined;        // GTIDs copied to quarantine files
};

// An epoch as the coordinator recorded it (etcd `history/<E>`).
struct EpochRecord {
  uint64_t epoch = 0;
  Gtid start_after;  // the last GTID of the history the epoch continues
  std::string primary;
  bool forced = false;  // an operator forced it (acknowledged writes may be lost)
};

// Every violation of the promises above, one line each; empty if none.
std::vector<std::string> CheckHistory(const std::vector<WriteOp>& ops,
                                      const std::vector<NodeState>& nodes,
                                      const std::vector<EpochRecord>& epochs);

}  // namespace relaykv::testing
