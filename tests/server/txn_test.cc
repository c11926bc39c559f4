// Conditional writes (Node::Txn, README "Conditional writes"): per-key
// versions, compares checked against the state every earlier write leaves
// (also writes still waiting for their ACKs), the else branch, replicas
// applying the branch taken, bad input.
#include <atomic>
#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "relaykv/client.h"
#include "relaykv/node.h"
#include "server/conditional_write.h"
#include "tests/common/small_fs.h"
#include "tests/common/temp_dir.h"
#include "tests/server/node_harness.h"

namespace relaykv {
namespace {

using testing::TempDir;
using testing::WaitFor;

constexpr auto Addr = testing::Address;
constexpr auto Stat = testing::Status;

std::optional<VersionedValue> Versioned(Node& n, const std::string& key) {
  auto v = n.GetVersioned(key);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : std::nullopt;
}

TEST(TxnTest, EveryKeyCarriesTheGtidOfItsLastChange) {
  TempDir dir;
  auto n = testing::OpenServingNode(dir.path() / "n");
  ASSERT_NE(n, nullptr);
  auto g1 = n->Put("k", "a");
  ASSERT_TRUE(g1.ok());
  EXPECT_EQ(Versioned(*n, "k")->version, *g1);
  auto g2 = n->Write({Mutation::Put("k", "b"), Mutation::Put("other", "x")});
  ASSERT_TRUE(g2.ok());
  EXPECT_EQ(Versioned(*n, "k")->version, *g2);
  EXPECT_EQ(Versioned(*n, "k")->value, "b");
  ASSERT_TRUE(n->Delete("k").ok());
  EXPECT_FALSE(Versioned(*n, "k").has_value());
  // Versions survive a restart (RocksDB, with the data).
  n.reset();
  n = testing::OpenServingNode(dir.path() / "n");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(Versioned(*n, "other")->version, *g2);
  // A transaction right after the restart: RocksDB replayed the binlog, so
  // the compare can be checked.
  auto cas = n->Txn({{Compare::VersionIs("other", *g2)}, {Mutation::Put("other", "y")}, {}});
  ASSERT_TRUE(cas.ok()) << cas.status();
  EXPECT_TRUE(cas->succeeded);
}

TEST(TxnTest, CompareAndSetTakesTheThenBranchOnlyAtTheCurrentVersion) {
  TempDir dir;
  auto n = testing::OpenServingNode(dir.path() / "n");
  ASSERT_NE(n, nullptr);
  auto g1 = n->Put("k", "1");
  ASSERT_TRUE(g1.ok());
  auto ok = n->Txn({{Compare::VersionIs("k", *g1)}, {Mutation::Put("k", "2")}, {}});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(ok->succeeded);
  EXPECT_EQ(Versioned(*n, "k")->version, ok->gtid);
  // The same compare again: the version moved on; the else branch runs.
  auto stale = n->Txn({{Compare::VersionIs("k", *g1)},
                       {Mutation::Put("k", "3")},
                       {Mutation::Put("conflicts", "1")}});
  ASSERT_TRUE(stale.ok()) << stale.status();
  EXPECT_FALSE(stale->succeeded);
  EXPECT_EQ(Versioned(*n, "k")->value, "2");
  EXPECT_EQ(Versioned(*n, "conflicts")->version, stale->gtid);
  // A failed compare with no else branch still commits (no mutations) and
  // answers with its GTID: the answer rests on committed state only.
  auto empty = n->Txn({{Compare::ValueIs("k", "nope")}, {Mutation::Delete("k")}, {}});
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_FALSE(empty->succeeded);
  EXPECT_EQ(empty->gtid.seq, stale->gtid.seq + 1);
  EXPECT_EQ(Versioned(*n, "k")->value, "2");
}

TEST(TxnTest, AbsentAndValueCompares) {
  TempDir dir;
  auto n = testing::OpenServingNode(dir.path() / "n");
  ASSERT_NE(n, nullptr);
  auto create = [&] {
    return n->Txn({{Compare::Absent("lock")}, {Mutation::Put("lock", "me")}, {}});
  };
  auto first = create();
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(first->succeeded);
  auto second = create();
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->succeeded);
  // All compares must hold: one false one makes the else branch.
  auto both = n->Txn({{Compare::ValueIs("lock", "me"), Compare::Absent("lock")},
                      {Mutation::Delete("lock")},
                      {Mutation::Put("seen", "else")}});
  ASSERT_TRUE(both.ok());
  EXPECT_FALSE(both->succeeded);
  EXPECT_EQ(Versioned(*n, "seen")->value, "else");
  // Many compares of one key (looked up once): each still decides.
  std::vector<Compare> same(128, Compare::ValueIs("lock", "me"));
  same[100] = Compare::ValueIs("lock", "someone else");
  auto repeated = n->Txn({same, {Mutation::Put("seen", "then")}, {}});
  ASSERT_TRUE(repeated.ok());
  EXPECT_FALSE(repeated->succeeded);
  same[100] = Compare::ValueIs("lock", "me");
  repeated = n->Txn({same, {Mutation::Put("seen", "then")}, {}});
  ASSERT_TRUE(repeated.ok());
  EXPECT_TRUE(repeated->succeeded);
  auto release = n->Txn({{Compare::ValueIs("lock", "me")}, {Mutation::Delete("lock")}, {}});
  ASSERT_TRUE(release.ok());
  EXPECT_TRUE(release->succeeded);
  EXPECT_FALSE(Versioned(*n, "lock").has_value());
}

TEST(TxnTest, BadTransactionsAreRefusedNamingTheProblem) {
  TempDir dir;
  auto n = testing::OpenServingNode(dir.path() / "n");
  ASSERT_NE(n, nullptr);
  auto nothing = n->Txn({});
  EXPECT_EQ(nothing.status().code(), absl::StatusCode::kInvalidArgument);
  auto empty_key = n->Txn({{Compare::Absent("")}, {Mutation::Put("k", "v")}, {}});
  EXPECT_EQ(empty_key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(empty_key.status().message()).find("compare 0"), std::string::npos)
      << empty_key.status();
  auto bad_else = n->Txn({{Compare::Absent("k")}, {Mutation::Put("k", "v")},
                          {Mutation::Put(std::string(70000, 'x'), "v")}});
  EXPECT_EQ(bad_else.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(bad_else.status().message()).find("else branch"), std::string::npos)
      << bad_else.status();
  auto bad_then = n->Txn({{Compare::Absent("k")}, {Mutation::Put(std::string(70000, 'x'), "v")},
                          {Mutation::Put("k", "v")}});
  EXPECT_EQ(bad_then.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(bad_then.status().message()).find("then branch"), std::string::npos)
      << bad_then.status();
  // An else branch no compare can pick, and fields the compare's target
  // does not read, are refused rather than ignored (review s34-txn F5).
  auto else_alone = n->Txn({{}, {Mutation::Put("k", "then")}, {Mutation::Put("k", "else")}});
  EXPECT_EQ(else_alone.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(else_alone.status().message()).find("else branch but no compares"),
            std::string::npos)
      << else_alone.status();
  Compare absent_with_value = Compare::Absent("k");
  absent_with_value.value = "v";
  Compare value_with_version = Compare::ValueIs("k", "v");
  value_with_version.version = Gtid{1, 1};
  Compare version_with_value = Compare::VersionIs("k", Gtid{1, 1});
  version_with_value.value = "v";
  Compare absent_with_version = Compare::Absent("k");
  absent_with_version.version = Gtid{0, 1};
  for (const Compare& c :
       {absent_with_value, absent_with_version, value_with_version, version_with_value}) {
    auto r = n->Txn({{Compare::Absent("other"), c}, {Mutation::Put("k", "v")}, {}});
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(r.status().message()).find("but its target is not"), std::string::npos)
        << r.status();
    EXPECT_NE(std::string(r.status().message()).find("(compare 1)"), std::string::npos)
        << r.status();
  }
  // At most 128 compares (review s34-txn F1: each one is checked ahead of
  // every other write).
  std::vector<Compare> many(129, Compare::Absent("k"));
  auto too_many = n->Txn({many, {Mutation::Put("k", "v")}, {}});
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(too_many.status().message()).find("129 compares; the limit is 128"),
            std::string::npos)
      << too_many.status();
  // Nothing of them was written.
  EXPECT_EQ(n->binlog_gtid().seq, 0u);
}

