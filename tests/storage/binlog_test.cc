// Tests storage/binlog.cc and storage/binlog_reader.cc: group commit, seq
// lookup across rotated segments, tailing readers, visibility, relay-log
// appends. Retention: binlog_purge_test.cc; recovery: binlog_recovery_test.cc.
#include "storage/binlog.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "storage/binlog_format.h"
#include "storage/binlog_reader.h"
#include "storage/binlog_segments.h"
#include "tests/common/captured_log.h"
#include "tests/common/small_fs.h"
#include "tests/storage/test_util.h"

namespace relaykv {
namespace {

namespace fs = std::filesystem;
using testing::At;
using testing::HangGuardDeadline;
using testing::OpenBinlog;
using testing::PutEvent;
using testing::Range;
using testing::ReadEvents;
using testing::ReadSeqs;
using testing::TempDir;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Runs `per_thread` commits on each of `threads` threads; returns every
// commit's (seq, key). Failures are reported, not returned.
std::vector<std::pair<uint64_t, std::string>> CommitConcurrently(Binlog& b, int threads,
                                                                 int per_thread) {
  std::vector<std::vector<std::pair<uint64_t, std::string>>> got(static_cast<size_t>(threads));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&b, &got, t, per_thread] {
      for (int i = 0; i < per_thread; ++i) {
        const std::string key = "t" + std::to_string(t) + "-" + std::to_string(i);
        v1::Event e = PutEvent(key, "v");
        const absl::Status s = b.Commit(&e);
        if (!s.ok()) {
          ADD_FAILURE() << "commit " << key << ": " << s;
          return;
        }
        got[static_cast<size_t>(t)].emplace_back(e.gtid().seq(), key);
      }
    });
  }
  for (auto& w : workers) w.join();
  std::vector<std::pair<uint64_t, std::string>> all;
  for (auto& g : got) all.insert(all.end(), g.begin(), g.end());
  return all;
}

TEST(BinlogTest, ConcurrentCommitsGetDenseSeqsAndShareFsyncs) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  constexpr int kThreads = 16, kPerThread = 200;
  constexpr uint64_t kCommits = kThreads * kPerThread;
  std::map<uint64_t, std::string> key_of;
  for (auto& [seq, key] : CommitConcurrently(*b, kThreads, kPerThread)) {
    EXPECT_TRUE(key_of.emplace(seq, key).second) << "seq " << seq << " was given twice";
  }
  ASSERT_EQ(key_of.size(), kCommits);
  EXPECT_EQ(key_of.begin()->first, 1u);
  EXPECT_EQ(key_of.rbegin()->first, kCommits) << "seqs are dense: 1..N, no gap";
  EXPECT_EQ(b->LastVisible(), (Gtid{1, kCommits}));

  const std::vector<v1::Event> events = ReadEvents(*b);
  ASSERT_EQ(events.size(), kCommits);
  for (uint64_t i = 0; i < kCommits; ++i) {
    ASSERT_EQ(events[i].gtid().seq(), i + 1);
    ASSERT_EQ(events[i].mutations(0).key(), key_of[i + 1]) << "seq " << i + 1;
  }

  const BinlogStats s = b->stats();
  std::printf("[ group commit ] %llu commits by %d threads: %llu groups, %llu fdatasyncs, "
              "%.1f commits per fdatasync\n",
              static_cast<unsigned long long>(kCommits), kThreads,
              static_cast<unsigned long long>(s.groups), static_cast<unsigned long long>(s.syncs),
              s.syncs ? double(kCommits) / double(s.syncs) : 0.0);
  EXPECT_EQ(s.events, kCommits);
  EXPECT_EQ(s.syncs, s.groups) << "sync_binlog=1 syncs every group";
  EXPECT_LT(s.syncs, kCommits / 2) << "concurrent commits should share fdatasyncs";
}

TEST(BinlogTest, AsyncCommitsMixedWithBlockingOnesAreEachCalledBackOnceInSeqOrder) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  constexpr int kAsync = 2000, kBlockingThreads = 4, kPerThread = 100;
  constexpr uint64_t kCommits = kAsync + kBlockingThreads * kPerThread;
  std::vector<v1::Event> events(kAsync);
  std::mutex mu;
  std::condition_variable cv;
  int called = 0;
  std::vector<int> calls(kAsync, 0);
  std::vector<uint64_t> seq_at_callback(kAsync, 0);
  std::thread blocking([&] { CommitConcurrently(*b, kBlockingThreads, kPerThread); });
  for (int i = 0; i < kAsync; ++i) {
    events[i] = PutEvent("a" + std::to_string(i), "v");
    b->CommitAsync(&events[i], nullptr, [&, i](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      std::lock_guard l(mu);
      ++calls[i];
      // Visible by the time it is called back.
      seq_at_callback[i] = b->LastVisible().seq;
      ++called;
      cv.notify_all();
    });
  }
  blocking.join();
  {
    std::unique_lock l(mu);
    ASSERT_TRUE(cv.wait_until(l, HangGuardDeadline(), [&] { return called == kAsync; }))
        << called << " of " << kAsync << " async commits were called back";
  }
  std::set<uint64_t> seqs;
  for (int i = 0; i < kAsync; ++i) {
    EXPECT_EQ(calls[i], 1) << "commit " << i;
    const uint64_t seq = events[i].gtid().seq();
    EXPECT_GE(seq_at_callback[i], seq) << "called back before its event was visible";
    EXPECT_TRUE(seqs.insert(seq).second);
    if (i > 0) {
      EXPECT_GT(seq, events[i - 1].gtid().seq()) << "async commits keep their order";
    }
  }
  EXPECT_EQ(b->LastVisible(), (Gtid{1, kCommits}));
  const std::vector<v1::Event> read = ReadEvents(*b);
  ASSERT_EQ(read.size(), kCommits);
  for (int i = 0; i < kAsync; ++i) {
    EXPECT_EQ(read[events[i].gtid().seq() - 1].mutations(0).key(), "a" + std::to_string(i));
  }
  EXPECT_LT(b->stats().syncs, kCommits / 2) << "async commits share fdatasyncs";

  // After Close: called back with the error, on this thread, nothing written.
  b->Close();
  v1::Event late = PutEvent("late", "v");
  absl::Status late_status;
  b->CommitAsync(&late, nullptr, [&](absl::Status s) { late_status = s; });
  EXPECT_EQ(late_status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b->LastVisible().seq, kCommits);
}

