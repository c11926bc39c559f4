// Tests storage/binlog_truncate.cc: tail truncation with quarantine, in one
// segment, mid-group, across segments, at every position; refusals that
// change nothing; and a power-cut sweep through every crash point showing
// recovery finds the old binlog or the truncated one, never a mix.
#include "storage/binlog_truncate.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "storage/binlog.h"
#include "storage/binlog_format.h"
#include "storage/fault_injection.h"
#include "tests/storage/test_util.h"

namespace relaykv {
namespace {

namespace fs = std::filesystem;
using testing::At;
using testing::CopyDir;
using testing::OpenBinlog;
using testing::PutEvent;
using testing::ReadEvents;
using testing::TempDir;

std::vector<std::string> Serialized(const std::vector<v1::Event>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.SerializeAsString());
  return out;
}

std::vector<fs::path> QuarantineFiles(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename().string().rfind("binlog-quarantine.", 0) == 0) {
      out.push_back(entry.path());
    }
  }
  return out;
}

std::vector<fs::path> SegmentFiles(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    uint64_t n = 0;
    if (ParseSegmentFileName(entry.path().filename().string(), &n)) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class BinlogTruncateTest : public ::testing::Test {
 protected:
  fs::path data_dir() const { return tmp_.path(); }
  fs::path binlog_dir() const { return tmp_.path() / "binlog"; }

  // `n` commits of one event each (one group each), value sized to fill
  // segments of `max_binlog_size`; returns every event as stored.
  std::vector<v1::Event> Fill(uint64_t n, uint64_t max_binlog_size = 1ull << 30,
                              size_t value_bytes = 20) {
    auto b = OpenBinlog(binlog_dir(), max_binlog_size);
    EXPECT_NE(b, nullptr);
    if (b == nullptr) return {};
    for (uint64_t i = 0; i < n; ++i) {
      v1::Event e = PutEvent("k" + std::to_string(i), std::string(value_bytes, 'a' + i % 26));
      EXPECT_TRUE(b->Commit(&e).ok());
    }
    return ReadEvents(*b);
  }

  absl::StatusOr<TruncationReport> Truncate(Gtid end, Gtid applied) {
    TruncateRequest r;
    r.binlog_dir = binlog_dir();
    r.end = end;
    r.applied = applied;
    return Binlog::TruncateAfter(r);
  }

  // Reopens the binlog and checks it holds exactly `want`.
  void ExpectBinlogHolds(const std::vector<v1::Event>& want) {
    auto b = OpenBinlog(binlog_dir());
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(Serialized(ReadEvents(*b, b->FirstAvailableSeq())), Serialized(want));
    if (!want.empty()) EXPECT_EQ(b->LastVisible(), GtidFromProto(want.back().gtid()));
  }

  TempDir tmp_;
};

TEST_F(BinlogTruncateTest, TailInOneSegmentGoesToQuarantine) {
  const auto all = Fill(10);
  ASSERT_EQ(all.size(), 10u);
  auto r = Truncate({1, 6}, {1, 6});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->truncated);
  EXPECT_EQ(r->events_removed, 4u);
  EXPECT_EQ(r->first_removed, (Gtid{1, 7}));
  EXPECT_EQ(r->last_removed, (Gtid{1, 10}));
  EXPECT_EQ(r->segment, "binlog.000001");
  EXPECT_EQ(r->segments_removed, 0);
  EXPECT_GT(r->bytes_removed, 0u);
  EXPECT_EQ(r->quarantine.parent_path(), data_dir());
  EXPECT_NE(r->quarantine.filename().string().find("epoch1-1.seq7-10."), std::string::npos)
      << r->quarantine;

  auto q = ReadQuarantineFile(r->quarantine);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(Serialized(*q), Serialized({all.begin() + 6, all.end()}));
  EXPECT_FALSE(fs::exists(binlog_dir() / binlog_format::kTruncateIntentName));
  ASSERT_NO_FATAL_FAILURE(ExpectBinlogHolds({all.begin(), all.begin() + 6}));
  // The history goes on from 1:6.
  auto b = OpenBinlog(binlog_dir());
  ASSERT_NE(b, nullptr);
  testing::ExpectNextCommitIsSeq(*b, 7);
}

TEST_F(BinlogTruncateTest, CutInsideAGroupClosesTheKeptPart) {
  // One relay-log group of 5 events: cutting after the third must leave a
  // group end behind it, or recovery would drop 1..3 as a torn tail.
  std::vector<v1::Event> batch;
  for (uint64_t s = 1; s <= 5; ++s) batch.push_back(At(1, s, PutEvent("k", "v" + std::to_string(s))));
  {
    auto b = OpenBinlog(binlog_dir());
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(b->AppendReplicated(batch, true).ok());
  }
  auto r = Truncate({1, 3}, {1, 2});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->events_removed, 2u);
  auto q = ReadQuarantineFile(r->quarantine);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(Serialized(*q), Serialized({batch.begin() + 3, batch.end()}));
  ASSERT_NO_FATAL_FAILURE(ExpectBinlogHolds({batch.begin(), batch.begin() + 3}));
}

