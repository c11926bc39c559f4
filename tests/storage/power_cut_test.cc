// Simulated power loss (storage/fault_injection.cc, issue 14) against what
// the binlog promises: every commit acknowledged under sync_binlog=1, every
// relay-log append acknowledged with sync, and every WriteFileAtomically()
// that returned OK survives a power cut at any instant, with any subset of
// the unsynced sectors torn in and every unsynced directory change undone.
// SIGKILL tests cannot see a missing fsync (the page cache survives); these
// can.
//
// Each test runs many cycles of: open, check everything known durable is
// there, write from several threads, cut the power at a random moment (the
// writers' next write or sync fails), apply the cut, repeat.
// RELAYKV_POWER_CUT_SEED=<n> reruns with another seed; a failure names the
// seed and the cycle.
#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "storage/binlog.h"
#include "storage/binlog_segments.h"
#include "storage/fault_injection.h"
#include "storage/file.h"
#include "storage/record.h"
#include "tests/storage/test_util.h"

namespace relaykv {
namespace {

namespace fs = std::filesystem;
using testing::OpenBinlog;
using testing::PutEvent;
using testing::ReadEvents;
using testing::TempDir;

// Small segments, so that rotation (new segment + index rewrite) happens
// every few cycles.
constexpr uint64_t kMaxBinlogSize = 16u << 10;
constexpr int kWriterThreads = 3;

uint64_t BaseSeed() {
  const char* env = std::getenv("RELAYKV_POWER_CUT_SEED");
  return env != nullptr ? std::strtoull(env, nullptr, 10) : 14;
}

// The cut of cycle `cycle`: mostly random sectors, sometimes none or an
// in-order prefix; one directory in four keeps its unsynced names.
PowerCutOptions CutOptions(uint64_t seed, int cycle) {
  PowerCutOptions o;
  o.seed = seed * 1000003 + static_cast<uint64_t>(cycle);
  switch (o.seed % 8) {
    case 0: o.tear = TearMode::kNone; break;
    case 1: o.tear = TearMode::kPrefix; break;
    default: o.tear = TearMode::kRandomSectors; break;
  }
  o.keep_unsynced_names = 0.25;
  return o;
}

// An event with a value of 1..1500 bytes, so groups span several sectors.
v1::Event RandomEvent(std::mt19937_64& rng, const std::string& key) {
  const size_t size = 1 + rng() % 1500;
  std::string value(size, '\0');
  for (char& c : value) c = static_cast<char>('a' + rng() % 26);
  return PutEvent(key, value);
}

class PowerCutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fi = FaultInjection::Install();
    ASSERT_TRUE(fi.ok()) << fi.status();
    fi_ = *std::move(fi);
  }

  // Makes `dir` and tracks it.
  fs::path TrackedDir(const std::string& name) {
    const fs::path dir = tmp_.path() / name;
    fs::create_directories(dir);
    absl::Status s = fi_->TrackDir(dir);
    EXPECT_TRUE(s.ok()) << s;
    return dir;
  }

