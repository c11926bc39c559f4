// Lossless semi-sync commit between embedded Nodes over loopback gRPC: the
// seed's walkthrough, wait points, timeouts, wait count, counters.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "proto/kv.grpc.pb.h"
#include "relaykv/node.h"
#include "tests/common/temp_dir.h"
#include "tests/server/node_harness.h"

namespace relaykv {
namespace {

using testing::TempDir;
using testing::WaitFor;
using Clock = std::chrono::steady_clock;

constexpr auto Addr = testing::Address;
constexpr auto Stat = testing::Status;

uint64_t Num(const Node& n, const std::string& suffix) {
  return std::stoull(Stat(n, "Rpl_semi_sync_master_" + suffix));
}

struct Cluster {
  TempDir dir;
  std::unique_ptr<Node> primary;
  std::vector<std::unique_ptr<Node>> replicas;

  explicit Cluster(int n_replicas, NameValues primary_vars = {}) {
    primary_vars.emplace_back("rpl_semi_sync_master_enabled", "ON");
    primary = testing::OpenServingNode(dir.path() / "p", primary_vars);
    for (int i = 0; i < n_replicas; ++i) {
      replicas.push_back(testing::OpenServingNode(dir.path() / ("r" + std::to_string(i)),
                              {{"server_id", std::to_string(i + 2)},
                               {"rpl_semi_sync_slave_enabled", "ON"}},
                              Addr(*primary)));
    }
    EXPECT_TRUE(WaitFor([&] { return Num(*primary, "clients") == replicas.size(); }));
  }
};

// Stops replica `i`'s IO thread and waits until the primary has one
// semi-sync client fewer.
void DisconnectReplica(Cluster& c, size_t i) {
  const uint64_t before = Num(*c.primary, "clients");
  ASSERT_TRUE(c.replicas[i]->StopReplica(ReplicaThreads::kIo).ok());
  ASSERT_TRUE(WaitFor([&] { return Num(*c.primary, "clients") == before - 1; }));
}

TEST(SemiSyncTest, SeedWalkthroughHealthyTimeoutAndRecovery) {
  Cluster c(1, {{"rpl_semi_sync_master_timeout", "1000"}});
  Node& p = *c.primary;
  Node& r = *c.replicas[0];
  EXPECT_EQ(Stat(p, "Rpl_semi_sync_master_status"), "ON");
  // The replica says ON once its IO thread has heard from the primary,
  // which may come a little after the primary counts it as a client.
  EXPECT_TRUE(WaitFor([&] { return Stat(r, "Rpl_semi_sync_slave_status") == "ON"; }));

  // The healthy write: waits for the replica's ACK.
  ASSERT_TRUE(p.Put("a", "1").ok());
  EXPECT_EQ(Num(p, "yes_tx"), 1u);
  // The wait starts when the seq is assigned, so the ACK can never beat it.
  EXPECT_EQ(Num(p, "tx_waits"), 1u);
  EXPECT_GT(Num(p, "tx_wait_time"), 0u);
  EXPECT_EQ(Num(p, "tx_avg_wait_time"), Num(p, "tx_wait_time"));
  EXPECT_GE(Num(p, "net_waits"), 1u);

  // IO thread stopped: the next write takes the timeout and goes async.
  DisconnectReplica(c, 0);
  EXPECT_EQ(Stat(r, "Rpl_semi_sync_slave_status"), "OFF");
  auto start = Clock::now();
  ASSERT_TRUE(p.Put("b", "2").ok());
  auto took = Clock::now() - start;
  // Never before the timeout; the upper bound is only a hang guard (the
  // seed drill, scripts/seed_walkthrough.sh, keeps the exact timing).
  EXPECT_GE(took, std::chrono::milliseconds(1000));
  EXPECT_LT(took, std::chrono::seconds(10));
  EXPECT_EQ(Num(p, "no_tx"), 1u);
  EXPECT_EQ(Num(p, "no_times"), 1u);
  EXPECT_EQ(Stat(p, "Rpl_semi_sync_master_status"), "OFF");
  // While OFF, commits don't wait: no session waits, no new switch OFF
  // (the time bound is only a hang guard: this machine is shared).
  start = Clock::now();
  ASSERT_TRUE(p.Put("c", "3").ok());
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(Num(p, "no_times"), 1u);
  EXPECT_EQ(Num(p, "wait_sessions"), 0u);
  EXPECT_EQ(Num(p, "no_tx"), 2u);

  // IO restarted: catches up, status back ON, the next write waits again.
  ASSERT_TRUE(r.StartReplica(ReplicaThreads::kIo).ok());
  ASSERT_TRUE(WaitFor([&] { return Stat(p, "Rpl_semi_sync_master_status") == "ON"; }));
  ASSERT_TRUE(p.Put("d", "4").ok());
  EXPECT_EQ(Num(p, "yes_tx"), 2u);
  EXPECT_EQ(Num(p, "tx_waits"), 2u);
  EXPECT_EQ(Num(p, "no_times"), 1u);
}

// Review s47b M1: with sync_relay_log=0 a replica ACKs what is only
// written, which a power cut of it and the primary's disk together loses.
// Its stream is not a semi-sync one: commits do not wait for it (the
// timeout sends them async, counted), and once it runs with
// sync_relay_log=1 again it reconnects by itself and counts.
TEST(SemiSyncTest, AReplicaWhoseAcksAreNotOnDiskIsNotCounted) {
  Cluster c(1, {{"rpl_semi_sync_master_timeout", "500"}});
  Node& p = *c.primary;
  Node& r = *c.replicas[0];
  ASSERT_TRUE(p.Put("synced", "1").ok());
  EXPECT_EQ(Num(p, "yes_tx"), 1u);

  ASSERT_TRUE(r.SetVariable("sync_relay_log", "0", false).ok());
  // The replica reconnects at the primary's next message (a heartbeat).
  ASSERT_TRUE(WaitFor([&] {
    auto replicas = p.Replicas();
    return Num(p, "clients") == 0 && replicas.size() == 1 && !replicas[0].semi_sync;
  }));
  ASSERT_TRUE(WaitFor([&] { return Stat(r, "Rpl_semi_sync_slave_status") == "OFF"; }));
  const auto start = Clock::now();
  auto unsynced = p.Put("unsynced", "2");
  ASSERT_TRUE(unsynced.ok()) << unsynced.status();
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(500)) << "an unsynced ACK released it";
  EXPECT_EQ(Num(p, "yes_tx"), 1u);
  EXPECT_EQ(Num(p, "no_tx"), 1u);
  EXPECT_EQ(Stat(p, "Rpl_semi_sync_master_status"), "OFF");
  // It still replicates, asynchronously.
  ASSERT_TRUE(WaitFor([&] { return r.binlog_gtid() == *unsynced; }));
  ASSERT_EQ(p.Replicas().size(), 1u);
  EXPECT_FALSE(p.Replicas()[0].semi_sync);

