// Chaos (issue 14): seeded rounds of failover under load, against real
// relaykvd processes. Three nodes, lossless semi-sync everywhere (AFTER_SYNC,
// wait_for_slave_count=1, a 60 s timeout so nothing goes async). Each round,
// under concurrent writers, the primary is SIGKILLed or SIGSTOPped (and
// sometimes one replica too, killed or stopped, never both); the replica holding the
// most is promoted, the other is repointed, and the old primary rejoins as a
// replica of the new one — accepted if its binlog is a prefix of the new
// primary's history, else refused with both GTIDs named and re-provisioned
// from scratch. The new primary of round i is the primary of round i+1.
//
// Checked every round: every acknowledged write, by key and value, on the new
// primary; every key it holds is either acknowledged or a write of this test
// it replicated (exact value), and the set it holds never shrinks (counted by
// CHECKSUM's key count); all accepted nodes converge to the same CHECKSUM.
// At the end every round's writes are checked again (by key on the primary,
// by CHECKSUM on the replicas).
//
// Known gap, counted and printed but not asserted (it belongs to the failover
// issue): a refused old primary still answers reads, including its tail of
// writes that were never acknowledged and never replicated, until it is
// re-provisioned.
//
//   RELAYKV_CHAOS_SEED    plan seed (default kDefaultSeed); printed on failure
//   RELAYKV_CHAOS_ROUNDS  rounds (default kDefaultRounds; the long run: 200)
//
// The seed fixes each round's plan (load time, kill or stop, the replica
// fault and its moment, how the replicas are stopped before the promotion);
// where the kill lands in the commit pipeline is up to the scheduler, so a
// failure is reproduced by rerunning the seed, not replayed exactly.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kDefaultSeed = 14;
constexpr int kDefaultRounds = 5;
constexpr int kWriters = 4;
// A hang guard for every wait: on expiry the round fails and each node's log
// is printed (by ~Relaykvd).
constexpr auto kGuard = std::chrono::seconds(30);

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

// One data dir and server_id for the whole test; the process comes and goes.
struct Node {
  std::string name;
  uint32_t server_id = 0;
  fs::path dir;
  std::unique_ptr<Relaykvd> proc;
};

std::vector<std::string> Flags(const Node& n, const std::string& replicate_from = "") {
  std::vector<std::string> f = {"--server-id=" + std::to_string(n.server_id),
                                "--rpl_semi_sync_master_enabled=ON",
                                "--rpl_semi_sync_master_timeout=60000",
                                "--rpl_semi_sync_master_wait_for_slave_count=1",
                                "--rpl_semi_sync_slave_enabled=ON"};
  if (!replicate_from.empty()) f.push_back("--replicate-from=" + replicate_from);
  return f;
}

// A line in the node's log (the harness prints it on failure), so a reader
// can tell the rounds and restarts apart.
void Note(const Node& n, const std::string& text) {
  std::ofstream(n.dir.string() + ".log", std::ios::app) << "==== chaos: " << text << "\n";
}

// Refused for good: the IO thread stopped with an error (not "Connecting",
// which is a retry).
bool Refused(Relaykvd& r) {
  auto st = r.ReplicaStatus();
  return st["Slave_IO_Running"] == "No" && !st["Last_IO_Error"].empty();
}

class OnExit {
 public:
  explicit OnExit(std::function<void()> f) : f_(std::move(f)) {}
  ~OnExit() { f_(); }
  OnExit(const OnExit&) = delete;
  OnExit& operator=(const OnExit&) = delete;

 private:
  std::function<void()> f_;
};

// What one round does, drawn from the seed.
struct Plan {
  int load_ms = 0;
  bool stop_primary = false;  // SIGSTOP (then SIGKILL after the promotion) instead of SIGKILL
  enum { kNone, kBefore, kAfter } replica_fault = kNone;  // one replica too, and when
  int victim = 0;             // which replica (0 or 1)
  bool victim_stop = false;   // SIGSTOP it (SIGCONT after the primary's fault) instead of SIGKILL
  int replica_kill_ms = 0;    // kBefore: that long after the load started
  bool stop_sql_too = false;  // STOP SLAVE (both threads) rather than IO only before the compare
  // The load ends before the faults: the old primary has no unreplicated
  // tail and must be accepted back (the rejoin path a loaded kill rarely takes).
  bool idle = false;

