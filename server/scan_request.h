// A scan request (relaykv/scan.h ScanRange) checked and turned into the
// storage walk (storage/state_machine_scan.h ScanSpec), and the
// continuation token that resumes it. Pure functions, any thread.
//
// The token (opaque to callers; its layout may change with its version):
//   [0]  version, 0x01
//   [1]  direction, 'F' (forward) or 'R' (reverse)
//   [2…] the last key the previous page returned (1 to kMaxKeyBytes bytes)
// Resuming forward starts at the key right after it (last_key + "\0"),
// reverse ends before it: every key is taken once, however the keyspace
// changed between the pages.
//
// Errors: INVALID_ARGUMENT naming the problem — a prefix together with
// start or end; start after end; a bound longer than a key may be; a limit
// over the maximum; a token that does not parse, runs the other way, or
// names a key outside the range.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "relaykv/scan.h"
#include "storage/state_machine_scan.h"

namespace relaykv {

// The walk for `range`, resumed after its continuation if it has one;
// `check` is left empty (the caller sets it).
[[nodiscard]] absl::StatusOr<ScanSpec> ResolveScan(const ScanRange& range);

// The token that resumes `range` after `last_key`.
std::string ContinuationAfter(const ScanRange& range, const std::string& last_key);

// The smallest key greater than every key that starts with `prefix`; ""
// when there is none (the prefix is all 0xff bytes): no upper bound.
std::string PrefixEnd(const std::string& prefix);

}  // namespace relaykv
