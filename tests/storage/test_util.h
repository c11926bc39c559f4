// Helpers shared by the storage tests: events, a binlog opened in the test's
// own temp dir (TempDir, tests/common/temp_dir.h), reading it back, and raw
// file access for the tests that tear or flip bytes on disk.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "proto/event.pb.h"
#include "storage/binlog.h"
#include "storage/binlog_reader.h"
#include "storage/record.h"
#include "tests/common/temp_dir.h"

namespace relaykv::testing {

// Timed waits in storage tests are hang guards only, never timing claims.
inline constexpr std::chrono::seconds kHangGuard{10};
inline std::chrono::steady_clock::time_point HangGuardDeadline() {
  return std::chrono::steady_clock::now() + kHangGuard;
}

inline v1::Event PutEvent(const std::string& key, const std::string& value) {
  v1::Event e;
  e.set_timestamp_us(1);
  auto* m = e.add_mutations();
  m->set_op(v1::Mutation::PUT);
  m->set_key(key);
  m->set_value(value);
  return e;
}

inline v1::Event DeleteEvent(const std::string& key) {
  v1::Event e;
  e.set_timestamp_us(1);
  auto* m = e.add_mutations();
  m->set_op(v1::Mutation::DELETE);
  m->set_key(key);
  return e;
}

// `e` with a preassigned GTID (relay-log appends, state machine batches).
inline v1::Event At(uint64_t epoch, uint64_t seq, v1::Event e) {
  e.mutable_gtid()->set_epoch(epoch);
  e.mutable_gtid()->set_seq(seq);
  return e;
}

// Opens the binlog in `dir`; nullptr (and a test failure) if it does not
// open, so callers ASSERT_NE(b, nullptr).
inline std::unique_ptr<Binlog> OpenBinlog(const std::filesystem::path& dir,
                                          uint64_t max_binlog_size = 1ull << 30,
                                          uint32_t sync_binlog = 1) {
  BinlogOptions o;
  o.dir = dir;
  o.max_binlog_size = max_binlog_size;
  o.sync_binlog = sync_binlog;
  auto b = Binlog::Open(o);
  EXPECT_TRUE(b.ok()) << b.status();
  return b.ok() ? *std::move(b) : nullptr;
}

// Appends `e`'s record to `segment` (a whole segment file's bytes) as the
// binlog writes it: its payload whitened with the segment's key.
inline void AppendEventToSegment(std::string* segment, const v1::Event& e) {
  uint64_t first_seq = 0;
  uint32_t key = 0;
  EXPECT_TRUE(DecodeSegmentHeader(*segment, &first_seq, nullptr, &key));
  AppendEventRecord(segment, e.SerializeAsString(), key, 0);
}

// Commits PutEvent("key<i>", value) for i in [0, n); false on the first error.
inline bool CommitKeys(Binlog& b, uint64_t n, const std::string& value = "v") {
  for (uint64_t i = 0; i < n; ++i) {
    v1::Event e = PutEvent("key" + std::to_string(i), value);
    absl::Status s = b.Commit(&e);
    EXPECT_TRUE(s.ok()) << s;
    if (!s.ok()) return false;
  }
  return true;
}

// Every visible event from `from_seq` on, in order (stops at the first error,
// which fails the test).
inline std::vector<v1::Event> ReadEvents(Binlog& b, uint64_t from_seq = 1) {
  std::vector<v1::Event> events;
  auto reader = b.NewReader(from_seq);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return events;
  for (;;) {
    auto r = (*reader)->Next();
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok() || !r->has_value()) break;
    events.push_back(std::move((*r)->event));
  }
  return events;
}

inline std::vector<uint64_t> ReadSeqs(Binlog& b, uint64_t from_seq = 1) {
  std::vector<uint64_t> seqs;
  for (const v1::Event& e : ReadEvents(b, from_seq)) seqs.push_back(e.gtid().seq());
  return seqs;
}

// [first, last] as a vector.
inline std::vector<uint64_t> Range(uint64_t first, uint64_t last) {
  std::vector<uint64_t> v;
  for (uint64_t s = first; s <= last; ++s) v.push_back(s);
  return v;
}

// After a recovery the history goes on: the next commit gets seq `next`,
// and the binlog reads back 1..next with no gap.
inline void ExpectNextCommitIsSeq(Binlog& b, uint64_t next) {
  v1::Event e = PutEvent("after", "v");
  ASSERT_TRUE(b.Commit(&e).ok());
  EXPECT_EQ(e.gtid().seq(), next);
  EXPECT_EQ(ReadSeqs(b), Range(1, next));
}

inline std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void WriteFile(const std::filesystem::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
  out.close();
  ASSERT_TRUE(out.good()) << "cannot write " << p;
}

// `n` bytes from a generator seeded with `seed`: the same bytes every run.
inline std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string bytes(n, '\0');
  for (char& c : bytes) c = static_cast<char>(gen() & 0xff);
  return bytes;
}

// A copy of binlog directory `from` at `to` (which must not exist).
inline void CopyDir(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
}

// The first segment of a fresh binlog, which the recovery tests damage.
inline constexpr char kSegment1[] = "binlog.000001";

// Rewrites binlog.000001 in `dir` with `edit` applied to its bytes.
inline void EditSegment(const std::filesystem::path& dir,
                        const std::function<void(std::string&)>& edit) {
  std::string data = ReadFile(dir / kSegment1);
  edit(data);
  WriteFile(dir / kSegment1, data);
}

// What Binlog::Open says about `dir` (default options).
inline absl::Status OpenStatus(const std::filesystem::path& dir) {
  BinlogOptions o;
  o.dir = dir;
  return Binlog::Open(o).status();
}

// Flips bits 0x04 of byte `at` of binlog.000001 in a copy of `golden` at
// `work`; returns Open's status.
inline absl::Status OpenWithFlippedByte(const std::filesystem::path& golden,
                                        const std::filesystem::path& work, uint64_t at) {
  CopyDir(golden, work);
  EditSegment(work, [&](std::string& data) { data[at] ^= 0x04; });
  return OpenStatus(work);
}

}  // namespace relaykv::testing