  // Waits until `acked` reaches `target` (or the writers are done), then a
  // few more microseconds, then cuts the power.
  void CutPowerAfter(const std::atomic<int>& acked, int target, const std::atomic<int>& running,
                     std::mt19937_64& rng) {
    const auto deadline = testing::HangGuardDeadline();
    while (acked.load() < target && running.load() > 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 1500));
    fi_->CutPower();
  }

  // Checks the reopened binlog `b` against `durable` (seq -> serialized
  // event, everything known to have been on disk), then makes `durable` what
  // the binlog holds now (after a cut, whatever recovery kept is on disk).
  // `max_first_seq`: the binlog may start no later (purges asked for).
  void CheckAndAdopt(Binlog& b, std::map<uint64_t, std::string>* durable,
                     uint64_t max_first_seq) {
    const uint64_t first = b.FirstAvailableSeq();
    const Gtid last = b.LastVisible();
    ASSERT_LE(first, max_first_seq) << "segments were lost";
    ASSERT_LE(first, last.seq + 1);
    std::vector<v1::Event> events = ReadEvents(b, first);
    ASSERT_EQ(events.size(), last.seq + 1 - first) << "seqs are not dense from " << first;
    std::map<uint64_t, std::string> now;
    for (size_t i = 0; i < events.size(); ++i) {
      ASSERT_EQ(events[i].gtid().seq(), first + i);
      now[first + i] = events[i].SerializeAsString();
    }
    if (!events.empty()) {
      ASSERT_EQ(events.back().gtid().epoch(), last.epoch);
    }
    for (auto it = durable->lower_bound(first); it != durable->end(); ++it) {
      auto got = now.find(it->first);
      ASSERT_NE(got, now.end()) << "acknowledged seq " << it->first << " is lost (binlog ends at "
                                << last.seq << ")";
      ASSERT_EQ(got->second, it->second) << "seq " << it->first << " changed";
    }
    *durable = std::move(now);
  }

  // Applies the cut of `cycle` and adds up what it did.
  void ApplyCut(uint64_t seed, int cycle) {
    auto report = fi_->ApplyPowerCut(CutOptions(seed, cycle));
    ASSERT_TRUE(report.ok()) << report.status();
    ++cuts_;
    total_.files_changed += report->files_changed;
    total_.sectors_landed += report->sectors_landed;
    total_.sectors_lost += report->sectors_lost;
    total_.names_removed += report->names_removed;
    total_.names_restored += report->names_restored;
  }

  // With RELAYKV_POWER_CUT_KEEP=<dir>: copies `from` to <dir>/<name>
  // (replacing it), so that a failed run leaves the files it failed on and
  // what they held just before the cut.
  static void KeepForInspection(const fs::path& from, const std::string& name) {
    const char* keep = std::getenv("RELAYKV_POWER_CUT_KEEP");
    if (keep == nullptr || *keep == '\0') return;
    const fs::path to = fs::path(keep) / name;
    std::error_code ec;
    fs::remove_all(to, ec);
    fs::create_directories(to.parent_path(), ec);
    fs::copy(from, to, fs::copy_options::recursive, ec);
  }

  void TearDown() override {
    std::printf("%d power cuts: %s\n", cuts_, total_.ToString().c_str());
  }

  TempDir tmp_;
  std::unique_ptr<FaultInjection> fi_;
  int cuts_ = 0;
  PowerCutReport total_;
};

TEST_F(PowerCutTest, AcknowledgedCommitsSurviveEveryPowerCut) {
  constexpr int kCuts = 600;
  const uint64_t seed = BaseSeed();
  const fs::path dir = TrackedDir("binlog");
  std::mt19937_64 rng(seed);
  std::map<uint64_t, std::string> durable;  // seq -> serialized event
  uint64_t max_first_seq = 1;
  int rotations_seen = 0;
  uint64_t last_segment = 1;
  for (int cycle = 0; cycle < kCuts; ++cycle) {
    SCOPED_TRACE("RELAYKV_POWER_CUT_SEED=" + std::to_string(seed) + " cycle " +
                 std::to_string(cycle));
    auto b = OpenBinlog(dir, kMaxBinlogSize, 1);
    if (b == nullptr) KeepForInspection(dir, "after-cut");
    ASSERT_NE(b, nullptr);
    ASSERT_NO_FATAL_FAILURE(CheckAndAdopt(*b, &durable, max_first_seq));
    if (!durable.empty()) max_first_seq = std::max(max_first_seq, durable.begin()->first);
    uint64_t n = 0;
    ParseSegmentFileName(b->Segments().back().name, &n);
    if (n > last_segment) ++rotations_seen;
    last_segment = n;
    // Now and then purge, so unlinks not followed by a directory fsync
    // (and their revert by the cut) are covered too.
    if (rng() % 8 == 0 && b->LastVisible().seq > 40) {
      const uint64_t keep = b->LastVisible().seq - 40;
      auto purged = b->PurgeUpToSeq(keep, keep);
      ASSERT_TRUE(purged.ok()) << purged.status();
      max_first_seq = std::max(max_first_seq, keep);
    }

    std::atomic<int> acked{0};
    std::atomic<int> running{kWriterThreads};
    std::mutex mu;
    std::map<uint64_t, std::string> acked_events;  // guarded by mu
    std::vector<std::thread> writers;
    for (int t = 0; t < kWriterThreads; ++t) {
      writers.emplace_back([&, t, thread_seed = rng()] {
        std::mt19937_64 trng(thread_seed);
        for (int i = 0;; ++i) {
          v1::Event e = RandomEvent(trng, "c" + std::to_string(cycle) + "t" + std::to_string(t) +
                                              "-" + std::to_string(i));
          if (!b->Commit(&e).ok()) break;  // the power is cut
          // Acknowledged: durable under sync_binlog=1.
          std::lock_guard l(mu);
          EXPECT_TRUE(acked_events.emplace(e.gtid().seq(), e.SerializeAsString()).second)
              << "seq " << e.gtid().seq() << " acknowledged twice";
          acked.fetch_add(1);
        }
        running.fetch_sub(1);
      });
    }
    CutPowerAfter(acked, static_cast<int>(rng() % 25), running, rng);
    for (auto& w : writers) w.join();
    b.reset();
    KeepForInspection(dir, "before-cut");
    ASSERT_NO_FATAL_FAILURE(ApplyCut(seed, cycle));
    for (auto& [seq, event] : acked_events) {
      ASSERT_TRUE(durable.emplace(seq, event).second) << "seq " << seq << " acknowledged twice";
    }
  }
  SCOPED_TRACE("RELAYKV_POWER_CUT_SEED=" + std::to_string(seed) + " after the last cut");
  auto b = OpenBinlog(dir, kMaxBinlogSize, 1);
  ASSERT_NE(b, nullptr);
  ASSERT_NO_FATAL_FAILURE(CheckAndAdopt(*b, &durable, max_first_seq));
  // New commits continue the history.
  const Gtid last = b->LastVisible();
  v1::Event e = PutEvent("after", "the last cut");
  ASSERT_TRUE(b->Commit(&e).ok());
  EXPECT_EQ(e.gtid().seq(), last.seq + 1);
  EXPECT_GT(rotations_seen, 10) << "segments too big to exercise rotation";
  EXPECT_EQ(fi_->untracked_files(), 0) << "a file in the binlog dir bypassed File";
  std::printf("%zu events at the end, %d rotations seen\n", durable.size(), rotations_seen);
}

