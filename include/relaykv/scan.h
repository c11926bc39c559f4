// Range reads (public API): what Node::Scan and Client::Scan take and give.
//
// A scan reads the half-open key range [start, end) — empty `end`: to the
// end of the keyspace — or every key beginning with `prefix`, in key order
// (bytewise) or, with `reverse`, from the last key down. One call returns
// one page, read from ONE RocksDB snapshot: every key, value and the
// reported `applied` GTID come from the same instant, which is exactly the
// state after the event `applied` names (nothing of a later write, all of
// every earlier one).
//
// Paging: a page ends at `limit` keys (default kDefaultScanLimit, at most
// kMaxScanLimit; count-only pages count up to kMaxScanCountLimit), or once
// its keys and values pass kMaxScanReplyBytes (a page always holds at least
// one key). If keys remain, `continuation` is non-empty: pass it back with
// the SAME range options to read the next page. Each page is a fresh
// snapshot, so a multi-page scan is NOT one snapshot: every page is
// consistent in itself, every key that exists throughout the whole scan
// and is not changed is returned exactly once, in order, and never twice;
// a key written, added or removed between pages appears (or not) as of
// the page that reaches it. Read `applied` of each page to know its point.
// The token is opaque bytes (today: a version byte, the direction and the
// last key returned); a token that does not parse, or that names a key
// outside the range or another direction, is INVALID_ARGUMENT.
//
// Errors (INVALID_ARGUMENT, the message names the problem): start after
// end, a prefix together with start or end, a limit over the maximum, a
// start/end/prefix longer than a key may be, a malformed continuation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "relaykv/gtid.h"

namespace relaykv {

inline constexpr uint32_t kDefaultScanLimit = 1000;
inline constexpr uint32_t kMaxScanLimit = 100000;
// Count-only pages only walk keys: they may count many more.
inline constexpr uint32_t kMaxScanCountLimit = 10000000;
// Keys plus values of one page; well below gRPC's 48 MiB message limit
// (one row may still pass it alone: a 64 KiB key with a 16 MiB value).
inline constexpr uint64_t kMaxScanReplyBytes = 16 * 1024 * 1024;

struct ScanRange {
  std::string start;   // inclusive; empty: from the first key
  std::string end;     // exclusive; empty: to the end of the keyspace
  std::string prefix;  // non-empty: every key with this prefix (start/end must be empty)
  bool reverse = false;
  bool keys_only = false;   // rows carry keys, no values
  bool count_only = false;  // no rows: only `count`
  uint32_t limit = 0;       // keys per page; 0: the default
  std::string continuation;  // from the previous page; empty: the first page
};

struct KeyValue {
  std::string key;
  std::string value;  // empty in keys-only mode
  friend bool operator==(const KeyValue&, const KeyValue&) = default;
};

struct ScanPage {
  std::vector<KeyValue> rows;  // empty in count-only mode
  uint64_t count = 0;          // keys in this page (rows.size() unless count-only)
  std::string continuation;    // empty: the range is exhausted
  Gtid applied;                // the snapshot's applied GTID
  bool done() const { return continuation.empty(); }
};

}  // namespace relaykv