TEST(BinlogTest, WaitUntilVisibleFollowsAWantThatMovesAndEndsOnClose) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  std::atomic<uint64_t> want{1};
  // Nothing visible: the deadline ends it, with what is visible.
  auto none = b->WaitUntilVisible(want, Clock::now() + milliseconds(50));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(*none, 0u);
  // Someone else took care of seq 1 (as a leader's direct send does): the
  // waiter now wants seq 2 and does not return for seq 1.
  want = 2;
  auto waiter = std::async(std::launch::async, [&] { return b->WaitUntilVisible(want, HangGuardDeadline()); });
  v1::Event e1 = PutEvent("a", "1");
  ASSERT_TRUE(b->Commit(&e1).ok());
  EXPECT_EQ(waiter.wait_for(milliseconds(100)), std::future_status::timeout) << "woken for seq 1";
  v1::Event e2 = PutEvent("b", "2");
  ASSERT_TRUE(b->Commit(&e2).ok());
  ASSERT_EQ(waiter.wait_for(std::chrono::seconds(30)), std::future_status::ready) << "not woken for seq 2";
  auto got = waiter.get();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, 2u);
  // Close wakes a waiter with CANCELLED.
  want = 3;
  auto closing = std::async(std::launch::async, [&] { return b->WaitUntilVisible(want, HangGuardDeadline()); });
  std::this_thread::sleep_for(milliseconds(20));
  b->Close();
  EXPECT_EQ(closing.get().status().code(), absl::StatusCode::kCancelled);
}

TEST(BinlogTest, SyncBinlogZeroNeverSyncs) {
  TempDir dir;
  auto b = OpenBinlog(dir.path(), 1ull << 30, /*sync_binlog=*/0);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(CommitConcurrently(*b, 8, 50).size(), 400u);
  EXPECT_EQ(b->stats().syncs, 0u);
  EXPECT_EQ(b->stats().events, 400u);
  EXPECT_EQ(b->LastVisible().seq, 400u) << "written groups are visible without a sync";
  EXPECT_EQ(ReadSeqs(*b), Range(1, 400));
}

TEST(BinlogTest, SyncBinlogNSyncsEveryNthGroup) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  b->set_sync_binlog(10);
  ASSERT_TRUE(testing::CommitKeys(*b, 50));  // one thread: one group per commit
  EXPECT_EQ(b->stats().groups, 50u);
  EXPECT_EQ(b->stats().syncs, 5u);
  b->set_sync_binlog(0);
  ASSERT_TRUE(testing::CommitKeys(*b, 20));
  EXPECT_EQ(b->stats().syncs, 5u);
}

// Counts what a BinlogObserver is told (atomics: called from leader threads).
struct CountingObserver : BinlogObserver {
  void OnSync(std::chrono::nanoseconds took) override {
    syncs.fetch_add(1);
    if (took.count() > 0) timed_syncs.fetch_add(1);
  }
  void OnGroup(uint64_t events) override {
    groups.fetch_add(1);
    group_events.fetch_add(events);
  }
  std::atomic<uint64_t> syncs{0}, timed_syncs{0}, groups{0}, group_events{0};
};

TEST(BinlogTest, ObserverIsToldEveryGroupAndEverySyncWithItsLatency) {
  TempDir dir;
  CountingObserver seen;
  BinlogOptions o;
  o.dir = dir.path();
  o.max_binlog_size = 4096;  // rotations: their sealing syncs are reported too
  o.observer = &seen;
  auto b = *Binlog::Open(o);
  EXPECT_EQ(CommitConcurrently(*b, 8, 50).size(), 400u);
  ASSERT_GT(b->Segments().size(), 1u);
  EXPECT_EQ(seen.groups.load(), b->stats().groups);
  EXPECT_EQ(seen.group_events.load(), 400u);
  EXPECT_EQ(seen.syncs.load(), b->stats().syncs);
  EXPECT_EQ(seen.timed_syncs.load(), seen.syncs.load());
  // A sync-only group (the relay log's SyncVisible) is a sync, not a group.
  ASSERT_TRUE(b->SyncVisible().ok());
  EXPECT_EQ(seen.syncs.load(), b->stats().syncs);
  EXPECT_EQ(seen.group_events.load(), 400u);
}

