// Power cuts of real relaykvd processes (issue 14): a primary and one
// semi-sync replica (AFTER_SYNC, sync_binlog=1, sync_relay_log=1) run in
// fault injection shadow mode (storage/fault_injection.h), each journaling
// what its fsyncs made durable. Each cycle runs a concurrent write load for
// a random short time, then cuts the power of the primary, of the replica or
// of both: SIGKILL, then the data dir is rewritten from the shadow to what a
// power cut could leave (unsynced sectors torn, unsynced names undone,
// seeded). What was cut restarts on its old port, and then:
//   - every node restarts;
//   - every write acknowledged so far (all cycles) reads back on the primary
//     with its value: an ACK under AFTER_SYNC means durable on the primary
//     and on the replica, so no cut of one or both may lose it (past 20,000
//     writes: the last 3 cycles' and a sample of the older ones, all of
//     them every 25 cycles and at the end; the CHECKSUM's key count and
//     GTID every cycle);
//   - nothing was released asynchronously (no_tx 0 before each cut);
//   - once the replica has caught up, both CHECKSUMs are equal.
// Segments are small (max_binlog_size 64 KiB), so cuts also land in
// rotations (new segment, binlog.index replaced, directory fsyncs). While
// the load runs, each node also SET PERSISTs a harmless variable over and
// over (relaykvd-auto.cnf replaced atomically in the data dir): after a cut
// it holds the last value answered OK or the one in flight, nothing else.
// Seeded by RELAYKV_POWER_CUT_SEED (printed with the cycle on any failure);
// RELAYKV_POWER_CUT_CYCLES cuts (default 15; the long run: 500);
// RELAYKV_POWER_CUT_FLAGS: extra relaykvd flags for both nodes, space
// separated (e.g. "--sync_binlog=0" shows the test catching lost writes).
#include <fcntl.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "storage/fault_injection.h"
#include "storage/file.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

namespace fs = std::filesystem;

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

// A node started in shadow mode: RELAYKV_FAULT_SHADOW is set only around
// the fork (the child inherits it; this process must not track anything).
struct ShadowedNode {
  fs::path data;
  fs::path shadow;
  std::vector<std::string> flags;
  int port = 0;
  std::unique_ptr<Relaykvd> proc;

  bool Start() {
    proc = Relaykvd::Start(data, flags, port, {},
                           {std::string(FaultInjection::kShadowEnv) + "=" + shadow.string()});
    if (proc != nullptr) port = proc->port();
    return proc != nullptr;
  }
  // SIGKILL (the page cache survives, so nothing is lost yet).
  void Kill() { proc->Kill(); }
  // What the power cut leaves of the data dir, from the shadow journal.
  absl::StatusOr<PowerCutReport> ApplyCut(const PowerCutOptions& options) {
    return FaultInjection::ApplyShadowPowerCut(shadow, options);
  }
};

using KeyValues = std::vector<std::pair<std::string, std::string>>;

// Every write of `all` reads back on `s` with its value; the first few that
// do not are reported. Reads run on several threads.
void ExpectAllReadable(Relaykvd& s, const KeyValues& all) {
  constexpr int kReaders = 8;
  std::mutex mu;
  std::vector<std::string> lost;  // GUARDED_BY(mu)
  std::vector<std::thread> readers;
  for (int t = 0; t < kReaders; ++t) {
    readers.emplace_back([&, t] {
      for (size_t i = t; i < all.size(); i += kReaders) {
        auto got = s.Get(all[i].first);
        if (got.ok() && *got == std::optional<std::string>(all[i].second)) continue;
        std::lock_guard l(mu);
        lost.push_back(all[i].first + " (" +
                       (got.ok() ? (got->has_value() ? "value " + **got : std::string("missing"))
                                 : got.status().ToString()) +
                       ")");
        if (lost.size() >= 10) return;
      }
    });
  }
  for (auto& r : readers) r.join();
  std::string sample;
  for (const auto& k : lost) sample += " " + k;
  EXPECT_TRUE(lost.empty()) << lost.size() << "+ acknowledged writes lost or changed of "
                            << all.size() << " read:" << sample;
}