// sync_binlog=0 or N>1: groups are published before they are synced, so a
// cut may lose acknowledged commits (as in MySQL) and their pages land in any
// order. The binlog must still reopen every time (binlog.unsynced: cut at the
// first damage, never refused), hold only events that were committed, with
// dense seqs and nothing changed, and go on from there.
TEST_F(PowerCutTest, UnsyncedBinlogReopensAfterEveryPowerCut) {
  constexpr int kCuts = 200;
  const uint64_t seed = BaseSeed() + 7;
  const fs::path dir = TrackedDir("unsynced");
  std::mt19937_64 rng(seed);
  std::map<uint64_t, std::string> known;  // seq -> serialized event once committed
  for (int cycle = 0; cycle < kCuts; ++cycle) {
    SCOPED_TRACE("RELAYKV_POWER_CUT_SEED=" + std::to_string(seed) + " cycle " +
                 std::to_string(cycle));
    const uint32_t sync_binlog = cycle % 3 == 0 ? 3 : 0;
    auto b = OpenBinlog(dir, kMaxBinlogSize, sync_binlog);
    ASSERT_NE(b, nullptr) << "an unsynced binlog must reopen after any power cut";
    const uint64_t first = b->FirstAvailableSeq();
    const Gtid last = b->LastVisible();
    std::vector<v1::Event> events = ReadEvents(*b, first);
    ASSERT_EQ(events.size(), last.seq + 1 - first) << "seqs are not dense";
    for (const v1::Event& e : events) {
      auto it = known.find(e.gtid().seq());
      ASSERT_NE(it, known.end()) << "seq " << e.gtid().seq() << " was never committed";
      ASSERT_EQ(it->second, e.SerializeAsString()) << "seq " << e.gtid().seq() << " changed";
    }
    // What is gone may be committed again under the same seqs.
    known.erase(known.upper_bound(last.seq), known.end());

    std::atomic<int> acked{0};
    std::atomic<int> running{kWriterThreads};
    std::mutex mu;
    std::vector<std::thread> writers;
    for (int t = 0; t < kWriterThreads; ++t) {
      writers.emplace_back([&, t, thread_seed = rng()] {
        std::mt19937_64 trng(thread_seed);
        for (int i = 0;; ++i) {
          v1::Event e = RandomEvent(trng, "u" + std::to_string(cycle) + "t" + std::to_string(t) +
                                              "-" + std::to_string(i));
          const bool ok = b->Commit(&e).ok();
          std::lock_guard l(mu);
          // A commit the cut failed may still have reached the disk (its
          // outcome is unknown): it may be there, as the event it was.
          if (e.gtid().seq() != 0) known[e.gtid().seq()] = e.SerializeAsString();
          if (!ok) break;  // the power is cut
          acked.fetch_add(1);
        }
        running.fetch_sub(1);
      });
    }
    CutPowerAfter(acked, static_cast<int>(rng() % 40), running, rng);
    for (auto& w : writers) w.join();
    b.reset();
    ASSERT_NO_FATAL_FAILURE(ApplyCut(seed, cycle));
  }
}