TEST(BinlogTest, ReaderFromAnySeqStartsThereAcrossRotatedSegments) {
  TempDir dir;
  constexpr uint64_t kMaxSize = 4096, kEvents = 500;
  auto b = OpenBinlog(dir.path(), kMaxSize);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(testing::CommitKeys(*b, kEvents, std::string(64, 'v')));

  const std::vector<SegmentInfo> segments = b->Segments();
  ASSERT_GT(segments.size(), 5u);
  EXPECT_EQ(segments.front().name, "binlog.000001");
  EXPECT_EQ(segments.front().first_seq, 1u);
  for (size_t i = 1; i < segments.size(); ++i) {
    EXPECT_GT(segments[i].first_seq, segments[i - 1].first_seq) << segments[i].name;
    EXPECT_GE(segments[i - 1].size_bytes, kMaxSize) << "rotated only once full";
    EXPECT_EQ(fs::file_size(dir.path() / segments[i - 1].name), segments[i - 1].size_bytes);
  }

  for (uint64_t seq = 1; seq <= kEvents; ++seq) {
    auto reader = b->NewReader(seq);
    ASSERT_TRUE(reader.ok()) << "seq " << seq << ": " << reader.status();
    EXPECT_EQ((*reader)->next_seq(), seq);
    auto r = (*reader)->Next();
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(r->has_value()) << "seq " << seq;
    EXPECT_EQ((*r)->event.gtid().seq(), seq);
    EXPECT_EQ((*r)->event.mutations(0).key(), "key" + std::to_string(seq - 1));
  }
  EXPECT_EQ(ReadSeqs(*b), Range(1, kEvents)) << "reading from 1 crosses every segment";

  auto at_end = b->NewReader(kEvents + 1);
  ASSERT_TRUE(at_end.ok()) << at_end.status();
  auto none = (*at_end)->Next();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_EQ(b->NewReader(kEvents + 2).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(b->NewReader(0).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(BinlogTest, ReopenAfterCleanCloseContinuesSeqsAndEpoch) {
  TempDir dir;
  {
    auto b = OpenBinlog(dir.path(), 4096);
    ASSERT_NE(b, nullptr);
    b->SetEpoch(2);
    ASSERT_TRUE(testing::CommitKeys(*b, 100, std::string(100, 'v')));
    b->Close();
  }
  auto b = OpenBinlog(dir.path(), 4096);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->LastVisible(), (Gtid{2, 100}));
  EXPECT_EQ(b->epoch(), 2u);
  v1::Event e = PutEvent("after", "reopen");
  ASSERT_TRUE(b->Commit(&e).ok());
  EXPECT_EQ(GtidFromProto(e.gtid()), (Gtid{2, 101}));
  EXPECT_EQ(ReadSeqs(*b), Range(1, 101));
}

TEST(BinlogTest, SetEpochStampsLaterCommitsAndNeverGoesDown) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->epoch(), 1u);
  b->SetEpoch(5);
  b->SetEpoch(3);
  EXPECT_EQ(b->epoch(), 5u);
  v1::Event e = PutEvent("k", "v");
  ASSERT_TRUE(b->Commit(&e).ok());
  EXPECT_EQ(GtidFromProto(e.gtid()), (Gtid{5, 1}));
}

TEST(BinlogTest, TailingReaderAtTheEndWakesWhenAnotherThreadCommits) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(testing::CommitKeys(*b, 3));
  auto reader = b->NewReader(4);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto now = (*reader)->Next();
  ASSERT_TRUE(now.ok());
  ASSERT_FALSE(now->has_value()) << "nothing after seq 3 yet";

  auto waiter = std::async(std::launch::async, [&] { return (*reader)->NextWait(HangGuardDeadline()); });
  ASSERT_EQ(waiter.wait_for(milliseconds(100)), std::future_status::timeout)
      << "NextWait returned before anything was committed";
  v1::Event e = PutEvent("wake", "up");
  ASSERT_TRUE(b->Commit(&e).ok());
  auto got = waiter.get();
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value()) << "woke without the event";
  EXPECT_EQ((*got)->event.gtid().seq(), 4u);
  EXPECT_EQ((*got)->event.mutations(0).key(), "wake");
  EXPECT_EQ((*reader)->next_seq(), 5u);
}

TEST(BinlogTest, NextWaitReturnsNulloptWhenNothingComesBeforeTheDeadline) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(testing::CommitKeys(*b, 2));
  auto reader = b->NewReader(3);
  ASSERT_TRUE(reader.ok()) << reader.status();
  const auto deadline = Clock::now() + milliseconds(100);
  auto r = (*reader)->NextWait(deadline);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->has_value());
  EXPECT_GE(Clock::now(), deadline) << "returned before its deadline";
  EXPECT_EQ((*reader)->next_seq(), 3u);
}

TEST(BinlogTest, CloseWakesAWaitingReaderWithCancelled) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  auto reader = b->NewReader(1);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto waiter = std::async(std::launch::async, [&] { return (*reader)->NextWait(HangGuardDeadline()); });
  ASSERT_EQ(waiter.wait_for(milliseconds(100)), std::future_status::timeout);
  b->Close();
  ASSERT_EQ(waiter.wait_for(testing::kHangGuard), std::future_status::ready) << "Close() did not wake it";
  EXPECT_EQ(waiter.get().status().code(), absl::StatusCode::kCancelled);
}

TEST(BinlogTest, AppendsAfterCloseFailWithFailedPrecondition) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  b->Close();
  v1::Event e = PutEvent("k", "v");
  EXPECT_EQ(b->Commit(&e).code(), absl::StatusCode::kFailedPrecondition);
  std::vector<v1::Event> relayed = {At(1, 1, PutEvent("k", "v"))};
  EXPECT_EQ(b->AppendReplicated(relayed, true).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b->LastVisible().seq, 0u);
}

TEST(BinlogTest, ReadersNeverSeeBeyondTheVisibleEnd) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  constexpr uint64_t kWriters = 4, kPerWriter = 200, kTotal = kWriters * kPerWriter;
  auto read_all = [&] {
    auto reader = b->NewReader(1);
    ASSERT_TRUE(reader.ok()) << reader.status();
    for (uint64_t want = 1; want <= kTotal; ++want) {
      auto r = (*reader)->NextWait(HangGuardDeadline());
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_TRUE(r->has_value()) << "hang guard passed at seq " << want;
      ASSERT_EQ((*r)->event.gtid().seq(), want);
      // LastVisible only grows, so reading it after the event is a valid check.
      ASSERT_LE(want, b->LastVisible().seq) << "read an event that was not yet visible";
    }
  };
  auto follow_visible = [&] {
    // Whatever WaitForVisibleAfter reports visible, a reader can read.
    auto reader = b->NewReader(1);
    ASSERT_TRUE(reader.ok()) << reader.status();
    uint64_t read = 0;
    while (read < kTotal) {
      const uint64_t visible = b->WaitForVisibleAfter(read, HangGuardDeadline());
      ASSERT_GT(visible, read) << "hang guard passed";
      for (; read < visible; ++read) {
        auto r = (*reader)->Next();
        ASSERT_TRUE(r.ok()) << r.status();
        ASSERT_TRUE(r->has_value()) << "seq " << read + 1 << " reported visible but unreadable";
      }
    }
  };
  std::vector<std::thread> readers;
  readers.emplace_back(read_all);
  readers.emplace_back(read_all);
  readers.emplace_back(follow_visible);
  EXPECT_EQ(CommitConcurrently(*b, kWriters, kPerWriter).size(), kTotal);
  for (auto& r : readers) r.join();
}

