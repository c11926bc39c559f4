// Tests binlog retention (storage/binlog.cc: PurgeTo, PurgeUpToSeq,
// PurgeOlderThan, PurgeToTotalSize): whole segments from the oldest on,
// never the active one, never one holding a seq >= keep_from_seq, the index
// rewritten so the purge survives a reopen.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "storage/binlog.h"
#include "storage/binlog_format.h"
#include "storage/binlog_reader.h"
#include "tests/storage/test_util.h"

namespace relaykv {
namespace {

namespace fs = std::filesystem;
using testing::OpenBinlog;
using testing::Range;
using testing::ReadSeqs;
using testing::TempDir;

constexpr uint64_t kMaxSize = 4096;
constexpr uint64_t kEvents = 400;
constexpr uint64_t kAll = UINT64_MAX;  // keep_from_seq that protects nothing

std::vector<std::string> IndexLines(const fs::path& dir) {
  std::istringstream in(testing::ReadFile(dir / binlog_format::kIndexFileName));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

class BinlogPurgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    b_ = OpenBinlog(dir_.path(), kMaxSize);
    ASSERT_NE(b_, nullptr);
    ASSERT_TRUE(testing::CommitKeys(*b_, kEvents, std::string(64, 'v')));
    segs_ = b_->Segments();
    ASSERT_GT(segs_.size(), 6u);
  }

  // Expects segs_[first..] to be exactly what is left: in Segments(), in
  // the index and on disk, and readable; segs_[..first) gone.
  void ExpectLiveFrom(size_t first) {
    std::vector<std::string> want;
    for (size_t i = first; i < segs_.size(); ++i) want.push_back(segs_[i].name);
    std::vector<std::string> live;
    for (const SegmentInfo& s : b_->Segments()) live.push_back(s.name);
    EXPECT_EQ(live, want);
    EXPECT_EQ(IndexLines(dir_.path()), want) << "binlog.index rewritten";
    for (size_t i = 0; i < segs_.size(); ++i) {
      EXPECT_EQ(fs::exists(dir_.path() / segs_[i].name), i >= first) << segs_[i].name;
    }
    const uint64_t first_seq = segs_[first].first_seq;
    EXPECT_EQ(b_->FirstAvailableSeq(), first_seq);
    if (first_seq > 1) {
      EXPECT_EQ(b_->NewReader(first_seq - 1).status().code(), absl::StatusCode::kOutOfRange);
      EXPECT_EQ(b_->NewReader(1).status().code(), absl::StatusCode::kOutOfRange);
    }
    EXPECT_EQ(ReadSeqs(*b_, first_seq), Range(first_seq, b_->LastVisible().seq));
  }

  int Purged(absl::StatusOr<int> n) {
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? *n : -1;
  }

  size_t last() const { return segs_.size() - 1; }

