// Fencing by a durable promised epoch (server/epoch_promise.h,
// server/node_fence.cc) between embedded nodes on loopback: the promise
// survives a restart; Revoke cuts a replica's stream from an older primary,
// which then collects no ACK from it; a replica with a promise refuses an
// older primary (a new one refuses its hello, an old one is refused at its
// first message) and says why in Last_IO_Error; a revoked primary answers
// no commit OK; the fenced replica follows the promoted one.
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "proto/event.pb.h"
#include "relaykv/node.h"
#include "tests/common/temp_dir.h"
#include "tests/server/fake_primary.h"
#include "tests/server/node_harness.h"

namespace relaykv {
namespace {

using testing::Field;
using testing::TempDir;
using testing::WaitFor;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;
constexpr auto Addr = testing::Address;
constexpr auto Stat = testing::Status;

uint64_t Num(const Node& n, const std::string& name) { return std::stoull(Stat(n, name)); }

std::unique_ptr<Node> OpenPrimary(const fs::path& dir, NameValues extra = {}) {
  NameValues vars = {{"server_id", "1"}, {"rpl_semi_sync_master_enabled", "ON"}};
  for (auto& v : extra) vars.push_back(std::move(v));
  return testing::OpenServingNode(dir, vars);
}

std::unique_ptr<Node> OpenSemiSyncReplica(const fs::path& dir, int server_id,
                                          const std::string& primary) {
  return testing::OpenServingNode(
      dir, {{"server_id", std::to_string(server_id)}, {"rpl_semi_sync_slave_enabled", "ON"}},
      primary);
}

// Waits until the replica's IO thread has stopped; returns Last_IO_Error.
std::string IoStopError(const Node& replica) {
  const bool stopped =
      WaitFor([&] { return Field(replica.ReplicaStatus(), "Slave_IO_Running") == "No"; });
  EXPECT_TRUE(stopped) << "IO thread still running";
  return Field(replica.ReplicaStatus(), "Last_IO_Error");
}

TEST(FencingTest, PromiseSurvivesARestartAndNeverGoesDown) {
  TempDir dir;
  {
    auto node = OpenPrimary(dir.path() / "n");
    ASSERT_NE(node, nullptr);
    EXPECT_EQ(node->promised_epoch(), 0u);
    EXPECT_EQ(Stat(*node, "Rpl_promised_epoch"), "0");
    auto r = node->Revoke(5);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->promised_epoch, 5u);
    // Lower and equal epochs: answered with the promise, not an error.
    auto lower = node->Revoke(3);
    ASSERT_TRUE(lower.ok()) << lower.status();
    EXPECT_EQ(lower->promised_epoch, 5u);
    auto same = node->Revoke(5);
    ASSERT_TRUE(same.ok()) << same.status();
    EXPECT_EQ(same->promised_epoch, 5u);
  }
  auto node = OpenPrimary(dir.path() / "n");
  ASSERT_NE(node, nullptr);
  EXPECT_EQ(node->promised_epoch(), 5u);
  EXPECT_EQ(Stat(*node, "Rpl_promised_epoch"), "5");
  // Still a revoked primary after the restart (its epoch 1 < 5).
  EXPECT_EQ(Stat(*node, "Rpl_revoked_primary"), "ON");
  auto w = node->Put("k", "v");
  EXPECT_EQ(w.status().code(), absl::StatusCode::kFailedPrecondition) << w.status();
}

// Review finding 2a: a hostile Revoke(huge) used to be fsynced, after which
// the node refused to start. Now refused, nothing promised, node reopens.
TEST(FencingTest, HugeOrFarAheadEpochIsRefusedAndNothingIsPromised) {
  TempDir dir;
  {
    auto node = OpenPrimary(dir.path() / "n");
    ASSERT_NE(node, nullptr);
    // (1 << 32): above the largest epoch a binlog's segment header holds
    // (review s31 F3); 2^32-1 and 2^16+2: more than a step (2^16) above
    // the binlog's epoch 1 — one message must not use up the epoch space.
    for (uint64_t e : {uint64_t{10000000000000000000u}, (uint64_t{1} << 63),
                       (uint64_t{1} << 32) + 10, uint64_t{1} << 32, uint64_t{UINT32_MAX},
                       (uint64_t{1} << 16) + 2}) {
      auto r = node->Revoke(e);
      EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << e << ": " << r.status();
      EXPECT_EQ(node->promised_epoch(), 0u);
    }
    auto ok = node->Revoke(7);
    ASSERT_TRUE(ok.ok()) << ok.status();
  }
  auto node = OpenPrimary(dir.path() / "n");
  ASSERT_NE(node, nullptr);
  EXPECT_EQ(node->promised_epoch(), 7u);
}

// Review s31: the step bound (2^16) counts from the history a node holds
// too, not only its promise: a clone starts with no promise file but its
// donor's epoch in its binlog, and must follow a cluster past epoch 2^16.
TEST(FencingTest, StepBoundCountsFromTheEpochInTheBinlogToo) {
  TempDir dir;
  uint64_t epoch = 0;
  {
    auto node = OpenPrimary(dir.path() / "n");
    ASSERT_NE(node, nullptr);
    auto r = node->Revoke((uint64_t{1} << 16) + 1);  // exactly one step above epoch 1
    ASSERT_TRUE(r.ok()) << r.status();
    // Promoted into that epoch (RESET SLAVE ALL after following nobody).
    ASSERT_TRUE(node->ChangePrimary("127.0.0.1", 1).ok());
    auto start = node->BecomePrimary();
    ASSERT_TRUE(start.ok()) << start.status();
    epoch = start->epoch;
    ASSERT_GE(epoch, uint64_t{1} << 16);
    ASSERT_TRUE(node->Put("k", "v").ok());
  }
  fs::remove(dir.path() / "n" / "promised_epoch");  // as a clone has none
  auto node = OpenPrimary(dir.path() / "n");
  ASSERT_NE(node, nullptr);
  EXPECT_EQ(node->promised_epoch(), 0u);
  auto far = node->Revoke(epoch + (uint64_t{1} << 16) + 1);
  EXPECT_EQ(far.status().code(), absl::StatusCode::kInvalidArgument) << far.status();
  auto next = node->Revoke(epoch + 1);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(node->promised_epoch(), epoch + 1);
}

TEST(FencingTest, DamagedPromiseFileRefusesToOpen) {
  TempDir dir;
  { ASSERT_NE(OpenPrimary(dir.path() / "n"), nullptr); }
  std::ofstream(dir.path() / "n" / "promised_epoch") << "seven\n";
  NodeOptions o;
  o.data_dir = dir.path() / "n";
  auto node = Node::Open(o);
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), absl::StatusCode::kDataLoss) << node.status();
  EXPECT_NE(node.status().message().find("promised_epoch"), std::string::npos) << node.status();
}