// The point of PendingKeys: under AFTER_SYNC a write waiting for its ACK
// is in the binlog but not in RocksDB. Two create-if-absent transactions
// queued behind a missing ACK must not both see the key absent.
TEST(TxnTest, ComparesSeeWritesStillWaitingForTheirAcks) {
  TempDir dir;
  auto p = testing::OpenServingNode(dir.path() / "p", {{"rpl_semi_sync_master_enabled", "ON"},
                                                       {"rpl_semi_sync_master_timeout", "60000"},
                                                       {"rpl_semi_sync_master_wait_no_slave", "ON"}});
  ASSERT_NE(p, nullptr);
  auto create = [&](const std::string& who) {
    return std::async(std::launch::async, [&, who] {
      return p->Txn({{Compare::Absent("leader")}, {Mutation::Put("leader", who)}, {}});
    });
  };
  auto a = create("a");
  ASSERT_TRUE(WaitFor([&] { return Stat(*p, "Rpl_semi_sync_master_wait_sessions") == "1"; }));
  auto b = create("b");
  ASSERT_TRUE(WaitFor([&] { return Stat(*p, "Rpl_semi_sync_master_wait_sessions") == "2"; }));
  EXPECT_FALSE(Versioned(*p, "leader").has_value()) << "visible before its ACK";
  // A value compare sees the pending value too (the lookup of a key that
  // only a version compare asks for skips the value: not this one).
  auto c = std::async(std::launch::async, [&] {
    return p->Txn({{Compare::ValueIs("leader", "a")}, {Mutation::Put("seen", "a's value")}, {}});
  });
  ASSERT_TRUE(WaitFor([&] { return Stat(*p, "Rpl_semi_sync_master_wait_sessions") == "3"; }));
  // Release them (async from here on).
  ASSERT_TRUE(p->SetVariable("rpl_semi_sync_master_enabled", "OFF", false).ok());
  auto ra = a.get();
  auto rb = b.get();
  auto rc = c.get();
  ASSERT_TRUE(ra.ok()) << ra.status();
  ASSERT_TRUE(rb.ok()) << rb.status();
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_NE(ra->succeeded, rb->succeeded) << "exactly one may create the key";
  const std::string winner = ra->succeeded ? "a" : "b";
  EXPECT_EQ(Versioned(*p, "leader")->value, winner);
  EXPECT_EQ(rc->succeeded, winner == "a") << "the value compare saw the pending write";
}

