// Tests recovery of a binlog directory (storage/binlog_segments.cc, via
// Binlog::Open): a torn or zero-filled tail is truncated to the last whole
// record; damage before the tail refuses to open with DATA_LOSS naming the
// file and offset; the index decides which segment files exist. Torn
// multi-sector groups and the torn-tail rule: binlog_torn_tail_test.cc.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "storage/binlog.h"
#include "storage/binlog_format.h"
#include "storage/binlog_segments.h"
#include "storage/record.h"
#include "tests/storage/test_util.h"

namespace relaykv {
namespace {

namespace fs = std::filesystem;
using binlog_format::kRecordHeaderSize;
using binlog_format::kSegmentHeaderSize;
using testing::EditSegment;
using testing::kSegment1;
using testing::OpenBinlog;
using testing::OpenStatus;
using testing::OpenWithFlippedByte;
using testing::PutEvent;
using testing::Range;
using testing::ReadEvents;
using testing::ReadFile;
using testing::ReadSeqs;
using testing::TempDir;
using testing::WriteFile;

constexpr uint64_t kEvents = 5;

// Commits kEvents events ("key0".."key4", values of growing size) to a fresh
// binlog in `dir`; returns the file offset where each record starts. The
// segment is left ending at its last record, without the preallocated zeros
// (the tests below cut, zero and flip the records themselves).
std::vector<uint64_t> WriteEvents(const fs::path& dir) {
  std::vector<uint64_t> starts;
  auto b = OpenBinlog(dir);
  if (b == nullptr) return starts;
  for (uint64_t i = 0; i < kEvents; ++i) {
    starts.push_back(b->Segments().back().size_bytes);
    v1::Event e = PutEvent("key" + std::to_string(i), std::string(20 + i, 'v'));
    EXPECT_TRUE(b->Commit(&e).ok());
  }
  const uint64_t end = b->Segments().back().size_bytes;
  b.reset();
  fs::resize_file(dir / kSegment1, end);
  return starts;
}

// Expects recovery to have kept exactly the first kEvents-1 records.
void ExpectLastRecordDropped(const fs::path& dir, uint64_t last_start, const std::string& what) {
  auto b = OpenBinlog(dir);
  ASSERT_NE(b, nullptr) << what;
  EXPECT_EQ(b->LastVisible(), (Gtid{1, kEvents - 1})) << what;
  const std::vector<v1::Event> events = ReadEvents(*b);
  ASSERT_EQ(events.size(), kEvents - 1) << what;
  for (uint64_t i = 0; i + 1 < kEvents; ++i) {
    EXPECT_EQ(events[i].gtid().seq(), i + 1) << what;
    EXPECT_EQ(events[i].mutations(0).key(), "key" + std::to_string(i)) << what;
  }
  EXPECT_EQ(fs::file_size(dir / kSegment1), last_start) << what << ": truncated at the record";
  v1::Event e = PutEvent("again", "v");
  ASSERT_TRUE(b->Commit(&e).ok()) << what;
  EXPECT_EQ(e.gtid().seq(), kEvents) << what << ": the next commit takes the dropped seq";
  EXPECT_EQ(ReadSeqs(*b), Range(1, kEvents)) << what;
}

TEST(BinlogRecoveryTest, TornTailAtEveryByteOfTheLastRecordIsTruncated) {
  TempDir dir;
  const fs::path golden = dir.path() / "golden";
  const std::vector<uint64_t> starts = WriteEvents(golden);
  ASSERT_EQ(starts.size(), kEvents);
  const std::string full = ReadFile(golden / kSegment1);
  for (uint64_t cut = starts.back(); cut < full.size(); ++cut) {
    const fs::path d = dir.path() / ("cut" + std::to_string(cut));
    testing::CopyDir(golden, d);
    WriteFile(d / kSegment1, full.substr(0, cut));
    ExpectLastRecordDropped(d, starts.back(), "cut at " + std::to_string(cut));
    fs::remove_all(d);
  }
}

TEST(BinlogRecoveryTest, TornTailInTheLastOfSeveralSegmentsIsTruncated) {
  TempDir dir;
  uint64_t last_start = 0;
  uint64_t commits = 0;
  std::string last_name;
  {
    auto b = OpenBinlog(dir.path(), 4096);
    ASSERT_NE(b, nullptr);
    for (;;) {
      const SegmentInfo before = b->Segments().back();
      v1::Event e = PutEvent("key" + std::to_string(commits++), std::string(100, 'v'));
      ASSERT_TRUE(b->Commit(&e).ok());
      const auto after = b->Segments();
      // Stop once the last commit went into a segment that already held one.
      if (after.size() >= 3 && after.back().name == before.name &&
          before.size_bytes > kSegmentHeaderSize) {
        last_name = before.name;
        last_start = before.size_bytes;
        break;
      }
    }
  }
  const std::string data = ReadFile(dir.path() / last_name);
  WriteFile(dir.path() / last_name, data.substr(0, last_start + kRecordHeaderSize + 3));
  auto b = OpenBinlog(dir.path(), 4096);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->LastVisible().seq, commits - 1);
  EXPECT_EQ(fs::file_size(dir.path() / last_name), last_start);
  EXPECT_EQ(ReadSeqs(*b), Range(1, commits - 1)) << "reading from 1 crosses every segment";
}

// The mark a rotation leaves if its index went in place while the leader
// still appended to the old segment (a rename that said "refused" and
// happened all the same): an empty last segment starting at a seq the
// sealed one already holds. Recovery keeps those events — the empty segment
// goes, the sealed one becomes the last — instead of handing their seqs out
// again (review s39a F3, s39c); a sealed segment that stops short of the
// next one is a gap and refuses to open; an ordinary rotation opens.
TEST(BinlogRecoveryTest, ASealedSegmentReachingIntoAnEmptyLastOneBecomesTheLast) {
  auto one_segment = [](const fs::path& dir, uint64_t events) {
    auto b = OpenBinlog(dir);
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(testing::CommitKeys(*b, events));
  };
  TempDir longer;  // segment 1 with seqs 1..6
  one_segment(longer.path(), 6);
  TempDir shorter;  // segment 1 with seqs 1..2
  one_segment(shorter.path(), 2);
  TempDir rotated;  // segment 1 with seqs 1..4, then an empty segment 2 from 5
  one_segment(rotated.path(), 3);
  {
    auto b = OpenBinlog(rotated.path(), /*max_binlog_size=*/1);  // the next group rotates
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(testing::CommitKeys(*b, 1));
    ASSERT_EQ(b->Segments().size(), 2u);
    ASSERT_EQ(b->Segments().back().first_seq, 5u);
  }
  {
    TempDir dir;
    testing::CopyDir(rotated.path(), dir.path());
    auto b = OpenBinlog(dir.path());
    ASSERT_NE(b, nullptr) << "an empty last segment after a whole sealed one opens";
    EXPECT_EQ(b->LastVisible().seq, 4u);
    EXPECT_EQ(b->Segments().size(), 2u);
  }
  {
    TempDir dir;
    testing::CopyDir(rotated.path(), dir.path());
    WriteFile(dir.path() / kSegment1, ReadFile(longer.path() / kSegment1));
    auto b = OpenBinlog(dir.path());
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->LastVisible().seq, 6u) << "the events written after the index changed are kept";
    ASSERT_EQ(b->Segments().size(), 1u) << "the empty segment is dropped";
    EXPECT_EQ(ReadSeqs(*b), Range(1, 6));
    testing::ExpectNextCommitIsSeq(*b, 7);
    EXPECT_FALSE(fs::exists(dir.path() / "binlog.000002")) << "the dropped segment's file goes";
  }
  {
    // A crash between the repair's index rewrite and the file's removal:
    // the stale file is not listed, so the next open removes it.
    TempDir dir;
    testing::CopyDir(rotated.path(), dir.path());
    WriteFile(dir.path() / kSegment1, ReadFile(longer.path() / kSegment1));
    ASSERT_TRUE(WriteBinlogIndex(dir.path(), {1}).ok());
    auto b = OpenBinlog(dir.path());
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->LastVisible().seq, 6u);
    EXPECT_FALSE(fs::exists(dir.path() / "binlog.000002"));
    testing::ExpectNextCommitIsSeq(*b, 7);
  }
  {
    // Zeros after a whole sealed segment (never left by a rotation): cut,
    // not served to readers as part of the log (review s39d M1).
    TempDir dir;
    testing::CopyDir(rotated.path(), dir.path());
    WriteFile(dir.path() / kSegment1,
              ReadFile(rotated.path() / kSegment1) + std::string(100, '\0'));
    auto b = OpenBinlog(dir.path());
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->LastVisible().seq, 4u);
    EXPECT_EQ(fs::file_size(dir.path() / kSegment1), fs::file_size(rotated.path() / kSegment1));
    EXPECT_EQ(b->Segments().size(), 1u) << "recovered as the last segment, the empty one dropped";
    EXPECT_FALSE(fs::exists(dir.path() / "binlog.000002"));
    EXPECT_EQ(ReadSeqs(*b), Range(1, 4));
    testing::ExpectNextCommitIsSeq(*b, 5);
  }
  {
    // A torn group right after the sealed end (the leader died writing the
    // first group after the index changed): cut like any torn tail, the
    // next event is seq 5 again — it was never acknowledged.
    TempDir four;  // segment 1 with seqs 1..4: where seq 4's group ends in `longer`
    uint64_t end4 = 0;
    {
      auto b = OpenBinlog(four.path());
      ASSERT_NE(b, nullptr);
      ASSERT_TRUE(testing::CommitKeys(*b, 4));
      end4 = b->Segments().back().size_bytes;
    }
    const std::string six = ReadFile(longer.path() / kSegment1);
    ASSERT_LT(end4 + 10, six.size());
    ASSERT_NE(six.substr(end4, 10), std::string(10, '\0')) << "seq 5's group starts there";
    TempDir dir;
    testing::CopyDir(rotated.path(), dir.path());
    WriteFile(dir.path() / kSegment1, six.substr(0, end4 + 10));
    auto b = OpenBinlog(dir.path());
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->LastVisible().seq, 4u);
    EXPECT_EQ(fs::file_size(dir.path() / kSegment1), end4) << "the torn group is cut";
    EXPECT_EQ(ReadSeqs(*b), Range(1, 4));
    testing::ExpectNextCommitIsSeq(*b, 5);
  }
  {
    // The same overlap where groups were published unsynced (binlog.unsynced:
    // the scan cuts at the first damage instead of judging it): the events
    // are kept all the same.
    TempDir dir;
    testing::CopyDir(rotated.path(), dir.path());
    WriteFile(dir.path() / kSegment1, ReadFile(longer.path() / kSegment1));
    WriteFile(dir.path() / "binlog.unsynced", "events were published here before they were synced\n");
    auto b = OpenBinlog(dir.path());
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->LastVisible().seq, 6u);
    ASSERT_EQ(b->Segments().size(), 1u);
    EXPECT_EQ(ReadSeqs(*b), Range(1, 6));
    testing::ExpectNextCommitIsSeq(*b, 7);
  }
  {
    TempDir dir;
    testing::CopyDir(rotated.path(), dir.path());
    WriteFile(dir.path() / kSegment1, ReadFile(shorter.path() / kSegment1));
    const absl::Status s = OpenStatus(dir.path());
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_NE(std::string(s.message()).find("seqs 3..4 are missing"), std::string::npos) << s;
  }
}