// Review finding 7: whether the promise file exists cannot be told (here
// ELOOP: a symlink loop; EACCES or EIO in life): the node must refuse to
// start, not read it as "nothing promised".
TEST(FencingTest, UnreadablePromiseFileRefusesToStartWithAClearMessage) {
  TempDir dir;
  { ASSERT_NE(OpenPrimary(dir.path() / "n"), nullptr); }
  fs::create_symlink("promised_epoch", dir.path() / "n" / "promised_epoch");
  NodeOptions o;
  o.data_dir = dir.path() / "n";
  auto node = Node::Open(o);
  ASSERT_FALSE(node.ok()) << "opened with an unknown promise";
  EXPECT_NE(node.status().message().find("promised_epoch"), std::string::npos) << node.status();
  EXPECT_NE(node.status().message().find("refusing to start"), std::string::npos)
      << node.status();
}

// Review finding 5: with sync_relay_log=0 a replica ACKs events before they
// are on disk; Revoke says so (a durable marker) until a full sync covers
// everything it ACKed.
TEST(FencingTest, RevokeSaysAReplicaMayHaveAckedUnsyncedEvents) {
  TempDir dir;
  auto primary = OpenPrimary(dir.path() / "p", {{"rpl_semi_sync_master_enabled", "OFF"}});
  ASSERT_NE(primary, nullptr);
  const fs::path rdir = dir.path() / "r";
  const fs::path marker = rdir / "relay_log.acked_unsynced";
  {
    auto synced = testing::OpenServingNode(dir.path() / "s", {{"server_id", "3"}}, Addr(*primary));
    ASSERT_NE(synced, nullptr);
    auto replica = testing::OpenServingNode(rdir, {{"server_id", "2"}, {"sync_relay_log", "0"}},
                                            Addr(*primary));
    ASSERT_NE(replica, nullptr);
    auto a = primary->Put("a", "1");
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(WaitFor([&] {
      return replica->binlog_gtid() == *a && synced->binlog_gtid() == *a;
    }));
    EXPECT_EQ(Stat(*replica, "Rpl_acked_unsynced"), "ON");
    EXPECT_TRUE(fs::exists(marker));
    // Revoke of the current epoch for its own primary (server 1): syncs
    // what this run ACKed, so it answers false (review s4 finding 4); the
    // marker stays while sync_relay_log=0 does.
    auto r = replica->Revoke(1, 1);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(r->may_have_acked_unsynced);
    EXPECT_EQ(Stat(*replica, "Rpl_acked_unsynced"), "ON");
    // sync_relay_log=1 (the default): never.
    auto s = synced->Revoke(1, 1);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_FALSE(s->may_have_acked_unsynced);
    EXPECT_EQ(Stat(*synced, "Rpl_acked_unsynced"), "OFF");
  }
  ASSERT_TRUE(primary->Put("b", "2").ok());
  const Gtid end = primary->binlog_gtid();
  // Restarted with sync_relay_log=1: what the last run ACKed may be lost,
  // so the marker stays until the relay log holds, synced, all the primary
  // had when it reconnected.
  auto replica =
      testing::OpenServingNode(rdir, {{"server_id", "2"}, {"sync_relay_log", "1"}}, Addr(*primary));
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(WaitFor([&] { return replica->binlog_gtid() == end; }));
  ASSERT_TRUE(WaitFor([&] { return Stat(*replica, "Rpl_acked_unsynced") == "OFF"; }));
  EXPECT_FALSE(fs::exists(marker));
  auto r = replica->Revoke(1, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->may_have_acked_unsynced);
}