TEST_F(PowerCutTest, SyncedRelayLogAppendsSurviveEveryPowerCut) {
  constexpr int kCuts = 150;
  const uint64_t seed = BaseSeed() + 1;
  const fs::path dir = TrackedDir("relay");
  std::mt19937_64 rng(seed);
  std::map<uint64_t, std::string> durable;
  for (int cycle = 0; cycle < kCuts; ++cycle) {
    SCOPED_TRACE("RELAYKV_POWER_CUT_SEED=" + std::to_string(seed - 1) + " cycle " +
                 std::to_string(cycle));
    auto b = OpenBinlog(dir, kMaxBinlogSize, /*sync_binlog=*/0);  // sync comes from the append
    ASSERT_NE(b, nullptr);
    ASSERT_NO_FATAL_FAILURE(CheckAndAdopt(*b, &durable, 1));

    // One appender (the IO thread): batches of 1..6 events continuing the
    // history, the epoch now and then going up (a failover upstream).
    std::atomic<int> acked{0};
    std::atomic<int> running{1};
    std::map<uint64_t, std::string> acked_events;
    Gtid next{std::max<uint64_t>(b->LastVisible().epoch, 1), b->LastVisible().seq + 1};
    std::thread appender([&, thread_seed = rng()] {
      std::mt19937_64 trng(thread_seed);
      for (;;) {
        if (trng() % 16 == 0) ++next.epoch;
        std::vector<v1::Event> batch;
        const size_t count = 1 + trng() % 6;
        for (size_t i = 0; i < count; ++i) {
          batch.push_back(testing::At(next.epoch, next.seq + i,
                                      RandomEvent(trng, "r" + std::to_string(next.seq + i))));
        }
        if (!b->AppendReplicated(batch, /*sync=*/true).ok()) break;
        // Acknowledged (what the IO thread would ACK): durable.
        for (const v1::Event& e : batch) acked_events[e.gtid().seq()] = e.SerializeAsString();
        next.seq += count;
        acked.fetch_add(1);
      }
      running.fetch_sub(1);
    });
    CutPowerAfter(acked, static_cast<int>(rng() % 8), running, rng);
    appender.join();
    b.reset();
    ASSERT_NO_FATAL_FAILURE(ApplyCut(seed, cycle));
    for (auto& [seq, event] : acked_events) durable[seq] = event;
  }
  auto b = OpenBinlog(dir, kMaxBinlogSize, 0);
  ASSERT_NE(b, nullptr);
  ASSERT_NO_FATAL_FAILURE(CheckAndAdopt(*b, &durable, 1));
  EXPECT_EQ(fi_->untracked_files(), 0);
}

// Every crash point of creating a binlog (CutPowerAfterOps walks them one
// by one): the directory opens afterwards as an empty binlog. (A cut after
// binlog.000001 is durable and before binlog.index is used to leave a
// binlog that every later Open refused: a node whose first start lost
// power never started again.)
TEST_F(PowerCutTest, EveryCrashPointOfCreatingABinlogOpensEmpty) {
  const uint64_t seed = BaseSeed() + 3;
  for (int64_t ops = 0;; ++ops) {
    SCOPED_TRACE("crash after " + std::to_string(ops) + " operations");
    ASSERT_LT(ops, 100) << "creating a binlog never completes";
    const fs::path dir = TrackedDir("create" + std::to_string(ops));
    fi_->CutPowerAfterOps(ops);
    BinlogOptions o;
    o.dir = dir;
    bool completed = Binlog::Open(o).ok() && !fi_->power_is_cut();
    ASSERT_NO_FATAL_FAILURE(ApplyCut(seed, static_cast<int>(ops)));
    auto b = OpenBinlog(dir);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->LastVisible(), (Gtid{0, 0}));
    v1::Event e = PutEvent("k", "v");
    ASSERT_TRUE(b->Commit(&e).ok());
    EXPECT_EQ(e.gtid().seq(), 1u);
    if (completed) break;
  }
}

