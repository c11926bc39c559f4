// StateMachine::Scan (contract in state_machine_scan.h).
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <cassert>
#include <memory>

#include "storage/rocks_status.h"
#include "storage/state_machine.h"
#include "storage/stored_value.h"

namespace relaykv {
namespace {

// Releases a snapshot when the scan ends, whichever way.
class SnapshotHolder {
 public:
  explicit SnapshotHolder(rocksdb::DB* db) : db_(db), snapshot_(db->GetSnapshot()) {}
  ~SnapshotHolder() { db_->ReleaseSnapshot(snapshot_); }
  SnapshotHolder(const SnapshotHolder&) = delete;
  SnapshotHolder& operator=(const SnapshotHolder&) = delete;
  const rocksdb::Snapshot* get() const { return snapshot_; }

 private:
  rocksdb::DB* const db_;                   // borrowed; outlives the scan
  const rocksdb::Snapshot* const snapshot_;  // owned; released in the destructor
};

}  // namespace

absl::StatusOr<ScanRows> StateMachine::Scan(const ScanSpec& spec) const {
  if (spec.max_keys == 0) return absl::InvalidArgumentError("scan max_keys is 0; it must be >= 1");
  // Everything below reads this one snapshot: the applied GTID and the data
  // it describes are from the same instant (Apply writes both in one batch).
  // RocksDB holds applied events only, so nothing unreleased is seen.
  SnapshotHolder snapshot(db_.get());
  ScanRows out;
  auto gtid = AppliedAt(snapshot.get());
  if (!gtid.ok()) return gtid.status();
  out.gtid = *gtid;

  const rocksdb::Slice start(spec.start);
  const rocksdb::Slice end(spec.end);
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.get();
  // RocksDB skips deleted keys inside one Seek/Next/Prev, where no check
  // runs: without bounds, a range whose keys were deleted was walked past
  // its end to the next live key (review s43b F6), and inside it a step
  // over millions of them ignored the deadline. A step gives up after
  // kScanSkipsPerCheck (Incomplete), and the walk checks and goes on from
  // where it stopped (review s43e E3).
  if (!spec.start.empty()) ro.iterate_lower_bound = &start;
  if (!spec.end.empty()) ro.iterate_upper_bound = &end;
  ro.max_skippable_internal_keys = kScanSkipsPerCheck;
  // The iterator pins the memtables and SST files it reads: a flush or a
  // compaction meanwhile changes nothing it returns.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, data_cf_));
  // In range on the side the walk moves towards (the other side holds by
  // where it started).
  auto in_range = [&](const rocksdb::Slice& key) {
    if (spec.reverse) return spec.start.empty() || key.compare(start) >= 0;
    return spec.end.empty() || key.compare(end) < 0;
  };
  if (spec.reverse) {
    if (spec.end.empty()) {
      it->SeekToLast();
    } else {
      it->SeekForPrev(end);  // the last key <= end; end itself is excluded
      if (it->Valid() && it->key().compare(end) == 0) it->Prev();
    }
  } else if (spec.start.empty()) {
    it->SeekToFirst();
  } else {
    it->Seek(start);
  }
  auto step = [&] {
    if (spec.reverse) {
      it->Prev();
    } else {
      it->Next();
    }
  };

  uint64_t bytes = 0;
  for (;;) {
    for (; it->Valid() && in_range(it->key()); step()) {
      if (out.count == spec.max_keys) {
        out.more = true;
        break;
      }
      if (spec.check && out.count % kScanCheckEvery == kScanCheckEvery - 1) {
        if (auto s = spec.check(); !s.ok()) return s;
      }
      if (!spec.count_only) {
        // The stored entry is the key's version, then its value.
        auto stored = stored_value::Decode(it->value().ToStringView());
        if (!stored) {
          return stored_value::Damaged(where_, it->key().ToStringView(), it->value().size());
        }
        const uint64_t row_bytes = it->key().size() + (spec.keys_only ? 0 : stored->value.size());
        // Never an empty page: the first row goes in whatever its size.
        if (spec.max_bytes != 0 && out.count > 0 && bytes + row_bytes > spec.max_bytes) {
          out.more = true;
          break;
        }
        bytes += row_bytes;
        KeyValue& row = out.rows.emplace_back();
        row.key = it->key().ToString();
        if (!spec.keys_only) row.value.assign(stored->value);
      }
      ++out.count;
      out.last_key.assign(it->key().data(), it->key().size());
    }
    if (out.more || !it->status().IsIncomplete()) break;
    // A step gave up over deleted entries: check, then on from the key it
    // stopped at (not yet taken: ahead of every key taken, the way the walk
    // goes). Each round steps over kScanSkipsPerCheck entries more.
    if (spec.check) {
      if (auto s = spec.check(); !s.ok()) return s;
    }
    std::string at;
    if (auto s = it->GetProperty("rocksdb.iterator.internal-key", &at); !s.ok()) {
      return FromRocks(s, "cannot scan on past deleted keys");
    }
    if (spec.reverse) {
      it->SeekForPrev(at);
    } else {
      it->Seek(at);
    }
  }
  if (auto s = FromRocks(it->status(), "cannot scan"); !s.ok()) return s;
  // Invariant: a page that says more keys remain names where it stopped.
  assert(!out.more || !out.last_key.empty());
  return out;
}

}  // namespace relaykv