// Review s4 finding 4: Revoke syncs the relay log before it answers, so
// what this run ACKed unsynced is on disk by then and its marker does not
// flag the answer (it did, and one sync_relay_log=0 acker then failed
// every election). A marker found at open still does: that run may have
// lost what it ACKed.
TEST(FencingTest, RevokeFlagsOnlyAnAckedUnsyncedMarkerFoundAtOpen) {
  TempDir dir;
  auto primary = OpenPrimary(dir.path() / "p", {{"rpl_semi_sync_master_enabled", "OFF"}});
  ASSERT_NE(primary, nullptr);
  const fs::path rdir = dir.path() / "r";
  const NameValues vars = {{"server_id", "2"}, {"sync_relay_log", "0"}};
  Gtid a;
  {
    auto replica = testing::OpenServingNode(rdir, vars, Addr(*primary));
    ASSERT_NE(replica, nullptr);
    auto put = primary->Put("a", "1");
    ASSERT_TRUE(put.ok()) << put.status();
    a = *put;
    ASSERT_TRUE(WaitFor([&] { return replica->binlog_gtid() == a; }));
    ASSERT_EQ(Stat(*replica, "Rpl_acked_unsynced"), "ON");
    // An election of the next epoch (candidate server 9).
    auto r = replica->Revoke(a.epoch + 1, 9);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(r->may_have_acked_unsynced);
    EXPECT_EQ(r->durable_gtid, a);
  }
  // Reopened (as after a power cut): the marker is inherited. Its promise
  // to server 9 keeps it from catching up with the old primary.
  auto replica = testing::OpenServingNode(rdir, vars, Addr(*primary));
  ASSERT_NE(replica, nullptr);
  EXPECT_EQ(Stat(*replica, "Rpl_acked_unsynced"), "ON");
  auto r = replica->Revoke(a.epoch + 1, 9);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->may_have_acked_unsynced);
}

