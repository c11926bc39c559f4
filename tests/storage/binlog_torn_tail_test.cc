// Tests the torn-tail rule of binlog recovery (storage/binlog_segments.cc,
// via Binlog::Open; the rule: binlog_format.h, "Torn tails"): a group whose
// write was cut by a power cut (sectors lost in any order, whole records
// after the hole) is dropped whole and logged; damage that a later group's
// whole record proves synced, or that shows no sign of a lost write, fails
// opening with DATA_LOSS naming the file and offsets, and nothing is cut.
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
#include "storage/crc32c.h"
#include "storage/fault_injection.h"
#include "storage/record.h"
#include "tests/common/captured_log.h"
#include "tests/storage/test_util.h"

namespace relaykv {
namespace {

namespace fs = std::filesystem;
using binlog_format::kRecordHeaderSize;
using binlog_format::kSectorSize;
using testing::At;
using testing::CapturedLog;
using testing::EditSegment;
using testing::kSegment1;
using testing::OpenBinlog;
using testing::OpenStatus;
using testing::OpenWithFlippedByte;
using testing::PutEvent;
using testing::Range;
using testing::ReadFile;
using testing::ReadSeqs;
using testing::TempDir;
using testing::WriteFile;

constexpr uint64_t kGroupEndSize = binlog_format::kGroupEndRecordSize;

// Commits one event whose group ends exactly on a sector boundary.
void CommitPadToSectorEnd(Binlog& b) {
  const uint64_t size = b.Segments().back().size_bytes;
  const uint64_t seq = b.LastVisible().seq + 1;
  v1::Event pad;
  for (size_t len = 1;; ++len) {
    pad = PutEvent("pad", std::string(len, 'p'));
    const uint64_t record = kRecordHeaderSize + At(1, seq, pad).ByteSizeLong();
    if ((size + record + kGroupEndSize) % kSectorSize == 0) break;
  }
  EXPECT_TRUE(b.Commit(&pad).ok());
  EXPECT_EQ(b.Segments().back().size_bytes % kSectorSize, 0u);
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

TEST(BinlogTornTailTest, LostSectorInTheLastGroupDropsThatGroup) {
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

TEST(BinlogTornTailTest, LostSectorInAGroupFollowedByAnotherFailsOpen) {
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
  if (sector_aligned) CommitPadToSectorEnd(*b);
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

TEST(BinlogTornTailTest, AnyLostSectorOfTheLastGroupDropsJustThatGroup) {
  TempDir dir;
  ExpectTornLastGroupDroppedForEverySector(dir.path(), LoseGroupSector);
}

TEST(BinlogTornTailTest, LastGroupWithOnlyOneSectorOnDiskIsDroppedWhole) {
  TempDir dir;
  ExpectTornLastGroupDroppedForEverySector(
      dir.path(), [](std::string& data, const LastGroup& g, uint64_t kept) {
        for (uint64_t sector = g.begin / kSectorSize; sector * kSectorSize < g.end; ++sector) {
          if (sector != kept) LoseGroupSector(data, g, sector);
        }
      });
}

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

TEST(BinlogTornTailTest, TornTailLogLineNamesFileOffsetBytesAndGtidsDropped) {
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

TEST(BinlogTornTailTest, GarbageAfterThePreallocatedZerosIsTruncated) {
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
  testing::ExpectNextCommitIsSeq(*b, 4);
}

TEST(BinlogTornTailTest, FlippedByteInAGroupFollowedByAnotherFailsOpenNamingTheRecord) {
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
  const uint64_t group_end = group2 - kGroupEndSize;
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

TEST(BinlogTornTailTest, LostSharedFirstSectorOfAGroupFollowedByAnotherFailsOpen) {
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


// Fault A of the review: one bad sector (read as zeros) covers the last
// event header and the kGroupEnd of synced group k and the first header of
// synced group k+1, the last group. k+1's whole records after the hole (its
// own kGroupEnd among them) prove k was synced: DATA_LOSS, nothing cut.
TEST(BinlogTornTailTest, LostSectorAcrossTwoSyncedGroupsFailsOpenNamingTheProof) {
  TempDir dir;
  uint64_t k_begin = 0;
  uint64_t k1_begin = 0;
  uint64_t k1_end = 0;
  {
    auto b = OpenBinlog(dir.path());
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(testing::CommitKeys(*b, 2));
    CommitPadToSectorEnd(*b);
    k_begin = b->Segments().back().size_bytes;
    v1::Event e = PutEvent("k", "v");
    ASSERT_TRUE(b->Commit(&e).ok());
    k1_begin = b->Segments().back().size_bytes;
    const uint64_t x = b->LastVisible().seq + 1;
    std::vector<v1::Event> group;
    for (uint64_t i = 0; i < 3; ++i) {
      group.push_back(At(1, x + i, PutEvent("k1_" + std::to_string(i), std::string(400, 'w'))));
    }
    ASSERT_TRUE(b->AppendReplicated(group, true).ok());
    k1_end = b->Segments().back().size_bytes;
  }
  ASSERT_EQ(k_begin % kSectorSize, 0u);
  ASSERT_LT(k1_begin + kRecordHeaderSize, k_begin + kSectorSize) << "k+1's header is in the sector";
  ASSERT_GT(k1_end, k_begin + 2 * kSectorSize) << "k+1 goes on past it";
  EditSegment(dir.path(), [&](std::string& data) {
    std::fill(data.begin() + static_cast<long>(k_begin),
              data.begin() + static_cast<long>(k_begin + kSectorSize), '\0');
  });
  const uint64_t size = fs::file_size(dir.path() / kSegment1);
  const absl::Status s = OpenStatus(dir.path());
  ASSERT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find(kSegment1), std::string::npos) << s;
  EXPECT_NE(s.message().find("offset " + std::to_string(k_begin) + ":"), std::string::npos) << s;
  EXPECT_NE(s.message().find("offset " + std::to_string(k1_end - kGroupEndSize)), std::string::npos)
      << s << ": names k+1's kGroupEnd, the proof";
  EXPECT_EQ(fs::file_size(dir.path() / kSegment1), size) << "nothing truncated: evidence kept";
}

// Found by the power-cut test (seed 14): the last group's kGroupEnd ends 7
// bytes into a sector, so that sector holds only last_seq's high bytes —
// zero for seqs below 256, so alone no sign of a lost write. With
// last_seq >= 256 its second byte is not zero: the sector's loss zeroes it,
// and the group end then no longer matches its CRC. The group's true end
// record is known (its first and last seq follow from the events before
// it), and it differs from the disk exactly in zeroed bytes: a lost write,
// so the group is dropped; the same bytes flipped otherwise stay refused.
TEST(BinlogTornTailTest, LostSectorHoldingOnlyTheHighBytesOfALastSeqAbove255DropsTheGroup) {
  TempDir dir;
  const fs::path golden = dir.path() / "golden";
  uint64_t begin = 0;
  uint64_t end = 0;
  {
    auto b = OpenBinlog(golden);
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(testing::CommitKeys(*b, 300));
    begin = b->Segments().back().size_bytes;
    const uint64_t seq = b->LastVisible().seq + 1;
    v1::Event last;
    for (size_t len = 1;; ++len) {
      last = PutEvent("last", std::string(len, 'l'));
      const uint64_t record = kRecordHeaderSize + At(1, seq, last).ByteSizeLong();
      if ((begin + record + kGroupEndSize) % kSectorSize == 7) break;
    }
    ASSERT_TRUE(b->Commit(&last).ok());
    end = b->Segments().back().size_bytes;
    ASSERT_EQ(end % kSectorSize, 7u);
    ASSERT_EQ(b->LastVisible().seq, 301u);
  }
  const uint64_t lost = end - 7;  // the sector that holds only last_seq's high bytes
  {
    const fs::path work = dir.path() / "lost";
    fs::copy(golden, work);
    EditSegment(work, [&](std::string& data) {
      std::fill(data.begin() + static_cast<long>(lost), data.begin() + static_cast<long>(lost + kSectorSize), '\0');
    });
    auto b = OpenBinlog(work);
    ASSERT_NE(b, nullptr) << "a lost sector of the unsynced last group is a torn tail";
    EXPECT_EQ(b->LastVisible().seq, 300u);
    EXPECT_EQ(fs::file_size(work / kSegment1), begin);
  }
  {
    // The same byte changed to something else than zero: no lost write.
    const fs::path work = dir.path() / "flipped";
    const absl::Status s = OpenWithFlippedByte(golden, work, lost);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  }
}

// A binlog in `golden`: two one-event groups, then `last` alone in a last
// group (synced; the preallocated zeros after it kept). Returns [begin,
// end) of that group.
std::pair<uint64_t, uint64_t> GoldenEndingWith(const fs::path& golden, v1::Event last) {
  auto b = OpenBinlog(golden);
  EXPECT_NE(b, nullptr);
  if (b == nullptr) return {0, 0};
  EXPECT_TRUE(testing::CommitKeys(*b, 2));
  const uint64_t begin = b->Segments().back().size_bytes;
  EXPECT_TRUE(b->Commit(&last).ok());
  return {begin, b->Segments().back().size_bytes};
}

// Fault B of the review: a flipped bit anywhere in the last group, synced
// (its bytes all on disk, the preallocated zeros after it), is no sign of a
// lost write: DATA_LOSS naming the damaged record, nothing cut.
TEST(BinlogTornTailTest, FlippedBitInTheLastSyncedGroupFailsOpen) {
  TempDir dir;
  const fs::path golden = dir.path() / "golden";
  const auto [begin, end] = GoldenEndingWith(golden, PutEvent("key0", "the last synced group"));
  const uint64_t size = fs::file_size(golden / kSegment1);
  ASSERT_GT(size, end) << "the preallocated zeros are kept";
  const uint64_t group_end = end - kGroupEndSize;
  for (uint64_t at = begin; at < end; ++at) {
    const fs::path work = dir.path() / ("flip" + std::to_string(at));
    const absl::Status s = OpenWithFlippedByte(golden, work, at);
    const uint64_t record = at < group_end ? begin : group_end;
    ASSERT_EQ(s.code(), absl::StatusCode::kDataLoss) << "flipped byte at " << at << ": " << s;
    EXPECT_NE(s.message().find(kSegment1), std::string::npos) << s;
    EXPECT_NE(s.message().find("offset " + std::to_string(record) + ":"), std::string::npos) << s;
    EXPECT_EQ(fs::file_size(work / kSegment1), size) << "nothing truncated: evidence kept";
    fs::remove_all(work);
  }
}

// Review s31 F1: a client's value of zeros used to reach the disk as a
// zero sector, which the torn-tail rule reads as a lost write: one flipped
// bit elsewhere in that synced, acknowledged group truncated it. Payloads
// are whitened now; every flip in such a group stops the node.
TEST(BinlogTornTailTest, FlippedBitInALastSyncedGroupHoldingZeroSectorsFailsOpen) {
  TempDir dir;
  const fs::path golden = dir.path() / "golden";
  const auto [begin, end] = GoldenEndingWith(golden, PutEvent("zeros", std::string(2048, '\0')));
  for (uint64_t at = begin; at < end; at += at < begin + 32 ? 1 : 97) {
    const fs::path work = dir.path() / ("flip" + std::to_string(at));
    const absl::Status s = OpenWithFlippedByte(golden, work, at);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << "flipped byte at " << at << ": " << s;
    fs::remove_all(work);
  }
}

std::string Fixed64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// Fault C of the review: the last group (three events, the middle one's
// value holding `image(x)`, x the group's first seq) torn: the sectors
// holding its first event's header never reached the disk. A client's value
// is data, never a group boundary: the group is dropped whole, the node opens.
void ExpectTornWithImageInALaterEvent(const fs::path& dir,
                                      const std::function<std::string(uint64_t)>& image) {
  uint64_t begin = 0;
  uint64_t seqs_before = 0;
  uint64_t second = 0;  // where the event holding the image starts
  {
    auto b = OpenBinlog(dir);
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(testing::CommitKeys(*b, 2));
    begin = b->Segments().back().size_bytes;
    seqs_before = b->LastVisible().seq;
    const uint64_t x = seqs_before + 1;
    const v1::Event first = At(1, x, PutEvent("e1", std::string(600, 'a')));
    second = begin + kRecordHeaderSize + first.ByteSizeLong();
    std::vector<v1::Event> group = {
        first,
        At(1, x + 1, PutEvent("e2", std::string(200, 'b') + image(x) + std::string(100, 'c'))),
        At(1, x + 2, PutEvent("e3", std::string(200, 'd'))),
    };
    ASSERT_TRUE(b->AppendReplicated(group, true).ok());
  }
  const uint64_t lost_end = ((begin + kRecordHeaderSize - 1) / kSectorSize + 1) * kSectorSize;
  ASSERT_LT(lost_end, second) << "the image's event is whole";
  EditSegment(dir, [&](std::string& data) {
    std::fill(data.begin() + static_cast<long>(begin), data.begin() + static_cast<long>(lost_end),
              '\0');
  });
  auto b = OpenBinlog(dir);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->LastVisible().seq, seqs_before);
  EXPECT_EQ(fs::file_size(dir / kSegment1), begin);
  EXPECT_EQ(ReadSeqs(*b), Range(1, seqs_before));
}

TEST(BinlogTornTailTest, OldGroupEndImageInALaterEventOfATornGroupIsData) {
  TempDir dir;
  ExpectTornWithImageInALaterEvent(dir.path(), [](uint64_t) {
    std::string old;  // format 1's kGroupEnd: empty payload, 13 constant bytes
    AppendRecord(&old, binlog_format::RecordType::kGroupEnd, "");
    return old;
  });
}

TEST(BinlogTornTailTest, GroupEndImageOfTheTornGroupInALaterEventIsData) {
  TempDir dir;
  ExpectTornWithImageInALaterEvent(dir.path(), [](uint64_t x) {
    std::string image;  // the group's own end, as the writer encodes it
    AppendRecord(&image, binlog_format::RecordType::kGroupEnd, Fixed64(x) + Fixed64(x + 2));
    return image;
  });
}

// Review s31 F7: the image of a later group's end inside the torn group's
// own first event (past its lost header sector) was taken for proof that
// the group had been synced: a client's value blocked an ordinary restart
// after a power cut. Whitened, a value holds no record image on disk.
TEST(BinlogTornTailTest, LaterGroupEndImageInTheTornFirstEventIsData) {
  TempDir dir;
  uint64_t begin = 0;
  uint64_t seqs_before = 0;
  {
    auto b = OpenBinlog(dir.path());
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(testing::CommitKeys(*b, 2));
    begin = b->Segments().back().size_bytes;
    seqs_before = b->LastVisible().seq;
    const uint64_t x = seqs_before + 1;
    std::string image;  // a later group's end, as the writer encodes it
    AppendRecord(&image, binlog_format::RecordType::kGroupEnd, Fixed64(x + 3) + Fixed64(x + 3));
    std::vector<v1::Event> group = {
        At(1, x, PutEvent("e1", std::string(600, 'a') + image + std::string(100, 'c'))),
        At(1, x + 1, PutEvent("e2", "b")),
    };
    ASSERT_TRUE(b->AppendReplicated(group, true).ok());
  }
  const uint64_t lost_end = ((begin + kRecordHeaderSize - 1) / kSectorSize + 1) * kSectorSize;
  ASSERT_LT(lost_end, begin + kRecordHeaderSize + 600) << "the image lies past the lost sector";
  EditSegment(dir.path(), [&](std::string& data) {
    std::fill(data.begin() + static_cast<long>(begin), data.begin() + static_cast<long>(lost_end),
              '\0');
  });
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr) << "a torn, never acknowledged group must not stop the node";
  EXPECT_EQ(b->LastVisible().seq, seqs_before);
  EXPECT_EQ(fs::file_size(dir.path() / kSegment1), begin);
}

// Format 3 reads a binlog of format 2 (payloads stored as they are); its
// active segment is sealed at open, so every event written from then on is
// whitened (review s32 W1: else an upgraded node kept the old holes until
// the segment filled).
// A format 2 binlog (no key, payloads as they are) of seqs 1..3 in `dir`;
// returns its one segment's bytes.
std::string WriteFormat2Binlog(const std::filesystem::path& dir) {
  std::string segment = EncodeSegmentHeader(1, 0);
  segment[8] = 2;  // version 2: no key; the CRC (over the first 24 bytes) is redone
  const uint32_t crc = Crc32c(std::string_view(segment).substr(0, binlog_format::kHeaderCrcOffset));
  for (int i = 0; i < 4; ++i) {
    segment[binlog_format::kHeaderCrcOffset + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
  }
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    AppendRecord(&segment, binlog_format::RecordType::kEvent,
                 At(1, seq, PutEvent("old" + std::to_string(seq), std::string(700, '\0')))
                     .SerializeAsString());
    AppendGroupEnd(&segment, seq, seq);
  }
  WriteFile(dir / kSegment1, segment);
  WriteFile(dir / binlog_format::kIndexFileName, std::string(kSegment1) + "\n");
  return segment;
}

TEST(BinlogTornTailTest, Format2BinlogIsReadAndItsActiveSegmentSealedAtOpen) {
  TempDir dir;
  const std::string segment = WriteFormat2Binlog(dir.path());
  {
    auto b = OpenBinlog(dir.path());
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(ReadSeqs(*b), Range(1, 3));
    ASSERT_EQ(b->Segments().size(), 2u) << "the format 2 segment was not sealed at open";
    ASSERT_TRUE(testing::CommitKeys(*b, 4, std::string(700, '\0')));
  }
  auto b = OpenBinlog(dir.path());  // recovery also drops the preallocated zeros
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(ReadSeqs(*b), Range(1, 7));
  EXPECT_EQ(b->Segments().size(), 2u) << "a format 3 active segment is not sealed at open";
  EXPECT_EQ(ReadFile(dir.path() / kSegment1), segment) << "the format 2 segment is kept as it was";
  const std::string second = ReadFile(dir.path() / SegmentFileName(2));
  EXPECT_EQ(second[8], 3);
  EXPECT_EQ(second.find(std::string(64, '\0'), binlog_format::kSegmentHeaderSize),
            std::string::npos)
      << "format 3 payloads are whitened";
}

// Review s32-late F4: sealing a format 2 segment at open needs a new file;
// a disk that cannot take one (full, read-only; here the power goes at
// each operation in turn) must not keep the binlog from opening when the
// outcome is known: it appends to the format 2 segment and seals it after
// the next group.
TEST(BinlogTornTailTest, Format2BinlogOpensWhenItsSegmentCannotBeSealed) {
  bool opened_unsealed = false;
  for (int ops = 0; ops < 12; ++ops) {
    TempDir dir;
    WriteFormat2Binlog(dir.path());
    auto faults = FaultInjection::Install();
    ASSERT_TRUE(faults.ok()) << faults.status();
    ASSERT_TRUE((*faults)->TrackDir(dir.path()).ok());
    (*faults)->CutPowerAfterOps(ops);
    BinlogOptions o;
    o.dir = dir.path();
    auto b = Binlog::Open(o);
    if (!b.ok()) continue;  // recovery's own writes failed: nothing is known
    EXPECT_EQ(ReadSeqs(**b), Range(1, 3)) << "ops " << ops;
    if ((*b)->Segments().size() != 1) continue;
    opened_unsealed = true;
    // Space again (the power back on): sealed after the next group, not
    // only once the segment is full (review s33 F2).
    ASSERT_TRUE((*faults)->ApplyPowerCut({.seed = 1, .tear = TearMode::kNone}).ok());
    ASSERT_TRUE(testing::CommitKeys(**b, 1));
    EXPECT_EQ((*b)->Segments().size(), 2u) << "ops " << ops << ": the format 2 segment is still active";
    EXPECT_EQ(ReadSeqs(**b), Range(1, 4));
  }
  EXPECT_TRUE(opened_unsealed) << "no open survived a failed sealing";
}

}  // namespace
}  // namespace relaykv