// Relay-log appends: events arrive with their GTIDs already assigned.
class ReplicatedAppendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    b_ = OpenBinlog(dir_.path());
    ASSERT_NE(b_, nullptr);
    std::vector<v1::Event> base = {At(1, 1, PutEvent("a", "1")), At(2, 2, PutEvent("b", "2"))};
    ASSERT_TRUE(b_->AppendReplicated(base, true).ok());
  }

  // Expects `events` refused with INVALID_ARGUMENT and nothing of them written.
  void ExpectRefused(std::vector<v1::Event> events) {
    const Gtid last = b_->LastVisible();
    const uint64_t events_before = b_->stats().events;
    const uint64_t size_before = fs::file_size(dir_.path() / "binlog.000001");
    const absl::Status s = b_->AppendReplicated(events, true);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_EQ(b_->LastVisible(), last);
    EXPECT_EQ(b_->stats().events, events_before);
    EXPECT_EQ(fs::file_size(dir_.path() / "binlog.000001"), size_before) << "bytes were written";
    EXPECT_EQ(ReadSeqs(*b_), Range(1, last.seq));
    // The binlog is not poisoned: the right continuation is still accepted.
    std::vector<v1::Event> next = {At(last.epoch, last.seq + 1, PutEvent("next", "v"))};
    EXPECT_TRUE(b_->AppendReplicated(next, true).ok());
  }

  TempDir dir_;
  std::unique_ptr<Binlog> b_;
};

TEST_F(ReplicatedAppendTest, DenseEventsAreAcceptedAsGiven) {
  const uint64_t syncs = b_->stats().syncs;
  std::vector<v1::Event> more = {At(2, 3, PutEvent("c", "3")), At(3, 4, PutEvent("d", "4"))};
  ASSERT_TRUE(b_->AppendReplicated(more, /*sync=*/true).ok());
  EXPECT_GT(b_->stats().syncs, syncs) << "sync=true forces an fdatasync";
  std::vector<v1::Event> unsynced = {At(3, 5, PutEvent("e", "5"))};
  ASSERT_TRUE(b_->AppendReplicated(unsynced, /*sync=*/false).ok());
  EXPECT_EQ(b_->LastVisible(), (Gtid{3, 5}));

  auto reader = b_->NewReader(3);
  ASSERT_TRUE(reader.ok()) << reader.status();
  for (const v1::Event& want : {more[0], more[1], unsynced[0]}) {
    auto r = (*reader)->Next();
    ASSERT_TRUE(r.ok() && r->has_value());
    EXPECT_EQ((*r)->payload, want.SerializeAsString()) << "stored as given";
    EXPECT_EQ(GtidFromProto((*r)->event.gtid()), GtidFromProto(want.gtid()));
  }
  v1::Event local = PutEvent("local", "v");
  ASSERT_TRUE(b_->Commit(&local).ok());
  EXPECT_EQ(GtidFromProto(local.gtid()), (Gtid{3, 6})) << "local commits continue the history";
}

TEST_F(ReplicatedAppendTest, GapIsRefused) { ExpectRefused({At(2, 4, PutEvent("x", "v"))}); }

TEST_F(ReplicatedAppendTest, DuplicateSeqIsRefused) { ExpectRefused({At(2, 2, PutEvent("x", "v"))}); }

TEST_F(ReplicatedAppendTest, DecreasingEpochIsRefused) {
  ExpectRefused({At(1, 3, PutEvent("x", "v"))});
}

TEST_F(ReplicatedAppendTest, BatchWithAGapInsideIsRefusedWhole) {
  ExpectRefused({At(2, 3, PutEvent("x", "v")), At(2, 5, PutEvent("y", "v"))});
}

TEST_F(ReplicatedAppendTest, BatchWithADuplicateInsideIsRefusedWhole) {
  ExpectRefused({At(2, 3, PutEvent("x", "v")), At(2, 3, PutEvent("y", "v"))});
}

TEST_F(ReplicatedAppendTest, BatchWithAnEpochGoingBackInsideIsRefusedWhole) {
  ExpectRefused({At(3, 3, PutEvent("x", "v")), At(2, 4, PutEvent("y", "v"))});
}

// Holds a group's leader before it writes (BinlogOptions'
// before_group_write_for_testing) while armed, so that writers queue
// behind it and form the next group in the order they came.
class HeldGroupLeader {
 public:
  // A binlog in `dir` whose group leaders this holds.
  absl::StatusOr<std::unique_ptr<Binlog>> Open(const std::filesystem::path& dir) {
    BinlogOptions o;
    o.dir = dir;
    o.before_group_write_for_testing = Hook();
    return Binlog::Open(o);
  }
  void Arm() {
    std::lock_guard l(mu_);
    armed_ = true;
  }
  // Whether a leader is held (within a hang guard).
  bool WaitHeld() {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, std::chrono::seconds(10), [&] { return held_; });
  }
  void Release() {
    {
      std::lock_guard l(mu_);
      armed_ = false;
    }
    cv_.notify_all();
  }

 private:
  std::function<void()> Hook() {
    return [this] {
      std::unique_lock l(mu_);
      if (!armed_) return;
      held_ = true;
      cv_.notify_all();
      cv_.wait(l, [&] { return !armed_; });
    };
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false;
  bool held_ = false;
};