// Review s4 finding 3: an inherited marker says writes this node ACKed may
// be gone; a relaying replica's end does not prove they are held again (it
// may lag the primary that got the ACKs), so catching up with it keeps it.
TEST(FencingTest, AnInheritedAckedUnsyncedMarkerStaysWhenCatchingUpWithARelay) {
  TempDir dir;
  auto primary = OpenPrimary(dir.path() / "p", {{"rpl_semi_sync_master_enabled", "OFF"}});
  ASSERT_NE(primary, nullptr);
  auto relay = testing::OpenServingNode(dir.path() / "s", {{"server_id", "3"}}, Addr(*primary));
  ASSERT_NE(relay, nullptr);
  const fs::path rdir = dir.path() / "r";
  Gtid a;
  {
    auto replica = testing::OpenServingNode(rdir, {{"server_id", "2"}, {"sync_relay_log", "0"}},
                                            Addr(*primary));
    ASSERT_NE(replica, nullptr);
    auto put = primary->Put("a", "1");
    ASSERT_TRUE(put.ok()) << put.status();
    a = *put;
    ASSERT_TRUE(WaitFor([&] { return replica->binlog_gtid() == a && relay->binlog_gtid() == a; }));
    ASSERT_EQ(Stat(*replica, "Rpl_acked_unsynced"), "ON");
  }
  auto replica =
      testing::OpenServingNode(rdir, {{"server_id", "2"}, {"sync_relay_log", "1"}}, Addr(*relay));
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(WaitFor([&] { return replica->binlog_gtid() == a; }));
  std::this_thread::sleep_for(std::chrono::seconds(3));  // heartbeats from the relay
  EXPECT_EQ(Stat(*replica, "Rpl_acked_unsynced"), "ON");
  auto r = replica->Revoke(a.epoch, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->may_have_acked_unsynced);
}

TEST(FencingTest, RevokeCutsTheStreamAndTheOldPrimaryCollectsNoAck) {
  TempDir dir;
  // wait_no_slave ON (the default): the commit keeps waiting for the ACK
  // until the timeout; 1.5 s keeps the test short.
  auto primary = OpenPrimary(dir.path() / "p", {{"rpl_semi_sync_master_timeout", "1500"}});
  ASSERT_NE(primary, nullptr);
  auto replica = OpenSemiSyncReplica(dir.path() / "r", 2, Addr(*primary));
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Num(*primary, "Rpl_semi_sync_master_clients") == 1; }));
  auto a = primary->Put("a", "1");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(Num(*primary, "Rpl_semi_sync_master_yes_tx"), 1u);
  // Events of epoch 1 arrived: the replica promised epoch 1 itself.
  EXPECT_EQ(replica->promised_epoch(), 1u);

  auto r = replica->Revoke(a->epoch + 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->promised_epoch, 2u);
  EXPECT_EQ(r->durable_gtid, *a) << r->durable_gtid.ToString();
  EXPECT_FALSE(r->revoked_primary);
  const std::string err = IoStopError(*replica);
  EXPECT_NE(err.find("is at epoch 1 but this replica has promised epoch 2"), std::string::npos)
      << err;
  EXPECT_EQ(Stat(*replica, "Rpl_promised_epoch"), "2");

  // The next commit gets no ACK: it waits out the timeout and is answered
  // as semi-sync's documented fallback does (async: no_tx, status OFF),
  // never as ACKed (yes_tx stays 1); the replica never holds it.
  const auto began = Clock::now();
  auto b = primary->Put("b", "2");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_GE(Clock::now() - began, std::chrono::milliseconds(1400));
  EXPECT_EQ(Num(*primary, "Rpl_semi_sync_master_yes_tx"), 1u);
  EXPECT_EQ(Num(*primary, "Rpl_semi_sync_master_no_tx"), 1u);
  EXPECT_EQ(Stat(*primary, "Rpl_semi_sync_master_status"), "OFF");
  EXPECT_EQ(replica->binlog_gtid(), *a);

  // START SLAVE again: refused again (the old primary refuses the hello,
  // which carries the promise), nothing appended.
  ASSERT_TRUE(replica->StartReplica(ReplicaThreads::kIo).ok());
  const std::string again = IoStopError(*replica);
  EXPECT_NE(again.find("promised epoch 2"), std::string::npos) << again;
  EXPECT_EQ(replica->binlog_gtid(), *a);
}