// 64 threads increment one counter by compare-and-set through gRPC, with a
// semi-sync replica: the final value is the number of successes, and the
// replica, which applies the branches the primary took, has the same data.
TEST(TxnTest, ConcurrentCasIncrementsLoseNothingAndReplicasAgree) {
  TempDir dir;
  auto p = testing::OpenServingNode(dir.path() / "p", {{"rpl_semi_sync_master_enabled", "ON"},
                                                       {"rpl_semi_sync_master_timeout", "60000"}});
  ASSERT_NE(p, nullptr);
  auto r = testing::OpenServingNode(dir.path() / "r", {{"server_id", "2"},
                                                       {"rpl_semi_sync_slave_enabled", "ON"}},
                                    Addr(*p));
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Stat(*p, "Rpl_semi_sync_master_clients") == "1"; }));
  ASSERT_TRUE(p->Put("counter", "0").ok());
  auto client = Client::Connect({Addr(*p)});
  ASSERT_TRUE(client.ok());
  constexpr int kThreads = 64;
  constexpr int kAttempts = 15;
  std::atomic<int> successes{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kAttempts; ++i) {
        auto read = (*client)->Read("counter");
        if (!read.ok() || !read->value) {
          if (errors++ == 0) ADD_FAILURE() << "read: " << read.status();
          continue;
        }
        const int next = std::stoi(*read->value) + 1;
        auto cas = (*client)->CompareAndSet("counter", read->version, std::to_string(next));
        if (!cas.ok()) {
          if (errors++ == 0) ADD_FAILURE() << "compare-and-set: " << cas.status();
        } else if (cas->succeeded) {
          ++successes;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_GT(successes.load(), 0);
  auto final_value = (*client)->Get("counter");
  ASSERT_TRUE(final_value.ok());
  EXPECT_EQ(**final_value, std::to_string(successes.load()));
  ASSERT_TRUE(WaitFor([&] { return r->applied_gtid() == p->applied_gtid(); }));
  auto pc = p->Checksum();
  auto rc = r->Checksum();
  ASSERT_TRUE(pc.ok() && rc.ok());
  EXPECT_EQ(*pc, *rc);
  EXPECT_EQ(Versioned(*r, "counter")->version, Versioned(*p, "counter")->version);
}

// Review s34-txn F6: conditional writes while the binlog's disk fills up
// and is freed, again and again. A group that fails (ENOSPC) is not
// written, and its seqs are given out again, so nothing may remember it: a
// compare evaluated against a pending change of that group (PendingKeys)
// would see a state that never existed. Half the threads increment a
// counter by compare-and-set (it ends at exactly the number of successful
// increments, also after a restart); the other half take a lock by
// create-if-absent and release it by delete-if-version (no two ever hold
// it: a release that failed must not let another thread take the lock).
// With a semi-sync replica too (AFTER_SYNC: RocksDB lags the binlog by the
// writes waiting for their ACK, so PendingKeys is what compares read).
void ConditionalWritesAcrossAFullBinlogDisk(bool semi_sync_replica) {
  TempDir dir;
  testing::SmallFilesystem small(4 << 20);
  if (!small.ok()) GTEST_SKIP() << small.why();
  const auto data_dir = dir.path() / "n";
  std::filesystem::create_directories(data_dir);
  std::filesystem::create_directory_symlink(small.path(), data_dir / "binlog");
  NodeOptions o;
  o.data_dir = data_dir;
  o.listen_address = "127.0.0.1:0";
  o.variables = {{"max_binlog_size", "16384"}};  // rotations: each one needs new space
  if (semi_sync_replica) {
    o.variables.emplace_back("rpl_semi_sync_master_enabled", "ON");
    o.variables.emplace_back("rpl_semi_sync_master_timeout", "60000");
  }
  auto opened = Node::Open(o);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<Node> node = *std::move(opened);
  std::unique_ptr<Node> replica;
  if (semi_sync_replica) {
    replica = testing::OpenServingNode(dir.path() / "r", {{"server_id", "2"},
                                                          {"rpl_semi_sync_slave_enabled", "ON"}},
                                       Addr(*node));
    ASSERT_NE(replica, nullptr);
    ASSERT_TRUE(WaitFor([&] { return Stat(*node, "Rpl_semi_sync_master_clients") == "1"; }));
  }
  ASSERT_TRUE(node->Put("counter", "0").ok());

  constexpr int kThreads = 16;
  std::atomic<bool> stop{false};
  std::atomic<int> successes{0}, refused{0}, locks_taken{0}, unexpected{0};
  std::mutex first_mu;
  std::string first_unexpected;
  auto note = [&](const std::string& what) {
    if (unexpected++ > 0) return;
    std::lock_guard l(first_mu);
    first_unexpected = what;
  };
  // A write refused by the full disk, or because a failed group left the
  // state for compares unknown until RocksDB applies what came before it,
  // is a definite "not written": wait a little and try again; anything
  // else but OK is unexpected.
  auto run = [&](const Txn& txn) -> std::optional<TxnResult> {
    while (!stop.load()) {
      auto r = node->Txn(txn);
      if (r.ok()) return *r;
      const bool applying = absl::IsUnavailable(r.status()) &&
                            r.status().message().find("still applying") != std::string::npos;
      if (r.status().code() != absl::StatusCode::kResourceExhausted && !applying) {
        note("conditional write: " + r.status().ToString());
        return std::nullopt;
      }
      ++refused;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return std::nullopt;
  };
  auto increment = [&] {
    auto read = node->GetVersioned("counter");
    if (!read.ok() || !read->has_value()) {
      note("read: " + (read.ok() ? std::string("no counter") : read.status().ToString()));
      return;
    }
    Txn cas;
    cas.compares = {Compare::VersionIs("counter", (*read)->version)};
    cas.then_ops = {Mutation::Put("counter", std::to_string(std::stoi((*read)->value) + 1))};
    if (auto r = run(cas); r && r->succeeded) ++successes;
  };
  auto take_and_release_lock = [&](int me) {
    Txn take;
    take.compares = {Compare::Absent("lock")};
    take.then_ops = {Mutation::Put("lock", std::to_string(me))};
    auto taken = run(take);
    if (!taken || !taken->succeeded) return;
    ++locks_taken;
    Txn release;
    release.compares = {Compare::VersionIs("lock", taken->gtid)};
    release.then_ops = {Mutation::Delete("lock")};
    auto released = run(release);
    if (released && !released->succeeded) {
      note("thread " + std::to_string(me) + " took the lock at " + taken->gtid.ToString() +
           " and found it changed when it released it");
    }
  };
  std::vector<std::jthread> threads;
  // Destroyed before `threads` (declared after it): however the test ends
  // (a failed ASSERT too), the threads are told to stop before they are
  // joined.
  struct StopOnExit {
    std::atomic<bool>& stop;
    ~StopOnExit() { stop = true; }
  } stop_on_exit{stop};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!stop.load()) {
        if (t % 2 == 0) {
          increment();
        } else {
          take_and_release_lock(t);
        }
      }
    });
  }
  auto state = [&] {
    std::lock_guard l(first_mu);
    return std::to_string(successes.load()) + " increments, " + std::to_string(refused.load()) +
           " refused, " + std::to_string(unexpected.load()) + " unexpected (first: " +
           first_unexpected + "), binlog at " + node->binlog_gtid().ToString() + ", applied " +
           node->applied_gtid().ToString();
  };
  for (int cycle = 0; cycle < 6; ++cycle) {
    const int before_fill = successes.load();
    ASSERT_TRUE(WaitFor([&] { return successes.load() > before_fill + 50; }, std::chrono::seconds(30)))
        << "no increments with free space: " << state();
    const int refused_before = refused.load();
    small.FillLeaving(0);
    ASSERT_TRUE(WaitFor([&] { return refused.load() > refused_before; }, std::chrono::seconds(30)))
        << "the full disk refused no write: " << state();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    small.Free();
  }
  stop = true;
  threads.clear();  // joined
  EXPECT_EQ(unexpected.load(), 0) << first_unexpected;
  EXPECT_GT(refused.load(), 0);
  EXPECT_GT(locks_taken.load(), 0);
  // What an operator's alert reads (the binlog test counts it exactly).
  EXPECT_NE(Stat(*node, "Binlog_write_failures"), "0");
  auto counter = node->Get("counter");
  ASSERT_TRUE(counter.ok()) << counter.status();
  EXPECT_EQ(**counter, std::to_string(successes.load()))
      << successes.load() << " increments succeeded, " << refused.load() << " writes were refused";
  EXPECT_EQ(node->applied_gtid(), node->binlog_gtid());
  if (replica) {
    ASSERT_TRUE(WaitFor([&] { return replica->applied_gtid() == node->applied_gtid(); }));
    auto pc = node->Checksum();
    auto rc = replica->Checksum();
    ASSERT_TRUE(pc.ok() && rc.ok());
    EXPECT_EQ(*pc, *rc) << "the replica applied other branches than the primary took";
    replica.reset();
  }
  node.reset();
  auto reopened = Node::Open(o);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  auto after = (*reopened)->Get("counter");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(**after, std::to_string(successes.load())) << "after a restart";
}