// A local commit queued right behind a relay-log append of a higher epoch,
// in the same group, must take that epoch: epochs never go down along the
// history, and recovery refuses a binlog where they do.
TEST(BinlogTest, CommitGroupedAfterAHigherEpochAppendTakesThatEpoch) {
  TempDir dir;
  // The first group's leader is held before it writes, so that a relayed
  // append and then a commit queue behind it and form the next group, in
  // that order.
  HeldGroupLeader gate;
  gate.Arm();
  auto opened = gate.Open(dir.path());
  ASSERT_TRUE(opened.ok()) << opened.status();
  Binlog& b = **opened;
  const uint64_t epoch = b.epoch() + 1;
  v1::Event first = PutEvent("first", "v");
  auto leader = std::async(std::launch::async, [&] { return b.Commit(&first); });
  ASSERT_TRUE(gate.WaitHeld());
  std::vector<v1::Event> relayed = {At(epoch, 2, PutEvent("r", "v"))};
  auto append = std::async(std::launch::async, [&] { return b.AppendReplicated(relayed, false); });
  std::this_thread::sleep_for(milliseconds(50));  // queued behind the held leader
  v1::Event local = PutEvent("c", "v");
  auto commit = std::async(std::launch::async, [&] { return b.Commit(&local); });
  std::this_thread::sleep_for(milliseconds(50));  // queued behind the append
  const uint64_t groups = b.stats().groups;
  gate.Release();
  ASSERT_TRUE(leader.get().ok());
  ASSERT_TRUE(append.get().ok());
  ASSERT_TRUE(commit.get().ok());
  ASSERT_EQ(local.gtid().seq(), 3u);
  ASSERT_EQ(b.stats().groups, groups + 2) << "the append and the commit should share a group";
  EXPECT_EQ(local.gtid().epoch(), epoch)
      << "commit " << GtidFromProto(local.gtid()).ToString() << " follows a relayed event at epoch "
      << epoch;
  opened->reset();
  EXPECT_NE(OpenBinlog(dir.path()), nullptr) << "the binlog must reopen what it wrote";
}

// Review s47d F1: async writers are called back in seq order, also when a
// blocked writer leads a group while the committer is still calling back
// an earlier one. The node decides each commit's wait point in its
// callback; decided out of order, a later AFTER_COMMIT commit showed an
// earlier one that then decided AFTER_SYNC (after a SET of the wait
// point), before any replica held it.
TEST(BinlogTest, AsyncWritersAreCalledBackInSeqOrderWhoeverLeads) {
  TempDir dir;
  HeldGroupLeader gate;
  std::mutex mu;
  std::condition_variable cv;
  bool x_may_return = false;
  std::vector<std::string> order;
  auto opened = gate.Open(dir.path());
  ASSERT_TRUE(opened.ok()) << opened.status();
  Binlog& b = **opened;

  // X's callback runs on the committer and takes its time.
  std::promise<void> x_called, y_called;
  v1::Event x = PutEvent("x", "v");
  b.CommitAsync(&x, nullptr, [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    std::unique_lock l(mu);
    x_called.set_value();
    cv.wait_for(l, std::chrono::seconds(10), [&] { return x_may_return; });
    order.push_back("x");
  });
  x_called.get_future().wait();

  // A blocked writer leads the next group and is held before it writes:
  // a second blocked writer and then async Y queue behind it, so that the
  // second one leads Y's group.
  gate.Arm();
  v1::Event s1 = PutEvent("s1", "v"), s2 = PutEvent("s2", "v"), y = PutEvent("y", "v");
  auto first = std::async(std::launch::async, [&] { return b.Commit(&s1); });
  ASSERT_TRUE(gate.WaitHeld());
  auto second = std::async(std::launch::async, [&] { return b.Commit(&s2); });
  std::this_thread::sleep_for(milliseconds(200));  // queued behind the held leader
  b.CommitAsync(&y, nullptr, [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    std::lock_guard l(mu);
    order.push_back("y");
    y_called.set_value();
  });
  gate.Release();
  ASSERT_TRUE(first.get().ok());
  // s2 leads y's group and returns without the committer, which is still
  // in x's callback (were y queued first, s2 would wait for the committer).
  const bool s2_led = second.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  if (s2_led) {
    EXPECT_EQ(y_called.get_future().wait_for(std::chrono::milliseconds(300)),
              std::future_status::timeout)
        << "y was called back while x's callback still ran";
  }
  {
    std::lock_guard l(mu);
    x_may_return = true;
  }
  cv.notify_all();
  ASSERT_TRUE(second.get().ok());
  ASSERT_TRUE(s2_led && y.gtid().seq() == s2.gtid().seq() + 1)
      << "the test's setup failed: y was queued before s2 (the 200 ms sleep was not enough)";
  opened->reset();  // the committer has called everyone back
  EXPECT_EQ(order, (std::vector<std::string>{"x", "y"}));
}

TEST(BinlogTest, FirstReplicatedAppendToAnEmptyBinlogMustBeSeq1) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  std::vector<v1::Event> late = {At(1, 2, PutEvent("k", "v"))};
  EXPECT_EQ(b->AppendReplicated(late, true).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b->LastVisible().seq, 0u);
  std::vector<v1::Event> first = {At(1, 1, PutEvent("k", "v"))};
  EXPECT_TRUE(b->AppendReplicated(first, true).ok());
  EXPECT_EQ(b->LastVisible(), (Gtid{1, 1}));
}

// Reopens the binlog in `dir`: it holds exactly `committed` (the values of
// one-Put events, in seq order from 1).
void ExpectReopenedBinlogHolds(const fs::path& dir, const std::vector<std::string>& committed) {
  auto b = OpenBinlog(dir, 16 << 10);
  ASSERT_NE(b, nullptr);
  const std::vector<v1::Event> events = ReadEvents(*b);
  ASSERT_EQ(events.size(), committed.size());
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].gtid().seq(), i + 1);
    ASSERT_EQ(events[i].mutations(0).value(), committed[i]) << "seq " << i + 1;
  }
}

