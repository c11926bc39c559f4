// The binlog: group commit, lookup across rotated segments, tailing reads,
// visibility, relay-log appends and retention.
#include "storage/binlog.h"

#include <algorithm>
#include <atomic>
#include <future>
#include <set>
#include <thread>

#include "gtest/gtest.h"
#include "tests/storage/storage_test_util.h"

namespace relaykv {
namespace {

using testing::OpenBinlog;
using testing::PutEvent;
using testing::ReadSeqs;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

TEST(BinlogTest, ConcurrentCommitsShareFsyncsAndGetDenseSeqs) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  constexpr int kThreads = 16, kPerThread = 200;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::vector<uint64_t> returned;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        v1::Event e = PutEvent("t" + std::to_string(t) + "-" + std::to_string(i), "v");
        ASSERT_TRUE(b->Commit(&e).ok());
        std::lock_guard l(mu);
        returned.push_back(e.gtid().seq());
      }
    });
  }
  for (auto& t : threads) t.join();
  constexpr uint64_t kTotal = kThreads * kPerThread;
  std::sort(returned.begin(), returned.end());
  for (uint64_t i = 0; i < kTotal; ++i) ASSERT_EQ(returned[i], i + 1) << "seqs must be dense, unique";
  std::vector<uint64_t> read = ReadSeqs(*b);
  ASSERT_EQ(read.size(), kTotal);
  for (uint64_t i = 0; i < kTotal; ++i) ASSERT_EQ(read[i], i + 1);
  const BinlogStats s = b->stats();
  std::printf("%llu commits, %llu groups, %llu fsyncs (%.1f commits per fsync)\n",
              static_cast<unsigned long long>(kTotal), static_cast<unsigned long long>(s.groups),
              static_cast<unsigned long long>(s.syncs), double(kTotal) / double(s.syncs));
  EXPECT_EQ(s.events, kTotal);
  EXPECT_LT(s.syncs, kTotal / 2) << "group commit should share fdatasyncs";
  EXPECT_EQ(s.syncs, s.groups) << "sync_binlog=1 syncs every group";
}

TEST(BinlogTest, SyncBinlogZeroNeverSyncsAndNSyncsEveryNthGroup) {
  TempDir dir;
  auto b = OpenBinlog(dir.path(), 1ull << 30, 0);
  for (int i = 0; i < 50; ++i) {
    v1::Event e = PutEvent("k", "v");
    ASSERT_TRUE(b->Commit(&e).ok());
  }
  EXPECT_EQ(b->stats().syncs, 0u);
  EXPECT_EQ(b->LastVisible().seq, 50u);
  b->set_sync_binlog(10);
  for (int i = 0; i < 50; ++i) {
    v1::Event e = PutEvent("k", "v");
    ASSERT_TRUE(b->Commit(&e).ok());
  }
  EXPECT_EQ(b->stats().syncs, 5u);
}

TEST(BinlogTest, ReaderFindsAnySeqAcrossRotatedSegments) {
  TempDir dir;
  auto b = OpenBinlog(dir.path(), 4096);
  for (int i = 0; i < 500; ++i) {
    v1::Event e = PutEvent("key" + std::to_string(i), std::string(64, 'v'));
    ASSERT_TRUE(b->Commit(&e).ok());
  }
  auto segments = b->Segments();
  ASSERT_GT(segments.size(), 5u);
  for (size_t i = 1; i < segments.size(); ++i) EXPECT_GT(segments[i].first_seq, segments[i - 1].first_seq);
  for (uint64_t seq : {1u, 2u, 57u, 128u, 250u, 499u, 500u}) {
    auto r = b->NewReader(seq);
    ASSERT_TRUE(r.ok()) << r.status();
    auto ev = (*r)->Next();
    ASSERT_TRUE(ev.ok() && ev->has_value());
    EXPECT_EQ((*ev)->event.gtid().seq(), seq);
    EXPECT_EQ((*ev)->event.mutations(0).key(), "key" + std::to_string(seq - 1));
  }
  EXPECT_EQ(ReadSeqs(*b).size(), 500u);
  EXPECT_EQ(b->NewReader(502).status().code(), absl::StatusCode::kOutOfRange);
  // Reopen: seqs continue.
  b.reset();
  b = OpenBinlog(dir.path(), 4096);
  v1::Event e = PutEvent("after", "v");
  ASSERT_TRUE(b->Commit(&e).ok());
  EXPECT_EQ(e.gtid().seq(), 501u);
  EXPECT_EQ(ReadSeqs(*b).size(), 501u);
}

TEST(BinlogTest, TailingReaderWakesOnNewEventsAndTimesOut) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  auto reader = *b->NewReader(1);
  // Nothing there: a short wait returns nullopt.
  auto none = reader->NextWait(Clock::now() + std::chrono::milliseconds(50));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  auto waiter = std::async(std::launch::async, [&] {
    return reader->NextWait(Clock::now() + std::chrono::seconds(20));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  v1::Event e = PutEvent("wake", "up");
  ASSERT_TRUE(b->Commit(&e).ok());
  auto got = waiter.get();
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->event.mutations(0).key(), "wake");
}

