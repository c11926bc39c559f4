// StateMachine::Scan's request and answer (the method is declared in
// state_machine.h and defined in state_machine_scan.cc): one walk over a
// key range of the applied state, from ONE RocksDB snapshot.
//
// Storage knows ranges only: the server turns prefixes, continuation tokens
// and its limits into a ScanSpec (server/scan_request.h).
//
// Contract:
//  - Keys in [start, end) (empty end: no upper bound; empty start: from the
//    first key), ascending, or descending with `reverse`.
//  - Stops after `max_keys` keys, or before the row that would take the
//    returned keys and values past `max_bytes` (never before the first
//    row). `more` then says whether a key remains in the range; `last_key`
//    is the last key taken (returned or counted), to resume after it.
//  - `gtid` is the applied GTID read from the same snapshot as the data:
//    the rows are exactly the state after that event.
//  - `check` (may be empty) is called every kScanCheckEvery keys taken and
//    every kScanSkipsPerCheck deleted entries stepped over (a range of
//    deleted keys is walked inside one RocksDB step); a non-OK status ends
//    the walk with that status (a deadline, a caller gone, a node closing):
//    a scan of any size never outlives its caller.
//  - Visibility: RocksDB holds only applied events, and the applier applies
//    only what was released (under AFTER_SYNC: once enough replicas ACKed;
//    on a replica: what its primary says is visible), so a scan, like Get,
//    never shows a write before it may be seen.
//
// Threads: from any thread, concurrently with Apply() and Flush(): the
// snapshot and its iterator pin what they read.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "relaykv/gtid.h"
#include "relaykv/scan.h"

namespace relaykv {

inline constexpr uint64_t kScanCheckEvery = 1024;
inline constexpr uint64_t kScanSkipsPerCheck = 65536;

struct ScanSpec {
  std::string start;  // inclusive; empty: from the first key
  std::string end;    // exclusive; empty: no upper bound
  bool reverse = false;
  bool keys_only = false;   // rows without values
  bool count_only = false;  // no rows, only `count` (values never read)
  uint64_t max_keys = 1;    // >= 1
  uint64_t max_bytes = 0;   // 0: no byte cap
  std::function<absl::Status()> check;  // may be empty
};

struct ScanRows {
  Gtid gtid;                   // applied GTID of the snapshot
  std::vector<KeyValue> rows;  // empty with count_only
  uint64_t count = 0;          // keys taken
  bool more = false;           // a key remains in the range after last_key
  std::string last_key;        // the last key taken ("" if none)
};

}  // namespace relaykv