// A segment's tmp file (CreateSegment writes binlog.NNNNNN.tmp and renames
// it) that a crash left is removed at open; no other tmp file is touched.
TEST(BinlogRecoveryTest, AnUnfinishedSegmentCreationIsRemovedAtOpen) {
  TempDir dir;
  {
    auto b = OpenBinlog(dir.path());
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(testing::CommitKeys(*b, 2));
  }
  for (const char* name : {"binlog.000002.tmp", "binlog.index.tmp", "binlog.unsynced.tmp"}) {
    WriteFile(dir.path() / name, "left by a crash");
  }
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->LastVisible().seq, 2u);
  EXPECT_FALSE(fs::exists(dir.path() / "binlog.000002.tmp"));
  EXPECT_TRUE(fs::exists(dir.path() / "binlog.index.tmp"));
  EXPECT_TRUE(fs::exists(dir.path() / "binlog.unsynced.tmp"));
  testing::ExpectNextCommitIsSeq(*b, 3);
}

TEST(BinlogRecoveryTest, ZeroFilledTailAfterTheLastRecordIsTruncated) {
  TempDir dir;
  WriteEvents(dir.path());
  const fs::path seg = dir.path() / kSegment1;
  const std::string full = ReadFile(seg);
  WriteFile(seg, full + std::string(4096, '\0'));
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->LastVisible().seq, kEvents);
  EXPECT_EQ(fs::file_size(seg), full.size());
  EXPECT_EQ(ReadSeqs(*b), Range(1, kEvents));
}

