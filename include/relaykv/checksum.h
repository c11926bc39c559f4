// KeyspaceChecksum: what CHECKSUM reports — a hash of every (key, value) of
// a node's applied state, taken at one applied GTID. Two nodes hold the same
// data at `gtid` iff hash and keys are equal; versions_hash, over every
// (key, version), is equal too iff every key also carries the same version
// (the GTID that last changed it, which conditional writes compare). Keys
// written before relaykv kept versions read as version 0:0 on a node that
// migrated them, but carry their real GTIDs on one that replayed the binlog:
// such nodes differ in versions_hash only, and answer a version compare
// differently; cloning one from the other makes them equal.
#pragma once

#include <cstdint>

#include "relaykv/gtid.h"

namespace relaykv {

struct KeyspaceChecksum {
  Gtid gtid;
  uint64_t hash = 0;  // CRC-64/XZ over length-prefixed keys and values, in key order
  uint64_t keys = 0;
  uint64_t versions_hash = 0;  // CRC-64/XZ over length-prefixed keys and their versions

  friend bool operator==(const KeyspaceChecksum&, const KeyspaceChecksum&) = default;
};

}  // namespace relaykv
