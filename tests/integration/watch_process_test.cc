// The change stream against real relaykvd processes: a watcher that
// resumes after its last GTID across SIGKILL restarts sees every
// acknowledged change exactly once, and `relaykv watch` prints one line
// per change.
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "relaykv/client.h"
#include "tests/common/temp_dir.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

using namespace std::chrono_literals;

// A Client::Watch of every key from the beginning, resuming by itself
// (resume_for) when the server goes away, on its own thread.
class Watcher {
 public:
  explicit Watcher(std::vector<std::string> addresses) {
    auto client = Client::Connect(std::move(addresses));
    EXPECT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
    thread_ = std::thread([this] {
      ClientWatchOptions o;
      o.after = Gtid{};
      o.resume_for = 60s;  // hang guard: a server that never comes back
      o.progress_interval = 100ms;
      status_ = client_->Watch(WatchRange{}, o, [this](const WatchBatch& b) {
        std::lock_guard l(mu_);
        for (const WatchEvent& e : b.events) events_.push_back(e);
        progress_ = b.progress;
        return !(stop_at_.seq != 0 && progress_.seq >= stop_at_.seq);
      });
    });
  }
  ~Watcher() {
    if (thread_.joinable()) thread_.join();
  }
  // Ends the watch once it has looked at `gtid`; returns its status.
  absl::Status StopAt(const Gtid& gtid) {
    {
      std::lock_guard l(mu_);
      stop_at_ = gtid;
    }
    thread_.join();
    return status_;
  }
  std::vector<WatchEvent> events() {
    std::lock_guard l(mu_);
    return events_;
  }

 private:
  std::unique_ptr<Client> client_;
  std::mutex mu_;
  std::vector<WatchEvent> events_;  // GUARDED_BY(mu_)
  Gtid progress_;                   // GUARDED_BY(mu_)
  Gtid stop_at_;                    // GUARDED_BY(mu_)
  absl::Status status_;             // written by the thread, read after join
  std::thread thread_;
};

TEST(WatchProcessTest, WatcherResumingAcrossSigkillSeesEveryAcknowledgedChangeExactlyOnce) {
  TempDir dir;
  const auto data = dir.path() / "n";
  auto s = Relaykvd::Start(data);
  ASSERT_NE(s, nullptr);
  const int port = s->port();
  Watcher watcher({s->address()});
  WriteLoad::Acked acked;
  std::atomic<int> counter{0};
  for (int cycle = 0; cycle < 3; ++cycle) {
    {
      WriteLoad load(s.get(), 4, &counter, std::to_string(cycle), &acked);
      std::this_thread::sleep_for(std::chrono::milliseconds(300 + 100 * cycle));
      s->Kill();  // mid-write, and mid-stream for the watcher
      load.Stop();
    }
    s = Relaykvd::Start(data, {}, port);  // the same address: the watcher reconnects
    ASSERT_NE(s, nullptr);
  }
  auto last = s->Put("last", "1");
  ASSERT_TRUE(last.ok()) << last.status();
  absl::Status w = watcher.StopAt(*last);
  ASSERT_TRUE(w.ok()) << w;
  const std::vector<WatchEvent> events = watcher.events();

  // Exactly once, in order: every seq from 1 to the last, each one time
  // (every write touches the watched range; sync_binlog=1 opens no epoch).
  ASSERT_EQ(events.size(), last->seq);
  std::map<std::string, std::vector<std::string>> puts;  // key -> values seen
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].gtid.seq, i + 1) << "a change missing or repeated around " << i + 1;
    for (const Mutation& m : events[i].changes) puts[m.key].push_back(m.value);
  }
  ASSERT_GT(acked.values.size(), 50u) << "the load should have committed something";
  for (const auto& [key, value] : acked.values) {
    ASSERT_EQ(puts[key], std::vector<std::string>{value}) << key;
  }
}