  static Plan Draw(std::mt19937_64& rng) {
    Plan p;
    p.load_ms = std::uniform_int_distribution<int>(100, 400)(rng);
    p.stop_primary = std::bernoulli_distribution(0.4)(rng);
    const int f = std::uniform_int_distribution<int>(0, 3)(rng);
    p.replica_fault = f <= 1 ? kNone : f == 2 ? kBefore : kAfter;
    p.victim = std::uniform_int_distribution<int>(0, 1)(rng);
    p.victim_stop = std::bernoulli_distribution(0.3)(rng);
    p.replica_kill_ms = std::uniform_int_distribution<int>(0, p.load_ms)(rng);
    p.stop_sql_too = std::bernoulli_distribution(0.5)(rng);
    p.idle = std::bernoulli_distribution(0.15)(rng);
    return p;
  }
  std::string ToString() const {
    std::string s = "load " + std::to_string(load_ms) + " ms, " + (idle ? "then idle, " : "") + "primary " +
                    (stop_primary ? "SIGSTOP" : "SIGKILL");
    const std::string how = victim_stop ? " SIGSTOP" : " SIGKILL";
    if (replica_fault == kBefore) {
      s += ", replica " + std::to_string(victim) + how + " at " + std::to_string(replica_kill_ms) + " ms";
    } else if (replica_fault == kAfter) {
      s += ", replica " + std::to_string(victim) + how + " after the primary";
    }
    if (replica_fault != kNone && victim_stop) s += " (SIGCONT before the compare)";
    return s + (stop_sql_too ? ", STOP SLAVE" : ", STOP SLAVE IO_THREAD");
  }
};

class ChaosTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) {
      nodes_[i].name = "n" + std::to_string(i + 1);
      nodes_[i].server_id = i + 1;
      nodes_[i].dir = dir_.path() / nodes_[i].name;
    }
    nodes_[0].proc = Relaykvd::Start(nodes_[0].dir, Flags(nodes_[0]));
    ASSERT_NE(nodes_[0].proc, nullptr);
    for (int i = 1; i < 3; ++i) {
      nodes_[i].proc = Relaykvd::Start(nodes_[i].dir, Flags(nodes_[i], nodes_[0].proc->address()));
      ASSERT_NE(nodes_[i].proc, nullptr);
    }
    WaitReady();
  }

  // The primary has both semi-sync replicas and semi-sync is ON.
  void WaitReady() {
    Relaykvd& p = *nodes_[primary_].proc;
    ASSERT_TRUE(WaitFor([&] {
      auto st = p.Status("Rpl_semi_sync_master%");
      return st["Rpl_semi_sync_master_clients"] == "2" && st["Rpl_semi_sync_master_status"] == "ON";
    }, kGuard)) << "the primary " << nodes_[primary_].name << " never had both semi-sync replicas";
  }

  void RunRound(int round, const Plan& plan);
  void CheckEverything();

  TempDir dir_;
  Node nodes_[3];
  int primary_ = 0;
  std::atomic<int> counter_{0};  // the next key: k<counter>, unique across rounds
  // Every key the current primary must hold, with its value: the acknowledged
  // writes plus the unacknowledged ones it replicated. Only ever grows.
  std::map<std::string, std::string> expected_;
  size_t acked_total_ = 0;
  int refusals_ = 0;
  int tail_reads_ = 0;  // never-replicated writes a refused node still served (known gap)
};