TEST(TxnTest, ConditionalWritesAcrossAFullBinlogDiskSeeNoFailedGroup) {
  ConditionalWritesAcrossAFullBinlogDisk(/*semi_sync_replica=*/false);
}

TEST(TxnTest, ConditionalWritesAcrossAFullBinlogDiskSeeNoFailedGroupUnderAfterSync) {
  ConditionalWritesAcrossAFullBinlogDisk(/*semi_sync_replica=*/true);
}

// Review s35 F1: a conditional write whose compare could not be checked
// at assignment sent out an event with no mutations. Its answer is the
// compare's error (retryable: nothing was written) even when that empty
// event's wait failed with an error that says "do not retry" or "outcome
// unknown" — which is named too.
TEST(TxnTest, AnUncheckedCompareIsTheAnswerWhateverBecameOfItsEmptyEvent) {
  const absl::Status unchecked = absl::UnavailableError(
      "the primary is still applying its binlog, so a compare cannot be checked yet (nothing was "
      "written)");
  EXPECT_EQ(UnresolvedConditionAnswer(unchecked, absl::OkStatus()), unchecked);
  const absl::Status not_applied = absl::InternalError(
      "write 1:7 is in the binlog and replicates, but is not applied yet (stopping); it is "
      "applied once the state machine can: do not retry it");
  const absl::Status answer = UnresolvedConditionAnswer(unchecked, not_applied);
  EXPECT_EQ(answer.code(), absl::StatusCode::kUnavailable) << answer;
  EXPECT_NE(answer.message().find("(nothing was written)"), std::string::npos) << answer;
  EXPECT_NE(answer.message().find("then its empty event failed too: write 1:7"), std::string::npos)
      << answer;
}