TEST(BinlogRecoveryTest, PreallocatedSpaceIsDroppedAndReusedAfterReopen) {
  TempDir dir;
  const fs::path seg = dir.path() / kSegment1;
  uint64_t end = 0;
  {
    auto b = OpenBinlog(dir.path());
    ASSERT_NE(b, nullptr);
    for (int i = 0; i < 3; ++i) {
      v1::Event e = PutEvent("key" + std::to_string(i), "v");
      ASSERT_TRUE(b->Commit(&e).ok());
    }
    end = b->Segments().back().size_bytes;
    EXPECT_GT(fs::file_size(seg), end) << "zeros written ahead of the records";
    EXPECT_EQ(b->Segments().back().size_bytes, end) << "sizes shown are the records' end";
  }
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->LastVisible().seq, 3u);
  EXPECT_EQ(fs::file_size(seg), end) << "recovery cut the zeros";
  testing::ExpectNextCommitIsSeq(*b, 4);
}

TEST(BinlogRecoveryTest, UnsyncedGroupsOnlyAppend) {
  // sync_binlog != 1: no zeros ahead of unsynced writes (their sectors could
  // land in any order across groups), and preallocated space is cut first.
  TempDir dir;
  const fs::path seg = dir.path() / kSegment1;
  auto b = OpenBinlog(dir.path(), 1ull << 30, /*sync_binlog=*/1);
  ASSERT_NE(b, nullptr);
  v1::Event e = PutEvent("synced", "v");
  ASSERT_TRUE(b->Commit(&e).ok());
  EXPECT_GT(fs::file_size(seg), b->Segments().back().size_bytes);
  for (uint32_t n : {0u, 3u}) {
    b->set_sync_binlog(n);
    for (int i = 0; i < 4; ++i) {
      v1::Event u = PutEvent("unsynced" + std::to_string(i), "v");
      ASSERT_TRUE(b->Commit(&u).ok());
      EXPECT_EQ(fs::file_size(seg), b->Segments().back().size_bytes) << "sync_binlog=" << n;
    }
  }
}