TEST(FencingTest, NoWriteIsAckedPastTheDurableGtidRevokeAnsweredUnderLoad) {
  TempDir dir;
  auto primary = OpenPrimary(dir.path() / "p", {{"rpl_semi_sync_master_timeout", "600000"}});
  ASSERT_NE(primary, nullptr);
  auto replica = OpenSemiSyncReplica(dir.path() / "r", 2, Addr(*primary));
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Num(*primary, "Rpl_semi_sync_master_clients") == 1; }));
  std::atomic<bool> stop{false};
  std::atomic<int> counter{0};
  std::mutex mu;
  std::vector<Gtid> acked;  // GUARDED_BY(mu)
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&] {
      // Bounded: 2000 writes in all, or the first one not answered OK.
      while (!stop && counter < 2000) {
        WriteOptions o;
        o.deadline = Clock::now() + std::chrono::seconds(2);
        auto w = primary->Put("k" + std::to_string(counter++), "v", o);
        if (!w.ok()) break;
        std::lock_guard l(mu);
        acked.push_back(*w);
      }
    });
  }
  ASSERT_TRUE(WaitFor([&] { return counter > 100; }));
  auto r = replica->Revoke(2);
  stop = true;
  for (auto& w : writers) w.join();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_FALSE(acked.empty());
  uint64_t max_acked = 0;
  for (const Gtid& g : acked) max_acked = std::max(max_acked, g.seq);
  // Every write answered OK was ACKed by the replica before its Revoke
  // answered, so it lies within the durable GTID the Revoke reported...
  EXPECT_LE(max_acked, r->durable_gtid.seq);
  EXPECT_EQ(Num(*primary, "Rpl_semi_sync_master_yes_tx"), acked.size());
  // ...and nothing of the old primary was appended after that answer.
  IoStopError(*replica);
  EXPECT_EQ(replica->binlog_gtid(), r->durable_gtid);
}

TEST(FencingTest, RevokedPrimaryAnswersWaitingCommitsUnavailableAndRefusesWrites) {
  TempDir dir;
  auto primary = OpenPrimary(dir.path() / "p", {{"rpl_semi_sync_master_timeout", "600000"}});
  ASSERT_NE(primary, nullptr);
  auto replica = OpenSemiSyncReplica(dir.path() / "r", 2, Addr(*primary));
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Num(*primary, "Rpl_semi_sync_master_clients") == 1; }));
  ASSERT_TRUE(primary->Put("a", "1").ok());
  ASSERT_TRUE(replica->StopReplica(ReplicaThreads::kIo).ok());
  ASSERT_TRUE(WaitFor([&] { return Num(*primary, "Rpl_semi_sync_master_clients") == 0; }));

  auto waiting = std::async(std::launch::async, [&] { return primary->Put("b", "2"); });
  ASSERT_TRUE(WaitFor([&] { return Num(*primary, "Rpl_semi_sync_master_wait_sessions") == 1; }));
  auto r = primary->Revoke(2);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->revoked_primary);
  EXPECT_EQ(r->node_epoch, 1u);
  ASSERT_EQ(waiting.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  auto b = waiting.get();
  EXPECT_EQ(b.status().code(), absl::StatusCode::kUnavailable) << b.status();
  EXPECT_NE(b.status().message().find("outcome unknown"), std::string::npos) << b.status();
  // Never applied here: under AFTER_SYNC it waited for an ACK that never came.
  auto seen = primary->Get("b");
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ(*seen, std::nullopt);
  EXPECT_EQ(Stat(*primary, "Rpl_revoked_primary"), "ON");
  auto c = primary->Put("c", "3");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition) << c.status();
  EXPECT_NE(c.status().message().find("fenced"), std::string::npos) << c.status();
  // Even with semi-sync off no commit is answered OK.
  ASSERT_TRUE(primary->SetVariable("rpl_semi_sync_master_enabled", "OFF", false).ok());
  EXPECT_FALSE(primary->Put("d", "4").ok());
}