TEST(BinlogTest, CloseWakesAWaitingReader) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  auto reader = *b->NewReader(1);
  auto waiter = std::async(std::launch::async, [&] {
    return reader->NextWait(Clock::now() + std::chrono::seconds(20));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  b->Close();
  auto got = waiter.get();
  EXPECT_EQ(got.status().code(), absl::StatusCode::kCancelled);
}

TEST(BinlogTest, ReadersNeverSeeBeyondTheVisibleEnd) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  std::atomic<bool> done{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        v1::Event e = PutEvent("k", "v");
        ASSERT_TRUE(b->Commit(&e).ok());
      }
    });
  }
  auto reader = *b->NewReader(1);
  uint64_t seen = 0;
  while (seen < 800) {
    auto r = reader->NextWait(Clock::now() + std::chrono::seconds(20));
    ASSERT_TRUE(r.ok() && r->has_value());
    seen = (*r)->event.gtid().seq();
    ASSERT_LE(seen, b->LastVisible().seq) << "read an event that was not yet visible";
  }
  for (auto& w : writers) w.join();
}

TEST(BinlogTest, ReplicatedAppendsMustContinueTheHistory) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  auto make = [](uint64_t epoch, uint64_t seq) {
    v1::Event e = PutEvent("k" + std::to_string(seq), "v");
    e.mutable_gtid()->set_epoch(epoch);
    e.mutable_gtid()->set_seq(seq);
    return e;
  };
  std::vector<v1::Event> ok = {make(1, 1), make(1, 2), make(2, 3)};
  ASSERT_TRUE(b->AppendReplicated(ok, true).ok());
  EXPECT_EQ(b->LastVisible(), (Gtid{2, 3}));
  std::vector<v1::Event> gap = {make(2, 5)};
  EXPECT_EQ(b->AppendReplicated(gap, true).code(), absl::StatusCode::kInvalidArgument);
  std::vector<v1::Event> dup = {make(2, 3)};
  EXPECT_EQ(b->AppendReplicated(dup, true).code(), absl::StatusCode::kInvalidArgument);
  std::vector<v1::Event> back = {make(1, 4)};
  EXPECT_EQ(b->AppendReplicated(back, true).code(), absl::StatusCode::kInvalidArgument);
  std::vector<v1::Event> bad_middle = {make(2, 4), make(2, 6)};
  EXPECT_EQ(b->AppendReplicated(bad_middle, true).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b->LastVisible(), (Gtid{2, 3})) << "nothing of a refused batch is written";
  EXPECT_EQ(ReadSeqs(*b), (std::vector<uint64_t>{1, 2, 3}));
  // Local commits continue at the replicated epoch.
  v1::Event e = PutEvent("local", "v");
  ASSERT_TRUE(b->Commit(&e).ok());
  EXPECT_EQ(GtidFromProto(e.gtid()), (Gtid{2, 4}));
}

TEST(BinlogTest, PurgeRemovesWholeOldSegmentsButNeverWhatIsNeeded) {
  TempDir dir;
  auto b = OpenBinlog(dir.path(), 4096);
  for (int i = 0; i < 400; ++i) {
    v1::Event e = PutEvent("key" + std::to_string(i), std::string(64, 'v'));
    ASSERT_TRUE(b->Commit(&e).ok());
  }
  auto segs = b->Segments();
  ASSERT_GT(segs.size(), 6u);
  // The floor protects segment 3's events: only segments 1 and 2 may go.
  const uint64_t floor = segs[2].first_seq + 1;
  auto n = b->PurgeTo(segs[5].name, floor);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(b->Segments().front().name, segs[2].name);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / segs[0].name));
  EXPECT_EQ(b->NewReader(1).status().code(), absl::StatusCode::kOutOfRange);
  // By seq: everything below segment 5's first seq.
  n = b->PurgeUpToSeq(segs[4].first_seq, UINT64_MAX);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2);
  // By age: all but the active one.
  n = b->PurgeOlderThan(std::filesystem::file_time_type::clock::now() + std::chrono::hours(1), UINT64_MAX);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(b->Segments().size(), 1u);
  EXPECT_EQ(b->Segments().front().name, segs.back().name);
  EXPECT_EQ(b->PurgeTo("binlog.000001", UINT64_MAX).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(b->PurgeTo("nonsense", UINT64_MAX).status().code(), absl::StatusCode::kInvalidArgument);
  // The purge survives a reopen.
  const uint64_t first = b->FirstAvailableSeq();
  b.reset();
  b = OpenBinlog(dir.path(), 4096);
  EXPECT_EQ(b->FirstAvailableSeq(), first);
  EXPECT_EQ(ReadSeqs(*b, first).back(), 400u);
}

TEST(BinlogTest, PurgeToTotalSizeKeepsTheNewestWithinTheLimit) {
  TempDir dir;
  auto b = OpenBinlog(dir.path(), 4096);
  for (int i = 0; i < 400; ++i) {
    v1::Event e = PutEvent("key" + std::to_string(i), std::string(64, 'v'));
    ASSERT_TRUE(b->Commit(&e).ok());
  }
  auto total = [&] {
    uint64_t t = 0;
    for (const auto& s : b->Segments()) t += s.size_bytes;
    return t;
  };
  const size_t before = b->Segments().size();
  auto n = b->PurgeToTotalSize(5 * 4096, UINT64_MAX);
  ASSERT_TRUE(n.ok());
  EXPECT_GT(*n, 0);
  EXPECT_LE(total(), 5u * 4096 + 4096) << "within the limit (plus the active segment's overshoot)";
  EXPECT_EQ(b->Segments().size(), before - static_cast<size_t>(*n));
  EXPECT_EQ(ReadSeqs(*b, b->FirstAvailableSeq()).back(), 400u);
  // The floor wins over the limit.
  const uint64_t first = b->FirstAvailableSeq();
  n = b->PurgeToTotalSize(1, first);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
}

TEST(BinlogTest, CommitsAfterCloseFail) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  b->Close();
  v1::Event e = PutEvent("k", "v");
  EXPECT_EQ(b->Commit(&e).code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace relaykv