TEST(BinlogRecoveryTest, SealedSegmentsEndAtTheirLastRecord) {
  TempDir dir;
  auto b = OpenBinlog(dir.path(), 4096);
  ASSERT_NE(b, nullptr);
  for (int i = 0; b->Segments().size() < 3; ++i) {
    v1::Event e = PutEvent("key" + std::to_string(i), std::string(100, 'v'));
    ASSERT_TRUE(b->Commit(&e).ok());
  }
  const auto segments = b->Segments();
  for (size_t i = 0; i + 1 < segments.size(); ++i) {
    EXPECT_EQ(fs::file_size(dir.path() / segments[i].name), segments[i].size_bytes) << segments[i].name;
  }
  EXPECT_LE(fs::file_size(dir.path() / segments.back().name), 4096u + 200)
      << "no preallocation past max_binlog_size";
}

TEST(BinlogRecoveryTest, EventsWithoutTheirGroupEndAreATornTail) {
  TempDir dir;
  const std::vector<uint64_t> starts = WriteEvents(dir.path());
  // Drop only the last group's kGroupEnd record: its event is whole.
  EditSegment(dir.path(), [](std::string& data) { data.resize(data.size() - binlog_format::kGroupEndRecordSize); });
  ExpectLastRecordDropped(dir.path(), starts.back(), "group end missing");
}