  TempDir dir_;
  std::unique_ptr<Binlog> b_;
  std::vector<SegmentInfo> segs_;  // as written, before any purge
};

TEST_F(BinlogPurgeTest, PurgeToRemovesTheSegmentsBeforeTheNamedOne) {
  EXPECT_EQ(Purged(b_->PurgeTo(segs_[3].name, kAll)), 3);
  ExpectLiveFrom(3);
  EXPECT_EQ(Purged(b_->PurgeTo(segs_[3].name, kAll)), 0) << "idempotent";
}

TEST_F(BinlogPurgeTest, ReadStartSeqNamesTheLiveSegmentOfASeqOrZeroIfPurged) {
  EXPECT_EQ(b_->ReadStartSeq(segs_[1].first_seq + 1), segs_[1].first_seq);
  EXPECT_EQ(Purged(b_->PurgeTo(segs_[3].name, kAll)), 3);
  EXPECT_EQ(b_->ReadStartSeq(segs_[1].first_seq + 1), 0u) << "purged";
  EXPECT_EQ(b_->ReadStartSeq(segs_[3].first_seq), segs_[3].first_seq);
  EXPECT_EQ(b_->ReadStartSeq(segs_[4].first_seq - 1), segs_[3].first_seq);
  EXPECT_EQ(b_->ReadStartSeq(b_->LastVisible().seq + 5), segs_[last()].first_seq) << "not written yet";
}

TEST_F(BinlogPurgeTest, PurgeToTheActiveSegmentKeepsIt) {
  EXPECT_EQ(Purged(b_->PurgeTo(segs_.back().name, kAll)), static_cast<int>(last()));
  ExpectLiveFrom(last());
  v1::Event e = testing::PutEvent("still", "writable");
  ASSERT_TRUE(b_->Commit(&e).ok());
  EXPECT_EQ(e.gtid().seq(), kEvents + 1);
}

TEST_F(BinlogPurgeTest, PurgeToRefusesNamesOutsideTheIndex) {
  EXPECT_EQ(b_->PurgeTo("nonsense", kAll).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b_->PurgeTo("binlog.999999", kAll).status().code(), absl::StatusCode::kNotFound);
  ASSERT_EQ(Purged(b_->PurgeTo(segs_[2].name, kAll)), 2);
  EXPECT_EQ(b_->PurgeTo(segs_[0].name, kAll).status().code(), absl::StatusCode::kNotFound)
      << "already purged";
  ExpectLiveFrom(2);
}

TEST_F(BinlogPurgeTest, NeverRemovesASegmentHoldingKeepFromSeqOrLater) {
  const std::string target = segs_[5].name;
  // The last seq of segment 0 is needed: nothing goes.
  EXPECT_EQ(Purged(b_->PurgeTo(target, segs_[1].first_seq - 1)), 0);
  EXPECT_EQ(Purged(b_->PurgeTo(target, 0)), 0);
  ExpectLiveFrom(0);
  // Segment 1's first seq is needed: only segment 0 goes.
  EXPECT_EQ(Purged(b_->PurgeTo(target, segs_[1].first_seq)), 1);
  ExpectLiveFrom(1);
  // A seq inside segment 2 is needed: segment 1 goes, 2 stays.
  EXPECT_EQ(Purged(b_->PurgeTo(target, segs_[2].first_seq + 1)), 1);
  ExpectLiveFrom(2);
  EXPECT_EQ(Purged(b_->PurgeUpToSeq(kAll, segs_[3].first_seq + 1)), 1);
  ExpectLiveFrom(3);
  EXPECT_EQ(Purged(b_->PurgeOlderThan(fs::file_time_type::clock::now() + std::chrono::hours(1),
                                      segs_[4].first_seq)),
            1);
  ExpectLiveFrom(4);
}

TEST_F(BinlogPurgeTest, PurgeUpToSeqRemovesSegmentsWhoseEventsAreAllBelowIt) {
  // Segment 1 ends at segs_[2].first_seq - 1, which is not below that seq.
  EXPECT_EQ(Purged(b_->PurgeUpToSeq(segs_[2].first_seq - 1, kAll)), 1);
  ExpectLiveFrom(1);
  EXPECT_EQ(Purged(b_->PurgeUpToSeq(segs_[3].first_seq, kAll)), 2);
  ExpectLiveFrom(3);
  EXPECT_EQ(Purged(b_->PurgeUpToSeq(kAll, kAll)), static_cast<int>(last() - 3))
      << "everything but the active segment";
  ExpectLiveFrom(last());
}

void SetAge(const fs::path& p, std::chrono::hours age) {
  fs::last_write_time(p, fs::file_time_type::clock::now() - age);
}

TEST_F(BinlogPurgeTest, PurgeOlderThanRemovesSegmentsLastWrittenBeforeTheCutoff) {
  for (size_t i = 0; i < 3; ++i) SetAge(dir_.path() / segs_[i].name, std::chrono::hours(2));
  const auto one_hour_ago = fs::file_time_type::clock::now() - std::chrono::hours(1);
  EXPECT_EQ(Purged(b_->PurgeOlderThan(one_hour_ago, kAll)), 3);
  ExpectLiveFrom(3);
  // Even if every segment is old, the active one stays.
  for (const SegmentInfo& s : b_->Segments()) SetAge(dir_.path() / s.name, std::chrono::hours(2));
  EXPECT_EQ(Purged(b_->PurgeOlderThan(one_hour_ago, kAll)), static_cast<int>(last() - 3));
  ExpectLiveFrom(last());
}

TEST_F(BinlogPurgeTest, PurgeOlderThanRemovesOnlyAPrefix) {
  // Segment 1 is old but segment 0 is not: removing 1 would leave a hole.
  SetAge(dir_.path() / segs_[1].name, std::chrono::hours(2));
  const auto one_hour_ago = fs::file_time_type::clock::now() - std::chrono::hours(1);
  EXPECT_EQ(Purged(b_->PurgeOlderThan(one_hour_ago, kAll)), 0);
  ExpectLiveFrom(0);
}

TEST_F(BinlogPurgeTest, PurgeToTotalSizeKeepsTheNewestWithinTheLimit) {
  auto total = [&] {
    uint64_t t = 0;
    for (const auto& s : b_->Segments()) t += s.size_bytes;
    return t;
  };
  const int n = Purged(b_->PurgeToTotalSize(5 * kMaxSize, kAll));
  ASSERT_GT(n, 0);
  EXPECT_LE(total(), 6 * kMaxSize) << "within the limit, plus one segment's overshoot";
  ExpectLiveFrom(static_cast<size_t>(n));
  EXPECT_EQ(Purged(b_->PurgeToTotalSize(1, b_->FirstAvailableSeq())), 0) << "the floor wins";
}

TEST_F(BinlogPurgeTest, PurgeSurvivesReopen) {
  ASSERT_EQ(Purged(b_->PurgeTo(segs_[3].name, kAll)), 3);
  b_.reset();
  b_ = OpenBinlog(dir_.path(), kMaxSize);
  ASSERT_NE(b_, nullptr);
  ExpectLiveFrom(3);
  v1::Event e = testing::PutEvent("after", "reopen");
  ASSERT_TRUE(b_->Commit(&e).ok());
  EXPECT_EQ(e.gtid().seq(), kEvents + 1);
}

TEST_F(BinlogPurgeTest, ReaderInsideAPurgedSegmentFinishesItThenFailsOutOfRange) {
  auto reader = b_->NewReader(1);
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_TRUE((*reader)->Next().ok());
  ASSERT_EQ(Purged(b_->PurgeTo(segs_[2].name, kAll)), 2);
  for (uint64_t seq = 2; seq < segs_[1].first_seq; ++seq) {
    auto r = (*reader)->Next();
    ASSERT_TRUE(r.ok()) << "seq " << seq << ": " << r.status();
    ASSERT_TRUE(r->has_value());
    EXPECT_EQ((*r)->event.gtid().seq(), seq);
  }
  EXPECT_EQ((*reader)->Next().status().code(), absl::StatusCode::kOutOfRange)
      << "the next segment it needs was purged";
}

// A binlog of 100 events, each written by server 7, over several segments;
// null if that failed.
std::unique_ptr<Binlog> BinlogWrittenBy7(const fs::path& dir) {
  auto b = OpenBinlog(dir, kMaxSize);
  for (int i = 0; b != nullptr && i < 100; ++i) {
    v1::Event e = testing::PutEvent("key" + std::to_string(i), std::string(64, 'v'));
    e.set_server_id(7);
    if (!b->Commit(&e).ok()) return nullptr;
  }
  return b;
}

// Who wrote the newest purged event (invariant 3: equal GTIDs of two nodes
// that opened one epoch are told apart by their writers) is recorded in
// binlog.purged before its segment goes, and read back at open; a record
// naming another GTID (a purge that crashed before its index, an older
// one) or one that does not parse reads as "unknown".
TEST(BinlogPurgeWriterTest, TheNewestPurgedEventsWriterIsKeptAcrossAReopen) {
  TempDir dir;
  auto b = BinlogWrittenBy7(dir.path());
  ASSERT_NE(b, nullptr);
  const auto segs = b->Segments();
  ASSERT_GT(segs.size(), 2u);
  uint32_t writer = 99;
  EXPECT_EQ(b->BeforeFirstAvailable(&writer), Gtid{});
  EXPECT_EQ(writer, 0u);
  ASSERT_TRUE(b->PurgeTo(segs.back().name, kAll).ok());
  const Gtid boundary{1, segs.back().first_seq - 1};
  EXPECT_EQ(b->BeforeFirstAvailable(&writer), boundary);
  EXPECT_EQ(writer, 7u);
  b.reset();
  b = OpenBinlog(dir.path(), kMaxSize);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->BeforeFirstAvailable(&writer), boundary);
  EXPECT_EQ(writer, 7u) << "after a reopen";