// Reading every acknowledged write back after every cut costs O(cycles^2)
// reads; past kFullCheckUpTo writes a cycle reads all those acknowledged in
// its last kRecentCycles cycles (what a cut can tear is the tail) plus a
// seeded sample of the older ones, and every kFullCheckEvery cycles (and
// the last) all of them. Every cycle also checks the primary's CHECKSUM
// covers at least as many keys and GTIDs as were acknowledged.
constexpr size_t kFullCheckUpTo = 20000;
constexpr int kFullCheckEvery = 25;
constexpr int kRecentCycles = 3;
constexpr size_t kOlderSample = 500;

// Waits until the primary has its semi-sync replica (and status ON).
bool WaitForSemiSyncClient(Relaykvd& primary) {
  return WaitFor([&] {
    auto st = primary.Status("Rpl_semi_sync_master_%");
    return st["Rpl_semi_sync_master_clients"] == "1" && st["Rpl_semi_sync_master_status"] == "ON";
  });
}

// The value SHOW VARIABLES gives `name` on `node`, or why there is none.
std::string ShownVariable(Relaykvd& node, const std::string& name) {
  auto v = node.client().ShowVariables(name);
  if (!v.ok()) return "(" + v.status().ToString() + ")";
  auto it = v->find(name);
  return it == v->end() ? "(not shown)" : it->second;
}