void ChaosTest::RunRound(int round, const Plan& plan) {
  const std::string tag = "r" + std::to_string(round);
  Node& old = nodes_[primary_];
  Node* replicas[2] = {&nodes_[(primary_ + 1) % 3], &nodes_[(primary_ + 2) % 3]};
  for (auto& n : nodes_) Note(n, "round " + std::to_string(round) + ": " + plan.ToString());
  const int first_key = counter_.load();

  // Load, then the faults.
  WriteLoad::Acked acked;
  auto load = std::make_unique<WriteLoad>(old.proc.get(), kWriters, &counter_, tag, &acked);
  // On a failed ASSERT the writers must not wait out their 30 s deadline on
  // a stopped primary: it is killed before `load` is destroyed.
  const OnExit kill_stopped_primary([&] {
    if (load != nullptr && old.proc != nullptr) old.proc->Kill();
  });
  Node* victim = plan.replica_fault == Plan::kNone ? nullptr : replicas[plan.victim];
  auto hit_victim = [&] { plan.victim_stop ? victim->proc->Pause() : victim->proc->Kill(); };
  if (plan.replica_fault == Plan::kBefore) {
    std::this_thread::sleep_for(std::chrono::milliseconds(plan.replica_kill_ms));
    hit_victim();
    std::this_thread::sleep_for(std::chrono::milliseconds(plan.load_ms - plan.replica_kill_ms));
  } else {
    std::this_thread::sleep_for(std::chrono::milliseconds(plan.load_ms));
  }
  if (plan.idle) load->Stop();
  {
    auto st = old.proc->Status("Rpl_semi_sync_master%");
    EXPECT_EQ(st["Rpl_semi_sync_master_status"], "ON") << "semi-sync must stay ON for the load";
    EXPECT_EQ(st["Rpl_semi_sync_master_no_tx"], "0") << "nothing may have gone async";
  }
  if (plan.stop_primary) {
    old.proc->Pause();  // its writers hang until it is killed, after the promotion
  } else {
    old.proc->Kill();
    load->Stop();
  }
  if (plan.replica_fault == Plan::kAfter) hit_victim();
  if (victim != nullptr && plan.victim_stop) {
    // Silent while the primary died; back before the compare (it may hold
    // the most: it ACKed before it stopped).
    victim->proc->Resume();
  } else if (victim != nullptr) {
    // It may hold more than the other replica (it fsyncs its relay log before
    // each ACK), so it is a candidate: restarted (its master.info still names
    // the dead or silent primary) before the compare.
    Note(*victim, "restarted after SIGKILL");
    victim->proc = Relaykvd::Start(victim->dir, Flags(*victim));
    ASSERT_NE(victim->proc, nullptr);
  }

  // Promote the replica holding the most.
  const auto threads = plan.stop_sql_too ? ReplicaThreads::kBoth : ReplicaThreads::kIo;
  for (Node* r : replicas) {
    auto s = r->proc->client().StopReplica(threads);
    ASSERT_TRUE(s.ok()) << r->name << ": " << s;
  }
  const Gtid ends[2] = {replicas[0]->proc->BinlogGtid(), replicas[1]->proc->BinlogGtid()};
  const int chosen = ends[0] < ends[1] ? 1 : 0;
  Node& next = *replicas[chosen];
  Node& other = *replicas[1 - chosen];
  const Gtid before = ends[chosen];
  auto start = next.proc->client().ResetReplicaAll();
  ASSERT_TRUE(start.ok()) << "RESET SLAVE ALL on " << next.name << ": " << start.status();
  EXPECT_EQ(start->epoch, before.epoch + 1) << "a new epoch";
  EXPECT_EQ(start->seq, before.seq + 1) << "right after the relay log";
  Note(next, "promoted at " + start->ToString());
  if (plan.stop_primary) old.proc->Kill();
  load->Stop();
  load.reset();

  // The other replica follows the new primary.
  ASSERT_TRUE(other.proc->client().StopReplica(ReplicaThreads::kBoth).ok());
  auto cm = other.proc->client().ChangeMaster("127.0.0.1", static_cast<uint32_t>(next.proc->port()));
  ASSERT_TRUE(cm.ok()) << cm;
  ASSERT_TRUE(other.proc->client().StartReplica(ReplicaThreads::kBoth).ok());

  // Every acknowledged write is on the new primary. (Same epoch as `before`:
  // the load ran on one primary that was not restarted.) The part of its
  // relay log its old primary had not told it was visible (all of it past
  // what it had applied, if it restarted) shows once the other replica
  // ACKs it (review s47a H2): that is waited for first.
  EXPECT_LE(acked.max_seq, before.seq) << "an acknowledged seq beyond what any replica holds";
  auto shows_all = [&] {
    for (const auto& [key, value] : acked.values) {
      auto got = next.proc->Get(key);
      if (!got.ok() || *got != std::optional<std::string>(value)) return false;
    }
    return true;
  };
  EXPECT_TRUE(WaitFor(shows_all, kGuard))
      << next.name << " never showed every acknowledged write; " << other.name
      << "'s IO error: " << other.proc->ReplicaStatus()["Last_IO_Error"];
  int lost = 0;
  for (const auto& [key, value] : acked.values) {
    auto got = next.proc->Get(key);
    ASSERT_TRUE(got.ok()) << "GET on " << next.name << ": " << got.status();
    if (*got != std::optional<std::string>(value) && ++lost <= 5) {
      ADD_FAILURE() << key << "=" << value << " was acknowledged but " << next.name << " has "
                    << (got->has_value() ? **got : "nothing");
    }
  }
  ASSERT_EQ(lost, 0) << lost << " of " << acked.values.size() << " acknowledged writes lost";

  // The old primary rejoins as a replica of the new one.
  Note(old, "restarted as a replica of " + next.name);
  old.proc = Relaykvd::Start(old.dir, Flags(old, next.proc->address()));
  ASSERT_NE(old.proc, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Refused(*old.proc) || SameChecksum(*old.proc, *next.proc); }, kGuard))
      << old.name << " neither converged on " << next.name << " nor was refused";
  std::string outcome = "accepted";
  const bool refused = Refused(*old.proc);
  if (plan.idle) {
    EXPECT_FALSE(refused) << "stopped with no write in flight: " << old.proc->ReplicaStatus()["Last_IO_Error"];
  }
  if (refused) {
    // It holds a tail no replica received: written and synced, never ACKed,
    // so never acknowledged under AFTER_SYNC.
    ++refusals_;
    const Gtid tail = old.proc->BinlogGtid();
    const Gtid head = next.proc->BinlogGtid();  // no writes yet: the epoch marker
    const std::string err = old.proc->ReplicaStatus()["Last_IO_Error"];
    EXPECT_EQ(tail.epoch, before.epoch) << err;
    EXPECT_GT(tail.seq, before.seq) << "refused without a divergent tail: " << err;
    if (tail.seq > head.seq) {
      EXPECT_NE(err.find("replica has gtid " + tail.ToString() + " but this primary's binlog ends at " + head.ToString() +
                         ": the replica is ahead of the primary"),
                std::string::npos)
          << err;
    } else {
      const Gtid theirs{start->epoch, tail.seq};
      EXPECT_NE(err.find("replica's last gtid " + tail.ToString() + " is not in this primary's history (it has " +
                         theirs.ToString()),
                std::string::npos)
          << err;
    }
    // Known gap (the failover issue, not fixed here): the refused node still
    // answers reads, including its never-replicated, never-acknowledged tail.
    // Counted, not asserted; what must hold — the new primary never serves
    // those writes — is checked below.
    for (int i = first_key; i < counter_.load(); ++i) {
      const std::string key = "k" + std::to_string(i);
      if (acked.values.count(key) != 0) continue;
      auto mine = old.proc->Get(key);
      auto theirs = next.proc->Get(key);
      if (mine.ok() && mine->has_value() && theirs.ok() && !theirs->has_value()) ++tail_reads_;
    }
    outcome = "refused (" + err + "); re-provisioned";
    // Re-provisioned: an empty data dir replicates from 0:0 (nothing is purged).
    old.proc->Kill();
    Note(old, "refused: wiped and restarted empty as a replica of " + next.name);
    fs::remove_all(old.dir);
    old.proc = Relaykvd::Start(old.dir, Flags(old, next.proc->address()));
    ASSERT_NE(old.proc, nullptr);
  }

  // Everyone converges on the new primary.
  primary_ = static_cast<int>(&next - nodes_);
  ASSERT_TRUE(WaitFor([&] {
    return SameChecksum(*other.proc, *next.proc) && SameChecksum(*old.proc, *next.proc);
  }, kGuard)) << "the replicas never converged on " << next.name;
  for (Node* n : {&other, &old}) {
    EXPECT_EQ(n->proc->ReplicaStatus()["Last_IO_Error"], "") << n->name << " was accepted";
  }
  WaitReady();

  // What the new primary holds: each acknowledged write, and otherwise only
  // writes of this round with exactly the value sent. The set never shrinks.
  for (int i = first_key; i < counter_.load(); ++i) {
    const std::string key = "k" + std::to_string(i);
    auto got = next.proc->Get(key);
    ASSERT_TRUE(got.ok()) << got.status();
    if (!got->has_value()) continue;
    const std::string sent = "v" + std::to_string(i) + "-" + tag;
    ASSERT_EQ(**got, sent) << key << " on " << next.name;
    expected_[key] = sent;
  }
  acked_total_ += acked.values.size();
  auto sum = next.proc->Checksum();
  ASSERT_TRUE(sum.ok()) << sum.status();
  ASSERT_EQ(sum->keys, expected_.size())
      << next.name << " holds keys that are neither acknowledged nor a replicated write of this test, "
                      "or lost some of an earlier round";

  std::printf("[chaos] round %d: %s; %zu acked, %d attempted; promoted %s (%s -> %s); %s %s\n", round,
              plan.ToString().c_str(), acked.values.size(), counter_.load() - first_key,
              next.name.c_str(), before.ToString().c_str(), start->ToString().c_str(), old.name.c_str(),
              outcome.c_str());
  std::fflush(stdout);
}

