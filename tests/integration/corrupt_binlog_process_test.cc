// relaykvd on a damaged binlog (README, "Durability", Recovery), as a real
// process: a bad record that a later group follows (synced data) stops the
// server with the file and offset, touching nothing; a torn tail (bytes
// after the last valid group, no later record) is truncated, logged with
// file, offset and bytes dropped, and the server starts.
#include <fstream>
#include <iterator>
#include <random>
#include <regex>
#include <string>

#include "gtest/gtest.h"
#include "storage/record.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}
void WriteAll(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

// `segment` with its event payloads unwhitened in place (binlog format 3
// stores them whitened): where a value lies in the file.
std::string Unwhitened(std::string segment) {
  uint64_t first_seq = 0;
  uint32_t key = 0;
  if (!DecodeSegmentHeader(segment, &first_seq, nullptr, &key)) return segment;
  constexpr size_t kHeader = binlog_format::kRecordHeaderSize;
  for (size_t at = binlog_format::kSegmentHeaderSize; at < segment.size();) {
    ParsedRecord rec;
    if (ParseRecord(std::string_view(segment).substr(at), &rec) != RecordParse::kOk) break;
    if (rec.type == binlog_format::RecordType::kEvent) {
      Whiten(key, at + kHeader, segment.data() + at + kHeader, rec.total_size - kHeader);
    }
    at += rec.total_size;
  }
  return segment;
}

// A stopped node holding keys k0..k<n-1>, one group per write (serial puts).
void WriteAndStop(const fs::path& data, int n) {
  auto s = Relaykvd::Start(data);
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(s->Put("k" + std::to_string(i), "MARKER-" + std::to_string(i) + "-payload").ok());
  }
  ASSERT_EQ(s->Terminate(), 0);
}

TEST(CorruptBinlogProcessTest, FlippedByteFollowedBySyncedGroupsRefusesToStartNamingFileAndOffset) {
  TempDir dir;
  const fs::path data = dir.path() / "n";
  WriteAndStop(data, 10);
  const fs::path seg = data / "binlog" / "binlog.000001";
  const std::string good = ReadAll(seg);
  const size_t at = Unwhitened(good).find("MARKER-3-");
  ASSERT_NE(at, std::string::npos) << "the value is not in " << seg;
  std::string bad = good;
  bad[at + 2] ^= 0x20;  // inside event 3's payload: its checksum fails
  WriteAll(seg, bad);

  const StartupRefusal r = StartExpectingRefusal(data);
  ASSERT_TRUE(r.exited) << "relaykvd started on a corrupt binlog (or hung):\n" << r.log;
  EXPECT_NE(r.exit_status, 0) << r.log;
  // The message names the file and the offset of the damaged record, which
  // starts before the flipped byte and holds it.
  const std::regex named("binlog corrupt: " + seg.string() + " at offset ([0-9]+):");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.log, m, named)) << r.log;
  const uint64_t offset = std::stoull(m[1]);
  EXPECT_LE(offset, at) << r.log;
  EXPECT_LT(at - offset, 256u) << "the offset is not that of the damaged record:\n" << r.log;
  EXPECT_NE(r.log.find("refusing to start"), std::string::npos) << r.log;
  EXPECT_EQ(ReadAll(seg), bad) << "nothing may be truncated or repaired: the evidence stays";
  EXPECT_FALSE(fs::exists(data / "relaykvd.addr"));

  // Restored, it starts and serves every write.
  WriteAll(seg, good);
  auto s = Relaykvd::Start(data);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->BinlogGtid().seq, 10u);
  EXPECT_EQ(*s->Get("k9"), std::optional<std::string>("MARKER-9-payload"));
}

TEST(CorruptBinlogProcessTest, GarbageAfterTheLastGroupIsTruncatedAndLoggedWithFileOffsetAndBytes) {
  TempDir dir;
  const fs::path data = dir.path() / "n";
  uint64_t end = 0;
  {
    auto s = Relaykvd::Start(data);
    ASSERT_NE(s, nullptr);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(s->Put("k" + std::to_string(i), "v").ok());
    auto st = s->client().ShowMasterStatus();
    ASSERT_TRUE(st.ok()) << st.status();
    ASSERT_EQ(st->file, "binlog.000001");
    end = st->position;
    ASSERT_EQ(s->Terminate(), 0);
  }
  const fs::path seg = data / "binlog" / "binlog.000001";
  std::string bytes = ReadAll(seg);
  ASSERT_GE(bytes.size(), end);
  std::mt19937 rng(14);
  for (int i = 0; i < 37; ++i) bytes.push_back(static_cast<char>(rng() | 1));  // never zero
  WriteAll(seg, bytes);

  auto s = Relaykvd::Start(data);
  ASSERT_NE(s, nullptr) << "a torn tail must not stop the server";
  EXPECT_EQ(s->BinlogGtid().seq, 5u);
  EXPECT_EQ(fs::file_size(seg) >= end, true);
  ASSERT_EQ(s->Terminate(), 0);
  const std::string log = ReadAll(data.string() + ".log");
  const std::string line = "binlog: torn tail in " + seg.string() + " at offset " +
                           std::to_string(end) + ": dropped " + std::to_string(bytes.size() - end) +
                           " bytes";
  EXPECT_NE(log.find(line), std::string::npos) << "expected \"" << line << "\" in:\n" << log;
  s = Relaykvd::Start(data);
  ASSERT_NE(s, nullptr);
  auto g = s->Put("after", "v");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->seq, 6u) << "dense after the truncation";
}

}  // namespace
}  // namespace relaykv::testing
