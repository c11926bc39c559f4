// Tests storage/state_machine_scan.cc: a scan walks [start, end) either way
// from one snapshot — writes and a flush in the middle of the walk change
// nothing it returns — and stops at its key and byte caps saying whether
// more remains.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <rocksdb/perf_context.h>
#include <rocksdb/perf_level.h>

#include "gtest/gtest.h"
#include "storage/state_machine.h"
#include "tests/storage/test_util.h"

namespace relaykv {
namespace {

using testing::At;
using testing::DeleteEvent;
using testing::PutEvent;
using testing::TempDir;

std::unique_ptr<StateMachine> OpenState(const std::filesystem::path& dir) {
  auto sm = StateMachine::Open(dir);
  EXPECT_TRUE(sm.ok()) << sm.status();
  return sm.ok() ? *std::move(sm) : nullptr;
}

std::string Key(int i) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "k%05d", i);
  return buf;
}

// Applies one event per key k00000..k{n-1} with value "v0"; returns the last seq.
uint64_t Fill(StateMachine& sm, int n) {
  std::vector<v1::Event> events;
  for (int i = 0; i < n; ++i) events.push_back(At(1, i + 1, PutEvent(Key(i), "v0")));
  EXPECT_TRUE(sm.Apply(events).ok());
  return static_cast<uint64_t>(n);
}

std::vector<std::string> Keys(const ScanRows& r) {
  std::vector<std::string> out;
  for (const auto& row : r.rows) out.push_back(row.key);
  return out;
}

TEST(StateMachineScanTest, WalksTheHalfOpenRangeForwardAndReverse) {
  TempDir dir;
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  Fill(*sm, 10);
  ScanSpec spec;
  spec.start = Key(2);
  spec.end = Key(5);
  spec.max_keys = 100;
  auto r = sm->Scan(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Keys(*r), (std::vector<std::string>{Key(2), Key(3), Key(4)}));
  EXPECT_FALSE(r->more);
  EXPECT_EQ(r->gtid, (Gtid{1, 10}));
  spec.reverse = true;
  r = sm->Scan(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Keys(*r), (std::vector<std::string>{Key(4), Key(3), Key(2)}));
  // An end between two keys, and no bounds at all.
  spec.end = Key(4) + "x";
  r = sm->Scan(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Keys(*r).front(), Key(4));
  spec.start.clear();
  spec.end.clear();
  r = sm->Scan(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->count, 10u);
  EXPECT_EQ(r->rows.front().key, Key(9));
}

// A range with nothing live in it stops at its bounds: deleted keys past
// them are not walked (review s43b F6: a scan of an empty range walked
// every tombstone after it, with no check running, to the next live key).
TEST(StateMachineScanTest, AnEmptyRangeDoesNotWalkTheDeletedKeysPastItsBounds) {
  TempDir dir;
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  const int n = 20000;
  uint64_t seq = Fill(*sm, n);
  // Live "a" and "z" around the deleted k00000..k19999.
  std::vector<v1::Event> events;
  events.push_back(At(1, ++seq, PutEvent("a", "live")));
  for (int i = 0; i < n; ++i) events.push_back(At(1, ++seq, DeleteEvent(Key(i))));
  events.push_back(At(1, ++seq, PutEvent("z", "live")));
  ASSERT_TRUE(sm->Apply(events).ok());
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
  // Forward over [b, k) and reverse over [l, z): the deleted keys lie just
  // past the end each walks towards.
  for (bool reverse : {false, true}) {
    ScanSpec spec;
    spec.start = reverse ? "l" : "b";
    spec.end = reverse ? "z" : "k";
    spec.max_keys = 10;
    spec.reverse = reverse;
    rocksdb::get_perf_context()->Reset();
    auto r = sm->Scan(spec);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->count, 0u) << "reverse " << reverse;
    EXPECT_LT(rocksdb::get_perf_context()->internal_delete_skipped_count, 100u)
        << "reverse " << reverse;
  }
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
}