// Issue 14.4: a full disk fails the group being written, with
// RESOURCE_EXHAUSTED naming the file, and nothing else: once space is freed
// the next commits succeed by themselves, with no gap and no duplicate seq,
// and a reopen finds exactly the committed events.
TEST(BinlogTest, FullDiskFailsTheGroupThenCommitsResumeOnceSpaceIsFreed) {
  testing::SmallFilesystem fs(1 << 20);
  if (!fs.ok()) GTEST_SKIP() << fs.why();
  const auto dir = fs.path() / "binlog";
  std::vector<std::string> committed;  // values, in seq order
  {
    auto b = OpenBinlog(dir, /*max_binlog_size=*/16 << 10);
    ASSERT_NE(b, nullptr);
    fs.FillLeaving(48 << 10);
    absl::Status failed;
    for (int i = 0; i < 1000 && failed.ok(); ++i) {
      v1::Event e = PutEvent("k" + std::to_string(i), std::string(1000, 'a' + i % 26));
      failed = b->Commit(&e);
      if (failed.ok()) {
        ASSERT_EQ(e.gtid().seq(), committed.size() + 1);
        committed.push_back(e.mutations(0).value());
      }
    }
    ASSERT_EQ(failed.code(), absl::StatusCode::kResourceExhausted) << failed;
    ASSERT_GT(committed.size(), 10u) << "the disk should fill after some commits";
    EXPECT_NE(failed.message().find("No space left"), std::string::npos) << failed;
    // Still full: still refused, nothing half-written becomes visible.
    v1::Event again = PutEvent("again", std::string(1000, 'z'));
    EXPECT_EQ(b->Commit(&again).code(), absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(b->LastVisible().seq, committed.size());

    fs.Free();
    for (int i = 0; i < 100; ++i) {  // across a rotation too
      v1::Event e = PutEvent("after" + std::to_string(i), std::string(1000, 'A' + i % 26));
      ASSERT_TRUE(b->Commit(&e).ok()) << "commit " << i << " after space was freed";
      ASSERT_EQ(e.gtid().seq(), committed.size() + 1) << "dense seqs: the failed group's seq is reused";
      committed.push_back(e.mutations(0).value());
    }
  }
  ExpectReopenedBinlogHolds(dir, committed);
}

// CI failure of TxnTest.ConditionalWritesAcrossAFullBinlogDisk...: with a
// page left, a rotation creates the next segment and then cannot write
// binlog.index.tmp (later tries fail earlier: at the segment's own tmp
// file, with binlog.000002 holding that page). The old index is still in
// place, so nothing is
// uncertain: the binlog must go on refusing only while the disk is full,
// and rotate once space is freed (it used to refuse every write with
// INTERNAL until a restart).
TEST(BinlogTest, ARotationThatCannotWriteTheIndexIsTriedAgainOnceSpaceIsFreed) {
  testing::SmallFilesystem fs(1 << 20);
  if (!fs.ok()) GTEST_SKIP() << fs.why();
  const auto dir = fs.path() / "binlog";
  std::vector<std::string> committed;  // values, in seq order
  {
    auto b = OpenBinlog(dir, /*max_binlog_size=*/16 << 10);
    ASSERT_NE(b, nullptr);
    auto try_commit = [&](const std::string& key, char fill) {
      v1::Event e = PutEvent(key, std::string(1000, fill));
      absl::Status s = b->Commit(&e);
      if (s.ok()) {
        EXPECT_EQ(e.gtid().seq(), committed.size() + 1);
        committed.push_back(e.mutations(0).value());
      }
      return s;
    };
    ASSERT_TRUE(try_commit("first", 'a').ok());  // preallocates the segment
    testing::CapturedLog log;
    // Two pages: one for the group that crosses max_binlog_size (the
    // segment is preallocated up to it), one for the next segment's
    // header, none for the index.
    fs.FillLeaving(4096);
    ASSERT_EQ(std::filesystem::space(fs.path()).available, 8192u);
    const auto next_segment = dir / SegmentFileName(2);
    int refused_before = 0;
    for (int i = 0; i < 40 && !std::filesystem::exists(next_segment); ++i) {
      absl::Status s = try_commit("k" + std::to_string(i), 'b' + i % 20);
      ASSERT_TRUE(s.ok() || absl::IsResourceExhausted(s)) << s;
      refused_before += !s.ok();
    }
    ASSERT_TRUE(std::filesystem::exists(next_segment)) << "no rotation was tried";
    ASSERT_EQ(b->Segments().size(), 1u) << "the index should not have been written";
    // Still full: refused for the disk, not for good.
    int refused = 0;
    for (int i = 0; i < 5; ++i) {
      absl::Status s = try_commit("full" + std::to_string(i), 'x');
      ASSERT_TRUE(s.ok() || absl::IsResourceExhausted(s)) << s;
      refused += !s.ok();
    }
    // Every group failed or tried the rotation again, each logging at
    // most one line per 5 s (a full disk would otherwise log thousands).
    EXPECT_GT(refused, 1);
    EXPECT_EQ(log.CountLinesWith("rotation failed"), 1);
    EXPECT_EQ(log.CountLinesWith("not written"), 1);
    EXPECT_GE(b->stats().failed_rotations, 1u);
    EXPECT_EQ(b->stats().failed_groups, static_cast<uint64_t>(refused_before + refused))
        << "each refused commit was a group of its own";
    fs.Free();
    ASSERT_TRUE(try_commit("freed", 'y').ok());
    EXPECT_NE(log.LineWith("groups are written again from seq " + std::to_string(committed.size())),
              "")
        << "the end of the failures is logged";
    // A failed rotation is tried again after a short pause, not after
    // every group (review s37a F2); paced so the segment growing past
    // max_binlog_size meanwhile does not fill this small filesystem.
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; b->Segments().size() < 3 || i < 40; ++i) {
      absl::Status s = try_commit("after" + std::to_string(i), 'A' + i % 26);
      ASSERT_TRUE(s.ok()) << "commit " << i << " after space was freed: " << s;
      ASSERT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30))
          << "rotations did not resume: " << b->Segments().size() << " segments";
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_NE(log.LineWith("binlog: rotated to a new segment from seq"), "")
        << "the end of the failed rotations is logged";
  }
  ExpectReopenedBinlogHolds(dir, committed);
}