  ASSERT_TRUE(r.SetVariable("sync_relay_log", "1", false).ok());
  ASSERT_TRUE(WaitFor([&] { return Num(p, "clients") == 1; }));
  ASSERT_TRUE(WaitFor([&] { return Stat(p, "Rpl_semi_sync_master_status") == "ON"; }));
  ASSERT_TRUE(p.Put("synced-again", "3").ok());
  EXPECT_EQ(Num(p, "yes_tx"), 2u);
  EXPECT_TRUE(WaitFor([&] { return Stat(r, "Rpl_semi_sync_slave_status") == "ON"; }));
}

// A SET that releases waiting commits runs their callbacks on its own
// thread, inside its change's hook; a callback that SETs in turn must not
// deadlock (a first fix of review s49b M1 held a lock across hooks: s49c),
// and its change applies after the outer one.
TEST(SemiSyncTest, ACallbackReleasedByASetMaySetToo) {
  Cluster c(1, {{"rpl_semi_sync_master_timeout", "600000"}});
  Node& p = *c.primary;
  DisconnectReplica(c, 0);
  std::promise<absl::Status> inner;
  p.WriteAsync({Mutation::Put("k", "v")}, {}, [&](absl::StatusOr<Gtid> r) {
    EXPECT_TRUE(r.ok()) << r.status();
    inner.set_value(p.SetVariable("rpl_semi_sync_master_timeout", "1234", false));
  });
  ASSERT_TRUE(WaitFor([&] { return Num(p, "wait_sessions") == 1; }));
  auto outer = std::async(std::launch::async,
                          [&] { return p.SetVariable("rpl_semi_sync_master_enabled", "OFF", false); });
  if (outer.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    // Deadlocked: nothing can end that thread, and the nodes' Close would
    // wait for it. Say so and stop here rather than hang until ctest's timeout.
    ADD_FAILURE() << "SET GLOBAL deadlocked with the SET of the callback it released";
    std::fflush(stdout);
    std::_Exit(1);
  }
  EXPECT_TRUE(outer.get().ok());
  auto in = inner.get_future();
  ASSERT_EQ(in.wait_for(std::chrono::seconds(1)), std::future_status::ready);
  EXPECT_TRUE(in.get().ok());
  EXPECT_EQ(Stat(p, "Rpl_semi_sync_master_status"), "OFF");
  bool found = false;
  for (const auto& [name, value] : p.ShowVariables("rpl_semi_sync_master_timeout")) {
    if (name == "rpl_semi_sync_master_timeout") found = value == "1234";
  }
  EXPECT_TRUE(found) << "the callback's SET did not apply";
}

TEST(SemiSyncTest, AfterSyncHidesTheWriteUntilTheAck) {
  Cluster c(1, {{"rpl_semi_sync_master_timeout", "3000"}});
  Node& p = *c.primary;
  DisconnectReplica(c, 0);
  std::atomic<bool> returned{false};
  std::atomic<bool> seen_early{false};
  auto writer = std::async(std::launch::async, [&] {
    auto g = p.Put("pending", "v");
    returned = true;
    return g.ok();
  });
  ASSERT_TRUE(WaitFor([&] { return Num(p, "wait_sessions") == 1; }));
  while (!returned) {
    auto v = p.Get("pending");
    // Only the timeout may release it here (no replica ACKs): a write seen
    // while semi-sync has not yet switched OFF was visible too early. (The
    // switch is counted before the waits it ends are released, and the
    // writer's thread learns it returned a little later still.)
    if (v.ok() && v->has_value() && Num(p, "no_times") == 0) seen_early = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(writer.get());
  EXPECT_FALSE(seen_early) << "AFTER_SYNC let a reader see an un-ACKed write";
  EXPECT_EQ(Num(p, "no_times"), 1u) << "the timeout released it";
  EXPECT_EQ(*p.Get("pending"), std::optional<std::string>("v"));
}

// README, AFTER_SYNC: the write is durable in the primary's binlog, then
// waits for the ACK, then is applied and becomes visible. Here the ACK, not
// the (60 s) timeout, releases it: a reader polling the primary sees nothing
// while the replica cannot ACK, and once it can, sees the write only when the
// replica holds it; the commit counts yes_tx and semi-sync never switched OFF.
TEST(SemiSyncTest, AfterSyncAckReleasesTheWriteAndOnlyThenAReaderSeesIt) {
  Cluster c(1, {{"rpl_semi_sync_master_timeout", "60000"}});
  Node& p = *c.primary;
  Node& r = *c.replicas[0];
  DisconnectReplica(c, 0);
  auto writer = std::async(std::launch::async, [&] { return p.Put("pending", "v"); });
  ASSERT_TRUE(WaitFor([&] { return Num(p, "wait_sessions") == 1 && p.binlog_gtid().seq == 1; }));
  const uint64_t seq = p.binlog_gtid().seq;  // durable in the primary's binlog, not yet ACKed
  // No ACK can come: for a while nothing is visible and the commit waits.
  const auto quiet_until = Clock::now() + std::chrono::milliseconds(500);
  while (Clock::now() < quiet_until) {
    auto v = p.Get("pending");
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_FALSE(v->has_value()) << "AFTER_SYNC showed a write no replica holds";
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(writer.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout)
      << "the commit returned with no ACK and long before its timeout";
  EXPECT_LT(r.binlog_gtid().seq, seq);

  // The replica reconnects and ACKs: from then on the write is visible, and
  // never before the replica holds it.
  ASSERT_TRUE(r.StartReplica(ReplicaThreads::kIo).ok());
  bool seen = false;
  const auto guard = Clock::now() + std::chrono::seconds(30);  // hang guard (timeout is 60 s)
  while (!seen && Clock::now() < guard) {
    auto v = p.Get("pending");
    ASSERT_TRUE(v.ok()) << v.status();
    if (v->has_value()) {
      seen = true;
      EXPECT_GE(r.binlog_gtid().seq, seq) << "visible on the primary before the replica held it";
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  ASSERT_TRUE(seen) << "the ACK did not release the write within 30 s";
  ASSERT_EQ(writer.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  auto g = writer.get();
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->seq, seq);
  EXPECT_EQ(Num(p, "yes_tx"), 1u) << "released by the ACK";
  EXPECT_EQ(Num(p, "no_tx"), 0u);
  EXPECT_EQ(Num(p, "no_times"), 0u) << "the timeout never fired";
  EXPECT_EQ(Stat(p, "Rpl_semi_sync_master_status"), "ON");
  EXPECT_EQ(Num(p, "wait_sessions"), 0u);
}

// Issue 14.12: under AFTER_COMMIT a commit whose apply step fails (here its
// deadline passes while another thread applies) must stop counting as a
// waiting session: wait_sessions goes back to 0 once every commit answered.
TEST(SemiSyncTest, AfterCommitApplyFailureLeavesNoWaitingSession) {
  Cluster c(1, {{"rpl_semi_sync_master_timeout", "30000"},
                {"rpl_semi_sync_master_wait_point", "AFTER_COMMIT"}});
  Node& p = *c.primary;
  std::atomic<int> failed{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 150; ++i) {
        WriteOptions o;
        o.deadline = Clock::now();  // passes at once: any wait for the apply fails
        if (!p.Put("w" + std::to_string(t) + "-" + std::to_string(i), "v", o).ok()) ++failed;
      }
    });
  }
  for (auto& w : writers) w.join();
  ASSERT_GT(failed.load(), 0) << "no commit failed: the test did not exercise the path";
  EXPECT_TRUE(WaitFor([&] { return Num(p, "wait_sessions") == 0; }, std::chrono::seconds(10)))
      << Num(p, "wait_sessions") << " commits still counted as waiting";
}

TEST(SemiSyncTest, AfterCommitShowsTheWriteBeforeTheAck) {
  Cluster c(1, {{"rpl_semi_sync_master_timeout", "3000"},
                {"rpl_semi_sync_master_wait_point", "AFTER_COMMIT"}});
  Node& p = *c.primary;
  DisconnectReplica(c, 0);
  std::atomic<bool> returned{false};
  auto writer = std::async(std::launch::async, [&] {
    auto g = p.Put("phantom", "v");
    returned = true;
    return g.ok();
  });
  // Visible while its commit still waits: MySQL's "phantom read".
  EXPECT_TRUE(WaitFor([&] {
    auto v = p.Get("phantom");
    return v.ok() && v->has_value();
  }));
  EXPECT_FALSE(returned);
  EXPECT_EQ(Num(p, "wait_sessions"), 1u);
  EXPECT_TRUE(writer.get());
}

TEST(SemiSyncTest, WaitCountTwoNeedsBothReplicas) {
  Cluster c(2, {{"rpl_semi_sync_master_wait_for_slave_count", "2"},
                {"rpl_semi_sync_master_timeout", "1000"}});
  Node& p = *c.primary;
  ASSERT_TRUE(p.Put("a", "1").ok());
  EXPECT_EQ(Num(p, "yes_tx"), 1u);
  // Both replicas hold it once the commit returned.
  for (auto& r : c.replicas) EXPECT_GE(r->binlog_gtid().seq, 1u);

  // One replica gone, wait_no_slave ON: waits the timeout.
  DisconnectReplica(c, 1);
  auto start = Clock::now();
  ASSERT_TRUE(p.Put("b", "2").ok());
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(1000));
  EXPECT_EQ(Num(p, "no_times"), 1u);

  // Back to both; then wait_no_slave OFF: a replica leaving switches OFF at once.
  ASSERT_TRUE(c.replicas[1]->StartReplica(ReplicaThreads::kIo).ok());
  ASSERT_TRUE(WaitFor([&] { return Stat(p, "Rpl_semi_sync_master_status") == "ON"; }));
  ASSERT_TRUE(p.SetVariable("rpl_semi_sync_master_wait_no_slave", "OFF", false).ok());
  ASSERT_TRUE(c.replicas[1]->StopReplica(ReplicaThreads::kIo).ok());
  ASSERT_TRUE(WaitFor([&] { return Stat(p, "Rpl_semi_sync_master_status") == "OFF"; }));
  EXPECT_EQ(Num(p, "no_times"), 2u);
  const uint64_t no_tx = Num(p, "no_tx");
  start = Clock::now();
  ASSERT_TRUE(p.Put("c", "3").ok());
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));  // hang guard
  EXPECT_EQ(Num(p, "no_tx"), no_tx + 1) << "went async at once";
  EXPECT_EQ(Num(p, "no_times"), 2u) << "no timeout on top";
}