TEST(BinlogRecoveryTest, ZeroedLastRecordIsTruncated) {
  TempDir dir;
  const std::vector<uint64_t> starts = WriteEvents(dir.path());
  ASSERT_EQ(starts.size(), kEvents);
  EditSegment(dir.path(), [&](std::string& data) {
    std::fill(data.begin() + static_cast<long>(starts.back()), data.end(), '\0');
  });
  ExpectLastRecordDropped(dir.path(), starts.back(), "zeroed last record");
}

TEST(BinlogRecoveryTest, LastRecordWithZeroedPayloadIsTruncated) {
  // The header reached the disk, the payload's page did not.
  TempDir dir;
  const std::vector<uint64_t> starts = WriteEvents(dir.path());
  ASSERT_EQ(starts.size(), kEvents);
  EditSegment(dir.path(), [&](std::string& data) {
    std::fill(data.begin() + static_cast<long>(starts.back() + kRecordHeaderSize), data.end(), '\0');
  });
  ExpectLastRecordDropped(dir.path(), starts.back(), "zeroed payload");
}

TEST(BinlogRecoveryTest, BadChecksumInTheLastRecordFailsOpen) {
  // The file's last byte flipped: the write is whole (nothing zeroed, not
  // cut short), so it had been synced, acknowledged: not a torn tail.
  TempDir dir;
  const std::vector<uint64_t> starts = WriteEvents(dir.path());
  ASSERT_EQ(starts.size(), kEvents);
  const uint64_t size = fs::file_size(dir.path() / kSegment1);
  EditSegment(dir.path(), [](std::string& data) { data.back() ^= 0x40; });
  const absl::Status s = OpenStatus(dir.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  const uint64_t group_end = size - binlog_format::kGroupEndRecordSize;
  EXPECT_NE(s.message().find("offset " + std::to_string(group_end) + ":"), std::string::npos) << s;
  EXPECT_EQ(fs::file_size(dir.path() / kSegment1), size) << "nothing truncated";
}

class BinlogCorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    starts_ = WriteEvents(golden());
    ASSERT_EQ(starts_.size(), kEvents);
    size_ = fs::file_size(golden() / kSegment1);
  }
  fs::path golden() const { return dir_.path() / "golden"; }

  // Flips byte `field_offset` of record 1 (the second, not the last) and
  // expects Open to fail naming the file and the record's offset.
  void ExpectDataLossAt(uint64_t field_offset) {
    const fs::path work = dir_.path() / "work";
    const absl::Status s = OpenWithFlippedByte(golden(), work, starts_[1] + field_offset);
    ASSERT_FALSE(s.ok()) << "the damage was not detected";
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_NE(s.message().find(kSegment1), std::string::npos) << s;
    EXPECT_NE(s.message().find("offset " + std::to_string(starts_[1])), std::string::npos) << s;
    EXPECT_EQ(fs::file_size(work / kSegment1), size_) << "nothing truncated: evidence kept";
  }

  TempDir dir_;
  std::vector<uint64_t> starts_;
  uint64_t size_ = 0;
};

TEST_F(BinlogCorruptionTest, FlippedPayloadByteInAnEarlierRecordFailsOpen) {
  ExpectDataLossAt(kRecordHeaderSize + 3);
}