// Review s32-f5 F4: a rotation syncs the segment it seals, so everything
// visible is durable after it; SyncWritten (before a state machine flush)
// has nothing left to sync.
TEST(BinlogTest, SyncWrittenAfterARotationDoesNoFdatasync) {
  TempDir dir;
  auto b = OpenBinlog(dir.path(), /*max_binlog_size=*/4096, /*sync_binlog=*/0);
  ASSERT_NE(b, nullptr);
  while (b->Segments().size() < 2) ASSERT_TRUE(testing::CommitKeys(*b, 1, std::string(500, 'v')));
  const uint64_t syncs = b->stats().syncs;
  ASSERT_TRUE(b->SyncWritten().ok());
  EXPECT_EQ(b->stats().syncs, syncs) << "the rotation had synced everything visible";
}

// binlog.unsynced (binlog_format.h) is there exactly while something
// visible may be unsynced: written before the first unsynced group, gone
// after a synced one under sync_binlog=1 (review s31 L1: it used to stay
// for the whole run, so recovery cut the groups synced after a switch to 1
// at their first damage instead of refusing a flipped bit in them).
TEST(BinlogTest, UnsyncedMarkerStaysOnlyWhileSomethingVisibleIsUnsynced) {
  TempDir dir;
  const std::filesystem::path marker = dir.path() / binlog_format::kUnsyncedMarkerName;
  auto b = OpenBinlog(dir.path(), 1ull << 30, /*sync_binlog=*/0);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(testing::CommitKeys(*b, 3, std::string(500, 'u')));
  EXPECT_TRUE(std::filesystem::exists(marker)) << "groups went out unsynced";
  b->set_sync_binlog(1);
  ASSERT_TRUE(testing::CommitKeys(*b, 3, std::string(500, 's')));
  EXPECT_FALSE(std::filesystem::exists(marker)) << "a synced group made everything durable";

  // Killed here (a copy of the files as they are): a flipped bit in the
  // last synced group is corruption, not a torn tail to cut.
  TempDir killed;
  testing::CopyDir(dir.path(), killed.path());
  const uint64_t end = b->Segments().back().size_bytes;  // the file may run on: preallocated
  testing::EditSegment(killed.path(), [&](std::string& data) { data[end - 200] ^= 0x04; });
  EXPECT_EQ(testing::OpenStatus(killed.path()).code(), absl::StatusCode::kDataLoss);

  b->set_sync_binlog(0);
  ASSERT_TRUE(testing::CommitKeys(*b, 1));
  EXPECT_TRUE(std::filesystem::exists(marker)) << "unsynced again";
  b.reset();
  EXPECT_FALSE(std::filesystem::exists(marker)) << "a clean close syncs what was unsynced";
}

// A replica's relay log likewise: groups relayed under sync_relay_log=0
// mark it, and the first group relayed synced (the stream after SET GLOBAL
// sync_relay_log=1, which the primary counts again) takes it away, whatever
// sync_binlog says. It used to stay until a clean stop, so recovery cut
// ACKed, counted groups at their first damage (review s48a N7).
TEST(BinlogTest, ASyncedRelayGroupEndsTheUnsyncedMarker) {
  TempDir dir;
  const std::filesystem::path marker = dir.path() / binlog_format::kUnsyncedMarkerName;
  auto b = OpenBinlog(dir.path(), 1ull << 30, /*sync_binlog=*/0);
  ASSERT_NE(b, nullptr);
  uint64_t seq = 0;
  auto relay = [&](bool sync) {
    std::vector<v1::Event> events;
    for (int i = 0; i < 3; ++i) {
      ++seq;
      events.push_back(At(1, seq, PutEvent("k" + std::to_string(seq), std::string(500, 'r'))));
    }
    return b->AppendReplicated(events, sync);
  };
  ASSERT_TRUE(relay(/*sync=*/false).ok());
  EXPECT_TRUE(std::filesystem::exists(marker)) << "relayed groups went out unsynced";
  ASSERT_TRUE(relay(/*sync=*/true).ok());
  EXPECT_FALSE(std::filesystem::exists(marker)) << "a synced relay group made everything durable";

  TempDir killed;
  testing::CopyDir(dir.path(), killed.path());
  const uint64_t end = b->Segments().back().size_bytes;
  testing::EditSegment(killed.path(), [&](std::string& data) { data[end - 200] ^= 0x04; });
  EXPECT_EQ(testing::OpenStatus(killed.path()).code(), absl::StatusCode::kDataLoss)
      << "a flipped bit in an ACKed relay group is refused, not cut";

  ASSERT_TRUE(relay(/*sync=*/false).ok());
  EXPECT_TRUE(std::filesystem::exists(marker)) << "unsynced again";
  // The sync that makes a new sync_relay_log=1 stream's hello position an
  // ACK, with no relayed group after it (an idle primary): the same
  // (review s49a M1).
  ASSERT_TRUE(b->SyncVisible().ok());
  EXPECT_FALSE(std::filesystem::exists(marker)) << "SyncVisible made everything durable";
}