TEST_F(BinlogTruncateTest, TailAcrossSegmentsRemovesLaterSegments) {
  const auto all = Fill(60, /*max_binlog_size=*/400);
  ASSERT_EQ(all.size(), 60u);
  const size_t segments_before = SegmentFiles(binlog_dir()).size();
  ASSERT_GE(segments_before, 4u);
  auto r = Truncate({1, 12}, {1, 12});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(r->segments_removed, 2);
  EXPECT_EQ(r->events_removed, 48u);
  EXPECT_EQ(SegmentFiles(binlog_dir()).size(), segments_before - static_cast<size_t>(r->segments_removed));
  auto q = ReadQuarantineFile(r->quarantine);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(Serialized(*q), Serialized({all.begin() + 12, all.end()}));
  ASSERT_NO_FATAL_FAILURE(ExpectBinlogHolds({all.begin(), all.begin() + 12}));
}

TEST_F(BinlogTruncateTest, EveryCutPositionAcrossSegments) {
  const auto all = Fill(25, /*max_binlog_size=*/300);
  const fs::path golden = tmp_.path() / "golden";
  CopyDir(binlog_dir(), golden);
  for (uint64_t end = 0; end <= all.size(); ++end) {
    SCOPED_TRACE("end seq " + std::to_string(end));
    fs::remove_all(binlog_dir());
    for (const auto& q : QuarantineFiles(data_dir())) fs::remove(q);
    CopyDir(golden, binlog_dir());
    const Gtid g{end == 0 ? 0u : 1u, end};
    auto r = Truncate(g, g);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->truncated, end < all.size());
    if (r->truncated) {
      auto q = ReadQuarantineFile(r->quarantine);
      ASSERT_TRUE(q.ok()) << q.status();
      EXPECT_EQ(Serialized(*q), Serialized({all.begin() + end, all.end()}));
    }
    ASSERT_NO_FATAL_FAILURE(ExpectBinlogHolds({all.begin(), all.begin() + end}));
  }
}

TEST_F(BinlogTruncateTest, EndIsLastIsANoOp) {
  const auto all = Fill(5);
  auto r = Truncate({1, 5}, {1, 5});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->truncated);
  EXPECT_TRUE(QuarantineFiles(data_dir()).empty());
  ASSERT_NO_FATAL_FAILURE(ExpectBinlogHolds(all));
}

TEST_F(BinlogTruncateTest, RefusalsChangeNothing) {
  const auto all = Fill(30, /*max_binlog_size=*/400);
  {
    auto b = OpenBinlog(binlog_dir(), 400);
    ASSERT_NE(b, nullptr);
    auto purged = b->PurgeUpToSeq(15, 15);
    ASSERT_TRUE(purged.ok() && *purged > 0) << purged.status();
  }
  uint64_t first = 0;
  {
    auto b = OpenBinlog(binlog_dir());
    ASSERT_NE(b, nullptr);
    first = b->FirstAvailableSeq();
  }
  ASSERT_GT(first, 2u);
  struct Case {
    Gtid end, applied;
    absl::StatusCode code;
    const char* says;
  };
  const Case cases[] = {
      {{1, first - 2}, {1, 0}, absl::StatusCode::kOutOfRange, "purged"},
      {{2, 20}, {1, 0}, absl::StatusCode::kFailedPrecondition, "not in this binlog's history"},
      {{1, 31}, {1, 0}, absl::StatusCode::kFailedPrecondition, "not in this binlog's history"},
      {{2, 30}, {1, 0}, absl::StatusCode::kFailedPrecondition, "not in this binlog's history"},
      {{1, 20}, {1, 21}, absl::StatusCode::kFailedPrecondition, "applied up to 1:21"},
  };
  for (const Case& c : cases) {
    auto r = Truncate(c.end, c.applied);
    ASSERT_FALSE(r.ok()) << c.end.ToString();
    EXPECT_EQ(r.status().code(), c.code) << r.status();
    EXPECT_NE(r.status().message().find(c.says), std::string::npos) << r.status();
  }
  EXPECT_TRUE(QuarantineFiles(data_dir()).empty());
  ASSERT_NO_FATAL_FAILURE(ExpectBinlogHolds({all.begin() + (first - 1), all.end()}));
  // The oldest kept segment's header names the GTID before it: a cut there
  // is allowed and empties the binlog.
  auto r = Truncate({1, first - 1}, {1, first - 1});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_NO_FATAL_FAILURE(ExpectBinlogHolds({}));
  auto b = OpenBinlog(binlog_dir());
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->LastVisible(), (Gtid{1, first - 1}));
  v1::Event e = PutEvent("after", "v");
  ASSERT_TRUE(b->Commit(&e).ok());
  EXPECT_EQ(e.gtid().seq(), first);
}