TEST(FencingTest, NewPrimaryRefusesTheHelloOfAReplicaThatPromisedANewerEpoch) {
  TempDir dir;
  // Asynchronous: its first write comes before any replica.
  auto primary = OpenPrimary(dir.path() / "p", {{"rpl_semi_sync_master_enabled", "OFF"}});
  ASSERT_NE(primary, nullptr);
  ASSERT_TRUE(primary->Put("a", "1").ok());
  // A replica that promised epoch 3 (an election it answered) before it
  // was pointed at this epoch-1 primary.
  auto replica = OpenSemiSyncReplica(dir.path() / "r", 2, Addr(*primary));
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(WaitFor([&] { return replica->binlog_gtid().seq == 1; }));
  ASSERT_TRUE(replica->StopReplica(ReplicaThreads::kIo).ok());
  ASSERT_TRUE(replica->Revoke(3).ok());
  ASSERT_TRUE(replica->StartReplica(ReplicaThreads::kIo).ok());
  const std::string err = IoStopError(*replica);
  EXPECT_NE(err.find("replica has promised epoch 3, newer than this primary's epoch 1"),
            std::string::npos)
      << err;
}

TEST(FencingTest, FencedReplicaFollowsTheReplicaPromotedIntoTheNewEpoch) {
  TempDir dir;
  auto primary = OpenPrimary(dir.path() / "p", {{"rpl_semi_sync_master_timeout", "1000"}});
  ASSERT_NE(primary, nullptr);
  auto r1 = OpenSemiSyncReplica(dir.path() / "r1", 2, Addr(*primary));
  ASSERT_NE(r1, nullptr);
  auto r2 = OpenSemiSyncReplica(dir.path() / "r2", 3, Addr(*primary));
  ASSERT_NE(r2, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Num(*primary, "Rpl_semi_sync_master_clients") == 2; }));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(primary->Put("k" + std::to_string(i), "v").ok());
  const Gtid last = primary->binlog_gtid();
  ASSERT_TRUE(WaitFor([&] { return r1->applied_gtid() == last && r2->applied_gtid() == last; }));

  // The election revokes r1 only; r2 learns the new epoch from its events.
  auto revoked = r1->Revoke(last.epoch + 1);
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  EXPECT_EQ(revoked->durable_gtid, last);
  EXPECT_EQ(revoked->applied_gtid, last);
  IoStopError(*r1);
  auto start = r1->BecomePrimary();
  ASSERT_TRUE(start.ok()) << start.status();
  EXPECT_EQ(start->epoch, last.epoch + 1);
  EXPECT_EQ(r1->promised_epoch(), last.epoch + 1);
  EXPECT_EQ(Stat(*r1, "Rpl_revoked_primary"), "OFF");
  auto w = r1->Put("after", "1");
  ASSERT_TRUE(w.ok()) << w.status();

  ASSERT_TRUE(r2->StopReplica(ReplicaThreads::kIo).ok());
  ASSERT_TRUE(r2->ChangePrimary("127.0.0.1", static_cast<uint32_t>(r1->bound_port())).ok());
  ASSERT_TRUE(r2->StartReplica(ReplicaThreads::kIo).ok());
  ASSERT_TRUE(WaitFor([&] { return r2->applied_gtid() == *w; }));
  // The marker of epoch 2 raised r2's promise before it ACKed it.
  EXPECT_EQ(r2->promised_epoch(), last.epoch + 1);
  auto c1 = r1->Checksum();
  auto c2 = r2->Checksum();
  ASSERT_TRUE(c1.ok() && c2.ok());
  EXPECT_EQ(c1->hash, c2->hash);
  EXPECT_EQ(c1->gtid, c2->gtid);

  // Pointed back at the old primary, r2 is refused (its hello's promise).
  ASSERT_TRUE(r2->StopReplica(ReplicaThreads::kIo).ok());
  ASSERT_TRUE(r2->ChangePrimary("127.0.0.1", static_cast<uint32_t>(primary->bound_port())).ok());
  ASSERT_TRUE(r2->StartReplica(ReplicaThreads::kIo).ok());
  const std::string err = IoStopError(*r2);
  EXPECT_NE(err.find("promised epoch 2"), std::string::npos) << err;
  EXPECT_EQ(r2->applied_gtid(), *w);
}