  // A purge that crashed before its index: the new line follows the
  // boundary's own, which still counts (review s45b L2).
  const fs::path record = dir.path() / binlog_format::kPurgedFileName;
  b.reset();
  testing::WriteFile(record, std::to_string(boundary.seq) + " 1 7\n" +
                                 std::to_string(boundary.seq + 5) + " 1 7\n");
  b = OpenBinlog(dir.path(), kMaxSize);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->BeforeFirstAvailable(&writer), boundary);
  EXPECT_EQ(writer, 7u) << "the boundary's line before the new one";

  const std::string three_lines = std::to_string(boundary.seq) + " 1 7\n" +
                                  std::to_string(boundary.seq) + " 1 7\n" +
                                  std::to_string(boundary.seq) + " 1 7\n";
  for (const std::string& text : {std::to_string(boundary.seq - 1) + " 1 7\n",  // another GTID
                                  std::to_string(boundary.seq) + " 2 7\n",
                                  std::to_string(boundary.seq) + " 1 seven\n",
                                  std::to_string(boundary.seq) + " 1 -7\n",
                                  std::to_string(boundary.seq) + " 1 7",  // cut short
                                  std::to_string(boundary.seq) + " 1 +7\n",
                                  std::to_string(boundary.seq) + "  1 7\n",
                                  // A purge writes the boundary's line first (review s45d).
                                  std::to_string(boundary.seq) + " 1 7\n" +
                                      std::to_string(boundary.seq) + " 1 7\n",
                                  std::to_string(boundary.seq + 5) + " 1 7\n" +
                                      std::to_string(boundary.seq) + " 1 7\n",
                                  three_lines}) {
    b.reset();
    testing::WriteFile(record, text);
    b = OpenBinlog(dir.path(), kMaxSize);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->BeforeFirstAvailable(&writer), boundary);
    EXPECT_EQ(writer, 0u) << "'" << text << "'";
  }
}