// Every round's writes, one last time: by key on the primary, and the
// replicas hold the same (CHECKSUM; a Get per key on each would triple the
// long run's final check for nothing the checksum does not already show).
void ChaosTest::CheckEverything() {
  Relaykvd& p = *nodes_[primary_].proc;
  int wrong = 0;
  for (const auto& [key, value] : expected_) {
    auto got = p.Get(key);
    ASSERT_TRUE(got.ok()) << got.status();
    if (*got != std::optional<std::string>(value) && ++wrong <= 5) {
      ADD_FAILURE() << key << "=" << value << " is missing on " << nodes_[primary_].name;
    }
  }
  auto sum = p.Checksum();
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(sum->keys, expected_.size());
  for (auto& n : nodes_) {
    if (n.proc.get() != &p) {
      EXPECT_TRUE(SameChecksum(*n.proc, p)) << n.name << " differs from the primary";
    }
  }
}

TEST_F(ChaosTest, FailoverRoundsKeepEveryAcknowledgedWrite) {
  if (HasFatalFailure()) return;
  const uint64_t seed = EnvOr("RELAYKV_CHAOS_SEED", kDefaultSeed);
  const int rounds = static_cast<int>(EnvOr("RELAYKV_CHAOS_ROUNDS", kDefaultRounds));
  std::mt19937_64 rng(seed);
  const auto began = Clock::now();
  for (int round = 0; round < rounds; ++round) {
    const Plan plan = Plan::Draw(rng);
    SCOPED_TRACE("RELAYKV_CHAOS_SEED=" + std::to_string(seed) + " round " + std::to_string(round) +
                 " (" + plan.ToString() + ")");
    RunRound(round, plan);
    if (HasFailure()) return;
  }
  CheckEverything();
  const double secs = std::chrono::duration<double>(Clock::now() - began).count();
  std::printf("[chaos] seed %llu: %d rounds in %.1f s (%.2f s/round); %zu acknowledged writes, %zu keys "
              "held; %d old primaries refused; known gap: refused nodes served %d never-replicated writes\n",
              static_cast<unsigned long long>(seed), rounds, secs, secs / std::max(rounds, 1),
              acked_total_, expected_.size(), refusals_, tail_reads_);
}

}  // namespace
}  // namespace relaykv::testing
