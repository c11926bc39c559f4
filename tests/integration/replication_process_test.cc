// A primary and replicas as separate relaykvd processes: convergence,
// restarts and SIGKILLs on either side, checked by GTID and checksum.
#include <atomic>
#include <fstream>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

// Semi-sync that waits for two replicas and never times out in a test.
const std::vector<std::string> kSemiSyncTwo = {"--rpl_semi_sync_master_enabled=ON",
                                               "--rpl_semi_sync_master_wait_for_slave_count=2",
                                               "--rpl_semi_sync_master_timeout=600000"};



TEST(ReplicationProcessTest, TenThousandWritesConvergeOnTwoReplicas) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p");
  ASSERT_NE(primary, nullptr);
  auto r1 = StartReplica(dir.path() / "r1", *primary, {.server_id = 2});
  auto r2 = StartReplica(dir.path() / "r2", *primary, {.server_id = 3});
  ASSERT_TRUE(r1 && r2);
  RunMixedLoad(*primary, 10000, "k");
  EXPECT_EQ(primary->BinlogGtid().seq, 10000u);
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*r1, *primary) && SameChecksum(*r2, *primary); }));
  auto st = r1->ReplicaStatus();
  EXPECT_EQ(st["Slave_IO_Running"], "Yes");
  EXPECT_EQ(st["Slave_SQL_Running"], "Yes");
  EXPECT_EQ(st["Retrieved_Gtid_Set"], "1:10000");
  EXPECT_EQ(st["Executed_Gtid_Set"], "1:10000");
  EXPECT_EQ(st["Last_IO_Error"], "");
}

TEST(ReplicationProcessTest, ReplicaKilledMidStreamResumesWithoutGapOrDuplicate) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p");
  ASSERT_NE(primary, nullptr);
  auto replica = StartReplica(dir.path() / "r", *primary, {.server_id = 2});
  ASSERT_NE(replica, nullptr);
  {
    std::atomic<int> counter{0};
    WriteLoad::Acked acked;
    WriteLoad load(primary.get(), &counter, "a", &acked, {.total = 6000, .mixed = true});
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    replica->Kill();
    load.Wait();
    ASSERT_TRUE(load.first_error().ok()) << load.first_error();
  }
  // Restarted without --replicate-from: the saved primary is used.
  replica = Relaykvd::Start(dir.path() / "r", {"--server-id=2"});
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*replica, *primary); }));
  EXPECT_EQ(replica->ReplicaStatus()["Last_IO_Error"], "");

  // Down while the primary writes 50,000 more events; then catches up.
  EXPECT_EQ(replica->Terminate(), 0);
  RunMixedLoad(*primary, 50000, "b");
  EXPECT_EQ(primary->BinlogGtid().seq, 56000u);
  replica = Relaykvd::Start(dir.path() / "r", {"--server-id=2"});
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*replica, *primary); }, std::chrono::seconds(120)));
}

TEST(ReplicationProcessTest, ReplicasReconnectAfterPrimaryRestartCleanAndKilled) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p");
  ASSERT_NE(primary, nullptr);
  const int port = primary->port();
  auto r1 = StartReplica(dir.path() / "r1", *primary, {.server_id = 2});
  auto r2 = StartReplica(dir.path() / "r2", *primary, {.server_id = 3});
  ASSERT_TRUE(r1 && r2);
  RunMixedLoad(*primary, 500, "x");
  EXPECT_EQ(primary->Terminate(), 0);
  primary = Relaykvd::Start(dir.path() / "p", {}, port);
  ASSERT_NE(primary, nullptr);
  RunMixedLoad(*primary, 500, "y");
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*r1, *primary) && SameChecksum(*r2, *primary); }));

  {
    std::atomic<int> counter{0};
    WriteLoad::Acked acked;
    WriteLoad load(primary.get(), &counter, "z", &acked, {.total = 3000, .mixed = true});
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    primary->Kill();
    load.Wait();  // ends at the first write the killed primary does not answer
  }
  primary = Relaykvd::Start(dir.path() / "p", {}, port);
  ASSERT_NE(primary, nullptr);
  ASSERT_TRUE(primary->Put("after-kill", "1").ok());
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*r1, *primary) && SameChecksum(*r2, *primary); }));
}

