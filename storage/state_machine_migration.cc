// The move to versions inside values (contract in state_machine_migration.h).
#include "storage/state_machine_migration.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <memory>

#include "spdlog/spdlog.h"
#include "storage/rocks_status.h"
#include "storage/show_key.h"
#include "storage/stored_value.h"

namespace relaykv {

bool HasLegacyData(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* legacy_data) {
  // SST files left: keys, or the deletes of a move whose compaction a crash
  // cut off (the move runs again: nothing to move, the compaction redone).
  uint64_t sst_bytes = 0;
  if (db->GetIntProperty(legacy_data, "rocksdb.live-sst-files-size", &sst_bytes) && sst_bytes > 0) {
    return true;
  }
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), legacy_data));
  it->SeekToFirst();
  return it->Valid() || !it->status().ok();
}

absl::Status MigrateToVersionedValues(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* legacy_data,
                                      rocksdb::ColumnFamilyHandle* legacy_versions,
                                      rocksdb::ColumnFamilyHandle* data, const std::string& dir,
                                      uint64_t stop_after_batches) {
  const std::string where = "state machine " + dir + ": moving to versions in values: ";
  spdlog::info("state machine {}: moving its keys to versions in values (once, at the first "
               "start of this version; a crash meanwhile resumes at the next start)",
               dir);
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;  // as Apply: a crash keeps whole batches or none (atomic_flush)
  uint64_t moved = 0;
  uint64_t without_version = 0;
  uint64_t batches = 0;
  rocksdb::WriteBatch batch;
  std::string version;
  auto write = [&]() -> absl::Status {
    if (batch.Count() == 0) return absl::OkStatus();
    absl::Status s = FromRocks(db->Write(wo, &batch), where + "cannot write a batch");
    batch.Clear();
    ++batches;
    return s;
  };
  {
    // No snapshot: the iterator reads one view already, and one held to
    // the end would keep every moved value alive through the compaction
    // below (review s39b M2). The versions family is not written meanwhile.
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), legacy_data));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      Gtid g;  // {0,0}: the key was written before versions were kept
      rocksdb::Status s = legacy_versions != nullptr
                              ? db->Get(rocksdb::ReadOptions(), legacy_versions, it->key(), &version)
                              : rocksdb::Status::NotFound();
      if (s.ok()) {
        auto decoded = stored_value::DecodeGtid(version);
        if (!decoded) {
          return absl::DataLossError(where + "the version of key " +
                                     ShowKey(it->key().ToStringView()) + " is " +
                                     std::to_string(version.size()) + " bytes, expected 16");
        }
        g = *decoded;
      } else if (s.IsNotFound()) {
        ++without_version;
      } else {
        return FromRocks(s, where + "cannot read a version");
      }
      const std::string header = stored_value::EncodeGtid(g);
      const rocksdb::Slice parts[] = {header, it->value()};
      const rocksdb::Slice key = it->key();
      s = batch.Put(data, rocksdb::SliceParts(&key, 1), rocksdb::SliceParts(parts, 2));
      if (s.ok()) s = batch.Delete(legacy_data, key);
      if (!s.ok()) return FromRocks(s, where + "cannot build a batch");
      ++moved;
      // Bounded in keys and bytes: values may be 16 MiB each (s39b M1).
      if (batch.Count() >= 2 * kMigrationBatchKeys ||
          batch.GetDataSize() >= kMigrationBatchBytes) {
        if (auto w = write(); !w.ok()) return w;
        if (batches == stop_after_batches) return absl::OkStatus();
      }
    }
    if (auto s = FromRocks(it->status(), where + "cannot read the old data"); !s.ok()) return s;
  }
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
  // The old family holds only deletes of what moved: compacted to nothing,
  // its space comes back now (forced: the bottom level too).
  rocksdb::CompactRangeOptions compact;
  compact.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  if (auto s = FromRocks(db->CompactRange(compact, legacy_data, nullptr, nullptr),
                         where + "cannot compact the old data");
      !s.ok()) {
    return s;
  }
  spdlog::info("state machine {}: {} keys moved to versions in values ({} without a version, "
               "kept as 0-0)",
               dir, moved, without_version);
  return absl::OkStatus();
}

}  // namespace relaykv