// A line naming a GTID past the boundary (left by a purge that crashed
// short of its index) may name another writer by the time the boundary
// gets there: a rejoin truncation can replace that event with another
// node's at the same GTID. A purge that moves the boundary without
// recording its writer must not leave that line in use (review s45d).
TEST(BinlogPurgeWriterTest, APurgeThatRecordsNothingLeavesTheWriterUnknown) {
  TempDir dir;
  auto b = BinlogWrittenBy7(dir.path());
  ASSERT_NE(b, nullptr);
  const auto segs = b->Segments();
  ASSERT_GT(segs.size(), 3u);
  const Gtid boundary{1, segs[2].first_seq - 1};
  const fs::path record = dir.path() / binlog_format::kPurgedFileName;
  b.reset();
  // The stale line: event `boundary` was written by 7, not 9.
  testing::WriteFile(record, std::to_string(boundary.seq) + " 1 9\n");
  b = OpenBinlog(dir.path(), kMaxSize);
  ASSERT_NE(b, nullptr);
  // Recording fails: the record's name is taken by an (empty) directory.
  fs::remove(record);
  fs::create_directory(record);
  ASSERT_TRUE(b->PurgeTo(segs[2].name, kAll).ok());
  uint32_t writer = 99;
  EXPECT_EQ(b->BeforeFirstAvailable(&writer), boundary);
  EXPECT_EQ(writer, 0u) << "unknown, not the stale line's 9";
  EXPECT_FALSE(fs::exists(record));
  b.reset();
  b = OpenBinlog(dir.path(), kMaxSize);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->BeforeFirstAvailable(&writer), boundary);
  EXPECT_EQ(writer, 0u) << "after a reopen";

  // The next purge records again.
  ASSERT_TRUE(b->PurgeTo(segs[3].name, kAll).ok());
  EXPECT_EQ(b->BeforeFirstAvailable(&writer), (Gtid{1, segs[3].first_seq - 1}));
  EXPECT_EQ(writer, 7u);
}