TEST(SemiSyncTest, TimeoutWithFiveWaitersCountsOneSwitchAndFiveNoTx) {
  Cluster c(1, {{"rpl_semi_sync_master_timeout", "1000"}});
  Node& p = *c.primary;
  DisconnectReplica(c, 0);
  std::vector<std::future<bool>> writers;
  for (int i = 0; i < 5; ++i) {
    writers.push_back(std::async(std::launch::async,
                                 [&, i] { return p.Put("w" + std::to_string(i), "v").ok(); }));
  }
  for (auto& w : writers) EXPECT_TRUE(w.get());
  EXPECT_EQ(Num(p, "no_times"), 1u);
  EXPECT_EQ(Num(p, "no_tx"), 5u);
  EXPECT_EQ(Num(p, "yes_tx"), 0u);
  EXPECT_EQ(Num(p, "wait_sessions"), 0u);
}

TEST(SemiSyncTest, DisablingReleasesWaitersAndCountsNoTimes) {
  Cluster c(1, {{"rpl_semi_sync_master_timeout", "30000"}});
  Node& p = *c.primary;
  DisconnectReplica(c, 0);
  auto writer = std::async(std::launch::async, [&] { return p.Put("x", "1").ok(); });
  ASSERT_TRUE(WaitFor([&] { return Num(p, "wait_sessions") == 1; }));
  ASSERT_TRUE(p.SetVariable("rpl_semi_sync_source_enabled", "OFF", false).ok());
  EXPECT_TRUE(writer.get());
  EXPECT_EQ(Num(p, "no_times"), 1u);
  EXPECT_EQ(Num(p, "no_tx"), 1u);
  EXPECT_EQ(Stat(p, "Rpl_semi_sync_master_status"), "OFF");
}