TEST(StateMachineScanTest, StopsAtMaxKeysAndSaysMoreRemainsOnlyIfItDoes) {
  TempDir dir;
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  Fill(*sm, 4);
  ScanSpec spec;
  spec.max_keys = 3;
  auto r = sm->Scan(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->more);
  EXPECT_EQ(r->last_key, Key(2));
  spec.max_keys = 4;
  r = sm->Scan(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->more);  // exactly exhausted: no empty page to ask for
  spec.max_keys = 0;
  EXPECT_EQ(sm->Scan(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(StateMachineScanTest, ByteCapEndsAPageButNeverBeforeItsFirstRow) {
  TempDir dir;
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  const std::vector<v1::Event> events = {At(1, 1, PutEvent("a", std::string(1000, 'x'))),
                                         At(1, 2, PutEvent("b", std::string(1000, 'y')))};
  ASSERT_TRUE(sm->Apply(events).ok());
  ScanSpec spec;
  spec.max_keys = 100;
  spec.max_bytes = 10;  // smaller than any row
  auto r = sm->Scan(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Keys(*r), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(r->more);
  // Keys only: the values do not count.
  spec.keys_only = true;
  spec.max_bytes = 100;
  r = sm->Scan(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->count, 2u);
  EXPECT_EQ(r->rows[0].value, "");
}

// The walk's check hook runs in the middle of the scan: there the test
// overwrites every key, deletes some, adds new ones and flushes the
// memtable to SST. The scan still returns the state it started at.
TEST(StateMachineScanTest, WritesAndAFlushDuringTheWalkAreNotSeen) {
  TempDir dir;
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  constexpr int kKeys = 5000;
  uint64_t seq = Fill(*sm, kKeys);
  bool changed = false;
  ScanSpec spec;
  spec.max_keys = kKeys + 100;
  spec.check = [&]() -> absl::Status {
    if (changed) return absl::OkStatus();
    changed = true;
    std::vector<v1::Event> events;
    for (int i = 0; i < kKeys; ++i) events.push_back(At(1, ++seq, PutEvent(Key(i), "v1")));
    for (int i = 0; i < kKeys; i += 10) events.push_back(At(1, ++seq, DeleteEvent(Key(i))));
    events.push_back(At(1, ++seq, PutEvent(Key(kKeys + 1), "new")));
    if (auto s = sm->Apply(events); !s.ok()) return s;
    return sm->Flush();
  };
  auto r = sm->Scan(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(changed) << "the hook never ran: the scan is too short to test anything";
  EXPECT_EQ(r->gtid, (Gtid{1, kKeys}));
  ASSERT_EQ(r->count, static_cast<uint64_t>(kKeys));
  for (int i = 0; i < kKeys; ++i) {
    EXPECT_EQ(r->rows[i].key, Key(i));
    ASSERT_EQ(r->rows[i].value, "v0") << r->rows[i].key;
  }
  // A new scan sees the new state.
  spec.check = nullptr;
  r = sm->Scan(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->gtid, (Gtid{1, seq}));
  EXPECT_EQ(r->count, static_cast<uint64_t>(kKeys - kKeys / 10 + 1));
  EXPECT_EQ(r->rows[0].value, "v1");
}

TEST(StateMachineScanTest, CheckHookErrorEndsTheWalk) {
  TempDir dir;
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  Fill(*sm, 3000);
  ScanSpec spec;
  spec.max_keys = 10000;
  spec.count_only = true;
  spec.check = [] { return absl::DeadlineExceededError("deadline passed during a scan"); };
  EXPECT_EQ(sm->Scan(spec).status().code(), absl::StatusCode::kDeadlineExceeded);
  spec.check = nullptr;
  auto r = sm->Scan(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->count, 3000u);
  EXPECT_TRUE(r->rows.empty());
}


// Review s43e E3: RocksDB steps over deleted keys inside one Next/Prev, so
// a range of 200k deleted keys was walked in one step with no check: a
// scan ignored its deadline and its caller going away. Now the walk checks
// every kScanSkipsPerCheck deleted entries and goes on from where it was.
TEST(StateMachineScanTest, AWalkOverManyDeletedKeysChecksAndGoesOn) {
  TempDir dir;
  auto sm = OpenState(dir.path());
  ASSERT_NE(sm, nullptr);
  constexpr int kKeys = 200000;
  uint64_t seq = 0;
  for (int first = 0; first < kKeys; first += 10000) {
    std::vector<v1::Event> events;
    for (int i = first; i < first + 10000; ++i) {
      events.push_back(At(1, ++seq, PutEvent(Key(i), "v")));
    }
    ASSERT_TRUE(sm->Apply(events).ok());
  }
  ASSERT_TRUE(sm->Flush().ok());
  for (int first = 1; first < kKeys - 1; first += 10000) {
    std::vector<v1::Event> events;
    for (int i = first; i < std::min(first + 10000, kKeys - 1); ++i) {
      events.push_back(At(1, ++seq, DeleteEvent(Key(i))));
    }
    ASSERT_TRUE(sm->Apply(events).ok());
  }
  for (const bool reverse : {false, true}) {
    // Live: the first and the last key; everything between deleted.
    int checks = 0;
    ScanSpec spec;
    spec.start = Key(0);
    spec.end = Key(kKeys);
    spec.reverse = reverse;
    spec.max_keys = 2;
    spec.check = [&] {
      ++checks;
      return absl::OkStatus();
    };
    auto r = sm->Scan(spec);
    ASSERT_TRUE(r.ok()) << r.status();
    const std::vector<std::string> both =
        reverse ? std::vector<std::string>({Key(kKeys - 1), Key(0)})
                : std::vector<std::string>({Key(0), Key(kKeys - 1)});
    EXPECT_EQ(Keys(*r), both);
    EXPECT_GE(checks, 2) << (reverse ? "reverse" : "forward");
    // A check that fails ends the walk among the deleted keys.
    spec.check = [] { return absl::DeadlineExceededError("the caller's deadline passed"); };
    auto ended = sm->Scan(spec);
    EXPECT_TRUE(absl::IsDeadlineExceeded(ended.status())) << ended.status();
  }
}

}  // namespace
}  // namespace relaykv