TEST(TxnTest, ClientHelpersAndPipelinedTransactions) {
  TempDir dir;
  auto n = testing::OpenServingNode(dir.path() / "n");
  ASSERT_NE(n, nullptr);
  for (bool pipelined : {false, true}) {
    SCOPED_TRACE(pipelined ? "pipelined" : "unary");
    ClientOptions o;
    o.pipelined = pipelined;
    auto c = Client::Connect({Addr(*n)}, o);
    ASSERT_TRUE(c.ok());
    const std::string key = pipelined ? "p" : "u";
    auto created = (*c)->CreateIfAbsent(key, "1");
    ASSERT_TRUE(created.ok()) << created.status();
    EXPECT_TRUE(created->succeeded);
    EXPECT_FALSE((*c)->CreateIfAbsent(key, "2")->succeeded);
    auto read = (*c)->Read(key);
    ASSERT_TRUE(read.ok());
    EXPECT_EQ(read->version, created->gtid);
    EXPECT_TRUE((*c)->CompareAndSet(key, read->version, "3")->succeeded);
    EXPECT_FALSE((*c)->DeleteIfVersion(key, read->version)->succeeded);
    auto now = (*c)->Read(key);
    EXPECT_EQ(*now->value, "3");
    EXPECT_TRUE((*c)->DeleteIfVersion(key, now->version)->succeeded);
    EXPECT_FALSE((*c)->Read(key)->value.has_value());
    // A plain write answers succeeded too.
    auto plain = (*c)->Txn({{}, {Mutation::Put("plain", "x")}, {}});
    ASSERT_TRUE(plain.ok());
    EXPECT_TRUE(plain->succeeded);
  }
}

}  // namespace
}  // namespace relaykv