// SET PERSISTs kPersisted = 0, 1, 2, ... (mod 256) on one node until
// stopped or refused; remembers the last value answered OK and the one in
// flight when it stopped.
constexpr char kPersisted[] = "rpl_semi_sync_master_trace_level";
class Persister {
 public:
  Persister(const std::string& address, int first)
      : thread_([this, address, first] {
          auto admin = Client::Connect({address});
          for (int v = first; admin.ok() && !stop_; ++v) {
            const std::string value = std::to_string(v % 256);
            {
              std::lock_guard l(mu_);
              in_flight_ = value;
            }
            if (!(*admin)->SetVariable(kPersisted, value, /*persist=*/true).ok()) break;
            std::lock_guard l(mu_);
            last_ok_ = value;
            in_flight_.clear();
          }
        }) {}
  ~Persister() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::string last_ok() {
    std::lock_guard l(mu_);
    return last_ok_;
  }
  std::string in_flight() {
    std::lock_guard l(mu_);
    return in_flight_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string last_ok_;    // GUARDED_BY(mu_); empty: none yet
  std::string in_flight_;  // GUARDED_BY(mu_); empty: none
  std::thread thread_;     // last: starts once the fields exist
};

std::string ChecksumText(const absl::StatusOr<KeyspaceChecksum>& c) {
  return c.ok() ? ::testing::PrintToString(*c) : c.status().ToString();
}

// The shadow journal on its own, in this process: a registry journals a
// few operations and is dropped without a cut (as a SIGKILL drops it);
// ApplyShadowPowerCut then keeps what an fsync covered and undoes the rest.
// With `torn_journal` the journal's last entry was cut short by the kill:
// the sync it records counts as never done.
void RunShadowScenario(const fs::path& root, bool torn_journal) {
  const fs::path data = root / "data";
  const fs::path shadow = root / "shadow";
  fs::create_directories(data);
  ASSERT_TRUE(WriteFileAtomically(data / "old", "old").ok());
  {
    auto fi = FaultInjection::Install();
    ASSERT_TRUE(fi.ok()) << fi.status();
    ASSERT_TRUE((*fi)->StartShadow(shadow).ok());
    ASSERT_TRUE((*fi)->TrackDir(data).ok());
    auto a = File::Open(data / "a", O_RDWR | O_CREAT);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(a->WriteAt(0, "synced").ok());
    ASSERT_TRUE(a->DataSync().ok());
    ASSERT_TRUE(SyncDir(data).ok());
    auto b = File::Open(data / "b", O_RDWR | O_CREAT);
    ASSERT_TRUE(b.ok() && b->WriteAt(0, "b").ok() && b->DataSync().ok());
    ASSERT_TRUE(WriteFileAtomically(data / "m", "v1").ok());  // its fsync names "b" too
    ASSERT_TRUE(WriteFileAtomically(data / "m", "v2").ok());
    auto c = File::Open(data / "c", O_RDWR | O_CREAT);  // synced, but not its name
    ASSERT_TRUE(c.ok() && c->WriteAt(0, "c").ok() && c->DataSync().ok());
    fs::remove(data / "old");  // never made durable
    ASSERT_TRUE(a->WriteAt(6, "+more").ok());
    ASSERT_TRUE(a->DataSync().ok());  // the journal's last entry
    ASSERT_TRUE(a->WriteAt(11, std::string(3000, 'u')).ok());  // never synced
  }
  if (torn_journal) {
    const fs::path journal = shadow / "journal";
    fs::resize_file(journal, fs::file_size(journal) - 1);
  }
  PowerCutOptions options;
  options.tear = TearMode::kNone;
  auto report = FaultInjection::ApplyShadowPowerCut(shadow, options);
  ASSERT_TRUE(report.ok()) << report.status();
  auto read = [&](const char* name) -> std::string {
    auto s = ReadFileToString(data / name);
    return s.ok() ? *s : "(" + s.status().ToString() + ")";
  };
  EXPECT_EQ(read("a"), torn_journal ? "synced" : "synced+more");
  EXPECT_EQ(read("b"), "b") << "named durably by m's directory fsync";
  EXPECT_EQ(read("m"), "v2");
  EXPECT_FALSE(fs::exists(data / "c")) << "its name was never made durable";
  EXPECT_EQ(read("old"), "old") << "its unlink was never made durable";
  EXPECT_FALSE(fs::exists(data / "m.tmp"));
  EXPECT_TRUE(absl::IsNotFound(FaultInjection::ApplyShadowPowerCut(shadow, options).status()))
      << "the journal is consumed";
}

TEST(PowerCutProcessTest, ShadowJournalKeepsWhatWasSyncedAndUndoesTheRest) {
  TempDir dir;
  RunShadowScenario(dir.path() / "intact", false);
  RunShadowScenario(dir.path() / "torn", true);
}

// Review s31 F5: with sync_binlog=0 a RocksDB flush (PURGE BINARY LOGS
// flushes first; so does a full memtable) made the applied GTID durable
// while the binlog events under it were not. After a power cut the state
// machine was ahead of the binlog and the node refused to start (DATA_LOSS,
// a re-clone by hand). The binlog is now synced before every flush: the node
// restarts, in a new epoch, with every write the flush covered.
TEST(PowerCutProcessTest, StateMachineFlushNeverGetsAheadOfTheDurableBinlog) {
  TempDir dir;
  ShadowedNode p{dir.path() / "p", dir.path() / "p.shadow", {"--server-id=1", "--sync_binlog=0"},
                 0, nullptr};
  ASSERT_TRUE(p.Start());
  KeyValues flushed;
  for (int i = 0; i < 50; ++i) {
    flushed.emplace_back("f" + std::to_string(i), "v" + std::to_string(i));
    ASSERT_TRUE(p.proc->Put(flushed.back().first, flushed.back().second).ok());
  }
  const Gtid before = p.proc->BinlogGtid();
  auto logs = p.proc->client().ShowBinaryLogs();
  ASSERT_TRUE(logs.ok() && !logs->empty()) << logs.status();
  // Purges nothing (the active segment stays) but flushes RocksDB first.
  ASSERT_TRUE(p.proc->client().PurgeBinaryLogsTo(logs->back().name).ok());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(p.proc->Put("after" + std::to_string(i), "x").ok());
  p.Kill();
  PowerCutOptions options;
  options.tear = TearMode::kNone;
  auto report = p.ApplyCut(options);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_TRUE(p.Start()) << "the node must restart after a power cut";
  EXPECT_GE(p.proc->BinlogGtid().seq, before.seq) << "the flush covered seq " << before.seq;
  ExpectAllReadable(*p.proc, flushed);
  auto next = p.proc->Put("next", "1");
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_GT(next->epoch, before.epoch) << "an unsynced tail may be gone: a new epoch";
}

// The same for RocksDB's own flush of a full memtable, which runs on its
// threads (the listener syncs the binlog there): 20 MiB of writes fill one
// 16 MiB memtable, and once its SST exists the power goes.
TEST(PowerCutProcessTest, FullMemtableFlushNeverGetsAheadOfTheDurableBinlog) {
  TempDir dir;
  ShadowedNode p{dir.path() / "p", dir.path() / "p.shadow", {"--server-id=1", "--sync_binlog=0"},
                 0, nullptr};
  ASSERT_TRUE(p.Start());
  KeyValues first;  // in the first memtable, so in the flushed SST
  for (int i = 0; i < 20; ++i) {
    const std::string key = "m" + std::to_string(i);
    const std::string value = std::string(1 << 20, 'm') + std::to_string(i);
    ASSERT_TRUE(p.proc->Put(key, value).ok());
    if (i < 10) first.emplace_back(key, value);
  }
  auto has_sst = [&] {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(p.data / "db", ec)) {
      if (e.path().extension() == ".sst") return true;
    }
    return false;
  };
  ASSERT_TRUE(WaitFor(has_sst)) << "RocksDB did not flush the full memtable";
  p.Kill();
  PowerCutOptions options;
  options.tear = TearMode::kNone;
  ASSERT_TRUE(p.ApplyCut(options).ok());
  ASSERT_TRUE(p.Start()) << "the node must restart after a power cut";
  ExpectAllReadable(*p.proc, first);
}

