// Tests storage/state_machine_migration.cc: a state machine written before
// versions lived in the value (values in RocksDB's default column family,
// versions in "relaykv_versions") opens with every key, value and version
// it had, also when an earlier open was cut off half way; and a binary
// that knows only the old format refuses the new one.
#include "storage/state_machine_migration.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "storage/state_machine.h"
#include "storage/stored_value.h"
#include "tests/storage/test_util.h"

namespace relaykv {
namespace {

using testing::At;
using testing::DeleteEvent;
using testing::PutEvent;
using testing::TempDir;

struct OldKey {
  std::string value;
  std::optional<Gtid> version;  // nullopt: written before versions were kept
};

// Column families of a RocksDB directory, opened raw (as an older binary
// would), with `fn` called on the DB and its handles by name.
// With `as_the_node`, opened as StateMachine opens it (atomic_flush, small
// memtables so that RocksDB flushes by itself between batches) and closed
// as a crash would leave it: what no flush persisted is gone (the WAL is
// off).
template <typename Fn>
void WithRawDb(const std::filesystem::path& dir, std::vector<std::string> names, Fn fn,
               bool as_the_node = false) {
  rocksdb::DBOptions o;
  o.create_if_missing = true;
  o.create_missing_column_families = true;
  rocksdb::ColumnFamilyOptions cf_options;
  if (as_the_node) {
    o.atomic_flush = true;
    o.avoid_flush_during_shutdown = true;
    cf_options.write_buffer_size = 64 << 10;
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const std::string& n : names) cfs.emplace_back(n, cf_options);
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, dir.string(), cfs, &handles, &raw);
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::map<std::string, rocksdb::ColumnFamilyHandle*> by_name;
  for (size_t i = 0; i < names.size(); ++i) by_name[names[i]] = handles[i];
  fn(raw, by_name);
  for (auto* h : handles) ASSERT_TRUE(raw->DestroyColumnFamilyHandle(h).ok());
  ASSERT_TRUE(raw->Close().ok());
  delete raw;
}

// A state machine as the old format left it: `old` in the default family
// (versions beside it), `moved` already in the new family (an open that
// stopped half way), applied GTID `applied`.
void WriteOldFormat(const std::filesystem::path& dir, const std::map<std::string, OldKey>& old,
                    const std::map<std::string, OldKey>& moved, Gtid applied) {
  std::vector<std::string> names = {rocksdb::kDefaultColumnFamilyName, "relaykv_meta",
                                    kLegacyVersionsCf};
  if (!moved.empty()) names.push_back("relaykv_data");
  WithRawDb(dir, names, [&](rocksdb::DB* db, auto& cf) {
    rocksdb::WriteOptions wo;
    for (const auto& [k, v] : old) {
      ASSERT_TRUE(db->Put(wo, cf[rocksdb::kDefaultColumnFamilyName], k, v.value).ok());
      if (v.version) {
        ASSERT_TRUE(
            db->Put(wo, cf[kLegacyVersionsCf], k, stored_value::EncodeGtid(*v.version)).ok());
      }
    }
    for (const auto& [k, v] : moved) {
      ASSERT_TRUE(db->Put(wo, cf["relaykv_data"], k,
                          stored_value::EncodeGtid(v.version.value_or(Gtid{})) + v.value)
                      .ok());
    }
    ASSERT_TRUE(
        db->Put(wo, cf["relaykv_meta"], "applied_gtid", stored_value::EncodeGtid(applied)).ok());
  });
}

std::vector<std::string> ColumnFamilies(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  EXPECT_TRUE(rocksdb::DB::ListColumnFamilies({}, dir.string(), &names).ok());
  std::sort(names.begin(), names.end());
  return names;
}

// Every key of `want` reads back with its value and version ({0,0} for one
// without), by the full read and the version-only read alike.
void ExpectKeys(const StateMachine& sm, const std::map<std::string, OldKey>& want) {
  for (const auto& [k, v] : want) {
    for (const bool with_value : {true, false}) {
      SCOPED_TRACE(k + (with_value ? " with value" : " version only"));
      auto got = sm.GetVersioned(k, with_value);
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_TRUE(got->has_value());
      EXPECT_EQ((*got)->version, v.version.value_or(Gtid{}));
      EXPECT_EQ((*got)->value, with_value ? v.value : "");
    }
  }
}

TEST(StateMachineMigrationTest, OldFormatOpensWithEveryValueAndVersion) {
  TempDir dir;
  std::map<std::string, OldKey> old;
  old["k"] = {"v2", Gtid{3, 2}};
  old["old"] = {"before versions", std::nullopt};
  old["empty"] = {"", Gtid{3, 4}};
  for (int i = 0; i < 3000; ++i) {  // more than one batch of the move
    old["n" + std::to_string(100000 + i)] = {std::string(50, 'a' + i % 26), Gtid{2, 10u + i}};
  }
  WriteOldFormat(dir.path(), old, {}, Gtid{3, 9});
  // The same keys and values reached the new way: the checksum is over
  // what users wrote, so both must agree.
  TempDir fresh_dir;
  uint64_t want_hash = 0;
  {
    auto fresh = StateMachine::Open(fresh_dir.path());
    ASSERT_TRUE(fresh.ok()) << fresh.status();
    v1::Event all;
    for (const auto& [k, v] : old) all.MergeFrom(PutEvent(k, v.value));
    ASSERT_TRUE((*fresh)->Apply(std::vector<v1::Event>{At(3, 1, all)}).ok());
    auto sum = (*fresh)->ComputeChecksum();
    ASSERT_TRUE(sum.ok()) << sum.status();
    want_hash = sum->hash;
  }
  {
    auto sm = StateMachine::Open(dir.path());
    ASSERT_TRUE(sm.ok()) << sm.status();
    EXPECT_EQ((*sm)->Applied(), (Gtid{3, 9}));
    ExpectKeys(**sm, old);
    EXPECT_FALSE((*sm)->Get("absent")->has_value());
    auto sum = (*sm)->ComputeChecksum();
    ASSERT_TRUE(sum.ok()) << sum.status();
    EXPECT_EQ(sum->keys, old.size());
    EXPECT_EQ(sum->hash, want_hash);
    EXPECT_EQ(sum->gtid, (Gtid{3, 9}));
    // And it goes on applying, in the new format.
    ASSERT_TRUE((*sm)->Apply(std::vector<v1::Event>{At(3, 10, PutEvent("old", "now"))}).ok());
    auto now = (*sm)->GetVersioned("old");
    ASSERT_TRUE(now.ok() && now->has_value());
    EXPECT_EQ((*now)->version, (Gtid{3, 10}));
  }
  EXPECT_EQ(ColumnFamilies(dir.path()),
            (std::vector<std::string>{"default", "relaykv_data", "relaykv_meta"}))
      << "the old versions are dropped";
  WithRawDb(dir.path(), {rocksdb::kDefaultColumnFamilyName, "relaykv_meta", "relaykv_data"},
            [](rocksdb::DB* db, auto& cf) {
              std::unique_ptr<rocksdb::Iterator> it(
                  db->NewIterator(rocksdb::ReadOptions(), cf[rocksdb::kDefaultColumnFamilyName]));
              it->SeekToFirst();
              EXPECT_FALSE(it->Valid()) << "a key was left in the old family";
            });
  // Opened again: nothing more to move, nothing lost.
  auto again = StateMachine::Open(dir.path());
  ASSERT_TRUE(again.ok()) << again.status();
  old["old"] = {"now", Gtid{3, 10}};
  ExpectKeys(**again, old);
}

// An open cut off half way (a crash between two batches of the move) left
// some keys moved and the rest, with the old versions, where they were:
// the next open finishes the move.
TEST(StateMachineMigrationTest, AMoveCutOffHalfWayIsFinishedByTheNextOpen) {
  TempDir dir;
  std::map<std::string, OldKey> old = {{"b", {"vb", Gtid{1, 2}}}, {"d", {"vd", std::nullopt}}};
  std::map<std::string, OldKey> moved = {{"a", {"va", Gtid{1, 1}}}, {"c", {"vc", std::nullopt}}};
  WriteOldFormat(dir.path(), old, moved, Gtid{1, 4});
  auto sm = StateMachine::Open(dir.path());
  ASSERT_TRUE(sm.ok()) << sm.status();
  ExpectKeys(**sm, old);
  ExpectKeys(**sm, moved);
  auto sum = (*sm)->ComputeChecksum();
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(sum->keys, 4u);
}

// The move itself cut off after every batch in turn, RocksDB flushing by
// itself between batches and the memtables lost as in a crash: the next
// open finishes it with every key once, its version, and the same CHECKSUM
// (review s39b M3).
TEST(StateMachineMigrationTest, AMoveCutOffAfterAnyBatchIsFinishedByTheNextOpen) {
  std::map<std::string, OldKey> old;
  for (int i = 0; i < 4000; ++i) {
    old["k" + std::to_string(100000 + i)] = {std::string(200, 'a' + i % 26),
                                             i % 7 == 0 ? std::optional<Gtid>() : Gtid{1, 1u + i}};
  }
  TempDir golden;
  WriteOldFormat(golden.path(), old, {}, Gtid{1, 4000});
  uint64_t want_hash = 0;
  {
    TempDir whole;
    std::filesystem::copy(golden.path(), whole.path(), std::filesystem::copy_options::recursive |
                                                           std::filesystem::copy_options::overwrite_existing);
    auto sm = StateMachine::Open(whole.path());
    ASSERT_TRUE(sm.ok()) << sm.status();
    auto sum = (*sm)->ComputeChecksum();
    ASSERT_TRUE(sum.ok()) << sum.status();
    want_hash = sum->hash;
  }
  const std::vector<std::string> names = {rocksdb::kDefaultColumnFamilyName, "relaykv_meta",
                                          "relaykv_data", kLegacyVersionsCf};
  int half_moved = 0;  // cuts that left keys in both families
  for (uint64_t stop_after : {1, 2, 3}) {
    SCOPED_TRACE("cut after batch " + std::to_string(stop_after));
    TempDir dir;
    std::filesystem::copy(golden.path(), dir.path(), std::filesystem::copy_options::recursive |
                                                         std::filesystem::copy_options::overwrite_existing);
    WithRawDb(
        dir.path(), names,
        [&](rocksdb::DB* db, auto& cf) {
          ASSERT_TRUE(MigrateToVersionedValues(db, cf[rocksdb::kDefaultColumnFamilyName],
                                               cf[kLegacyVersionsCf], cf["relaykv_data"],
                                               dir.path().string(), stop_after)
                          .ok());
        },
        /*as_the_node=*/true);
    WithRawDb(dir.path(), names, [&](rocksdb::DB* db, auto& cf) {
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}, cf["relaykv_data"]));
      size_t moved = 0;
      for (it->SeekToFirst(); it->Valid(); it->Next()) ++moved;
      if (moved > 0 && moved < old.size()) ++half_moved;
    });
    auto sm = StateMachine::Open(dir.path());
    ASSERT_TRUE(sm.ok()) << sm.status();
    EXPECT_EQ((*sm)->Applied(), (Gtid{1, 4000}));
    ExpectKeys(**sm, old);
    auto sum = (*sm)->ComputeChecksum();
    ASSERT_TRUE(sum.ok()) << sum.status();
    EXPECT_EQ(sum->keys, old.size()) << "every key exactly once";
    EXPECT_EQ(sum->hash, want_hash);
  }
  EXPECT_GT(half_moved, 0) << "no cut fell inside the move";
}

