// The move to versions inside values (contract in state_machine_migration.h).
#include "storage/state_machine_migration.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <memory>

#include "spdlog/spdlog.h"
#include "storage/rocks_status.h"
#include "storage/stored_value.h"

namespace relaykv {

bool HasLegacyData(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* legacy_data) {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), legacy_data));
  it->SeekToFirst();
  return it->Valid() || !it->status().ok();
}

absl::Status MigrateToVersionedValues(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* legacy_data,
                                      rocksdb::ColumnFamilyHandle* legacy_versions,
                                      rocksdb::ColumnFamilyHandle* data, const std::string& dir) {
  const std::string where = "state machine " + dir + ": moving to versions in values: ";
  // One snapshot for the walk: the deletes it writes do not move it.
  rocksdb::ManagedSnapshot snap(db);
  rocksdb::ReadOptions ro;
  ro.snapshot = snap.snapshot();
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, legacy_data));
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;  // as Apply: a crash keeps whole batches or none (atomic_flush)
  uint64_t moved = 0;
  uint64_t without_version = 0;
  rocksdb::WriteBatch batch;
  std::string version;
  auto write = [&]() -> absl::Status {
    if (batch.Count() == 0) return absl::OkStatus();
    absl::Status s = FromRocks(db->Write(wo, &batch), where + "cannot write a batch");
    batch.Clear();
    return s;
  };
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    Gtid g;  // {0,0}: the key was written before versions were kept
    if (legacy_versions != nullptr) {
      rocksdb::Status s = db->Get(ro, legacy_versions, it->key(), &version);
      if (s.ok()) {
        auto decoded = stored_value::DecodeGtid(version);
        if (!decoded) {
          return absl::DataLossError(where + "the version of a key is " +
                                     std::to_string(version.size()) + " bytes, expected 16");
        }
        g = *decoded;
      } else if (s.IsNotFound()) {
        ++without_version;
      } else {
        return FromRocks(s, where + "cannot read a version");
      }
    } else {
      ++without_version;
    }
    const std::string header = stored_value::EncodeGtid(g);
    const rocksdb::Slice parts[] = {header, it->value()};
    const rocksdb::Slice key = it->key();
    rocksdb::Status s = batch.Put(data, rocksdb::SliceParts(&key, 1), rocksdb::SliceParts(parts, 2));
    if (s.ok()) s = batch.Delete(legacy_data, key);
    if (!s.ok()) return FromRocks(s, where + "cannot build a batch");
    ++moved;
    if (batch.Count() >= 2 * kMigrationBatchKeys) {
      if (auto w = write(); !w.ok()) return w;
    }
  }
  if (auto s = FromRocks(it->status(), where + "cannot read the old data"); !s.ok()) return s;
  it.reset();
  if (auto s = write(); !s.ok()) return s;
  // Every move durable before the versions it read are dropped.
  rocksdb::FlushOptions fo;
  fo.wait = true;
  if (auto s = FromRocks(db->Flush(fo, {legacy_data, data}), where + "cannot flush"); !s.ok()) {
    return s;
  }
  if (legacy_versions != nullptr) {
    if (auto s = FromRocks(db->DropColumnFamily(legacy_versions),
                           where + "cannot drop " + kLegacyVersionsCf);
        !s.ok()) {
      return s;
    }
  }
  if (moved > 0) {
    // The old family is only tombstones now: give their space back.
    if (auto s = FromRocks(db->CompactRange(rocksdb::CompactRangeOptions(), legacy_data, nullptr,
                                            nullptr),
                           where + "cannot compact the old data");
        !s.ok()) {
      return s;
    }
  }
  spdlog::info("state machine {}: {} keys moved to versions in values ({} without a version, "
               "kept as 0-0)",
               dir, moved, without_version);
  return absl::OkStatus();
}

}  // namespace relaykv
