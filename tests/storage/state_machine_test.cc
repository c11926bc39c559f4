// Tests storage/state_machine.cc: batches apply atomically with their GTID,
// refuse to skip or repeat seqs, and survive a reopen.
#include "storage/state_machine.h"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/storage/test_util.h"

namespace relaykv {
namespace {

using testing::At;
using testing::DeleteEvent;
using testing::PutEvent;
using testing::TempDir;
using Value = std::optional<std::string>;

std::unique_ptr<StateMachine> OpenState(const std::filesystem::path& dir) {
  auto sm = StateMachine::Open(dir);
  EXPECT_TRUE(sm.ok()) << sm.status();
  return sm.ok() ? *std::move(sm) : nullptr;
}

// The value of `key`, failing the test on a read error.
Value Get(const StateMachine& sm, const std::string& key) {
  auto v = sm.Get(key);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : Value();
}

v1::Event PutMany(std::vector<std::pair<std::string, std::string>> kvs) {
  v1::Event e;
  for (auto& [k, v] : kvs) {
    auto* m = e.add_mutations();
    m->set_op(v1::Mutation::PUT);
    m->set_key(k);
    m->set_value(v);
  }
  return e;
}

TEST(StateMachineTest, FreshStateHasNothingApplied) {
  TempDir dir;
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  EXPECT_EQ(sm->Applied(), (Gtid{0, 0}));
  EXPECT_EQ(Get(*sm, "absent"), std::nullopt);
}

TEST(StateMachineTest, ApplyMakesEveryMutationOfTheBatchVisible) {
  TempDir dir;
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  std::vector<v1::Event> batch = {At(1, 1, PutMany({{"a", "1"}, {"b", "2"}})),
                                  At(1, 2, PutEvent("c", "3")),
                                  At(2, 3, PutMany({{"d", "4"}, {"a", "overwritten"}}))};
  ASSERT_TRUE(sm->Apply(batch).ok());
  EXPECT_EQ(sm->Applied(), (Gtid{2, 3})) << "the last event's GTID, epoch included";
  EXPECT_EQ(Get(*sm, "a"), Value("overwritten"));
  EXPECT_EQ(Get(*sm, "b"), Value("2"));
  EXPECT_EQ(Get(*sm, "c"), Value("3"));
  EXPECT_EQ(Get(*sm, "d"), Value("4"));
  std::vector<v1::Event> next = {At(2, 4, PutEvent("e", "5"))};
  ASSERT_TRUE(sm->Apply(next).ok());
  EXPECT_EQ(sm->Applied(), (Gtid{2, 4}));
}

TEST(StateMachineTest, EmptyBatchChangesNothing) {
  TempDir dir;
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  EXPECT_TRUE(sm->Apply({}).ok());
  EXPECT_EQ(sm->Applied(), (Gtid{0, 0}));
}

// Applies seqs 1..2 ("a", "b"), then expects `bad` refused with nothing changed.
void ExpectRefused(const std::filesystem::path& dir, std::vector<v1::Event> bad) {
  auto sm = OpenState(dir);
  ASSERT_NE(sm, nullptr);
  std::vector<v1::Event> good = {At(1, 1, PutEvent("a", "1")), At(1, 2, PutEvent("b", "2"))};
  ASSERT_TRUE(sm->Apply(good).ok());
  const absl::Status s = sm->Apply(bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(sm->Applied(), (Gtid{1, 2}));
  for (const v1::Event& e : bad) {
    EXPECT_EQ(Get(*sm, e.mutations(0).key()), std::nullopt)
        << "a refused batch applies nothing, not even its good prefix";
  }
  EXPECT_EQ(Get(*sm, "a"), Value("1"));
  sm.reset();
  sm = OpenState(dir);
  ASSERT_NE(sm, nullptr);
  EXPECT_EQ(sm->Applied(), (Gtid{1, 2})) << "nor after a reopen";
}

TEST(StateMachineTest, BatchThatSkipsASeqIsRefused) {
  TempDir dir;
  ExpectRefused(dir.path(), {At(1, 4, PutEvent("x", "v"))});
}

TEST(StateMachineTest, BatchThatRepeatsAnAppliedSeqIsRefused) {
  TempDir dir;
  ExpectRefused(dir.path(), {At(1, 2, PutEvent("x", "v"))});
}

TEST(StateMachineTest, BatchWithAGapInsideIsRefusedWhole) {
  TempDir dir;
  ExpectRefused(dir.path(), {At(1, 3, PutEvent("x", "v")), At(1, 5, PutEvent("y", "v"))});
}

TEST(StateMachineTest, FirstBatchMustStartAtSeq1) {
  TempDir dir;
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  std::vector<v1::Event> late = {At(1, 2, PutEvent("x", "v"))};
  EXPECT_EQ(sm->Apply(late).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Get(*sm, "x"), std::nullopt);
}

TEST(StateMachineTest, PutThenDeleteInOneBatchLeavesTheKeyAbsent) {
  TempDir dir;
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  v1::Event same_event = PutEvent("k1", "v");
  same_event.MergeFrom(DeleteEvent("k1"));  // PUT k1, DELETE k1 in one event
  v1::Event delete_then_put = DeleteEvent("k3");
  delete_then_put.MergeFrom(PutEvent("k3", "back"));
  std::vector<v1::Event> batch = {At(1, 1, same_event), At(1, 2, PutEvent("k2", "v")),
                                  At(1, 3, DeleteEvent("k2")), At(1, 4, delete_then_put)};
  ASSERT_TRUE(sm->Apply(batch).ok());
  EXPECT_EQ(Get(*sm, "k1"), std::nullopt);
  EXPECT_EQ(Get(*sm, "k2"), std::nullopt) << "across events of one batch";
  EXPECT_EQ(Get(*sm, "k3"), Value("back")) << "mutations apply in order";
  EXPECT_EQ(sm->Applied().seq, 4u);
}

// A compare that asks no value reads the version alone (review s34-last
// F1), and agrees with the full read on every kind of key: changed,
// deleted, absent, in the memtable and after a flush. (Keys written before
// versions were kept: state_machine_migration_test.)
TEST(StateMachineTest, VersionOnlyReadsAgreeWithFullReads) {
  TempDir dir;
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  std::vector<v1::Event> batch = {At(3, 1, PutEvent("k", "v1")), At(3, 2, PutEvent("k", "v2")),
                                  At(3, 3, PutEvent("gone", "x")), At(3, 4, DeleteEvent("gone")),
                                  At(3, 5, PutEvent("empty", ""))};
  ASSERT_TRUE(sm->Apply(batch).ok());
  for (int pass = 0; pass < 2; ++pass) {
    SCOPED_TRACE(pass == 0 ? "in the memtable" : "after a flush");
    for (const bool with_value : {true, false}) {
      SCOPED_TRACE(with_value ? "with value" : "version only");
      auto k = sm->GetVersioned("k", with_value);
      ASSERT_TRUE(k.ok()) << k.status();
      ASSERT_TRUE(k->has_value());
      EXPECT_EQ((*k)->version, (Gtid{3, 2}));
      EXPECT_EQ((*k)->value, with_value ? "v2" : "");
      auto e = sm->GetVersioned("empty", with_value);
      ASSERT_TRUE(e.ok()) << e.status();
      ASSERT_TRUE(e->has_value()) << "an empty value is a value";
      EXPECT_EQ((*e)->version, (Gtid{3, 5}));
      for (const char* absent : {"gone", "never"}) {
        auto a = sm->GetVersioned(absent, with_value);
        ASSERT_TRUE(a.ok()) << a.status();
        EXPECT_FALSE(a->has_value()) << absent;
      }
    }
    ASSERT_TRUE(sm->Flush().ok());
  }
}

// One event that puts then deletes a key, and one that deletes then puts
// another: a version-only read must agree with the last mutation, as the
// full read does (the version is put and deleted with the value, in order;
// review s34-final F1).
TEST(StateMachineTest, VersionOnlyReadsFollowTheLastMutationOfAnEvent) {
  TempDir dir;
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  v1::Event put_then_delete = PutEvent("pd", "x");
  *put_then_delete.add_mutations() = DeleteEvent("pd").mutations(0);
  v1::Event delete_then_put = DeleteEvent("dp");
  *delete_then_put.add_mutations() = PutEvent("dp", "y").mutations(0);
  std::vector<v1::Event> batch = {At(2, 1, PutEvent("dp", "first")), At(2, 2, put_then_delete),
                                  At(2, 3, delete_then_put)};
  ASSERT_TRUE(sm->Apply(batch).ok());
  for (int pass = 0; pass < 2; ++pass) {
    SCOPED_TRACE(pass == 0 ? "in the memtable" : "after a flush");
    for (const bool with_value : {true, false}) {
      SCOPED_TRACE(with_value ? "with value" : "version only");
      auto pd = sm->GetVersioned("pd", with_value);
      ASSERT_TRUE(pd.ok()) << pd.status();
      EXPECT_FALSE(pd->has_value()) << "put then deleted in one event";
      auto dp = sm->GetVersioned("dp", with_value);
      ASSERT_TRUE(dp.ok()) << dp.status();
      ASSERT_TRUE(dp->has_value()) << "deleted then put in one event";
      EXPECT_EQ((*dp)->version, (Gtid{2, 3}));
      EXPECT_EQ((*dp)->value, with_value ? "y" : "");
    }
    ASSERT_TRUE(sm->Flush().ok());
  }
}

TEST(StateMachineTest, EmptyValueIsStoredAndDistinctFromAbsent) {
  TempDir dir;
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  std::vector<v1::Event> batch = {At(1, 1, PutEvent("empty", ""))};
  ASSERT_TRUE(sm->Apply(batch).ok());
  EXPECT_EQ(Get(*sm, "empty"), Value(""));
  EXPECT_EQ(Get(*sm, "absent"), std::nullopt);
}

TEST(StateMachineTest, BinaryKeysWithNulBytesAreDistinct) {
  TempDir dir;
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  const std::string k1("a\0b", 3), k2("a\0c", 3), k3("a", 1), k4("\0", 1);
  const std::string value("\0\xff\0", 3);
  std::vector<v1::Event> batch = {At(1, 1, PutMany({{k1, "1"}, {k2, "2"}, {k4, value}}))};
  ASSERT_TRUE(sm->Apply(batch).ok());
  EXPECT_EQ(Get(*sm, k1), Value("1"));
  EXPECT_EQ(Get(*sm, k2), Value("2"));
  EXPECT_EQ(Get(*sm, k3), std::nullopt) << "not cut at the NUL";
  EXPECT_EQ(Get(*sm, k4), Value(value));
}

TEST(StateMachineTest, AppliedAndDataSurviveReopenAfterFlush) {
  TempDir dir;
  {
    auto sm = OpenState(dir.path());
    ASSERT_NE(sm, nullptr);
    std::vector<v1::Event> b = {At(1, 1, PutEvent("a", "1")), At(3, 2, PutEvent("b", "2"))};
    ASSERT_TRUE(sm->Apply(b).ok());
    ASSERT_TRUE(sm->Flush().ok());
  }
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  EXPECT_EQ(sm->Applied(), (Gtid{3, 2}));
  EXPECT_EQ(Get(*sm, "a"), Value("1"));
  EXPECT_EQ(Get(*sm, "b"), Value("2"));
}

TEST(StateMachineTest, AppliedAndDataSurviveReopenWithoutFlush) {
  // The WAL is off; closing the DB must flush the memtables.
  TempDir dir;
  {
    auto sm = OpenState(dir.path());
    ASSERT_NE(sm, nullptr);
    std::vector<v1::Event> b = {At(1, 1, PutEvent("a", "1")), At(1, 2, DeleteEvent("a")),
                                At(1, 3, PutEvent("b", "2"))};
    ASSERT_TRUE(sm->Apply(b).ok());
  }
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  EXPECT_EQ(sm->Applied(), (Gtid{1, 3}));
  EXPECT_EQ(Get(*sm, "a"), std::nullopt);
  EXPECT_EQ(Get(*sm, "b"), Value("2"));
  std::vector<v1::Event> next = {At(1, 4, PutEvent("c", "3"))};
  EXPECT_TRUE(sm->Apply(next).ok()) << "continues from the reopened position";
}

// Review s31 F5: the node syncs its binlog in this hook, so it must run
// before RocksDB's own flushes too (a full memtable), before their SSTs.
TEST(StateMachineTest, BeforeFlushHookRunsBeforeRocksDbsOwnFlushes) {
  TempDir dir;
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  std::atomic<int> calls{0};
  std::atomic<uint64_t> sst_bytes_at_first_call{~0ull};
  sm->SetBeforeFlush([&] {
    if (calls.fetch_add(1) == 0) {
      sst_bytes_at_first_call = sm->IntProperty("rocksdb.live-sst-files-size").value_or(~0ull);
    }
    return absl::OkStatus();
  });
  // 24 MiB through 16 MiB memtables, and no Flush(): RocksDB flushes itself.
  const std::string value(1 << 20, 'v');
  for (uint64_t seq = 1; seq <= 24; ++seq) {
    std::vector<v1::Event> batch = {At(1, seq, PutEvent("k" + std::to_string(seq), value))};
    ASSERT_TRUE(sm->Apply(batch).ok());
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (calls.load() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(calls.load(), 1) << "a flush of a full memtable did not run the hook";
  EXPECT_EQ(sst_bytes_at_first_call.load(), 0u) << "the hook ran after an SST was written";
  sm->SetBeforeFlush({});  // `calls` goes out of scope before the close's flush
}

// A failed hook (the binlog could not be synced: it refuses writes until a
// restart) refuses this flush and every later one, the close's included:
// nothing may be persisted past what the log holds durably.
TEST(StateMachineTest, NoFlushOnceTheBeforeFlushHookHasFailed) {
  TempDir dir;
  {
    auto sm = OpenState(dir.path());
    ASSERT_NE(sm, nullptr);
    std::vector<v1::Event> b = {At(1, 1, PutEvent("a", "1"))};
    ASSERT_TRUE(sm->Apply(b).ok());
    sm->SetBeforeFlush([] { return absl::InternalError("binlog fdatasync failed"); });
    EXPECT_TRUE(sm->FlushRefusal().ok());
    absl::Status s = sm->Flush();
    EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
    EXPECT_NE(s.message().find("binlog fdatasync failed"), std::string::npos) << s;
    // Shown (SHOW STATUS State_machine_error, health): the node must restart.
    EXPECT_NE(sm->FlushRefusal().message().find("binlog fdatasync failed"), std::string::npos)
        << sm->FlushRefusal();
    EXPECT_GT(sm->IntProperty("rocksdb.num-entries-active-mem-table").value_or(0), 0u)
        << "the memtable was flushed anyway";
    sm->SetBeforeFlush([] { return absl::OkStatus(); });
    EXPECT_FALSE(sm->Flush().ok()) << "a later flush went ahead";
    EXPECT_EQ(sm->IntProperty("rocksdb.live-sst-files-size").value_or(1), 0u);
  }
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  EXPECT_EQ(sm->Applied(), (Gtid{0, 0})) << "the close flushed past the log";
}

// RocksDB's own flushes cannot be refused from the listener: the SST they
// would write is (and RocksDB then stops taking writes).
TEST(StateMachineTest, FullMemtableIsNotFlushedOnceTheBeforeFlushHookHasFailed) {
  TempDir dir;
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  sm->SetBeforeFlush([] { return absl::InternalError("binlog fdatasync failed"); });
  const std::string value(1 << 20, 'v');
  bool refused = false;
  for (uint64_t seq = 1; seq <= 48 && !refused; ++seq) {
    std::vector<v1::Event> batch = {At(1, seq, PutEvent("k" + std::to_string(seq), value))};
    refused = !sm->Apply(batch).ok();
    if (!refused) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(refused) << "48 MiB went into memtables that could not be flushed";
  EXPECT_EQ(sm->IntProperty("rocksdb.live-sst-files-size").value_or(1), 0u);
}

TEST(StateMachineTest, ChecksumIsEqualForEqualDataAndChangesWithIt) {
  TempDir dir;
  auto a = OpenState(dir.path() / "a");
  auto b = OpenState(dir.path() / "b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  // Same keys and values reached by different batches.
  std::vector<v1::Event> to_a = {At(1, 1, PutMany({{"ab", "c"}, {"x", "1"}}))};
  std::vector<v1::Event> to_b = {At(1, 1, PutMany({{"x", "1"}, {"ab", "c"}}))};
  ASSERT_TRUE(a->Apply(to_a).ok());
  ASSERT_TRUE(b->Apply(to_b).ok());
  auto ca = a->ComputeChecksum();
  auto cb = b->ComputeChecksum();
  ASSERT_TRUE(ca.ok() && cb.ok());
  EXPECT_EQ(ca->gtid, (Gtid{1, 1}));
  EXPECT_EQ(ca->keys, 2u);
  EXPECT_EQ(ca->hash, cb->hash);
  // ("ab","c") vs ("a","bc"): same bytes, different data.
  std::vector<v1::Event> split = {At(1, 2, DeleteEvent("ab")), At(1, 3, PutEvent("a", "bc"))};
  ASSERT_TRUE(b->Apply(split).ok());
  cb = b->ComputeChecksum();
  ASSERT_TRUE(cb.ok());
  EXPECT_EQ(cb->keys, 2u);
  EXPECT_NE(ca->hash, cb->hash);
}

// The same data with other versions (a key rewritten with the same value):
// the data checksum is equal, the versions checksum is not — what a compare
// on a version would read differently after a failover (review s39b L4).
TEST(StateMachineTest, VersionsChecksumSeesAVersionTheDataChecksumDoesNot) {
  TempDir dir;
  auto a = OpenState(dir.path() / "a");
  auto b = OpenState(dir.path() / "b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  std::vector<v1::Event> both = {At(1, 1, PutEvent("k", "v")), At(1, 2, PutEvent("j", "w"))};
  ASSERT_TRUE(a->Apply(both).ok());
  ASSERT_TRUE(b->Apply(both).ok());
  auto ca = a->ComputeChecksum();
  auto cb = b->ComputeChecksum();
  ASSERT_TRUE(ca.ok() && cb.ok());
  EXPECT_EQ(ca->versions_hash, cb->versions_hash) << "same events: same versions";
  EXPECT_NE(ca->versions_hash, ca->hash);
  std::vector<v1::Event> rewrite = {At(1, 3, PutEvent("k", "v"))};
  std::vector<v1::Event> other = {At(1, 3, PutEvent("j", "w"))};
  ASSERT_TRUE(a->Apply(rewrite).ok());
  ASSERT_TRUE(b->Apply(other).ok());
  ca = a->ComputeChecksum();
  cb = b->ComputeChecksum();
  ASSERT_TRUE(ca.ok() && cb.ok());
  EXPECT_EQ(ca->gtid, cb->gtid);
  EXPECT_EQ(ca->hash, cb->hash) << "the values are the same";
  EXPECT_NE(ca->versions_hash, cb->versions_hash) << "k is at 1:3 on one, at 1:1 on the other";
}

}  // namespace
}  // namespace relaykv