TEST_F(BinlogCorruptionTest, FlippedCrcByteInAnEarlierRecordFailsOpen) { ExpectDataLossAt(1); }

TEST_F(BinlogCorruptionTest, FlippedLengthByteInAnEarlierRecordFailsOpen) { ExpectDataLossAt(4); }

TEST_F(BinlogCorruptionTest, FlippedTypeByteInAnEarlierRecordFailsOpen) { ExpectDataLossAt(8); }

TEST_F(BinlogCorruptionTest, FlippedByteAnywhereBeforeTheLastRecordFailsOpen) {
  for (uint64_t at = kSegmentHeaderSize; at < starts_.back(); ++at) {
    const fs::path work = dir_.path() / ("flip" + std::to_string(at));
    const absl::Status s = OpenWithFlippedByte(golden(), work, at);
    ASSERT_FALSE(s.ok()) << "flipped byte at " << at << " was not detected";
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_NE(s.message().find(kSegment1), std::string::npos) << s;
    EXPECT_EQ(fs::file_size(work / kSegment1), size_) << "flipped byte at " << at;
    fs::remove_all(work);
  }
}

TEST_F(BinlogCorruptionTest, FlippedSegmentHeaderByteFailsOpen) {
  const absl::Status s = OpenWithFlippedByte(golden(), dir_.path() / "work", 17);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find(kSegment1), std::string::npos) << s;
}

// Appends a well-framed record to binlog.000001 in `dir`.
void AppendRawRecord(const fs::path& dir, binlog_format::RecordType type, const std::string& payload) {
  EditSegment(dir, [&](std::string& data) { AppendRecord(&data, type, payload); });
}

TEST(BinlogRecoveryTest, WholeRecordWithAnOutOfOrderSeqFailsOpen) {
  TempDir dir;
  WriteEvents(dir.path());
  EditSegment(dir.path(), [&](std::string& data) {
    testing::AppendEventToSegment(&data, testing::At(1, kEvents + 2, PutEvent("skips", "a seq")));
  });
  const absl::Status s = OpenStatus(dir.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("expected seq"), std::string::npos) << s;
}

TEST(BinlogRecoveryTest, WholeGroupEndWithOtherSeqsThanItsGroupFailsOpen) {
  // Each group's end names the seqs of the events it closes.
  for (const auto& [first, last] : std::vector<std::pair<uint64_t, uint64_t>>{
           {kEvents + 1, kEvents + 1}, {kEvents, kEvents + 1}, {kEvents + 1, kEvents + 2}}) {
    TempDir dir;
    WriteEvents(dir.path());
    const uint64_t at = fs::file_size(dir.path() / kSegment1);
    EditSegment(dir.path(), [&](std::string& data) {
      testing::AppendEventToSegment(&data, testing::At(1, kEvents + 1, PutEvent("k", "v")));
      AppendGroupEnd(&data, first, last);
    });
    const absl::Status s = OpenStatus(dir.path());
    if (first == kEvents + 1 && last == kEvents + 1) {
      EXPECT_TRUE(s.ok()) << s << ": the control case";
      continue;
    }
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << first << ".." << last << ": " << s;
    const uint64_t group_end = at + kRecordHeaderSize +
                               testing::At(1, kEvents + 1, PutEvent("k", "v")).ByteSizeLong();
    EXPECT_NE(s.message().find("offset " + std::to_string(group_end) + ":"), std::string::npos) << s;
  }
}

TEST(BinlogRecoveryTest, GroupEndClosingNoEventFailsOpen) {
  TempDir dir;
  WriteEvents(dir.path());
  EditSegment(dir.path(), [](std::string& data) { AppendGroupEnd(&data, kEvents, kEvents); });
  EXPECT_EQ(OpenStatus(dir.path()).code(), absl::StatusCode::kDataLoss);
}