TEST(ReplicationProcessTest, SilentPrimaryIsNoticedAndTheReplicaReconnects) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p");
  auto replica = StartReplica(dir.path() / "r", *primary, {.server_id = 2});
  ASSERT_TRUE(primary && replica);
  ASSERT_TRUE(primary->Put("before", "1").ok());
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*replica, *primary); }));
  primary->Pause();  // connected, but no heartbeat any more
  ASSERT_TRUE(WaitFor([&] {
    return replica->ReplicaStatus()["Last_IO_Error"].find("no message from primary") != std::string::npos;
  }, std::chrono::seconds(40)));
  primary->Resume();
  ASSERT_TRUE(primary->Put("after", "2").ok());
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*replica, *primary); }));
  EXPECT_EQ(replica->ReplicaStatus()["Slave_IO_Running"], "Yes");
}

TEST(ReplicationProcessTest, StoppedThreadsHoldBackThenCatchUp) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p");
  auto replica = StartReplica(dir.path() / "r", *primary, {.server_id = 2});
  ASSERT_TRUE(primary && replica);
  ASSERT_TRUE(replica->client().StopReplica(ReplicaThreads::kIo).ok());
  RunMixedLoad(*primary, 300, "io");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(replica->BinlogGtid().seq, 0u) << "IO stopped: nothing received";
  ASSERT_TRUE(replica->client().StartReplica(ReplicaThreads::kIo).ok());
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*replica, *primary); }));

  ASSERT_TRUE(replica->client().StopReplica(ReplicaThreads::kSql).ok());
  RunMixedLoad(*primary, 300, "sql");
  ASSERT_TRUE(WaitFor([&] { return replica->BinlogGtid().seq == 600u; })) << "received advances";
  auto st = replica->ReplicaStatus();
  EXPECT_EQ(st["Executed_Gtid_Set"], "1:300") << "applied does not";
  EXPECT_EQ(st["Slave_SQL_Running"], "No");
  ASSERT_TRUE(replica->client().StartReplica(ReplicaThreads::kSql).ok());
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*replica, *primary); }));
}

TEST(ReplicationProcessTest, ReplicaOfAnotherHistoryIsRefusedAndAppliesNothing) {
  TempDir dir;
  auto a = Relaykvd::Start(dir.path() / "a");
  auto b = Relaykvd::Start(dir.path() / "b");
  ASSERT_TRUE(a && b);
  // b has its own history: 5 events of epoch 1 that a never had... and a has 10.
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(a->Put("a" + std::to_string(i), "1").ok());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(b->Put("b" + std::to_string(i), "1").ok());
  const Gtid before = b->BinlogGtid();
  b->Terminate();
  b = StartReplica(dir.path() / "b", *a);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(WaitFor([&] { return b->ReplicaStatus()["Slave_IO_Running"] == "No"; }));
  const std::string err = b->ReplicaStatus()["Last_IO_Error"];
  EXPECT_NE(err.find("ahead of the primary"), std::string::npos) << err;
  EXPECT_EQ(b->BinlogGtid().seq, before.seq) << "nothing received";
  EXPECT_EQ(*b->Get("a1"), std::nullopt) << "nothing applied";
}