// A purge that cannot read who wrote its newest event still leaves the
// current boundary's line in binlog.purged (dropping every other), so a
// crash before its index leaves that boundary's writer known (review s46a
// L1).
TEST(BinlogPurgeWriterTest, AnUnrecordedPurgeKeepsTheBoundarysLineUntilItsIndexMoved) {
  TempDir dir;
  auto b = BinlogWrittenBy7(dir.path());
  ASSERT_NE(b, nullptr);
  const auto segs = b->Segments();
  ASSERT_GT(segs.size(), 3u);
  ASSERT_TRUE(b->PurgeTo(segs[1].name, kAll).ok());
  const Gtid boundary{1, segs[1].first_seq - 1};
  uint32_t writer = 0;
  ASSERT_EQ(b->BeforeFirstAvailable(&writer), boundary);
  ASSERT_EQ(writer, 7u);

  // The next purge's newest event cannot be read: its segment is gone.
  const fs::path index = dir.path() / binlog_format::kIndexFileName;
  const fs::path seg1 = dir.path() / segs[1].name;
  const std::string index_before = testing::ReadFile(index);
  const std::string seg1_bytes = testing::ReadFile(seg1);
  // A stale line for the next boundary, read at open (a purge that crashed
  // short of its index, its event since replaced by another node's): it
  // must go.
  const fs::path record = dir.path() / binlog_format::kPurgedFileName;
  b.reset();
  testing::WriteFile(record, std::to_string(boundary.seq) + " 1 7\n" +
                                 std::to_string(segs[2].first_seq - 1) + " 1 9\n");
  b = OpenBinlog(dir.path(), kMaxSize);
  ASSERT_NE(b, nullptr);
  fs::remove(seg1);
  ASSERT_TRUE(b->PurgeTo(segs[2].name, kAll).ok());
  EXPECT_EQ(b->BeforeFirstAvailable(&writer), (Gtid{1, segs[2].first_seq - 1}));
  EXPECT_EQ(writer, 0u) << "unknown";
  ASSERT_TRUE(fs::exists(record));
  EXPECT_EQ(testing::ReadFile(record), std::to_string(boundary.seq) + " 1 7\n");

  // As if the purge had crashed before its index.
  b.reset();
  testing::WriteFile(index, index_before);
  testing::WriteFile(seg1, seg1_bytes);
  b = OpenBinlog(dir.path(), kMaxSize);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->BeforeFirstAvailable(&writer), boundary);
  EXPECT_EQ(writer, 7u) << "the old boundary's writer survived the crash";
}

// A record that can be neither rewritten nor removed refuses the purge
// (its lines could name the wrong writer at the new boundary) with an
// error that says so; nothing is purged.
TEST(BinlogPurgeWriterTest, APurgeThatCannotRewriteTheRecordIsRefused) {
  TempDir dir;
  auto b = OpenBinlog(dir.path(), kMaxSize);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(testing::CommitKeys(*b, 100, std::string(64, 'v')));
  const auto segs = b->Segments();
  ASSERT_GT(segs.size(), 2u);
  const fs::path record = dir.path() / binlog_format::kPurgedFileName;
  fs::create_directories(record / "in-the-way");
  auto refused = b->PurgeTo(segs[1].name, kAll);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("purge refused: cannot rewrite or remove"),
            std::string::npos)
      << refused.status();
  EXPECT_EQ(b->Segments().size(), segs.size()) << "nothing purged";
  EXPECT_EQ(b->FirstAvailableSeq(), 1u);
  EXPECT_EQ(IndexLines(dir.path()).size(), segs.size());
  fs::remove_all(record);
  EXPECT_EQ(b->PurgeTo(segs[1].name, kAll).value_or(0), 1) << "once the way is clear";
}

TEST(BinlogPurgeRaceTest, PurgesRacingRotationsKeepTheIndexConsistent) {
  TempDir dir;
  auto b = OpenBinlog(dir.path(), 1024);
  ASSERT_NE(b, nullptr);
  std::atomic<bool> done{false};
  std::thread purger([&] {
    while (!done.load()) {
      const uint64_t last = b->LastVisible().seq;
      auto n = b->PurgeUpToSeq(last > 20 ? last - 20 : 0, kAll);
      ASSERT_TRUE(n.ok()) << n.status();
    }
  });
  EXPECT_TRUE(testing::CommitKeys(*b, 2000, std::string(64, 'v')));
  done = true;
  purger.join();
  const uint64_t first = b->FirstAvailableSeq();
  EXPECT_GT(first, 1u) << "something was purged";
  EXPECT_EQ(ReadSeqs(*b, first), Range(first, 2000));
  std::vector<std::string> live;
  for (const SegmentInfo& s : b->Segments()) live.push_back(s.name);
  b.reset();
  EXPECT_EQ(IndexLines(dir.path()), live);
  b = OpenBinlog(dir.path(), 1024);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->FirstAvailableSeq(), first);
  EXPECT_EQ(ReadSeqs(*b, first), Range(first, 2000));
}

}  // namespace
}  // namespace relaykv
