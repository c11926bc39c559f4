// State machine crash safety: relaykvd is SIGKILLed (or SIGTERMed) in the
// middle of a stream of writes; after a restart every write whose reply the
// client got is readable with its value.
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

// Every acknowledged write reads back with its value; returns the applied
// GTID the last read reported.
Gtid ExpectAllReadable(Relaykvd& s, const WriteLoad::Acked& acked, const std::string& when) {
  Gtid applied;
  for (const auto& [key, value] : acked.values) {
    auto got = s.client().Read(key);
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok() || got->value != std::optional<std::string>(value)) {
      ADD_FAILURE() << key << " lost " << when;
      break;
    }
    applied = got->applied;
  }
  return applied;
}

TEST(CrashTest, AcknowledgedWritesSurviveSigkill) {
  TempDir dir;
  const auto data = dir.path() / "n";
  WriteLoad::Acked acked;
  std::atomic<int> counter{0};
  for (int cycle = 0; cycle < 3; ++cycle) {
    auto s = Relaykvd::Start(data);
    ASSERT_NE(s, nullptr);
    WriteLoad load(s.get(), 4, &counter, std::to_string(cycle), &acked);
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + 100 * cycle));
    s->Kill();  // mid-stream
    load.Stop();

    s = Relaykvd::Start(data);
    ASSERT_NE(s, nullptr);
    const Gtid applied = ExpectAllReadable(*s, acked, "after SIGKILL (cycle " + std::to_string(cycle) + ")");
    EXPECT_GE(applied.seq, acked.max_seq);
    EXPECT_EQ(applied.seq, s->BinlogGtid().seq) << "applied GTID equals the binlog's last";
    s->Terminate();
  }
  EXPECT_GT(acked.values.size(), 100u) << "the load should have committed something";
}

// SIGTERM while many writes are in flight on the asynchronous write
// service: a clean exit (status 0, never an abort from answering a call on a
// queue that is shutting down), and every write answered OK survives.
TEST(CrashTest, SigtermUnderLoadExitsCleanlyAndKeepsAcknowledgedWrites) {
  TempDir dir;
  const auto data = dir.path() / "n";
  WriteLoad::Acked acked;
  std::atomic<int> counter{0};
  for (int cycle = 0; cycle < 3; ++cycle) {
    auto s = Relaykvd::Start(data);
    ASSERT_NE(s, nullptr);
    // More writers than the requests the service arms ahead.
    WriteLoad load(s.get(), 16, &counter, std::to_string(cycle), &acked);
    std::this_thread::sleep_for(std::chrono::milliseconds(200 + 150 * cycle));
    EXPECT_EQ(s->Terminate(), 0) << "cycle " << cycle << ": relaykvd did not exit cleanly";
    load.Stop();

    s = Relaykvd::Start(data);
    ASSERT_NE(s, nullptr);
    ExpectAllReadable(*s, acked, "after SIGTERM (cycle " + std::to_string(cycle) + ")");
    EXPECT_EQ(s->Terminate(), 0);
  }
  EXPECT_GT(acked.values.size(), 100u) << "the load should have committed something";
}

