// The move of a state machine written before versions lived in the value
// (stored_value.h) to that format, run by StateMachine::Open before it
// takes any read or write. The old format kept values in RocksDB's default
// column family and versions, when known, in "relaykv_versions".
//
// Each batch moves up to kMigrationBatchKeys keys: a Put of (version,
// value) into the new data column family and a Delete from the old one, in
// one WriteBatch. With atomic_flush whatever a crash keeps holds every key
// exactly once, in one of the two, so a later Open carries on from where it
// stopped: the keys left in the old family are the ones still to move. The
// old versions family is dropped only after a flush has made every move
// durable (a key without a version entry gets {0,0}, as before).
//
// A binary from before this format refuses the directory (RocksDB will not
// open a DB without naming every column family), instead of reading
// versions as part of the values.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace relaykv {

inline constexpr char kLegacyVersionsCf[] = "relaykv_versions";
inline constexpr size_t kMigrationBatchKeys = 1024;
inline constexpr size_t kMigrationBatchBytes = 4 << 20;  // whichever comes first

// True if `legacy_data` holds a key or an SST file (the deletes of a move
// whose compaction was cut off), or a read failed (Open then migrates and
// reports the failure).
bool HasLegacyData(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* legacy_data);

// Moves every key of `legacy_data` into `data`, with its version from
// `legacy_versions` (may be null: none kept), flushes, then drops
// `legacy_versions` (the caller still destroys its handle) and compacts the
// old family's tombstones away. `dir` names the state machine in messages.
// Tests stop it after `stop_after_batches` batches, as a crash would.
[[nodiscard]] absl::Status MigrateToVersionedValues(
    rocksdb::DB* db, rocksdb::ColumnFamilyHandle* legacy_data,
    rocksdb::ColumnFamilyHandle* legacy_versions, rocksdb::ColumnFamilyHandle* data,
    const std::string& dir, uint64_t stop_after_batches = UINT64_MAX);

}  // namespace relaykv
