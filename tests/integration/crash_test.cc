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
v1::Gtid ExpectAllReadable(Relaykvd& s, const WriteLoad::Acked& acked, const std::string& when) {
  v1::Gtid applied;
  for (const auto& [key, value] : acked.values) {
    auto got = s.Get(key, &applied);
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok() || *got != std::optional<std::string>(value)) {
      ADD_FAILURE() << key << " lost " << when;
      break;
    }
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
    const v1::Gtid applied = ExpectAllReadable(*s, acked, "after SIGKILL (cycle " + std::to_string(cycle) + ")");
    EXPECT_GE(applied.seq(), acked.max_seq);
    EXPECT_EQ(applied.seq(), s->BinlogGtid().seq()) << "applied GTID equals the binlog's last";
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
// while a purge's flush ran are not, and a SIGKILL then must still find
// them in the binlog (issue 14.1: the floor was read after the flush).
TEST(CrashTest, PurgeUnderWritesNeverDropsWhatTheStateMachineHasNotFlushed) {
  TempDir dir;
  const auto data = dir.path() / "n";
  WriteLoad::Acked acked;
  std::atomic<int> counter{0};
  int purged_total = 0;
  for (int cycle = 0; cycle < 6; ++cycle) {
    // Small segments and ~1 KiB values: each segment holds a few events.
    auto s = Relaykvd::Start(data, {"--max_binlog_size=4096"});
    ASSERT_NE(s, nullptr) << "cycle " << cycle << ": relaykvd did not restart";
    WriteLoad load(s.get(), 4, &counter, std::to_string(cycle), &acked, 1000);
    std::atomic<bool> stop{false};
    std::atomic<int> purged{0};
    std::thread purger([&] {
      while (!stop) {
        auto st = s->MasterStatus();
        if (!st.ok()) break;  // killed
        auto n = s->PurgeBinaryLogsTo(st->file());
        if (!n.ok()) break;
        purged += *n;
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(400 + 70 * cycle));
    s->Kill();
    stop = true;
    purger.join();
    load.Stop();
    purged_total += purged;

    s = Relaykvd::Start(data, {"--max_binlog_size=4096"});
    ASSERT_NE(s, nullptr) << "cycle " << cycle << ": relaykvd cannot reopen after SIGKILL mid-purge";
    const v1::Gtid applied = ExpectAllReadable(*s, acked, "after SIGKILL mid-purge (cycle " + std::to_string(cycle) + ")");
    EXPECT_GE(applied.seq(), acked.max_seq);
    s->Kill();
  }
  EXPECT_GT(purged_total, 20) << "the purge loop should have removed segments";
  EXPECT_GT(acked.values.size(), 100u) << "the load should have committed something";
}

}  // namespace
}  // namespace relaykv::testing