TEST_F(BinlogTruncateTest, UnparsableIntentStopsRecovery) {
  Fill(3);
  testing::WriteFile(binlog_dir() / binlog_format::kTruncateIntentName, "garbage");
  absl::Status s = testing::OpenStatus(binlog_dir());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("binlog.truncate"), std::string::npos) << s;
}

// Power cut at every operation of the truncation (creates, writes, syncs,
// renames, directory fsyncs), several tear patterns each: the reopened
// binlog is the old one or the truncated one; when the truncation returned
// OK, the truncated one; when truncated, the quarantine holds the tail.
TEST_F(BinlogTruncateTest, PowerCutAtEveryStepLeavesOldOrNew) {
  const auto all = Fill(40, /*max_binlog_size=*/500);
  const fs::path golden = tmp_.path() / "golden";
  CopyDir(binlog_dir(), golden);
  fs::remove_all(binlog_dir());
  const uint64_t end = 9;  // mid-segment, with several later segments
  const std::vector<std::string> old_history = Serialized(all);
  const std::vector<std::string> new_history = Serialized({all.begin(), all.begin() + end});
  int cuts = 0, saw_old = 0, saw_new = 0;
  bool completed = false;
  for (int ops = 0; !completed; ++ops) {
    ASSERT_LT(ops, 200) << "the truncation never completed";
    for (int variant = 0; variant < 4; ++variant) {
      SCOPED_TRACE("ops " + std::to_string(ops) + " variant " + std::to_string(variant));
      const fs::path data = tmp_.path() / ("run-" + std::to_string(ops) + "-" +
                                           std::to_string(variant));
      const fs::path dir = data / "binlog";
      fs::create_directories(data);
      CopyDir(golden, dir);
      absl::StatusOr<TruncationReport> r;
      {
        auto fi = FaultInjection::Install();
        ASSERT_TRUE(fi.ok()) << fi.status();
        ASSERT_TRUE((*fi)->TrackDir(data).ok());
        ASSERT_TRUE((*fi)->TrackDir(dir).ok());
        (*fi)->CutPowerAfterOps(ops);
        TruncateRequest req;
        req.binlog_dir = dir;
        req.end = {1, end};
        req.applied = {1, end};
        r = Binlog::TruncateAfter(req);
        if (r.ok() && !(*fi)->power_is_cut()) completed = true;
        PowerCutOptions o;
        o.seed = static_cast<uint64_t>(ops * 4 + variant);
        o.tear = variant == 0 ? TearMode::kNone
                 : variant == 1 ? TearMode::kPrefix : TearMode::kRandomSectors;
        o.keep_unsynced_names = variant == 3 ? 1.0 : (variant == 2 ? 0.5 : 0.0);
        auto cut = (*fi)->ApplyPowerCut(o);
        ASSERT_TRUE(cut.ok()) << cut.status();
        ++cuts;
      }
      BinlogOptions bo;
      bo.dir = dir;
      auto b = Binlog::Open(bo);
      ASSERT_TRUE(b.ok()) << "recovery failed after the cut: " << b.status();
      const std::vector<std::string> got = Serialized(ReadEvents(**b));
      (*b)->Close();
      const bool is_new = got == new_history;
      ASSERT_TRUE(is_new || got == old_history)
          << "a torn middle: " << got.size() << " events after the cut";
      if (r.ok()) ASSERT_TRUE(is_new) << "the truncation returned OK but was undone";
      EXPECT_FALSE(fs::exists(dir / binlog_format::kTruncateIntentName));
      if (is_new) {
        ++saw_new;
        auto qs = QuarantineFiles(data);
        ASSERT_EQ(qs.size(), 1u) << "truncated without a quarantine file";
        auto q = ReadQuarantineFile(qs[0]);
        ASSERT_TRUE(q.ok()) << q.status();
        EXPECT_EQ(Serialized(*q), Serialized({all.begin() + end, all.end()}));
      } else {
        ++saw_old;
      }
      fs::remove_all(data);
    }
  }
  EXPECT_GT(saw_old, 0);
  EXPECT_GT(saw_new, 0);
  std::printf("%d power cuts: %d left the old binlog, %d the truncated one\n", cuts, saw_old,
              saw_new);
}

}  // namespace
}  // namespace relaykv
