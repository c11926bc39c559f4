// Tests recovery of a binlog directory (storage/binlog_segments.cc, via
// Binlog::Open): a torn or zero-filled tail is truncated to the last whole
// record; damage before the tail refuses to open with DATA_LOSS naming the
// file and offset; the index decides which segment files exist.
#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "storage/binlog.h"
#include "storage/binlog_format.h"
#include "storage/binlog_segments.h"
#include "storage/record.h"
#include "tests/storage/test_util.h"

// relaykv_storage links spdlog privately, so its compile definitions do not
// reach this test: use the compiled library as the storage code does, so the
// test swaps the logger of the one registry the storage code logs through.
#ifndef SPDLOG_COMPILED_LIB
#define SPDLOG_COMPILED_LIB
#endif
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace relaykv {
namespace {

namespace fs = std::filesystem;
using binlog_format::kRecordHeaderSize;
using binlog_format::kSectorSize;
using binlog_format::kSegmentHeaderSize;
using testing::At;
using testing::OpenBinlog;
using testing::PutEvent;
using testing::Range;
using testing::ReadEvents;
using testing::ReadFile;
using testing::ReadSeqs;
using testing::TempDir;
using testing::WriteFile;

constexpr uint64_t kEvents = 5;
constexpr char kSegment1[] = "binlog.000001";

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

// Rewrites binlog.000001 in `dir` with `edit` applied to its bytes.
void EditSegment(const fs::path& dir, const std::function<void(std::string&)>& edit) {
  std::string data = ReadFile(dir / kSegment1);
  edit(data);
  WriteFile(dir / kSegment1, data);
}

absl::Status OpenStatus(const fs::path& dir) {
  BinlogOptions o;
  o.dir = dir;
  return Binlog::Open(o).status();
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
  v1::Event e = PutEvent("after", "v");
  ASSERT_TRUE(b->Commit(&e).ok());
  EXPECT_EQ(e.gtid().seq(), 4u);
  EXPECT_EQ(ReadSeqs(*b), Range(1, 4));
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

// Writes two one-event groups, then events 3..5 (1000-byte values) as one
// group with one pwrite, and `more` one-event groups after it. Returns the
// byte range of the 3-event group; the segment keeps its preallocated zeros.
std::pair<uint64_t, uint64_t> WriteMultiSectorGroup(const fs::path& dir, int more) {
  auto b = OpenBinlog(dir);
  if (b == nullptr) return {0, 0};
  for (int i = 0; i < 2; ++i) {
    v1::Event e = PutEvent("key" + std::to_string(i), "v");
    EXPECT_TRUE(b->Commit(&e).ok());
  }
  const uint64_t begin = b->Segments().back().size_bytes;
  std::vector<v1::Event> group;
  for (uint64_t seq = 3; seq <= 5; ++seq) {
    group.push_back(testing::At(1, seq, PutEvent("big" + std::to_string(seq), std::string(1000, 'b'))));
  }
  EXPECT_TRUE(b->AppendReplicated(group, true).ok());
  const uint64_t end = b->Segments().back().size_bytes;
  for (int i = 0; i < more; ++i) {
    v1::Event e = PutEvent("after" + std::to_string(i), "v");
    EXPECT_TRUE(b->Commit(&e).ok());
  }
  return {begin, end};
}

// Zeros the first whole 512-byte sector after `from` (a sector that never
// reached the disk) in binlog.000001.
void LoseSectorAfter(const fs::path& dir, uint64_t from) {
  const uint64_t sector = (from + 511) / 512 * 512 + 512;
  EditSegment(dir, [&](std::string& data) {
    std::fill(data.begin() + static_cast<long>(sector), data.begin() + static_cast<long>(sector + 512), '\0');
  });
}

TEST(BinlogRecoveryTest, LostSectorInTheLastGroupDropsThatGroup) {
  // Preallocated: the sectors of an unsynced write reach the disk in any
  // order, so whole records can follow the hole.
  TempDir dir;
  const auto [begin, end] = WriteMultiSectorGroup(dir.path(), 0);
  ASSERT_GT(end - begin, 2048u);
  LoseSectorAfter(dir.path(), begin);
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->LastVisible().seq, 2u) << "the torn group is dropped whole";
  EXPECT_EQ(fs::file_size(dir.path() / kSegment1), begin);
  EXPECT_EQ(ReadSeqs(*b), Range(1, 2));
  v1::Event e = PutEvent("again", "v");
  ASSERT_TRUE(b->Commit(&e).ok());
  EXPECT_EQ(e.gtid().seq(), 3u);
}

TEST(BinlogRecoveryTest, LostSectorInAGroupFollowedByAnotherFailsOpen) {
  // A later group is written only after this one's fdatasync: the hole is
  // damage to synced data, not a torn write.
  TempDir dir;
  const auto [begin, end] = WriteMultiSectorGroup(dir.path(), 1);
  ASSERT_GT(end - begin, 2048u);
  LoseSectorAfter(dir.path(), begin);
  const absl::Status s = OpenStatus(dir.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find(kSegment1), std::string::npos) << s;
}

TEST(BinlogRecoveryTest, EventsWithoutTheirGroupEndAreATornTail) {
  TempDir dir;
  const std::vector<uint64_t> starts = WriteEvents(dir.path());
  // Drop only the last group's kGroupEnd record: its event is whole.
  EditSegment(dir.path(), [](std::string& data) { data.resize(data.size() - GroupEndRecord().size()); });
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

TEST(BinlogRecoveryTest, BadChecksumInTheLastRecordIsTruncated) {
  TempDir dir;
  const std::vector<uint64_t> starts = WriteEvents(dir.path());
  ASSERT_EQ(starts.size(), kEvents);
  // Ends exactly at the end of the file: the last write, half done.
  EditSegment(dir.path(), [](std::string& data) { data.back() ^= 0x40; });
  ExpectLastRecordDropped(dir.path(), starts.back(), "bad crc in the last record");
}

// Flips byte `at` of binlog.000001 in a copy of `golden`; returns Open's status.
absl::Status OpenWithFlippedByte(const fs::path& golden, const fs::path& work, uint64_t at) {
  testing::CopyDir(golden, work);
  EditSegment(work, [&](std::string& data) { data[at] ^= 0x04; });
  return OpenStatus(work);
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
  AppendRawRecord(dir.path(), binlog_format::RecordType::kEvent,
                  testing::At(1, kEvents + 2, PutEvent("skips", "a seq")).SerializeAsString());
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
  AppendRawRecord(dir.path(), binlog_format::RecordType::kEvent, "\xff\xff\xff\xff");
  EXPECT_EQ(OpenStatus(dir.path()).code(), absl::StatusCode::kDataLoss);
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
  ASSERT_TRUE(CreateSegment(dir.path(), 2, kEvents + 1, 1).ok());
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

// Torn multi-sector groups (issue 14). The last write: one group of ten
// ~300-byte events (~3.2 KB, 7 or 8 sectors) after two one-event groups and,
// if `sector_aligned`, a padding group that ends on a sector boundary. The
// segment keeps its preallocated zeros, as a power cut leaves it.
struct LastGroup {
  uint64_t begin = 0;        // where the group starts
  uint64_t end = 0;          // just past its kGroupEnd
  uint64_t seqs_before = 0;  // events before it: [1, seqs_before]
};

LastGroup WriteLastGroup(const fs::path& dir, bool sector_aligned) {
  LastGroup g;
  auto b = OpenBinlog(dir);
  if (b == nullptr) return g;
  EXPECT_TRUE(testing::CommitKeys(*b, 2));
  if (sector_aligned) {
    const uint64_t size = b->Segments().back().size_bytes;
    v1::Event pad;
    for (size_t len = 1;; ++len) {
      pad = PutEvent("pad", std::string(len, 'p'));
      const uint64_t record = kRecordHeaderSize + At(1, 3, pad).ByteSizeLong();
      if ((size + record + GroupEndRecord().size()) % kSectorSize == 0) break;
    }
    EXPECT_TRUE(b->Commit(&pad).ok());
  }
  g.begin = b->Segments().back().size_bytes;
  g.seqs_before = b->LastVisible().seq;
  std::vector<v1::Event> group;
  for (uint64_t i = 0; i < 10; ++i) {
    const uint64_t seq = g.seqs_before + 1 + i;
    group.push_back(At(1, seq, PutEvent("big" + std::to_string(seq), std::string(300, 'g'))));
  }
  EXPECT_TRUE(b->AppendReplicated(group, true).ok());
  g.end = b->Segments().back().size_bytes;
  return g;
}

// Sector `sector` (a number, not an offset) of the last group never reached
// the disk, which keeps its old content there: the group's bytes read as
// zeros, an earlier (synced) group's bytes sharing the sector stay, and the
// preallocated zeros after the group stay zeros.
void LoseGroupSector(std::string& data, const LastGroup& g, uint64_t sector) {
  const uint64_t from = std::max(g.begin, sector * kSectorSize);
  const uint64_t to = std::min(g.end, (sector + 1) * kSectorSize);
  std::fill(data.begin() + static_cast<long>(from), data.begin() + static_cast<long>(to), '\0');
}

// Expects recovery to have dropped the last group whole and kept the rest.
void ExpectLastGroupDropped(const fs::path& dir, const LastGroup& g, const std::string& what) {
  auto b = OpenBinlog(dir);
  ASSERT_NE(b, nullptr) << what;
  EXPECT_EQ(b->LastVisible(), (Gtid{1, g.seqs_before})) << what;
  EXPECT_EQ(fs::file_size(dir / kSegment1), g.begin) << what << ": truncated at the group";
  EXPECT_EQ(ReadSeqs(*b), Range(1, g.seqs_before)) << what << ": earlier groups intact";
  v1::Event e = PutEvent("again", "v");
  ASSERT_TRUE(b->Commit(&e).ok()) << what;
  EXPECT_EQ(e.gtid().seq(), g.seqs_before + 1) << what << ": the next commit takes the dropped seq";
}

// For a last group starting off and on a sector boundary, and for each sector
// it touches (the first and last partial ones included): applies
// `damage(data, group, sector)` to a copy of the binlog and expects recovery
// to drop just that group.
void ExpectTornLastGroupDroppedForEverySector(
    const fs::path& root, const std::function<void(std::string&, const LastGroup&, uint64_t)>& damage) {
  for (bool aligned : {false, true}) {
    const fs::path golden = root / (aligned ? "aligned" : "unaligned");
    const LastGroup g = WriteLastGroup(golden, aligned);
    ASSERT_EQ(g.begin % kSectorSize == 0, aligned) << g.begin;
    ASSERT_GT(g.end - g.begin, 6 * kSectorSize);
    const std::string full = ReadFile(golden / kSegment1);
    ASSERT_GT(full.size(), g.end) << "the preallocated zeros are kept";
    for (uint64_t sector = g.begin / kSectorSize; sector * kSectorSize < g.end; ++sector) {
      const std::string what = std::string(aligned ? "aligned" : "unaligned") + " group at " +
                               std::to_string(g.begin) + ", sector at " +
                               std::to_string(sector * kSectorSize);
      std::string data = full;
      damage(data, g, sector);
      ASSERT_NE(data, full) << what << ": the damage must hit the group's bytes";
      const fs::path work = root / "work";
      testing::CopyDir(golden, work);
      WriteFile(work / kSegment1, data);
      ExpectLastGroupDropped(work, g, what);
      fs::remove_all(work);
    }
  }
}

TEST(BinlogRecoveryTest, AnyLostSectorOfTheLastGroupDropsJustThatGroup) {
  TempDir dir;
  ExpectTornLastGroupDroppedForEverySector(dir.path(), LoseGroupSector);
}

TEST(BinlogRecoveryTest, LastGroupWithOnlyOneSectorOnDiskIsDroppedWhole) {
  TempDir dir;
  ExpectTornLastGroupDroppedForEverySector(
      dir.path(), [](std::string& data, const LastGroup& g, uint64_t kept) {
        for (uint64_t sector = g.begin / kSectorSize; sector * kSectorSize < g.end; ++sector) {
          if (sector != kept) LoseGroupSector(data, g, sector);
        }
      });
}

// Makes the default spdlog logger write into a string while it lives.
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("captured", sink));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;

  // The first line holding `needle`; empty if none does.
  std::string LineWith(const std::string& needle) const {
    std::istringstream in(out_.str());
    for (std::string line; std::getline(in, line);) {
      if (line.find(needle) != std::string::npos) return line;
    }
    return "";
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

// Expects the torn-tail log line to name the file, the offset, the bytes
// dropped and `gtids` (the dropped GTID range, or "none").
void ExpectTornTailLogged(const CapturedLog& log, const fs::path& seg, uint64_t offset,
                          uint64_t bytes, const std::string& gtids) {
  const std::string line = log.LineWith("torn tail");
  ASSERT_FALSE(line.empty()) << "no torn-tail line logged";
  EXPECT_NE(line.find(seg.string()), std::string::npos) << line;
  EXPECT_NE(line.find("offset " + std::to_string(offset)), std::string::npos) << line;
  EXPECT_NE(line.find("dropped " + std::to_string(bytes) + " bytes"), std::string::npos) << line;
  EXPECT_NE(line.find(gtids), std::string::npos) << line;
}

TEST(BinlogRecoveryTest, TornTailLogLineNamesFileOffsetBytesAndGtidsDropped) {
  TempDir dir;
  const fs::path seg = dir.path() / kSegment1;
  const LastGroup g = WriteLastGroup(dir.path(), false);
  std::string data = ReadFile(seg);
  // A middle sector: events on both sides of the hole still decode.
  LoseGroupSector(data, g, g.begin / kSectorSize + 3);
  WriteFile(seg, data);
  CapturedLog log;
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->LastVisible().seq, g.seqs_before);
  ExpectTornTailLogged(log, seg, g.begin, data.size() - g.begin,
                       "GTIDs 1:" + std::to_string(g.seqs_before + 1) + "..1:" +
                           std::to_string(g.seqs_before + 10));
}

TEST(BinlogRecoveryTest, GarbageAfterThePreallocatedZerosIsTruncated) {
  // A stopped node's newest segment with bytes appended past its zeros.
  TempDir dir;
  const fs::path seg = dir.path() / kSegment1;
  uint64_t end = 0;
  {
    auto b = OpenBinlog(dir.path());
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(testing::CommitKeys(*b, 3));
    end = b->Segments().back().size_bytes;
  }
  const std::string data = ReadFile(seg) + testing::RandomBytes(37, /*seed=*/14);
  ASSERT_GT(data.size(), end + 37) << "the preallocated zeros are kept";
  WriteFile(seg, data);
  CapturedLog log;
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->LastVisible().seq, 3u);
  EXPECT_EQ(fs::file_size(seg), end);
  ExpectTornTailLogged(log, seg, end, data.size() - end, "GTIDs dropped: none");
  v1::Event e = PutEvent("after", "v");
  ASSERT_TRUE(b->Commit(&e).ok());
  EXPECT_EQ(e.gtid().seq(), 4u);
  EXPECT_EQ(ReadSeqs(*b), Range(1, 4));
}

TEST(BinlogRecoveryTest, FlippedByteInAGroupFollowedByAnotherFailsOpenNamingTheRecord) {
  // Three one-event groups, the zeros kept; every byte of the middle group.
  // A damaged kGroupEnd too: the group after it still proves it was synced.
  TempDir dir;
  const fs::path golden = dir.path() / "golden";
  uint64_t group1 = 0;
  uint64_t group2 = 0;
  {
    auto b = OpenBinlog(golden);
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(testing::CommitKeys(*b, 1));
    group1 = b->Segments().back().size_bytes;
    ASSERT_TRUE(testing::CommitKeys(*b, 1));
    group2 = b->Segments().back().size_bytes;
    ASSERT_TRUE(testing::CommitKeys(*b, 1));
  }
  const uint64_t group_end = group2 - GroupEndRecord().size();
  const uint64_t size = fs::file_size(golden / kSegment1);
  for (uint64_t at = group1; at < group2; ++at) {
    const fs::path work = dir.path() / ("flip" + std::to_string(at));
    const absl::Status s = OpenWithFlippedByte(golden, work, at);
    const uint64_t record = at < group_end ? group1 : group_end;
    ASSERT_EQ(s.code(), absl::StatusCode::kDataLoss) << "flipped byte at " << at << ": " << s;
    EXPECT_NE(s.message().find(kSegment1), std::string::npos) << s;
    EXPECT_NE(s.message().find("offset " + std::to_string(record) + ":"), std::string::npos) << s;
    EXPECT_EQ(fs::file_size(work / kSegment1), size) << "nothing truncated: evidence kept";
    fs::remove_all(work);
  }
}

TEST(BinlogRecoveryTest, LostSharedFirstSectorOfAGroupFollowedByAnotherFailsOpen) {
  TempDir dir;
  const auto [begin, end] = WriteMultiSectorGroup(dir.path(), 1);
  ASSERT_NE(begin % kSectorSize, 0u);
  EditSegment(dir.path(), [begin = begin](std::string& data) {
    std::fill(data.begin() + static_cast<long>(begin),
              data.begin() + static_cast<long>((begin / kSectorSize + 1) * kSectorSize), '\0');
  });
  const absl::Status s = OpenStatus(dir.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find(kSegment1), std::string::npos) << s;
  EXPECT_NE(s.message().find("offset " + std::to_string(begin) + ":"), std::string::npos) << s;
}

}  // namespace
}  // namespace relaykv