TEST(PowerCutProcessTest, AcknowledgedWritesSurvivePowerCutsOfPrimaryAndReplica) {
  const uint64_t seed = EnvOr("RELAYKV_POWER_CUT_SEED", 20261126);
  const int cycles = static_cast<int>(EnvOr("RELAYKV_POWER_CUT_CYCLES", 15));
  std::printf("power cuts: seed %llu, %d cycles (RELAYKV_POWER_CUT_SEED, "
              "RELAYKV_POWER_CUT_CYCLES)\n",
              static_cast<unsigned long long>(seed), cycles);
  std::mt19937_64 rng(seed);
  TempDir dir;
  std::vector<std::string> durable = {"--sync_binlog=1", "--sync_relay_log=1",
                                      "--max_binlog_size=65536"};
  if (const char* extra = std::getenv("RELAYKV_POWER_CUT_FLAGS"); extra != nullptr) {
    std::istringstream in(extra);
    for (std::string flag; in >> flag;) {
      // Replaces the same --name=... (the last would win anyway: a shorter log line).
      const std::string name = flag.substr(0, flag.find('=') + 1);
      std::erase_if(durable, [&](const std::string& f) { return f.rfind(name, 0) == 0; });
      durable.push_back(flag);
    }
  }
  ShadowedNode p{dir.path() / "p", dir.path() / "p.shadow", durable, 0, nullptr};
  p.flags.insert(p.flags.end(), {"--server-id=1", "--rpl_semi_sync_master_enabled=ON",
                                 "--rpl_semi_sync_master_timeout=60000"});
  ShadowedNode r{dir.path() / "r", dir.path() / "r.shadow", durable, 0, nullptr};
  ASSERT_TRUE(p.Start());
  r.flags.insert(r.flags.end(), {"--server-id=2", "--rpl_semi_sync_slave_enabled=ON",
                                 "--replicate-from=" + p.proc->address()});
  ASSERT_TRUE(r.Start());

  // Per node (primary, replica): the value of kPersisted it must show.
  std::string persisted[2] = {ShownVariable(*p.proc, kPersisted),
                              ShownVariable(*r.proc, kPersisted)};
  int persist_counter = 0;
  WriteLoad::Acked acked;                 // every cycle's
  std::vector<size_t> acked_before_cycle;  // acked.values.size() when each cycle began
  KeyValues acked_in_order;               // in the order the cycles acknowledged them
  std::atomic<int> counter{0};
  int cuts[3] = {0, 0, 0};  // primary, replica, both
  PowerCutReport total;
  const auto started = std::chrono::steady_clock::now();
  for (int cycle = 0; cycle < cycles; ++cycle) {
    SCOPED_TRACE("RELAYKV_POWER_CUT_SEED=" + std::to_string(seed) + " cycle " +
                 std::to_string(cycle));
    ASSERT_TRUE(WaitForSemiSyncClient(*p.proc)) << "the replica did not reconnect";
    const int victim = static_cast<int>(rng() % 3);  // 0 primary, 1 replica, 2 both
    const auto load_ms = std::chrono::milliseconds(20 + rng() % 400);
    const int writers = 1 + static_cast<int>(rng() % 6);
    const size_t value_bytes = rng() % 3 == 0 ? 16 + rng() % 1500 : 0;
    std::string cut_reports;
    WriteLoad::Acked cycle_acked;
    // What each node may show after the cycle: the last SET PERSIST
    // answered OK, or the one in flight when it was cut.
    std::vector<std::string> may_show[2];
    {
      WriteLoad load(p.proc.get(), writers, &counter, "c" + std::to_string(cycle), &cycle_acked,
                     value_bytes);
      Persister persist_p(p.proc->address(), persist_counter);
      Persister persist_r(r.proc->address(), persist_counter + 128);
      persist_counter += 7;
      std::this_thread::sleep_for(load_ms);
      // AFTER_SYNC with a 60 s timeout: nothing may have been released
      // without the replica's ACK.
      const std::string no_tx = p.proc->Status("Rpl_semi_sync_master_no_tx")
                                    ["Rpl_semi_sync_master_no_tx"];
      EXPECT_EQ(no_tx, "0") << "a commit was released without an ACK";

      auto cut = [&](ShadowedNode& n, const char* name) {
        PowerCutOptions options;
        options.seed = rng();
        const int tear = static_cast<int>(rng() % 3);
        options.tear = tear == 0 ? TearMode::kNone
                                 : tear == 1 ? TearMode::kPrefix : TearMode::kRandomSectors;
        options.keep_unsynced_names = 0.5;
        auto report = n.ApplyCut(options);
        ASSERT_TRUE(report.ok()) << name << ": " << report.status();
        cut_reports += std::string(" ") + name + ": " + report->ToString() + ";";
        total.files_changed += report->files_changed;
        total.sectors_landed += report->sectors_landed;
        total.sectors_lost += report->sectors_lost;
        total.names_removed += report->names_removed;
        total.names_restored += report->names_restored;
      };
      auto settle = [&](int node, Persister& persister) {
        persister.Stop();
        const std::string ok = persister.last_ok();
        if (!ok.empty()) persisted[node] = ok;
        may_show[node] = {persisted[node]};
        if (!persister.in_flight().empty()) may_show[node].push_back(persister.in_flight());
      };
      if (victim == 0 || victim == 2) p.Kill();
      if (victim == 1 || victim == 2) r.Kill();
      settle(0, persist_p);
      settle(1, persist_r);
      if (victim == 0) {
        load.Stop();  // writers fail fast: the primary is gone
        cut(p, "primary");
        if (::testing::Test::HasFatalFailure()) return;
        ASSERT_TRUE(p.Start()) << "the primary did not restart after a power cut";
      } else if (victim == 1) {
        cut(r, "replica");
        if (::testing::Test::HasFatalFailure()) return;
        ASSERT_TRUE(r.Start()) << "the replica did not restart after a power cut";
        load.Stop();  // commits waiting for the ACK finish once it reconnects
      } else {
        load.Stop();
        cut(p, "primary");
        cut(r, "replica");
        if (::testing::Test::HasFatalFailure()) return;
        ASSERT_TRUE(p.Start()) << "the primary did not restart after a power cut of both";
        ASSERT_TRUE(r.Start()) << "the replica did not restart after a power cut of both";
      }
      if (::testing::Test::HasFatalFailure()) return;
    }
    // The primary's replayed tail is readable once the replica ACKs it.
    ASSERT_TRUE(WaitForReplayedTail(*p.proc)) << "the primary never applied its binlog";
    acked_before_cycle.push_back(acked_in_order.size());
    for (const auto& kv : cycle_acked.values) {
      acked.values.insert(kv);
      acked_in_order.push_back(kv);
    }
    acked.max_seq = std::max(acked.max_seq, cycle_acked.max_seq);
    ++cuts[victim];
    SCOPED_TRACE(std::string("cut ") + (victim == 0 ? "primary" : victim == 1 ? "replica" : "both") +
                 " after " + std::to_string(load_ms.count()) + " ms of load, " +
                 std::to_string(writers) + " writers, value bytes " + std::to_string(value_bytes) +
                 ";" + cut_reports);

    if (acked_in_order.size() <= kFullCheckUpTo || (cycle + 1) % kFullCheckEvery == 0 ||
        cycle + 1 == cycles) {
      ExpectAllReadable(*p.proc, acked_in_order);
    } else {
      const size_t recent =
          acked_before_cycle[std::max(0, static_cast<int>(acked_before_cycle.size()) - kRecentCycles)];
      KeyValues check(acked_in_order.begin() + static_cast<std::ptrdiff_t>(recent),
                      acked_in_order.end());
      for (size_t i = 0; i < kOlderSample && recent > 0; ++i) {
        check.push_back(acked_in_order[rng() % recent]);
      }
      ExpectAllReadable(*p.proc, check);
    }
    // relaykvd-auto.cnf after the cut: replaced atomically, so the last
    // value answered OK or the one in flight (a node not cut stopped
    // between requests: its last OK one).
    Relaykvd* procs[2] = {p.proc.get(), r.proc.get()};
    for (int node = 0; node < 2; ++node) {
      const std::string shown = ShownVariable(*procs[node], kPersisted);
      const auto& allowed = may_show[node];
      EXPECT_TRUE(std::find(allowed.begin(), allowed.end(), shown) != allowed.end())
          << (node == 0 ? "primary" : "replica") << " shows " << kPersisted << " = " << shown
          << " after the cut; expected " << allowed[0]
          << (allowed.size() > 1 ? " or " + allowed[1] : std::string());
      persisted[node] = shown;
    }
    auto sum = p.proc->Checksum();
    ASSERT_TRUE(sum.ok()) << sum.status();
    EXPECT_GE(sum->keys, acked.values.size()) << "the primary has fewer keys than were acknowledged";
    EXPECT_GE(sum->gtid.seq, acked.max_seq) << "the primary is behind the acknowledged GTIDs";
    ASSERT_TRUE(WaitForSemiSyncClient(*p.proc)) << "the replica did not reconnect";
    // Zero divergence: with no writes, the replica reaches the primary's
    // CHECKSUM (GTID, hash, keys).
    absl::StatusOr<KeyspaceChecksum> pc, rc;
    const bool same = WaitFor([&] {
      pc = p.proc->Checksum();
      rc = r.proc->Checksum();
      return pc.ok() && rc.ok() && *pc == *rc;
    });
    ASSERT_TRUE(same) << "primary and replica differ: primary " << ChecksumText(pc)
                      << ", replica " << ChecksumText(rc);
    if (::testing::Test::HasFailure()) return;  // the cycle and seed are in the trace
    if ((cycle + 1) % 50 == 0) {
      std::printf("power cuts: %d cycles, %zu acknowledged writes, %.0f s\n", cycle + 1,
                  acked.values.size(),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
                      .count());
      std::fflush(stdout);
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("power cuts: %d cycles in %.1f s (primary %d, replica %d, both %d); %zu "
              "acknowledged writes checked; %s; %s now %s (primary), %s (replica)\n",
              cycles, seconds, cuts[0], cuts[1], cuts[2], acked.values.size(),
              total.ToString().c_str(), kPersisted, persisted[0].c_str(), persisted[1].c_str());
  EXPECT_GT(acked.values.size(), static_cast<size_t>(cycles)) << "the load should have committed";
}

}  // namespace
}  // namespace relaykv::testing