// Purging while writes flow: RocksDB runs without a WAL, so a segment may
// go only once every event in it is flushed to RocksDB. Events applied
// while a purge's flush runs are not, and a SIGKILL then must still find
// them in the binlog (issue 14.1: the floor was read after the flush). A
// semi-sync replica makes it likely: under AFTER_SYNC an event is applied
// only once ACKed, so sealed segments hold events that get applied while
// the flush runs; values larger than max_binlog_size put each event in a
// segment of its own.
TEST(CrashTest, PurgeUnderWritesNeverDropsWhatTheStateMachineHasNotFlushed) {
  TempDir dir;
  const auto data = dir.path() / "n";
  const std::vector<std::string> flags = {"--max_binlog_size=4096",
                                          "--rpl_semi_sync_master_enabled=ON",
                                          "--rpl_semi_sync_master_timeout=60000"};
  WriteLoad::Acked acked;
  std::atomic<int> counter{0};
  int purged_total = 0;
  auto s = Relaykvd::Start(data, flags);
  ASSERT_NE(s, nullptr);
  const int port = s->port();  // restarts keep it: the replica reconnects
  auto r = StartSemiSyncReplica(dir.path() / "r", *s);
  ASSERT_NE(r, nullptr);
  for (int cycle = 0; cycle < 5; ++cycle) {
    if (s == nullptr) s = Relaykvd::Start(data, flags, port);
    ASSERT_NE(s, nullptr) << "cycle " << cycle << ": relaykvd did not restart";
    ASSERT_TRUE(WaitFor([&] { return s->Status()["Rpl_semi_sync_master_clients"] == "1"; }));
    WriteLoad load(s.get(), 8, &counter, std::to_string(cycle), &acked, 6000);
    std::atomic<bool> stop{false};
    std::atomic<int> purged{0};
    std::thread purger([&] {
      while (!stop) {
        auto st = s->client().ShowMasterStatus();
        if (!st.ok()) break;  // killed
        auto n = s->client().PurgeBinaryLogsTo(st->file);
        if (!n.ok()) break;
        purged += n->purged;
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + 90 * cycle));
    s->Kill();
    stop = true;
    purger.join();
    load.Stop();
    purged_total += purged;

    s = Relaykvd::Start(data, flags, port);
    ASSERT_NE(s, nullptr) << "cycle " << cycle << ": relaykvd cannot reopen after SIGKILL mid-purge";
    ASSERT_TRUE(WaitForReplayedTail(*s)) << "cycle " << cycle << ": the replica never ACKed the tail";
    const Gtid applied = ExpectAllReadable(*s, acked, "after SIGKILL mid-purge (cycle " + std::to_string(cycle) + ")");
    EXPECT_GE(applied.seq, acked.max_seq);
  }
  EXPECT_GT(purged_total, 20) << "the purge loop should have removed segments";
  EXPECT_GT(acked.values.size(), 100u) << "the load should have committed something";
}

// The same race aimed at: a purge's flush is held open (test hook) while a
// stopped semi-sync replica is let go, so the commits it ACKs are applied
// after the flush began. Their segments must survive the purge: after a
// SIGKILL the primary reopens and every acknowledged write is there.
TEST(CrashTest, EventsAppliedDuringAPurgesFlushKeepTheirSegments) {
  TempDir dir;
  const std::vector<std::string> flags = {"--max_binlog_size=4096",
                                          "--rpl_semi_sync_master_enabled=ON",
                                          "--rpl_semi_sync_master_timeout=60000"};
  auto s = Relaykvd::Start(dir.path() / "p", flags, 0, {},
                           {"RELAYKV_PAUSE_AFTER_FLUSH_MS_FOR_TESTING=1500"});
  ASSERT_NE(s, nullptr);
  auto r = StartSemiSyncReplica(dir.path() / "r", *s);
  ASSERT_NE(r, nullptr);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(s->Put("early" + std::to_string(i), "v").ok());

  // Eight commits wait for the stopped replica: each in a sealed segment of
  // its own (values larger than max_binlog_size), none applied yet.
  r->Pause();
  WriteLoad::Acked acked;
  std::atomic<int> counter{0};
  WriteLoad load(s.get(), 8, &counter, "w", &acked, 6000);
  ASSERT_TRUE(WaitFor([&] { return s->Status()["Rpl_semi_sync_master_wait_sessions"] == "8"; }));
  auto target = s->client().ShowMasterStatus();
  ASSERT_TRUE(target.ok()) << target.status();
  std::thread purge([&] { s->client().PurgeBinaryLogsTo(target->file).IgnoreError(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the flush is done, its pause on
  r->Resume();  // ACKs: the eight are applied now, after the flush
  purge.join();
  s->Kill();
  load.Stop();
  ASSERT_GE(acked.values.size(), 8u) << "the eight commits should have been acknowledged";

  s = Relaykvd::Start(dir.path() / "p", flags);
  ASSERT_NE(s, nullptr) << "the primary cannot reopen: the purge removed events RocksDB had not flushed";
  ASSERT_TRUE(s->client().SetVariable("rpl_semi_sync_master_enabled", "OFF").ok());
  const Gtid applied = ExpectAllReadable(*s, acked, "after the purge and a SIGKILL");
  EXPECT_GE(applied.seq, acked.max_seq);
}

}  // namespace
}  // namespace relaykv::testing