// Large values: a batch ends at kMigrationBatchBytes before it reaches
// kMigrationBatchKeys, so no batch (nor its memtable) holds 1024 values of
// up to 16 MiB (review s39b M1). And the old family's space comes back.
TEST(StateMachineMigrationTest, BatchesAreBoundedInBytesAndTheOldSpaceIsGivenBack) {
  TempDir dir;
  std::map<std::string, OldKey> old;
  for (int i = 0; i < 12; ++i) old["big" + std::to_string(10 + i)] = {std::string(1 << 20, 'x'), Gtid{1, 1u + i}};
  WriteOldFormat(dir.path(), old, {}, Gtid{1, 12});
  const std::vector<std::string> names = {rocksdb::kDefaultColumnFamilyName, "relaykv_meta",
                                          "relaykv_data", kLegacyVersionsCf};
  WithRawDb(dir.path(), names, [&](rocksdb::DB* db, auto& cf) {
    ASSERT_TRUE(MigrateToVersionedValues(db, cf[rocksdb::kDefaultColumnFamilyName],
                                         cf[kLegacyVersionsCf], cf["relaykv_data"],
                                         dir.path().string(), /*stop_after_batches=*/1)
                    .ok());
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}, cf["relaykv_data"]));
    size_t moved = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++moved;
    EXPECT_GT(moved, 0u);
    EXPECT_LE(moved * (1 << 20), kMigrationBatchBytes + (1 << 20)) << "the first batch stopped by bytes";
  });
  {
    auto sm = StateMachine::Open(dir.path());
    ASSERT_TRUE(sm.ok()) << sm.status();
    ExpectKeys(**sm, old);
  }
  WithRawDb(dir.path(), {rocksdb::kDefaultColumnFamilyName, "relaykv_meta", "relaykv_data"},
            [](rocksdb::DB* db, auto& cf) {
              uint64_t sst = 1;
              ASSERT_TRUE(db->GetIntProperty(cf[rocksdb::kDefaultColumnFamilyName],
                                             "rocksdb.live-sst-files-size", &sst));
              EXPECT_EQ(sst, 0u) << "the old values and their deletes are compacted away";
            });
}