// An older relaykvd states no epoch: the replica takes primary_last_gtid's.
class FencingOldPeerTest : public testing::ReplicaOfFakePrimaryTest {};

v1::Event PutEvent(uint64_t epoch, uint64_t seq) {
  v1::Event ev;
  ev.mutable_gtid()->set_epoch(epoch);
  ev.mutable_gtid()->set_seq(seq);
  ev.set_server_id(1);
  v1::Mutation* m = ev.add_mutations();
  m->set_op(v1::Mutation::PUT);
  m->set_key("k" + std::to_string(seq));
  m->set_value("v");
  return ev;
}

TEST_F(FencingOldPeerTest, ReplicaRefusesAnOlderPrimaryWithoutTheFieldAtItsFirstBatch) {
  fs::create_directories(dir_.path() / "replica");
  std::ofstream(dir_.path() / "replica" / "promised_epoch") << "# test\n2\n";
  const std::string err = StopErrorFor({testing::BatchOf({PutEvent(1, 1)})});
  EXPECT_NE(err.find("is at epoch 1 but this replica has promised epoch 2"), std::string::npos)
      << err;
  EXPECT_EQ(replica_->binlog_gtid().seq, 0u) << "nothing of a fenced primary is appended";
}

// Review finding 2b: a batch the relay log refuses (here a gap) leaves no
// promise of its epochs behind.
TEST_F(FencingOldPeerTest, RefusedBatchRaisesNoPromise) {
  const std::string err = StopErrorFor({testing::BatchOf({PutEvent(9, 3)})});
  EXPECT_NE(err.find("gap"), std::string::npos) << err;
  EXPECT_EQ(replica_->binlog_gtid().seq, 0u);
  EXPECT_EQ(replica_->promised_epoch(), 0u) << "a refused batch raised the promise";
  EXPECT_FALSE(fs::exists(dir_.path() / "replica" / "promised_epoch"));
}

TEST_F(FencingOldPeerTest, EventsOfANewerEpochRaiseThePromiseBeforeTheirAck) {
  // epoch 3 events from seq 1, then a bad batch that stops the thread so
  // the test knows the first one was handled.
  const std::string err =
      StopErrorFor({testing::BatchOf({PutEvent(3, 1)}), testing::BatchOf({PutEvent(3, 5)})});
  EXPECT_FALSE(err.empty());
  EXPECT_EQ(replica_->binlog_gtid(), (Gtid{3, 1}));
  EXPECT_EQ(replica_->promised_epoch(), 3u);
}

}  // namespace
}  // namespace relaykv