// A rotation retried after a rename of binlog.index that may have happened
// creates a segment the index may already list (review s39d L1, s40a L4):
// here the index names segment 2 (from seq 5) while segment 1 went on to
// hold seqs 1..8, and the retry creates segment 2 anew from seq 9. Every
// crash point of that creation, with every kind of tear, leaves under the
// name the old segment 2 (recovery drops it: segment 1 is the last) or the
// new one, with a whole header, and no tmp file behind: seqs 1..8 are there
// and the next is 9. With the segment truncated in place and then written,
// a cut could leave it empty: "bad segment header", no start.
TEST_F(PowerCutTest, EveryCrashPointOfRecreatingAListedSegmentLeavesAWholeOne) {
  const uint64_t seed = BaseSeed() + 4;
  for (int64_t ops = 0;; ++ops) {
    ASSERT_LT(ops, 100) << "creating a segment never completes";
    bool completed = false;
    for (int tear = 0; tear < 8; ++tear) {
      const int cycle = static_cast<int>(ops) * 8 + tear;
      SCOPED_TRACE("crash after " + std::to_string(ops) + " operations, cut " +
                   std::to_string(cycle));
      const fs::path dir = TrackedDir("recreate" + std::to_string(cycle));
      uint64_t end = 0;
      {
        auto b = OpenBinlog(dir);
        ASSERT_NE(b, nullptr);
        ASSERT_TRUE(testing::CommitKeys(*b, 8));
        end = b->Segments().back().size_bytes;
      }
      {
        // Sealed, as the retried rotation does first (no preallocated space).
        auto f = File::Open(dir / SegmentFileName(1), O_RDWR);
        ASSERT_TRUE(f.ok()) << f.status();
        ASSERT_TRUE(f->Truncate(end).ok());
        ASSERT_TRUE(f->DataSync().ok());
      }
      ASSERT_TRUE(CreateSegment(dir, 2, 5, 1, NewSegmentKey()).ok());
      ASSERT_TRUE(WriteBinlogIndex(dir, {1, 2}).ok());
      fi_->CutPowerAfterOps(ops);
      completed = CreateSegment(dir, 2, 9, 1, NewSegmentKey()).ok() && !fi_->power_is_cut();
      ASSERT_NO_FATAL_FAILURE(ApplyCut(seed, cycle));
      const bool new_segment_on_disk = [&] {
        const std::string header = ReadFileToString(dir / SegmentFileName(2)).value_or("");
        uint64_t first = 0;
        return DecodeSegmentHeader(header, &first, nullptr, nullptr) && first == 9;
      }();
      EXPECT_TRUE(new_segment_on_disk || !completed)
          << "the new segment returned OK but is not durable";
      auto b = OpenBinlog(dir);
      ASSERT_NE(b, nullptr);
      EXPECT_EQ(b->Segments().size(), new_segment_on_disk ? 2u : 1u);
      EXPECT_EQ(b->LastVisible().seq, 8u);
      EXPECT_EQ(ReadEvents(*b).size(), 8u);
      EXPECT_FALSE(fs::exists(dir / (SegmentFileName(2) + ".tmp")));
      v1::Event e = PutEvent("next", "v");
      ASSERT_TRUE(b->Commit(&e).ok());
      EXPECT_EQ(e.gtid().seq(), 9u);
    }
    if (completed) break;
  }
}

// Every crash point of a fixed history of commits across several rotations,
// a purge and more commits, each with a seeded tear: whatever was
// acknowledged is there after recovery, and commits continue after it.
TEST_F(PowerCutTest, EveryCrashPointOfCommitsRotationsAndPurgeRecovers) {
  const uint64_t seed = BaseSeed() + 4;
  constexpr uint64_t kSmallSegment = 4u << 10;
  int points = 0;
  for (int64_t ops = 0;; ++ops) {
    SCOPED_TRACE("RELAYKV_POWER_CUT_SEED=" + std::to_string(seed - 4) + ", crash after " +
                 std::to_string(ops) + " operations");
    ASSERT_LT(ops, 2000) << "the history never completes";
    const fs::path dir = TrackedDir("points" + std::to_string(ops));
    std::map<uint64_t, std::string> acked;
    uint64_t max_first_seq = 1;
    bool completed = false;
    {
      auto b = OpenBinlog(dir, kSmallSegment, 1);
      ASSERT_NE(b, nullptr);
      fi_->CutPowerAfterOps(ops);
      std::mt19937_64 rng(seed);  // the same history every time
      auto commit = [&](int i) {
        v1::Event e = RandomEvent(rng, "k" + std::to_string(i));
        if (!b->Commit(&e).ok()) return false;
        acked[e.gtid().seq()] = e.SerializeAsString();
        return true;
      };
      completed = [&] {
        for (int i = 0; i < 16; ++i) {
          if (!commit(i)) return false;
        }
        max_first_seq = 9;
        if (!b->PurgeUpToSeq(8, 9).ok()) return false;
        for (int i = 16; i < 20; ++i) {
          if (!commit(i)) return false;
        }
        return true;
      }() && !fi_->power_is_cut();
    }
    ASSERT_NO_FATAL_FAILURE(ApplyCut(seed, static_cast<int>(ops)));
    auto b = OpenBinlog(dir, kSmallSegment, 1);
    ASSERT_NE(b, nullptr);
    ASSERT_NO_FATAL_FAILURE(CheckAndAdopt(*b, &acked, max_first_seq));
    const uint64_t next = b->LastVisible().seq + 1;
    v1::Event e = PutEvent("after", "the cut");
    ASSERT_TRUE(b->Commit(&e).ok());
    EXPECT_EQ(e.gtid().seq(), next);
    ++points;
    if (completed) break;
  }
  std::printf("%d crash points\n", points);
}