// After a failover the old primary may hold writes no replica received
// (here: written while the replica's IO thread was stopped). Restarted as a
// replica of the new primary, it is refused, naming both GTIDs at the seq
// where the histories part: the new primary's epoch tells them apart even
// where the seqs overlap. The promoted replica first applied the events its
// stopped SQL thread had left in the relay log.
TEST(ReplicationProcessTest, FailoverKeepsTheOldPrimarysUnreplicatedWritesOut) {
  TempDir dir;
  auto p = Relaykvd::Start(dir.path() / "p");
  ASSERT_NE(p, nullptr);
  auto r = StartReplica(dir.path() / "r", *p, {.server_id = 2});
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(r->client().StopReplica(ReplicaThreads::kSql).ok());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(p->Put("k" + std::to_string(i), "p").ok());
  ASSERT_TRUE(WaitFor([&] { return r->BinlogGtid().seq == 10; }));
  EXPECT_EQ(*r->Get("k9"), std::nullopt) << "in the relay log, not applied";
  ASSERT_TRUE(r->client().StopReplica(ReplicaThreads::kIo).ok());
  for (int i = 10; i < 15; ++i) ASSERT_TRUE(p->Put("k" + std::to_string(i), "p").ok());
  ASSERT_EQ(p->BinlogGtid().seq, 15u);
  p->Kill();

  auto start = r->client().ResetReplicaAll();
  ASSERT_TRUE(start.ok()) << start.status();
  EXPECT_EQ(start->epoch, 2u);
  EXPECT_EQ(start->seq, 11u);
  EXPECT_EQ(*r->Get("k9"), std::optional<std::string>("p")) << "the relay log was applied";
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(r->Put("n" + std::to_string(i), "r").ok());
  ASSERT_EQ(r->BinlogGtid().seq, 21u);

  auto old = Relaykvd::Start(p->data_dir(), {"--replicate-from=" + r->address()});
  ASSERT_NE(old, nullptr);
  ASSERT_TRUE(WaitFor([&] { return old->ReplicaStatus()["Slave_IO_Running"] == "No"; }));
  const std::string err = old->ReplicaStatus()["Last_IO_Error"];
  EXPECT_NE(err.find("1:15 is not in this primary's history"), std::string::npos) << err;
  EXPECT_NE(err.find("it has 2:15"), std::string::npos) << err;
  EXPECT_EQ(old->BinlogGtid().seq, 15u) << "nothing received";
  EXPECT_EQ(*old->Get("n0"), std::nullopt) << "nothing applied";
}

// A power cut as the OS sees it with sync_binlog=0: the binlog's newest
// segment loses everything after the group that holds its `keep`-th event
// (never synced, so gone), while a replica may already hold it. Walks the
// record frames of storage/binlog_format.h.
void LoseBinlogTailAfterEvent(const std::filesystem::path& data_dir, int keep) {
  const auto binlog = data_dir / "binlog";
  std::ifstream index(binlog / "binlog.index");
  std::string name, last;
  while (std::getline(index, name)) {
    if (!name.empty()) last = name;
  }
  ASSERT_FALSE(last.empty());
  const auto path = binlog / last;
  std::ifstream in(path, std::ios::binary);
  const std::string data((std::istreambuf_iterator<char>(in)), {});
  auto u32 = [&](size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(data[at + i])) << (8 * i);
    return v;
  };
  size_t at = 32;  // segment header
  int events = 0;
  while (at + 13 <= data.size()) {
    const uint32_t length = u32(at + 4);
    const uint8_t type = static_cast<uint8_t>(data[at + 8]);
    at += 13 + length;
    if (type == 1) ++events;
    if (type == 2 && events >= keep) {
      std::filesystem::resize_file(path, at);
      return;
    }
  }
  FAIL() << path << " has only " << events << " events";
}

// Issue 14.6: with sync_binlog=0 a group is shipped before it is synced. A
// power cut then loses the primary's tail that a replica already holds; if
// the restarted primary wrote new events at those GTIDs, the replica would
// later pass the history check holding different data. The primary opens a
// new epoch instead, so the replica is refused, naming both GTIDs.
TEST(ReplicationProcessTest, UnsyncedTailLostInAPowerCutIsNeverReusedAsGtids) {
  TempDir dir;
  auto p = Relaykvd::Start(dir.path() / "p", {"--sync_binlog=0"});
  ASSERT_NE(p, nullptr);
  auto r = StartReplica(dir.path() / "r", *p, {.server_id = 2});
  ASSERT_NE(r, nullptr);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(p->Put("k" + std::to_string(i), "old").ok());
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*r, *p); }));
  ASSERT_TRUE(r->client().StopReplica(ReplicaThreads::kIo).ok());
  const int port = p->port();
  p->Kill();
  LoseBinlogTailAfterEvent(p->data_dir(), 10);

  p = Relaykvd::Start(p->data_dir(), {"--sync_binlog=0"}, port);
  ASSERT_NE(p, nullptr);
  auto first = p->Put("k5", "new");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->epoch, 2u) << "a new epoch: 1:11.. may be held elsewhere";
  EXPECT_EQ(first->seq, 12u) << "after the epoch's marker event at 2:11";
  for (int i = 0; i < 15; ++i) ASSERT_TRUE(p->Put("n" + std::to_string(i), "new").ok());
  ASSERT_GT(p->BinlogGtid().seq, 20u);

  ASSERT_TRUE(r->client().StartReplica(ReplicaThreads::kIo).ok());
  ASSERT_TRUE(WaitFor([&] { return r->ReplicaStatus()["Slave_IO_Running"] == "No"; }));
  const std::string err = r->ReplicaStatus()["Last_IO_Error"];
  EXPECT_NE(err.find("1:20 is not in this primary's history"), std::string::npos) << err;
  EXPECT_NE(err.find("it has 2:20"), std::string::npos) << err;
  EXPECT_EQ(*r->Get("k5"), std::optional<std::string>("old")) << "nothing of the new history applied";

  // A clean stop leaves nothing to fear: the next start keeps the epoch.
  EXPECT_EQ(p->Terminate(), 0);
  p = Relaykvd::Start(p->data_dir(), {"--sync_binlog=0"}, port);
  ASSERT_NE(p, nullptr);
  auto after_clean = p->Put("k6", "new");
  ASSERT_TRUE(after_clean.ok());
  EXPECT_EQ(after_clean->epoch, 2u);
}