// A marker the last run left (it was killed with unsynced groups) stays
// until the node has fenced it (ForgetUnsyncedTail), whatever this run's
// own syncs and close do: it decides the next epoch at the next start.
TEST(BinlogTest, InheritedUnsyncedMarkerStaysUntilForgotten) {
  TempDir dir;
  const std::filesystem::path marker = dir.path() / binlog_format::kUnsyncedMarkerName;
  {
    auto b = OpenBinlog(dir.path(), 1ull << 30, /*sync_binlog=*/0);
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(testing::CommitKeys(*b, 2));
    TempDir killed;  // the state a SIGKILL leaves
    testing::CopyDir(dir.path(), killed.path());
    b.reset();
    std::filesystem::remove_all(dir.path());
    testing::CopyDir(killed.path(), dir.path());
  }
  ASSERT_TRUE(std::filesystem::exists(marker));
  {
    auto b = OpenBinlog(dir.path(), 1ull << 30, /*sync_binlog=*/0);
    ASSERT_NE(b, nullptr);
    EXPECT_TRUE(b->unsynced_tail_at_open());
    ASSERT_TRUE(testing::CommitKeys(*b, 1));  // this run's unsynced group
    b->set_sync_binlog(1);
    ASSERT_TRUE(testing::CommitKeys(*b, 1));
    EXPECT_TRUE(std::filesystem::exists(marker)) << "removed before the node fenced the last run's";
  }
  EXPECT_TRUE(std::filesystem::exists(marker)) << "removed at close before the node fenced it";
  auto b = OpenBinlog(dir.path(), 1ull << 30, /*sync_binlog=*/1);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(b->ForgetUnsyncedTail().ok());
  EXPECT_FALSE(std::filesystem::exists(marker));
  EXPECT_EQ(b->LastVisible().seq, 4u);
}

}  // namespace
}  // namespace relaykv


namespace relaykv {
namespace {

// Bytes this process has read through read(2)/pread(2) so far.
uint64_t BytesReadSoFar() {
  std::ifstream in("/proc/self/io");
  std::string name;
  uint64_t value = 0;
  while (in >> name >> value) {
    if (name == "rchar:") return value;
  }
  ADD_FAILURE() << "no rchar in /proc/self/io";
  return 0;
}

// Review s43b F5: a reader positioned at a seq read its whole segment from
// the header (every wait_for_gtid check, every Watch start: up to 1 GiB
// each). It now starts from the nearest seek point: those of the groups
// this run wrote at once, those of a segment an earlier run wrote once a
// reader has been through it.
TEST(BinlogTest, AReaderStartsNearItsSeqNotAtTheSegmentsStart) {
  TempDir dir;
  constexpr uint64_t kEvents = 12000;  // ~24 MiB in 8 MiB segments
  auto event = [](uint64_t seq) {
    std::string value(2000, '\0');
    for (size_t j = 0; j < value.size(); ++j) value[j] = static_cast<char>((seq * 131 + j * 7) % 251);
    return At(1, seq, PutEvent("key" + std::to_string(seq), value));
  };
  auto expect_event_at = [&](Binlog& b, uint64_t seq) {
    auto e = ReadEventAt(b, seq);
    ASSERT_TRUE(e.ok()) << e.status();
    ASSERT_TRUE(e->has_value()) << seq;
    EXPECT_EQ((*e)->SerializeAsString(), event(seq).SerializeAsString()) << seq;
  };
  {
    auto b = OpenBinlog(dir.path(), 8 << 20, 0);
    ASSERT_NE(b, nullptr);
    for (uint64_t first = 1; first <= kEvents; first += 100) {
      std::vector<v1::Event> batch;
      for (uint64_t s = first; s < first + 100; ++s) batch.push_back(event(s));
      ASSERT_TRUE(b->AppendReplicated(batch, false).ok());
    }
    ASSERT_GE(b->Segments().size(), 3u);
    const uint64_t before = BytesReadSoFar();
    expect_event_at(*b, kEvents - 10);
    EXPECT_LT(BytesReadSoFar() - before, 2u << 20) << "read from the segment's start";
    // What watchers compare their own reader's position with (review s44b L1).
    EXPECT_GT(b->ReadStartSeq(kEvents - 10), b->Segments().back().first_seq);
    EXPECT_LE(b->ReadStartSeq(kEvents - 10), kEvents - 10);
  }
  auto b = OpenBinlog(dir.path(), 8 << 20, 0);
  ASSERT_NE(b, nullptr);
  // A segment of an earlier run: read through once, then known.
  expect_event_at(*b, kEvents - 10);
  const uint64_t before = BytesReadSoFar();
  expect_event_at(*b, kEvents - 1000);
  EXPECT_LT(BytesReadSoFar() - before, 2u << 20) << "the first reader's points were not kept";
  // Wherever a reader starts, it reads the right events, densely, to the end.
  for (uint64_t from : {uint64_t{1}, uint64_t{2}, uint64_t{4000}, uint64_t{4001}, kEvents - 1000,
                        kEvents - 999, kEvents, kEvents + 1}) {
    if (from <= kEvents) expect_event_at(*b, from);
    EXPECT_EQ(ReadSeqs(*b, from), Range(from, kEvents)) << from;
  }
}


// Review s44b L2: one group may hold 8 MiB (a relay log's batch); its seek
// points are a stride apart inside it too, not only at group starts.
TEST(BinlogTest, ALargeGroupHasSeekPointsInsideIt) {
  TempDir dir;
  auto b = OpenBinlog(dir.path(), 1ull << 30, 0);
  ASSERT_NE(b, nullptr);
  std::vector<v1::Event> batch;
  for (uint64_t s = 1; s <= 4000; ++s) {
    batch.push_back(At(1, s, PutEvent("key" + std::to_string(s), std::string(2000, 'v'))));
  }
  ASSERT_TRUE(b->AppendReplicated(batch, false).ok());
  const uint64_t before = BytesReadSoFar();
  auto e = ReadEventAt(*b, 3990);
  ASSERT_TRUE(e.ok() && e->has_value()) << e.status();
  EXPECT_EQ((*e)->gtid().seq(), 3990u);
  EXPECT_LT(BytesReadSoFar() - before, 2u << 20) << "read from the group's start";
  EXPECT_EQ(ReadSeqs(*b, 2500), Range(2500, 4000));
}

}  // namespace
}  // namespace relaykv