// Review s31 F2: a group that a killed leader wrote but never synced, found
// whole in the page cache at the next open, becomes visible (applied,
// shipped, ACKed by replicas). Recovery must make it durable before that:
// a power cut afterwards must not take it away, or its GTIDs are reused
// for other events. Without zeros after the group (it ended at
// max_binlog_size, where nothing is preallocated) recovery has nothing to
// cut, and used to sync nothing.
TEST_F(PowerCutTest, TailRecoveredFromThePageCacheIsDurableBeforeItIsVisible) {
  const fs::path dir = TrackedDir("page-cache-tail");
  uint64_t end = 0;
  {
    auto b = OpenBinlog(dir);
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(testing::CommitKeys(*b, 2));
    end = b->Segments().back().size_bytes;
  }
  {
    auto f = File::Open(dir / testing::kSegment1, O_RDWR);
    ASSERT_TRUE(f.ok()) << f.status();
    ASSERT_TRUE(f->Truncate(end).ok());  // no preallocated zeros after the last group
    ASSERT_TRUE(f->DataSync().ok());
    // The killed leader's group: written, not synced.
    std::string group;
    std::string header(binlog_format::kSegmentHeaderSize, '\0');
    size_t n = 0;
    ASSERT_TRUE(f->ReadAt(0, header.size(), header.data(), &n).ok());
    uint64_t first_seq = 0;
    uint32_t key = 0;
    ASSERT_TRUE(DecodeSegmentHeader(header, &first_seq, nullptr, &key));
    const v1::Event e = testing::At(1, 3, PutEvent("k3", "v3"));
    AppendEventRecord(&group, e.SerializeAsString(), key, end);
    AppendGroupEnd(&group, 3, 3);
    ASSERT_TRUE(f->WriteAt(end, group).ok());
  }
  {
    auto b = OpenBinlog(dir);
    ASSERT_NE(b, nullptr);
    ASSERT_EQ(b->LastVisible().seq, 3u);  // visible: readers and replicas may have it now
  }
  ASSERT_TRUE(fi_->ApplyPowerCut({.seed = 1, .tear = TearMode::kNone}).ok());
  auto b = OpenBinlog(dir);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->LastVisible().seq, 3u) << "a GTID made visible was lost to a power cut";
  EXPECT_EQ(ReadEvents(*b).size(), 3u);
}

// A leader that stops before its group's write, once armed: Hold() arms
// it, WaitHeld() returns once the next leader is stuck there, Release()
// lets it go on.
struct LeaderLatch {
  std::binary_semaphore in{0};
  std::binary_semaphore go{0};
  std::atomic<bool> armed{false};
  void Hold() { armed = true; }
  void WaitHeld() { in.acquire(); }
  void Release() { go.release(); }
};

// A binlog in `dir` with sync_binlog=0 (five groups written, visible, none
// synced) whose leaders stop at `latch`.
std::unique_ptr<Binlog> OpenUnsyncedWithLatch(const fs::path& dir, LeaderLatch* latch) {
  BinlogOptions o;
  o.dir = dir;
  o.sync_binlog = 0;
  o.before_group_write_for_testing = [latch] {
    if (!latch->armed.exchange(false)) return;
    latch->in.release();
    latch->go.acquire();
  };
  auto opened = Binlog::Open(o);
  EXPECT_TRUE(opened.ok()) << opened.status();
  if (!opened.ok()) return nullptr;
  std::unique_ptr<Binlog> b = *std::move(opened);
  EXPECT_TRUE(testing::CommitKeys(*b, 5));
  return b;
}