// RESET SLAVE ALL killed at each of its steps (relay log applied; new epoch's
// marker durable; master.info gone): the node restarts, is either still a
// replica (then RESET SLAVE ALL runs again) or a primary, and takes writes
// with dense GTIDs in a new epoch, every write of the old primary there.
TEST(ReplicationProcessTest, ResetSlaveAllKilledAtEachStepRecovers) {
  for (const std::string point :
       {"promote:relay-log-applied", "promote:marker-written", "promote:master-info-cleared"}) {
    SCOPED_TRACE(point);
    TempDir dir;
    auto p = Relaykvd::Start(dir.path() / "p");
    ASSERT_NE(p, nullptr);
    auto r = StartReplica(dir.path() / "r", *p, {.server_id = 2});
    ASSERT_NE(r, nullptr);
    const std::vector<Mutation> batch = {Mutation::Put("b0", "x"), Mutation::Delete("k3")};
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(p->Put("k" + std::to_string(i), "p").ok());
    ASSERT_TRUE(p->Write(batch).ok());
    ASSERT_TRUE(WaitFor([&] { return SameChecksum(*r, *p); }));
    const uint64_t old_end = p->BinlogGtid().seq;
    p->Kill();  // the primary is gone

    r->Terminate();
    r = Relaykvd::Start(dir.path() / "r", {"--server-id=2"}, 0, {}, {"RELAYKV_TEST_PAUSE=" + point});
    ASSERT_NE(r, nullptr);
    ASSERT_TRUE(r->client().StopReplica(ReplicaThreads::kBoth).ok());
    std::thread reset([&] { r->client().ResetReplicaAll().IgnoreError(); });  // ends when killed
    const auto log = dir.path() / "r.log";
    ASSERT_TRUE(WaitFor([&] {
      std::ifstream in(log);
      const std::string text((std::istreambuf_iterator<char>(in)), {});
      return text.find("test pause at " + point) != std::string::npos;
    }, std::chrono::seconds(30)));
    r->Kill();
    reset.join();

    r = Relaykvd::Start(dir.path() / "r", {"--server-id=2"});
    ASSERT_NE(r, nullptr) << "the node must restart after a kill at " << point;
    if (!r->ReplicaStatus().empty()) {  // still a replica: promote it again
      ASSERT_TRUE(r->client().StopReplica(ReplicaThreads::kBoth).ok());
      auto again = r->client().ResetReplicaAll();
      ASSERT_TRUE(again.ok()) << again.status();
    }
    const uint64_t end = r->BinlogGtid().seq;
    EXPECT_GT(end, old_end) << "an epoch marker follows the old primary's events";
    auto w = r->Put("new", "r");
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_EQ(w->seq, end + 1) << "GTIDs stay dense";
    EXPECT_GE(w->epoch, 2u);
    for (int i = 0; i < 20; ++i) {
      auto v = r->Get("k" + std::to_string(i));
      ASSERT_TRUE(v.ok()) << v.status();
      EXPECT_EQ(*v, i == 3 ? std::nullopt : std::optional<std::string>("p")) << "k" << i;
    }
    EXPECT_EQ(*r->Get("b0"), std::optional<std::string>("x"));
    // And it stays a primary across a clean restart.
    EXPECT_EQ(r->Terminate(), 0);
    r = Relaykvd::Start(dir.path() / "r", {"--server-id=2"});
    ASSERT_NE(r, nullptr);
    EXPECT_TRUE(r->ReplicaStatus().empty());
    EXPECT_TRUE(r->Put("after-restart", "r").ok());
  }
}