TEST(BinlogRecoveryTest, WholeRecordOfUnknownTypeFailsOpen) {
  TempDir dir;
  WriteEvents(dir.path());
  AppendRawRecord(dir.path(), static_cast<binlog_format::RecordType>(7),
                  testing::At(1, kEvents + 1, PutEvent("k", "v")).SerializeAsString());
  EXPECT_EQ(OpenStatus(dir.path()).code(), absl::StatusCode::kDataLoss);
}

TEST(BinlogRecoveryTest, WholeRecordThatIsNotAnEventFailsOpen) {
  TempDir dir;
  WriteEvents(dir.path());
  EditSegment(dir.path(), [](std::string& data) {
    uint64_t first_seq = 0;
    uint32_t key = 0;
    ASSERT_TRUE(DecodeSegmentHeader(data, &first_seq, nullptr, &key));
    AppendEventRecord(&data, "\xff\xff\xff\xff", key, 0);  // whitened as the writer would
  });
  const absl::Status s = OpenStatus(dir.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("does not decode"), std::string::npos) << s;
}

TEST(BinlogRecoveryTest, DamagedSealedSegmentIsNeverReadSilently) {
  // Recovery scans only the last segment; a reader checks the others.
  TempDir dir;
  {
    auto b = OpenBinlog(dir.path(), 4096);
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(testing::CommitKeys(*b, 200, std::string(100, 'v')));
    ASSERT_GE(b->Segments().size(), 3u);
  }
  std::string data = ReadFile(dir.path() / kSegment1);
  data[kSegmentHeaderSize + kRecordHeaderSize + 2] ^= 0x04;  // first record's payload
  WriteFile(dir.path() / kSegment1, data);
  BinlogOptions o;
  o.dir = dir.path();
  o.max_binlog_size = 4096;
  auto b = Binlog::Open(o);
  if (!b.ok()) {  // a recovery that checks every segment is fine too
    EXPECT_EQ(b.status().code(), absl::StatusCode::kDataLoss) << b.status();
    return;
  }
  auto reader = (*b)->NewReader(1);
  absl::Status s = reader.ok() ? (*reader)->Next().status() : reader.status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find(kSegment1), std::string::npos) << s;
  EXPECT_NE(s.message().find("offset " + std::to_string(kSegmentHeaderSize)), std::string::npos)
      << s;
}

TEST(BinlogRecoveryTest, MissingIndexWithSegmentFilesFailsOpen) {
  TempDir dir;
  WriteEvents(dir.path());
  const std::string before = ReadFile(dir.path() / kSegment1);
  fs::remove(dir.path() / binlog_format::kIndexFileName);
  const absl::Status s = OpenStatus(dir.path());
  ASSERT_FALSE(s.ok()) << "opened without an index: would start a new history over the old";
  EXPECT_NE(s.message().find(std::string(binlog_format::kIndexFileName)), std::string::npos) << s;
  EXPECT_EQ(ReadFile(dir.path() / kSegment1), before) << "the segment is left untouched";
  EXPECT_FALSE(fs::exists(dir.path() / binlog_format::kIndexFileName)) << "no index invented";
}

TEST(BinlogRecoveryTest, UnlistedSegmentAfterTheIndexsLastIsRemoved) {
  TempDir dir;
  WriteEvents(dir.path());
  // A rotation that crashed after creating binlog.000002, before the index.
  ASSERT_TRUE(CreateSegment(dir.path(), 2, kEvents + 1, 1, NewSegmentKey()).ok());
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  EXPECT_FALSE(fs::exists(dir.path() / "binlog.000002"));
  ASSERT_EQ(b->Segments().size(), 1u);
  EXPECT_EQ(b->Segments()[0].name, kSegment1);
  EXPECT_EQ(b->LastVisible().seq, kEvents);
  v1::Event e = PutEvent("next", "v");
  ASSERT_TRUE(b->Commit(&e).ok());
  EXPECT_EQ(e.gtid().seq(), kEvents + 1);
}