// Review s31 F5: what a state machine flush persists must be durable in the
// binlog first, and the flush runs on a RocksDB thread that must not queue
// behind a group (whose callbacks may wait for RocksDB). SyncWritten syncs
// the unsynced groups while a leader is stuck before its write, makes them
// survive a power cut, and does no I/O once nothing visible is unsynced.
TEST_F(PowerCutTest, SyncWrittenMakesUnsyncedGroupsDurableWithoutQueueing) {
  const fs::path dir = TrackedDir("sync-written");
  LeaderLatch latch;
  std::unique_ptr<Binlog> b = OpenUnsyncedWithLatch(dir, &latch);
  ASSERT_NE(b, nullptr);
  const uint64_t syncs = b->stats().syncs;
  latch.Hold();
  bool committed = false;
  std::thread stuck([&] { committed = testing::CommitKeys(*b, 1); });
  latch.WaitHeld();  // seq 6's leader holds the queue
  auto sync = std::async(std::launch::async, [&] { return b->SyncWritten(); });
  const bool returned = sync.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  if (!returned) latch.Release();  // let it finish, then fail
  ASSERT_TRUE(returned) << "SyncWritten waited for the group ahead of it";
  ASSERT_TRUE(sync.get().ok());
  EXPECT_EQ(b->stats().syncs, syncs + 1);
  ASSERT_TRUE(b->SyncWritten().ok());
  EXPECT_EQ(b->stats().syncs, syncs + 1) << "nothing new was visible: no second fdatasync";
  latch.Release();
  stuck.join();
  EXPECT_TRUE(committed);
  fi_->CutPower();  // before the close, whose fdatasync would cover everything
  b.reset();
  ASSERT_TRUE(fi_->ApplyPowerCut({.seed = 1, .tear = TearMode::kNone}).ok());
  b = OpenBinlog(dir, 1ull << 30, 0);
  ASSERT_NE(b, nullptr);
  EXPECT_GE(b->LastVisible().seq, 5u) << "synced groups were lost to a power cut";
  EXPECT_GE(ReadEvents(*b).size(), 5u);
}

// Review s32 F1: SyncWritten's fdatasync runs beside the leaders'. Linux
// reports a failed writeback to one fdatasync only and marks the pages
// clean, so the next one "succeeds" without them: a SyncVisible() leader
// whose sync came after SyncWritten's failed one must fail too, not tell
// the replica its relay log is durable.
TEST_F(PowerCutTest, SyncAfterAFailedSyncFailsToo) {
  const fs::path dir = TrackedDir("fsyncgate");
  LeaderLatch latch;
  std::unique_ptr<Binlog> b = OpenUnsyncedWithLatch(dir, &latch);
  ASSERT_NE(b, nullptr);
  latch.Hold();
  absl::Status leader_sync;
  std::thread leader([&] { leader_sync = b->SyncVisible(); });
  latch.WaitHeld();  // past its error check, before its fdatasync
  fi_->FailNextSyncs(1);
  EXPECT_EQ(b->SyncWritten().code(), absl::StatusCode::kInternal);
  latch.Release();
  leader.join();
  EXPECT_FALSE(leader_sync.ok()) << "a sync after a failed one claimed seqs 1..5 durable";
  EXPECT_FALSE(b->SyncWritten().ok());
  v1::Event e = PutEvent("after", "x");
  EXPECT_FALSE(b->Commit(&e).ok()) << "the binlog must refuse writes after a failed sync";
}

// Review s31 L4: after a failed fdatasync Linux may mark the group's pages
// clean without writing them. A restart without a reboot reads the page
// cache: the group, never answered OK, must not come back whole and be
// published (shipped, applied) while no disk holds it.
TEST_F(PowerCutTest, GroupWhoseSyncFailedIsGoneAfterARestartWithoutReboot) {
  const fs::path dir = TrackedDir("restart");
  std::unique_ptr<Binlog> b = OpenBinlog(dir);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(testing::CommitKeys(*b, 5));
  fi_->FailNextSyncs(1);
  v1::Event e = PutEvent("failed", "x");
  ASSERT_FALSE(b->Commit(&e).ok());
  b.reset();  // the process ends; the machine stays up
  b = OpenBinlog(dir);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->LastVisible().seq, 5u) << "the group whose fdatasync failed was published at restart";
  b.reset();
  ASSERT_TRUE(fi_->ApplyPowerCut({.seed = 1, .tear = TearMode::kNone}).ok());
  b = OpenBinlog(dir);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->LastVisible().seq, 5u);
}

