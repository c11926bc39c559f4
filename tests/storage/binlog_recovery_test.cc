// Recovery of a binlog directory: torn tails are truncated, corruption
// before the tail refuses to open, and nothing is skipped silently.
#include <filesystem>

#include "gtest/gtest.h"
#include "storage/binlog_format.h"
#include "storage/binlog_segments.h"
#include "tests/storage/storage_test_util.h"

namespace relaykv {
namespace {

using testing::OpenBinlog;
using testing::ReadFile;
using testing::ReadSeqs;
using testing::TempDir;
using testing::WriteFile;
namespace fs = std::filesystem;

constexpr int kEvents = 5;

// Writes kEvents events and returns the byte offset where the last one starts.
uint64_t WriteEvents(const fs::path& dir) {
  auto b = OpenBinlog(dir);
  uint64_t last_start = 0;
  for (int i = 0; i < kEvents; ++i) {
    last_start = b->Segments().back().size_bytes;
    v1::Event e = testing::PutEvent("key" + std::to_string(i), std::string(20 + i, 'v'));
    EXPECT_TRUE(b->Commit(&e).ok());
  }
  return last_start;
}

TEST(BinlogRecoveryTest, TornTailAtEveryByteOfTheLastRecordIsTruncated) {
  TempDir dir;
  const fs::path golden = dir.path() / "golden";
  const uint64_t last_start = WriteEvents(golden);
  const std::string full = ReadFile(golden / "binlog.000001");
  for (uint64_t cut = last_start; cut < full.size(); ++cut) {
    const fs::path d = dir.path() / ("cut" + std::to_string(cut));
    fs::create_directories(d);
    fs::copy_file(golden / "binlog.index", d / "binlog.index");
    WriteFile(d / "binlog.000001", full.substr(0, cut));
    auto b = OpenBinlog(d);
    ASSERT_NE(b, nullptr) << "cut at " << cut;
    EXPECT_EQ(b->LastVisible().seq, kEvents - 1u) << "cut at " << cut;
    EXPECT_EQ(ReadSeqs(*b), (std::vector<uint64_t>{1, 2, 3, 4})) << "cut at " << cut;
    EXPECT_EQ(fs::file_size(d / "binlog.000001"), last_start) << "cut at " << cut;
    v1::Event e = testing::PutEvent("again", "v");
    ASSERT_TRUE(b->Commit(&e).ok());
    EXPECT_EQ(e.gtid().seq(), static_cast<uint64_t>(kEvents)) << "the next commit reuses the seq";
    b.reset();
    fs::remove_all(d);
  }
}

TEST(BinlogRecoveryTest, ZeroFilledTailIsTruncated) {
  TempDir dir;
  WriteEvents(dir.path());
  const fs::path seg = dir.path() / "binlog.000001";
  const std::string full = ReadFile(seg);
  WriteFile(seg, full + std::string(4096, '\0'));
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->LastVisible().seq, static_cast<uint64_t>(kEvents));
  EXPECT_EQ(fs::file_size(seg), full.size());
}

TEST(BinlogRecoveryTest, BadChecksumInTheLastRecordIsTruncated) {
  TempDir dir;
  const uint64_t last_start = WriteEvents(dir.path());
  const fs::path seg = dir.path() / "binlog.000001";
  std::string data = ReadFile(seg);
  data[data.size() - 1] ^= 0x40;  // last payload byte: a half-written last record
  WriteFile(seg, data);
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->LastVisible().seq, kEvents - 1u);
  EXPECT_EQ(fs::file_size(seg), last_start);
}

TEST(BinlogRecoveryTest, FlippedByteInAnEarlierRecordFailsOpenNamingFileAndOffset) {
  TempDir dir;
  const fs::path golden = dir.path() / "golden";
  const uint64_t last_start = WriteEvents(golden);
  const std::string full = ReadFile(golden / "binlog.000001");
  // Every byte of the records before the last: header fields and payload.
  for (uint64_t at = binlog_format::kSegmentHeaderSize; at < last_start; ++at) {
    const fs::path d = dir.path() / ("flip" + std::to_string(at));
    fs::create_directories(d);
    fs::copy_file(golden / "binlog.index", d / "binlog.index");
    std::string bad = full;
    bad[at] ^= 0x04;
    WriteFile(d / "binlog.000001", bad);
    BinlogOptions o;
    o.dir = d;
    auto b = Binlog::Open(o);
    ASSERT_FALSE(b.ok()) << "flipped byte at " << at << " was not detected";
    EXPECT_EQ(b.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(b.status().message().find("binlog.000001"), std::string::npos) << b.status();
    EXPECT_NE(b.status().message().find("offset"), std::string::npos) << b.status();
    // Nothing was truncated: the evidence stays for the operator.
    EXPECT_EQ(fs::file_size(d / "binlog.000001"), full.size());
    fs::remove_all(d);
  }
}

TEST(BinlogRecoveryTest, MissingIndexWithSegmentsFailsOpen) {
  TempDir dir;
  WriteEvents(dir.path());
  fs::remove(dir.path() / "binlog.index");
  BinlogOptions o;
  o.dir = dir.path();
  auto b = Binlog::Open(o);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("binlog.index"), std::string::npos) << b.status();
}

TEST(BinlogRecoveryTest, UnlistedSegmentFromAnInterruptedRotationIsRemoved) {
  TempDir dir;
  WriteEvents(dir.path());
  // A rotation that crashed after creating binlog.000002 but before the index.
  ASSERT_TRUE(CreateSegment(dir.path(), 2, kEvents + 1, 1).ok());
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  EXPECT_FALSE(fs::exists(dir.path() / "binlog.000002"));
  EXPECT_EQ(b->Segments().size(), 1u);
  EXPECT_EQ(b->LastVisible().seq, static_cast<uint64_t>(kEvents));
}

TEST(BinlogRecoveryTest, EmptyLastSegmentKeepsTheLastGtid) {
  TempDir dir;
  {
    auto b = OpenBinlog(dir.path(), 4096);
    for (int i = 0; i < 200; ++i) {
      v1::Event e = testing::PutEvent("k", std::string(100, 'v'));
      ASSERT_TRUE(b->Commit(&e).ok());
      if (b->Segments().back().size_bytes == binlog_format::kSegmentHeaderSize) break;  // just rotated
    }
  }
  auto b = OpenBinlog(dir.path(), 4096);
  ASSERT_NE(b, nullptr);
  ASSERT_GT(b->Segments().size(), 1u);
  EXPECT_EQ(b->LastVisible().seq + 1, b->Segments().back().first_seq);
  EXPECT_EQ(b->LastVisible().epoch, 1u);
}

}  // namespace
}  // namespace relaykv
