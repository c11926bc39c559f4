// StateMachine: the RocksDB key-value state that binlog events are applied
// to. Each Apply() is one WriteBatch holding the events' mutations and the
// new applied GTID, so data and position move together, all-or-nothing.
//
// RocksDB's own WAL is off: the binlog is the write-ahead log. After a
// crash RocksDB comes back at some earlier applied GTID (whatever its last
// flush persisted, data and GTID together: atomic_flush keeps the column
// families in step) and the caller replays the binlog from there.
//
// Threads: Apply() from one thread at a time (the applier); Get() and
// Applied() from any thread.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/event.pb.h"
#include "storage/gtid.h"
#include "storage/state_machine_scan.h"

namespace rocksdb {
class DB;
class Env;
class ColumnFamilyHandle;
class Snapshot;
}  // namespace rocksdb

namespace relaykv {

// The on-disk layout of a state machine, for a node that is handed one it
// did not write (a clone's checkpoint): 1, the value in the default column
// family and its version in relaykv_versions; 2, one entry per key in
// relaykv_data, the version in front of the value (stored_value.h). Open()
// reads either (migrating 1 to 2); a binary from before 2 cannot open 2.
inline constexpr uint32_t kStateMachineFormat = 2;

class StateMachine {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<StateMachine>> Open(
      const std::filesystem::path& dir);
  ~StateMachine();
  StateMachine(const StateMachine&) = delete;
  StateMachine& operator=(const StateMachine&) = delete;

  // Position of the last applied event ({0,0} if none).
  Gtid Applied() const;

  // Applies `events` in order as one atomic batch. Their seqs must continue
  // Applied() densely (FAILED_PRECONDITION otherwise, nothing applied).
  [[nodiscard]] absl::Status Apply(std::span<const v1::Event> events);

  // nullopt if the key is absent.
  [[nodiscard]] absl::StatusOr<std::optional<std::string>> Get(const std::string& key) const;

  // A key's value and version: the GTID of the event that last changed it
  // (like etcd's mod_revision), stored in front of the value, one entry
  // (stored_value.h). {0,0} for a key written before versions were kept.
  // nullopt if the key is absent.
  struct Versioned {
    std::string value;
    Gtid version;
  };
  // Without `with_value` the value is left empty (compares that ask no
  // value). RocksDB still reads the entry: a memtable hit copies it, an SST
  // hit pins its block (review s39b L1: for a large value that is a copy
  // the versions column family used to spare).
  [[nodiscard]] absl::StatusOr<std::optional<Versioned>> GetVersioned(const std::string& key,
                                                                     bool with_value = true) const;

  // One page of a range read from one snapshot (state_machine_scan.h has
  // the contract). INVALID_ARGUMENT if max_keys is 0.
  [[nodiscard]] absl::StatusOr<ScanRows> Scan(const ScanSpec& spec) const;

  // CRC-64 over every (key, value) in key order, with the applied GTID,
  // all read from one snapshot: equal on two nodes iff same data at `gtid`.
  // `versions_hash`: the same over every (key, version), equal iff the keys
  // also carry the same versions — what a compare on a version reads, so
  // two nodes that differ there answer a conditional write differently
  // after a failover (review s39b L4).
  struct Checksum {
    Gtid gtid;
    uint64_t hash = 0;
    uint64_t keys = 0;
    uint64_t versions_hash = 0;
  };
  [[nodiscard]] absl::StatusOr<Checksum> ComputeChecksum() const;

  // Persists everything applied so far (memtables to SST), so that
  // Applied() survives a crash without the binlog. Fails, flushing
  // nothing, if the before-flush hook does or ever did.
  [[nodiscard]] absl::Status Flush();

  // Runs `hook` before every flush of memtables to SST files (RocksDB's
  // own when a memtable fills, Flush(), checkpoints, close), on the
  // flushing thread: what a flush persists must never be ahead of the log
  // it would be replayed from, or a power cut leaves the state machine past
  // the end of that log (relaykv syncs its binlog here). Once the hook has
  // failed nothing is flushed again, by Flush() or by RocksDB (it may not
  // create SST files; it then refuses writes too), nor at close: the next
  // open replays from what the log kept. The hook must not wait for an
  // Apply() (which may be waiting for this flush).
  void SetBeforeFlush(std::function<absl::Status()> hook);
  // OK, or why nothing is flushed any more (the hook failed): the state
  // machine then stops taking writes until a restart.
  absl::Status FlushRefusal() const;

  // A RocksDB integer property summed over the column families (data and
  // applied GTID), e.g. "rocksdb.estimate-live-data-size"; nullopt if
  // RocksDB does not know it. For monitoring: cheap, no I/O.
  std::optional<uint64_t> IntProperty(const std::string& name) const;

  // Clone: a RocksDB checkpoint of the
  // state in `dir` (which must not exist; its parent must): SST files hard-
  // linked, memtables flushed first (the WAL is off, so a checkpoint
  // without a flush would miss them). Returns the GTID whose effects the
  // checkpoint holds, read from the checkpoint itself: data and applied
  // GTID travel in one WriteBatch and are flushed together (atomic_flush),
  // so this is exact even while Apply() runs concurrently.
  [[nodiscard]] absl::StatusOr<Gtid> CreateCheckpoint(const std::filesystem::path& dir) const;
  // The applied GTID stored in the state machine at `dir`, opened read-
  // only (a checkpoint, or a staged clone being verified).
  [[nodiscard]] static absl::StatusOr<Gtid> ReadAppliedGtid(const std::filesystem::path& dir);

  // After a write or flush failed (e.g. ENOSPC), RocksDB refuses writes
  // until told to try again: this does (DB::Resume). OK once it takes
  // writes; the original error while its cause is still there.
  [[nodiscard]] absl::Status Recover();

 private:
  StateMachine() = default;
  // The applied GTID as stored in `snapshot` ({0,0} if none yet).
  absl::StatusOr<Gtid> AppliedAt(const rocksdb::Snapshot* snapshot) const;

  std::string where_;  // "state machine <dir>", for messages
  class FlushListener;
  std::shared_ptr<FlushListener> flush_listener_;  // also in RocksDB's options
  std::unique_ptr<rocksdb::Env> env_;  // RocksDB's, with its SST gate; outlives db_
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* data_cf_ = nullptr;  // owned by db_; key -> version + value
  rocksdb::ColumnFamilyHandle* meta_cf_ = nullptr;  // owned by db_; applied GTID
  // Owned by db_; RocksDB's default family, where keys were before their
  // versions lived in the value; empty once Open has moved them.
  rocksdb::ColumnFamilyHandle* legacy_cf_ = nullptr;
  mutable std::mutex applied_mu_;
  Gtid applied_;  // GUARDED_BY(applied_mu_)
};

}  // namespace relaykv