// Review s33b F1: binlog.unsynced is removed after a synced group; if its
// unlink worked but the directory fsync failed, the binlog must not believe
// the marker is still there: the next unsynced group writes it again. The
// power goes at each operation in turn; cases where the synced group itself
// failed prove nothing and are skipped.
TEST_F(PowerCutTest, UnsyncedMarkerIsWrittenAgainAfterARemovalWhoseDirectorySyncFailed) {
  bool tested = false;
  for (int ops = 0; ops < 12; ++ops) {
    const fs::path dir = TrackedDir("unmark" + std::to_string(ops));
    const fs::path marker = dir / binlog_format::kUnsyncedMarkerName;
    std::unique_ptr<Binlog> b = OpenBinlog(dir, 1ull << 30, /*sync_binlog=*/0);
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(testing::CommitKeys(*b, 2));
    ASSERT_TRUE(fs::exists(marker));
    b->set_sync_binlog(1);
    fi_->CutPowerAfterOps(ops);
    v1::Event synced = PutEvent("synced", "s");
    const bool committed = b->Commit(&synced).ok();
    const bool cut = fi_->power_is_cut();
    fi_->CutPowerAfterOps(-1);
    if (cut) {
      // Power back on with the unlink kept; the binlog stays open (its
      // segment is no longer tracked), as after a failed directory fsync.
      ASSERT_TRUE(fi_->ApplyPowerCut({.seed = 1, .tear = TearMode::kNone, .keep_unsynced_names = 1.0}).ok());
      if (!committed || fs::exists(marker)) continue;  // the group failed, or the unlink never ran
      tested = true;
    }
    b->set_sync_binlog(0);
    ASSERT_TRUE(testing::CommitKeys(*b, 1));
    EXPECT_TRUE(fs::exists(marker)) << "ops " << ops << ": an unsynced group went out without the marker";
  }
  EXPECT_TRUE(tested);
}

// Review s31 F6: a directory made for durable files (the data dir,
// binlog/, db/) must have its name fsynced into its parent, every level
// made, or a power cut can take it with the acknowledged files inside. The
// fault layer does not model subdirectories (storage/fault_injection.h), so
// this checks that creation goes through the parent's fsync: with the power
// cut, that fsync fails and so must the creation.
TEST_F(PowerCutTest, CreatingADirectoryFsyncsItsNameIntoItsParent) {
  const fs::path parent = TrackedDir("parent");
  ASSERT_TRUE(CreatePrivateDirectory(parent / "made-before").ok());
  fi_->CutPower();
  absl::Status s = CreatePrivateDirectory(parent / "data");
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal)
      << "the new directory's name was not fsynced into " << parent << ": " << s;
  EXPECT_TRUE(CreatePrivateDirectory(parent / "made-before").ok()) << "one that exists: nothing to sync";
}

// A file replaced with WriteFileAtomically() (binlog.index, master.info,
// relaykvd-auto.cnf) is, after any cut, whole: the last version that
// returned OK or the one being written, never a mix, never an older one.
TEST_F(PowerCutTest, AtomicallyReplacedFileIsOldOrNewAfterEveryPowerCut) {
  constexpr int kCuts = 300;
  const uint64_t seed = BaseSeed() + 2;
  const fs::path dir = TrackedDir("meta");
  const fs::path path = dir / "master.info";
  std::mt19937_64 rng(seed);
  // Version k's content: its number, then 0..3000 bytes derived from it
  // (so versions differ in length and span several sectors).
  auto content = [](uint64_t k) {
    std::mt19937_64 r(k);
    std::string s = "version " + std::to_string(k) + "\n";
    s.append(r() % 3000, static_cast<char>('a' + k % 26));
    return s;
  };
  uint64_t version = 0;  // on disk now (0: no file yet)
  for (int cycle = 0; cycle < kCuts; ++cycle) {
    SCOPED_TRACE("RELAYKV_POWER_CUT_SEED=" + std::to_string(seed - 2) + " cycle " +
                 std::to_string(cycle));
    std::atomic<int> acked{0};
    std::atomic<int> running{1};
    std::atomic<uint64_t> last_ok{version};
    std::thread writer([&] {
      for (uint64_t k = version + 1;; ++k) {
        if (!WriteFileAtomically(path, content(k)).ok()) break;
        last_ok.store(k);
        acked.fetch_add(1);
      }
      running.fetch_sub(1);
    });
    CutPowerAfter(acked, static_cast<int>(rng() % 4), running, rng);
    writer.join();
    ASSERT_NO_FATAL_FAILURE(ApplyCut(seed, cycle));
    const uint64_t ok = last_ok.load();
    if (!fs::exists(path)) {
      ASSERT_EQ(ok, 0u) << "version " << ok << " returned OK but the file is gone";
      continue;
    }
    auto got = ReadFileToString(path);
    ASSERT_TRUE(got.ok()) << got.status();
    if (*got == content(ok)) {
      version = ok;
    } else {
      ASSERT_EQ(*got, content(ok + 1)) << "neither version " << ok << " (the last that returned "
                                       << "OK) nor the one being written";
      version = ok + 1;
    }
  }
  EXPECT_GT(version, static_cast<uint64_t>(kCuts / 2));
}

}  // namespace
}  // namespace relaykv
