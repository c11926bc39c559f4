// State machine crash safety: relaykvd is SIGKILLed in the middle of a
// stream of writes; after a restart every write whose reply the client got
// is readable with its value, and the applied GTID equals the binlog's end.
#include <atomic>
#include <mutex>
#include <thread>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

TEST(CrashTest, AcknowledgedWritesSurviveSigkill) {
  TempDir dir;
  const auto data = dir.path() / "n";
  std::map<std::string, std::string> acked;  // key -> value the client saw committed
  uint64_t max_acked_seq = 0;
  int next = 0;
  for (int cycle = 0; cycle < 3; ++cycle) {
    auto s = Relaykvd::Start(data);
    ASSERT_NE(s, nullptr);
    std::mutex mu;
    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    std::atomic<int> counter{next};
    for (int t = 0; t < 4; ++t) {
      writers.emplace_back([&] {
        while (!stop) {
          const int i = counter++;
          const std::string key = "k" + std::to_string(i);
          const std::string value = "v" + std::to_string(i) + "-" + std::to_string(cycle);
          auto g = s->Put(key, value);
          if (!g.ok()) break;  // the server is gone
          std::lock_guard l(mu);
          acked[key] = value;
          max_acked_seq = std::max<uint64_t>(max_acked_seq, g->seq());
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + 100 * cycle));
    s->Kill();  // mid-stream
    stop = true;
    for (auto& w : writers) w.join();
    next = counter;

    s = Relaykvd::Start(data);
    ASSERT_NE(s, nullptr);
    v1::Gtid applied;
    for (const auto& [key, value] : acked) {
      auto got = s->Get(key, &applied);
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_EQ(*got, std::optional<std::string>(value)) << key << " lost after SIGKILL (cycle " << cycle << ")";
    }
    EXPECT_GE(applied.seq(), max_acked_seq);
    EXPECT_EQ(applied.seq(), s->BinlogGtid().seq()) << "applied GTID equals the binlog's last";
    s->Terminate();
  }
  EXPECT_GT(acked.size(), 100u) << "the load should have committed something";
}

// SIGTERM while many writes are in flight on the asynchronous write
// service: a clean exit (status 0, never an abort from answering a call on a
// queue that is shutting down), and every write answered OK survives.
TEST(CrashTest, SigtermUnderLoadExitsCleanlyAndKeepsAcknowledgedWrites) {
  TempDir dir;
  const auto data = dir.path() / "n";
  std::map<std::string, std::string> acked;
  std::atomic<int> counter{0};
  for (int cycle = 0; cycle < 3; ++cycle) {
    auto s = Relaykvd::Start(data);
    ASSERT_NE(s, nullptr);
    std::mutex mu;
    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    for (int t = 0; t < 16; ++t) {  // more than the requests the service arms ahead
      writers.emplace_back([&] {
        while (!stop) {
          const int i = counter++;
          const std::string key = "k" + std::to_string(i);
          auto g = s->Put(key, "v" + std::to_string(i));
          if (!g.ok()) break;  // shutting down
          std::lock_guard l(mu);
          acked[key] = "v" + std::to_string(i);
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200 + 150 * cycle));
    EXPECT_EQ(s->Terminate(), 0) << "cycle " << cycle << ": relaykvd did not exit cleanly";
    stop = true;
    for (auto& w : writers) w.join();

    s = Relaykvd::Start(data);
    ASSERT_NE(s, nullptr);
    for (const auto& [key, value] : acked) {
      auto got = s->Get(key);
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_EQ(*got, std::optional<std::string>(value)) << key << " lost (cycle " << cycle << ")";
    }
    EXPECT_EQ(s->Terminate(), 0);
  }
  EXPECT_GT(acked.size(), 100u) << "the load should have committed something";
}

}  // namespace
}  // namespace relaykv::testing