// A state machine with versions dropped but the old family still holding
// keys (written before versions were kept at all): moved with {0,0}.
TEST(StateMachineMigrationTest, KeysFromBeforeVersionsAreMovedWithoutAVersionFamily) {
  TempDir dir;
  WithRawDb(dir.path(), {rocksdb::kDefaultColumnFamilyName, "relaykv_meta"},
            [](rocksdb::DB* db, auto& cf) {
              ASSERT_TRUE(
                  db->Put(rocksdb::WriteOptions(), cf[rocksdb::kDefaultColumnFamilyName], "x", "1")
                      .ok());
            });
  auto sm = StateMachine::Open(dir.path());
  ASSERT_TRUE(sm.ok()) << sm.status();
  ExpectKeys(**sm, {{"x", {"1", std::nullopt}}});
}

// A binary that knows only the old column families cannot open the new
// format (it would read versions as part of the values): RocksDB refuses
// a DB opened without naming all of its families.
TEST(StateMachineMigrationTest, TheOldFamiliesAloneDoNotOpenTheNewFormat) {
  TempDir dir;
  {
    auto sm = StateMachine::Open(dir.path());
    ASSERT_TRUE(sm.ok()) << sm.status();
    ASSERT_TRUE((*sm)->Apply(std::vector<v1::Event>{At(1, 1, PutEvent("k", "v"))}).ok());
  }
  rocksdb::DBOptions o;
  o.create_missing_column_families = true;  // as the old binary opened it
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, {}}, {"relaykv_meta", {}}, {kLegacyVersionsCf, {}}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, dir.path().string(), cfs, &handles, &raw);
  EXPECT_FALSE(s.ok());
  if (s.ok()) {
    for (auto* h : handles) raw->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    delete raw;
  }
}

// A stored entry too short to hold a version is damage, reported, never
// read as a value.
TEST(StateMachineMigrationTest, AnEntryShorterThanAVersionIsDataLoss) {
  TempDir dir;
  WithRawDb(dir.path(), {rocksdb::kDefaultColumnFamilyName, "relaykv_meta", "relaykv_data"},
            [](rocksdb::DB* db, auto& cf) {
              ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), cf["relaykv_data"], "k", "short").ok());
            });
  auto sm = StateMachine::Open(dir.path());
  ASSERT_TRUE(sm.ok()) << sm.status();
  EXPECT_EQ((*sm)->Get("k").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ((*sm)->ComputeChecksum().status().code(), absl::StatusCode::kDataLoss);
  ScanSpec spec;
  spec.max_keys = 10;
  EXPECT_EQ((*sm)->Scan(spec).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace relaykv