// A primary that restarts replays its binlog, ACKed or not (as MySQL does),
// but its replicas must not show a write the quorum never held: with
// wait_for_slave_count=2 and one semi-sync replica stopped, the write held
// by the other semi-sync replica and an async one stays hidden on both
// across the primary's SIGKILL and restart, until the second replica is back
// and the quorum holds it.
TEST(ReplicationProcessTest, RestartedPrimaryDoesNotShowReplicasAWriteTheQuorumNeverHeld) {
  TempDir dir;
  const std::vector<std::string>& flags = kSemiSyncTwo;
  auto p = Relaykvd::Start(dir.path() / "p", flags);
  ASSERT_NE(p, nullptr);
  auto semi = [&](const std::string& name, int id) {
    return StartReplica(dir.path() / name, *p, {.server_id = id, .semi_sync = true, .clients = id - 1});
  };
  auto a = semi("a", 2);
  auto b = semi("b", 3);
  auto c = StartReplica(dir.path() / "c", *p, {.server_id = 4});  // async
  ASSERT_TRUE(a && b && c);
  ASSERT_TRUE(WaitFor([&] { return p->Status()["Rpl_semi_sync_master_clients"] == "2"; }));
  ASSERT_TRUE(p->Put("first", "1").ok());
  ASSERT_TRUE(b->client().StopReplica(ReplicaThreads::kIo).ok());
  std::thread writer([&] { p->Put("w", "v").IgnoreError(); });  // waits for b, then dies
  const uint64_t w_seq = 2;
  ASSERT_TRUE(WaitFor([&] { return a->BinlogGtid().seq >= w_seq && c->BinlogGtid().seq >= w_seq; }));
  const int port = p->port();
  p->Kill();
  writer.join();
  p = Relaykvd::Start(dir.path() / "p", flags, port);
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(WaitFor([&] { return p->Status()["Rpl_semi_sync_master_clients"] == "1"; }));
  ASSERT_TRUE(WaitFor([&] { return c->ReplicaStatus()["Slave_IO_Running"] == "Yes"; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(*a->Get("w"), std::nullopt) << "a semi-sync replica showed a write only it held";
  EXPECT_EQ(*c->Get("w"), std::nullopt) << "an async replica showed a write the quorum never held";
  EXPECT_EQ(*a->Get("first"), std::optional<std::string>("1"));

  ASSERT_TRUE(b->client().StartReplica(ReplicaThreads::kIo).ok());
  EXPECT_TRUE(WaitFor([&] {
    auto va = a->Get("w");
    auto vc = c->Get("w");
    return va.ok() && va->has_value() && vc.ok() && vc->has_value();
  })) << "once both semi-sync replicas hold it, every replica shows it";
}

// Review s47g G1: RESET SLAVE ALL arms the hold of its unconfirmed relay-log
// tail after its promotion is done, outside the node's lock. A CHANGE
// MASTER and a second RESET SLAVE ALL in that window let the first's late
// arming take the second's hold (and end it, the node being a replica again
// then), so the second showed its tail, which only the node itself held.
// Both promotions pause (RELAYKV_TEST_PAUSE) so that the first arms while
// the second is promoting. Passes in any order with the fix; shows the tail
// at once without it. a waits for two replicas once promoted: its own copy
// counts for one, the old primary's is not another.
TEST(ReplicationProcessTest, ALateHoldOfOneResetSlaveAllDoesNotTakeTheNextOnesHold) {
  TempDir dir;
  auto p = Relaykvd::Start(dir.path() / "p", kSemiSyncTwo);
  ASSERT_NE(p, nullptr);
  std::vector<std::string> a_flags = {"--server-id=2", "--rpl_semi_sync_slave_enabled=ON"};
  a_flags.insert(a_flags.end(), kSemiSyncTwo.begin(), kSemiSyncTwo.end());
  auto a = StartReplica(dir.path() / "a", *p, {.server_id = 2, .semi_sync = true, .clients = 1,
                                               .flags = {"--rpl_semi_sync_master_enabled=ON"}});
  auto b = StartReplica(dir.path() / "b", *p, {.server_id = 3, .semi_sync = true, .clients = 2});
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(p->Put("first", "1").ok());
  // a again, pausing 4 s at both points of each RESET SLAVE ALL.
  a->Terminate();
  a = Relaykvd::Start(dir.path() / "a", a_flags, 0, {},
                      {"RELAYKV_TEST_PAUSE=promote:relay-log-applied,reset-slave-all:before-hold",
                       "RELAYKV_TEST_PAUSE_SECONDS=4"});
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(WaitFor([&] { return p->Status()["Rpl_semi_sync_master_clients"] == "2"; }));

  // The tail: a holds it, b never got it, p never showed it.
  ASSERT_TRUE(b->client().StopReplica(ReplicaThreads::kIo).ok());
  const uint64_t tail_seq = p->BinlogGtid().seq + 1;
  std::thread writer, first, second;
  // Joined whatever fails (a failed ASSERT returns with them running).
  absl::Cleanup join = [&] {
    if (p != nullptr) p->Kill();  // ends the writer's wait
    for (std::thread* t : {&writer, &first, &second}) {
      if (t->joinable()) t->join();
    }
  };
  writer = std::thread([&] { p->Put("tail", "v").IgnoreError(); });  // waits for b, then p dies
  ASSERT_TRUE(WaitFor([&] { return a->BinlogGtid().seq >= tail_seq; }));
  ASSERT_TRUE(a->client().StopReplica(ReplicaThreads::kBoth).ok());

  std::atomic<bool> first_done{false};
  first = std::thread([&] {
    auto s = a->client().ResetReplicaAll();
    EXPECT_TRUE(s.ok()) << s.status();
    first_done = true;
  });
  // Once the first is a primary and waits to arm its hold: CHANGE MASTER.
  ASSERT_TRUE(WaitFor([&] {
    return a->Log().find("test pause at reset-slave-all:before-hold") != std::string::npos;
  }));
  ASSERT_TRUE(a->client().ChangeMaster("127.0.0.1", b->port()).ok());
  ASSERT_FALSE(first_done.load()) << "the first RESET SLAVE ALL did not pause before its arming";
  // Started well into the first's pause, so that it pauses in its promotion
  // when the first arms.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  second = std::thread([&] {
    auto s = a->client().ResetReplicaAll();
    EXPECT_TRUE(s.ok()) << s.status();
  });
  first.join();
  second.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(*a->Get("tail"), std::nullopt) << "the new primary showed a write only it holds";

  // The old primary follows a and ACKs the tail: its copy is not one more
  // besides a's own, which the credit counts (review s47e F4; s48b S2: a's
  // own marker from the first RESET SLAVE ALL is not the tail's writer).
  p->Kill();
  writer.join();
  const auto acks = [&] { return std::stoull(a->Status()["Rpl_semi_sync_master_net_waits"]); };
  const uint64_t acks_before = acks();
  p = StartReplica(dir.path() / "p", *a, {.server_id = 1, .semi_sync = true, .clients = 1});
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(WaitFor([&] { return p->BinlogGtid() == a->BinlogGtid() && acks() > acks_before; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(*a->Get("tail"), std::nullopt) << "the old primary's ACK counted as another copy";
  // Gone again: b's ACK alone must show the tail, with a's own copy's credit.
  p->Kill();

  // b follows a and ACKs the tail: it shows (well before the timeout).
  ASSERT_TRUE(b->client().ChangeMaster("127.0.0.1", a->port()).ok());
  ASSERT_TRUE(b->client().StartReplica(ReplicaThreads::kIo).ok());
  EXPECT_TRUE(WaitFor([&] {
    auto v = a->Get("tail");
    return v.ok() && v->has_value();
  }, std::chrono::seconds(30))) << b->ReplicaStatus()["Last_IO_Error"];
}

// Review s48c T1: a promoted replica's own copy of its unconfirmed tail
// stands for the old primary's (one ACK of credit) only while the tail is
// the old primary's. A write of its own there, taken as primary after a
// first RESET SLAVE ALL that a CHANGE MASTER undid, never reached the old
// primary: the second promotion gives no credit, so under
// wait_for_slave_count=2 one replica's ACK does not show it (two copies of
// three). Without the fix the walk passed the own write as it passes the
// own markers, found the old primary, and b's ACK showed the write.
TEST(ReplicationProcessTest, AWriteOfItsOwnInTheHeldTailGetsNoCredit) {
  TempDir dir;
  const std::vector<std::string>& semi = kSemiSyncTwo;
  auto p = Relaykvd::Start(dir.path() / "p", semi);
  ASSERT_NE(p, nullptr);
  auto a = StartReplica(dir.path() / "a", *p,
                        {.server_id = 2, .semi_sync = true, .clients = 1, .flags = semi});
  auto b = StartReplica(dir.path() / "b", *p, {.server_id = 3, .semi_sync = true, .clients = 2});
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(p->Put("first", "1").ok());

  // The tail: a holds it, b never got it, p (gone) never showed it.
  ASSERT_TRUE(b->client().StopReplica(ReplicaThreads::kIo).ok());
  const uint64_t tail_seq = p->BinlogGtid().seq + 1;
  std::thread writer([&] { p->Put("tail", "v").IgnoreError(); });
  absl::Cleanup join = [&] {
    if (p != nullptr) p->Kill();  // ends the writer's wait
    if (writer.joinable()) writer.join();
  };
  ASSERT_TRUE(WaitFor([&] { return a->BinlogGtid().seq >= tail_seq; }));
  ASSERT_TRUE(a->client().StopReplica(ReplicaThreads::kBoth).ok());
  p->Kill();
  writer.join();

  // a promoted, takes a write of its own (it waits for ACKs that cannot
  // come: in a's binlog, never answered), and is made a replica again.
  ASSERT_TRUE(a->client().ResetReplicaAll().ok());
  ClientOptions short_timeout;
  short_timeout.timeout = std::chrono::milliseconds(1000);
  auto short_lived = Client::Connect({a->address()}, short_timeout);
  ASSERT_TRUE(short_lived.ok()) << short_lived.status();
  EXPECT_FALSE((*short_lived)->Put("own", "w").ok()) << "answered with no replica";
  ASSERT_TRUE(WaitFor([&] { return a->BinlogGtid().seq >= tail_seq + 2; }))
      << "the epoch marker and the own write";
  ASSERT_TRUE(a->client().ChangeMaster("127.0.0.1", b->port()).ok());
  ASSERT_TRUE(a->client().ResetReplicaAll().ok());
  EXPECT_EQ(*a->Get("own"), std::nullopt);

  // b follows a and ACKs all of it: one copy besides a's own.
  ASSERT_TRUE(b->client().ChangeMaster("127.0.0.1", a->port()).ok());
  ASSERT_TRUE(b->client().StartReplica(ReplicaThreads::kIo).ok());
  ASSERT_TRUE(WaitFor([&] {
    return a->Status()["Rpl_semi_sync_master_clients"] == "1" && b->BinlogGtid() == a->BinlogGtid();
  })) << b->ReplicaStatus()["Last_IO_Error"];
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(*a->Get("own"), std::nullopt) << "a write on two of three copies showed (credit given)";
  EXPECT_EQ(*a->Get("tail"), std::nullopt);

  // A second replica's ACK shows the whole tail: p comes back under a.
  p = StartReplica(dir.path() / "p", *a, {.server_id = 1, .semi_sync = true, .clients = 2});
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(WaitFor([&] {
    auto own = a->Get("own");
    auto tail = a->Get("tail");
    return own.ok() && own->has_value() && tail.ok() && tail->has_value();
  }, std::chrono::seconds(30))) << p->ReplicaStatus()["Last_IO_Error"];
}

}  // namespace
}  // namespace relaykv::testing