TEST(BinlogRecoveryTest, UnlistedSegmentBeforeTheIndexsFirstIsRemoved) {
  TempDir dir;
  std::string purged;
  {
    auto b = OpenBinlog(dir.path(), 4096);
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(testing::CommitKeys(*b, 100, std::string(100, 'v')));
    purged = ReadFile(dir.path() / kSegment1);
    auto n = b->PurgeTo("binlog.000002", UINT64_MAX);
    ASSERT_TRUE(n.ok()) << n.status();
    ASSERT_EQ(*n, 1);
  }
  // A purge that crashed after rewriting the index, before the unlink.
  WriteFile(dir.path() / kSegment1, purged);
  auto b = OpenBinlog(dir.path(), 4096);
  ASSERT_NE(b, nullptr);
  EXPECT_FALSE(fs::exists(dir.path() / kSegment1));
  EXPECT_EQ(b->Segments().front().name, "binlog.000002");
  EXPECT_EQ(b->LastVisible().seq, 100u);
}

// Review s31 F3: segment headers keep the epoch before a segment in 32
// bits, so the binlog refuses a larger epoch (it would read back as another
// after a rotation or purge) and keeps the largest it takes whole.
TEST(BinlogRecoveryTest, EpochAboveWhatASegmentHeaderHoldsIsRefused) {
  TempDir dir;
  constexpr uint64_t kLargest = binlog_format::kMaxEpoch;
  {
    auto b = OpenBinlog(dir.path(), /*max_binlog_size=*/1);  // rotates after every group
    ASSERT_NE(b, nullptr);
    v1::Event big = testing::At(kLargest + 6, 1, PutEvent("k", "v"));
    absl::Status s = b->AppendReplicated({&big, 1}, true);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find("largest a binlog holds"), std::string::npos) << s;
    EXPECT_EQ(b->LastVisible(), Gtid{});
    v1::Event largest = testing::At(kLargest, 1, PutEvent("k", "v"));
    ASSERT_TRUE(b->AppendReplicated({&largest, 1}, true).ok());
    ASSERT_EQ(b->Segments().back().size_bytes, kSegmentHeaderSize);  // rotated: empty last segment
  }
  auto b = OpenBinlog(dir.path(), 1);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->LastVisible(), (Gtid{kLargest, 1}));
  // A clone's new binlog starts after the donor's GTID: the same limit.
  absl::Status s = CreateBinlogStartingAfter(dir.path() / "clone", Gtid{kLargest + 6, 9});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  ASSERT_TRUE(CreateBinlogStartingAfter(dir.path() / "clone2", Gtid{kLargest, 9}).ok());
  auto c = OpenBinlog(dir.path() / "clone2");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->LastVisible(), (Gtid{kLargest, 9}));
}

TEST(BinlogRecoveryTest, EmptyLastSegmentKeepsTheLastGtid) {
  TempDir dir;
  uint64_t last_seq = 0;
  {
    auto b = OpenBinlog(dir.path(), 4096);
    ASSERT_NE(b, nullptr);
    b->SetEpoch(3);
    for (int i = 0; i < 500; ++i) {
      v1::Event e = PutEvent("k", std::string(100, 'v'));
      ASSERT_TRUE(b->Commit(&e).ok());
      last_seq = e.gtid().seq();
      if (b->Segments().back().size_bytes == kSegmentHeaderSize) break;  // just rotated
    }
    ASSERT_EQ(b->Segments().back().size_bytes, kSegmentHeaderSize);
  }
  auto b = OpenBinlog(dir.path(), 4096);
  ASSERT_NE(b, nullptr);
  ASSERT_GT(b->Segments().size(), 1u);
  EXPECT_EQ(b->LastVisible(), (Gtid{3, last_seq}));
  EXPECT_EQ(b->Segments().back().first_seq, last_seq + 1);
  EXPECT_EQ(b->epoch(), 3u);
  v1::Event e = PutEvent("next", "v");
  ASSERT_TRUE(b->Commit(&e).ok());
  EXPECT_EQ(GtidFromProto(e.gtid()), (Gtid{3, last_seq + 1}));
}

}  // namespace
}  // namespace relaykv