TEST(SemiSyncTest, CancelledWaitNeverAnswersOkButStillReplicates) {
  Cluster c(1, {{"rpl_semi_sync_master_timeout", "30000"}});
  Node& p = *c.primary;
  Node& r = *c.replicas[0];
  DisconnectReplica(c, 0);
  auto g = p.Put("late", "v", {Clock::now() + std::chrono::milliseconds(300), nullptr});
  EXPECT_EQ(g.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Num(p, "yes_tx"), 0u);
  ASSERT_TRUE(r.StartReplica(ReplicaThreads::kIo).ok());
  ASSERT_TRUE(WaitFor([&] {
    auto v = r.Get("late");
    return v.ok() && v->has_value();
  }));
  // Once ACKed it is visible on the primary too.
  ASSERT_TRUE(WaitFor([&] {
    auto v = p.Get("late");
    return v.ok() && v->has_value();
  }));
}

TEST(SemiSyncTest, CallerGoneStopsTheWaitWithoutYesTx) {
  Cluster c(1, {{"rpl_semi_sync_master_timeout", "30000"}});
  Node& p = *c.primary;
  DisconnectReplica(c, 0);
  std::atomic<bool> gone{false};
  auto writer = std::async(std::launch::async, [&] {
    return p.Put("orphan", "v", {Node::NoDeadline(), [&] { return gone.load(); }});
  });
  ASSERT_TRUE(WaitFor([&] { return Num(p, "wait_sessions") == 1; }));
  gone = true;
  auto g = writer.get();
  EXPECT_EQ(g.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(Num(p, "yes_tx"), 0u);
  EXPECT_EQ(Num(p, "wait_sessions"), 0u);
  ASSERT_TRUE(c.replicas[0]->StartReplica(ReplicaThreads::kIo).ok());
  ASSERT_TRUE(WaitFor([&] {
    auto v = c.replicas[0]->Get("orphan");
    return v.ok() && v->has_value();
  }));
  EXPECT_EQ(Num(p, "yes_tx"), 0u);
}

TEST(SemiSyncTest, ShutdownEndsWaitingCommitsWithAnErrorNeverOk) {
  // One commit waits over gRPC (the write service), one embedded
  // (WriteAsync); the primary shuts down while no replica can ACK them.
  Cluster c(1, {{"rpl_semi_sync_master_timeout", "60000"}});
  Node& p = *c.primary;
  DisconnectReplica(c, 0);
  auto stub = v1::Kv::NewStub(grpc::CreateChannel(Addr(p), grpc::InsecureChannelCredentials()));
  auto remote = std::async(std::launch::async, [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::PutRequest req;
    req.set_key("remote");
    req.set_value("v");
    v1::WriteReply reply;
    return stub->Put(&ctx, req, &reply);
  });
  std::promise<absl::StatusOr<Gtid>> local;
  p.WriteAsync({Mutation::Put("local", "v")}, {},
               [&](absl::StatusOr<Gtid> r) { local.set_value(std::move(r)); });
  ASSERT_TRUE(WaitFor([&] { return Num(p, "wait_sessions") == 2; }));
  p.Close();
  const grpc::Status r = remote.get();
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(r.error_code() == grpc::StatusCode::UNAVAILABLE ||
              r.error_code() == grpc::StatusCode::CANCELLED)
      << r.error_code() << " " << r.error_message();
  const absl::StatusOr<Gtid> l = local.get_future().get();
  EXPECT_EQ(l.status().code(), absl::StatusCode::kUnavailable) << l.status();
}

TEST(SemiSyncTest, ConcurrentCommitsReachBothReplicasInOrderAcrossAReconnect) {
  // Leaders hand groups straight to caught-up streams while sender threads
  // catch up others: every commit must arrive once, in order. One replica's
  // IO thread is restarted mid-load (catch-up while leaders keep sending).
  Cluster c(2, {{"rpl_semi_sync_master_timeout", "10000"}});
  Node& p = *c.primary;
  constexpr int kThreads = 32, kEach = 300;
  std::vector<std::thread> writers;
  std::atomic<int> failed{0};
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        if (!p.Put("t" + std::to_string(t) + "-" + std::to_string(i), std::string(64, 'v')).ok()) ++failed;
      }
    });
  }
  ASSERT_TRUE(WaitFor([&] { return p.binlog_gtid().seq >= kThreads * kEach / 3; }));
  ASSERT_TRUE(c.replicas[1]->StopReplica(ReplicaThreads::kIo).ok());
  ASSERT_TRUE(c.replicas[1]->StartReplica(ReplicaThreads::kIo).ok());
  for (auto& w : writers) w.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(p.binlog_gtid().seq, static_cast<uint64_t>(kThreads * kEach));
  EXPECT_EQ(Num(p, "no_tx"), 0u) << "every commit had its ACK";
  const auto pc = p.Checksum();
  ASSERT_TRUE(pc.ok());
  for (auto& r : c.replicas) {
    ASSERT_TRUE(WaitFor([&] { return r->applied_gtid() == p.binlog_gtid(); }));
    const auto rc = r->Checksum();
    ASSERT_TRUE(rc.ok());
    EXPECT_EQ(rc->hash, pc->hash);
    EXPECT_EQ(rc->keys, static_cast<uint64_t>(kThreads * kEach));
    for (const auto& [name, value] : r->ReplicaStatus()) {
      if (name == "Last_IO_Error" || name == "Last_SQL_Error") {
        EXPECT_EQ(value, "") << name;
      }
    }
  }
}

TEST(SemiSyncTest, BothSpellingsAndBadValues) {
  Cluster c(0);
  Node& p = *c.primary;
  ASSERT_TRUE(p.SetVariable("rpl_semi_sync_source_timeout", "2500", false).ok());
  EXPECT_EQ(p.ShowVariables("rpl_semi_sync_master_timeout")[0].second, "2500");
  EXPECT_EQ(p.ShowVariables("rpl_semi_sync_source_timeout")[0].first, "rpl_semi_sync_source_timeout");
  EXPECT_EQ(p.SetVariable("rpl_semi_sync_master_wait_point", "AFTER_LUNCH", false).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(p.SetVariable("rpl_semi_sync_master_wait_for_slave_count", "0", false).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(p.SetVariable("rpl_semi_sync_master_enabled", "yes please", false).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(p.ShowVariables("rpl_semi_sync_master_wait_point")[0].second, "AFTER_SYNC");
  EXPECT_EQ(p.ShowVariables("rpl_semi_sync_master_wait_for_slave_count")[0].second, "1");
  EXPECT_EQ(p.ShowStatus("rpl_semi_sync%").size(), 15u);
}

}  // namespace
}  // namespace relaykv