// Failover: the primary dies, its semi-sync replica is promoted (RESET
// SLAVE ALL, a new epoch). A watcher given both addresses resumes on the
// new primary after its last GTID and sees every acknowledged write of
// both primaries exactly once.
TEST(WatchProcessTest, WatcherFollowsTheNewPrimaryAfterAFailoverFromItsLastGtid) {
  TempDir dir;
  auto p = Relaykvd::Start(dir.path() / "p", {"--rpl_semi_sync_master_enabled=ON",
                                              "--rpl_semi_sync_master_timeout=60000"});
  ASSERT_NE(p, nullptr);
  auto r = StartSemiSyncReplica(dir.path() / "r", *p);
  ASSERT_NE(r, nullptr);
  Watcher watcher({p->address(), r->address()});
  std::vector<std::string> keys;
  for (int i = 0; i < 20; ++i) {
    keys.push_back("old" + std::to_string(i));
    ASSERT_TRUE(p->Put(keys.back(), "p").ok());  // ACKed: the replica holds it
  }
  p->Kill();
  ASSERT_TRUE(r->client().StopReplica(ReplicaThreads::kIo).ok());
  auto epoch = r->client().ResetReplicaAll();
  ASSERT_TRUE(epoch.ok()) << epoch.status();
  Gtid last;
  for (int i = 0; i < 10; ++i) {
    keys.push_back("new" + std::to_string(i));
    auto g = r->Put(keys.back(), "r");
    ASSERT_TRUE(g.ok()) << g.status();
    last = *g;
  }
  EXPECT_EQ(last.epoch, epoch->epoch);
  absl::Status w = watcher.StopAt(last);
  ASSERT_TRUE(w.ok()) << w;
  std::vector<std::string> seen;
  uint64_t prev = 0;
  for (const WatchEvent& e : watcher.events()) {
    EXPECT_GT(e.gtid.seq, prev) << "in order, never twice";
    prev = e.gtid.seq;
    for (const Mutation& m : e.changes) seen.push_back(m.key);
  }
  EXPECT_EQ(seen, keys);
}

// A peer cannot make the server send progress messages more often than
// every 100 ms (review s43b F7: at 1 ms every watcher woke and sent ~1000
// messages a second).
TEST(WatchProcessTest, AProgressIntervalUnder100msIsTakenAs100ms) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "p", {});
  ASSERT_NE(s, nullptr);
  auto client = Client::Connect({s->address()});
  ASSERT_TRUE(client.ok()) << client.status();
  ClientWatchOptions o;
  o.after = Gtid{};
  o.progress_interval = 1ms;
  int batches = 0;
  const auto start = std::chrono::steady_clock::now();
  absl::Status st = (*client)->Watch(WatchRange{}, o, [&](const WatchBatch&) {
    ++batches;
    return std::chrono::steady_clock::now() - start < 2s;
  });
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_GE(batches, 5);   // it does send them, about every 100 ms
  EXPECT_LE(batches, 40);  // not every millisecond (~2000)
}

// Batches larger than 64 KiB reach gRPC without a copy (review s43b F8):
// what the watcher receives is still every byte of them, in order.
TEST(WatchProcessTest, LargeChangesArriveWhole) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "p", {});
  ASSERT_NE(s, nullptr);
  std::vector<std::string> values;
  for (int i = 0; i < 3; ++i) {
    std::string v(1 << 20, '\0');
    for (size_t j = 0; j < v.size(); ++j) v[j] = static_cast<char>((j * 31 + i * 7) % 251);
    ASSERT_TRUE(s->Put("big" + std::to_string(i), v).ok());
    values.push_back(std::move(v));
  }
  ASSERT_TRUE(s->Put("small", "v").ok());
  auto client = Client::Connect({s->address()});
  ASSERT_TRUE(client.ok()) << client.status();
  ClientWatchOptions o;
  o.after = Gtid{};
  std::vector<std::string> got;
  absl::Status st = (*client)->Watch(WatchRange{}, o, [&](const WatchBatch& b) {
    for (const WatchEvent& e : b.events) {
      for (const auto& m : e.changes) got.push_back(m.value);
    }
    return got.size() < 4;
  });
  EXPECT_TRUE(st.ok()) << st;
  ASSERT_EQ(got.size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(got[i] == values[i]) << "value " << i << " differs";
  EXPECT_EQ(got[3], "v");
}

TEST(WatchProcessTest, CliWatchPrintsOneLinePerChangeUpToCount) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "n");
  ASSERT_NE(s, nullptr);
  auto g1 = s->Put("p/a", "1");
  auto g2 = s->Put("q/x", "other");
  auto g3 = s->Write({Mutation::Put("p/b", "2"), Mutation::Delete("p/a")});
  auto g4 = s->Put("p/c", "3");
  ASSERT_TRUE(g1.ok() && g2.ok() && g3.ok() && g4.ok());
  CliRun run = RunCliOn(*s, {"watch", "p/", "--from", "0", "--count", "3"});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, g1->ToString() + "  PUT p/a 1\n" + g3->ToString() + "  PUT p/b 2\n" +
                         g3->ToString() + "  DEL p/a\n");
  // Resuming after a GTID: the next change only.
  run = RunCliOn(*s, {"watch", "p/", "--from", g3->ToString(), "--count", "1"});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, g4->ToString() + "  PUT p/c 3\n");
  // Bad input: a clear error, exit status 1.
  run = RunCliOn(*s, {"watch", "p/", "--from", "nonsense"});
  EXPECT_EQ(run.status, 1);
  EXPECT_NE(run.err.find("--from takes a GTID"), std::string::npos) << run.err;
  run = RunCliOn(*s, {"watch", "p/", "--from", "9:2", "--count", "1"});
  EXPECT_EQ(run.status, 1);
  EXPECT_NE(run.err.find("not in this node's history"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace relaykv::testing
