// Lossless semi-sync across real processes: SIGKILL the primary in the
// middle of a load; every write the client saw succeed is on the replica.
#include <atomic>
#include <mutex>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "proto/kv.grpc.pb.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

// A semi-sync primary and one semi-sync replica, connected.
struct Pair {
  std::unique_ptr<Relaykvd> primary, replica;
};
Pair StartPair(const TempDir& dir, int timeout_ms) {
  Pair p;
  p.primary = Relaykvd::Start(dir.path() / "p", {"--rpl_semi_sync_master_enabled=ON",
                                                 "--rpl_semi_sync_master_timeout=" + std::to_string(timeout_ms)});
  if (!p.primary) return p;
  p.replica = StartSemiSyncReplica(dir.path() / "r", *p.primary);
  return p;
}

// Stops (or starts) the replica's IO thread and waits until the primary sees it.
void SetReplicaIo(Pair& p, bool running) {
  ASSERT_TRUE((running ? p.replica->client().StartReplica(ReplicaThreads::kIo)
                       : p.replica->client().StopReplica(ReplicaThreads::kIo))
                  .ok());
  if (!running) {
    ASSERT_TRUE(WaitFor([&] { return p.primary->Status()["Rpl_semi_sync_master_clients"] == "0"; }));
  }
}

TEST(SemiSyncProcessTest, NoAcknowledgedWriteIsLostWhenThePrimaryDies) {
  TempDir dir;
  // A long timeout: semi-sync must stay ON for the whole load.
  auto primary = Relaykvd::Start(dir.path() / "p", {"--rpl_semi_sync_master_enabled=ON",
                                                    "--rpl_semi_sync_master_timeout=60000"});
  ASSERT_NE(primary, nullptr);
  auto replica = StartSemiSyncReplica(dir.path() / "r", *primary);
  ASSERT_NE(replica, nullptr);

  WriteLoad::Acked acked;
  std::atomic<int> counter{0};
  WriteLoad load(primary.get(), 8, &counter, "", &acked);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  auto status = primary->Status("Rpl_semi_sync_master%");
  EXPECT_EQ(status["Rpl_semi_sync_master_status"], "ON");
  EXPECT_EQ(status["Rpl_semi_sync_master_no_tx"], "0");
  primary->Kill();
  load.Stop();
  ASSERT_GT(acked.values.size(), 50u);

  // Everything acknowledged is in the replica's relay log (durably: the
  // replica is restarted too, so only what reached its disk counts).
  replica->Kill();
  replica = Relaykvd::Start(dir.path() / "r", {"--server-id=2"});
  ASSERT_NE(replica, nullptr);
  EXPECT_GE(replica->BinlogGtid().seq, acked.max_seq);
  // A restarted replica applies its relay log only as far as its primary
  // says is visible, and this one's primary is gone: the failover path
  // (RESET SLAVE ALL applies the whole relay log) makes it readable.
  ASSERT_TRUE(replica->client().StopReplica(ReplicaThreads::kBoth).ok());
  auto promoted = replica->client().ResetReplicaAll();
  ASSERT_TRUE(promoted.ok()) << promoted.status();
  for (const auto& [key, value] : acked.values) {
    auto got = replica->Get(key);
    ASSERT_TRUE(got.ok());
    ASSERT_EQ(*got, std::optional<std::string>(value)) << key << " was acknowledged but is not on the replica";
  }
}

// Failover: the primary of two semi-sync replicas is SIGKILLed under load;
// RESET SLAVE ALL on the replica that holds the most makes it the primary.
// Every write a client saw succeed is readable there, its writes start a new
// epoch, and the other replica, pointed at it, converges to the same data.
TEST(SemiSyncProcessTest, FailoverToAReplicaKeepsEveryAcknowledgedWrite) {
  TempDir dir;
  const std::vector<std::string> semi = {"--rpl_semi_sync_master_enabled=ON",
                                         "--rpl_semi_sync_master_timeout=60000",
                                         "--rpl_semi_sync_slave_enabled=ON"};
  auto with = [&](std::vector<std::string> flags) {
    flags.insert(flags.end(), semi.begin(), semi.end());
    return flags;
  };
  auto primary = Relaykvd::Start(dir.path() / "p", with({}));
  ASSERT_NE(primary, nullptr);
  std::unique_ptr<Relaykvd> replicas[2];
  for (int i = 0; i < 2; ++i) {
    replicas[i] = Relaykvd::Start(dir.path() / ("r" + std::to_string(i)),
                                  with({"--server-id=" + std::to_string(i + 2),
                                        "--replicate-from=" + primary->address()}));
    ASSERT_NE(replicas[i], nullptr);
  }
  ASSERT_TRUE(WaitFor([&] { return primary->Status()["Rpl_semi_sync_master_clients"] == "2"; }));

  WriteLoad::Acked acked;
  std::atomic<int> counter{0};
  WriteLoad load(primary.get(), 8, &counter, "", &acked);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ(primary->Status()["Rpl_semi_sync_master_no_tx"], "0");
  primary->Kill();
  load.Stop();
  ASSERT_GT(acked.values.size(), 50u);

  // Both replicas hold a prefix of one history: the longer one has every
  // write either of them ACKed.
  for (auto& r : replicas) ASSERT_TRUE(r->client().StopReplica(ReplicaThreads::kBoth).ok());
  const int chosen = replicas[0]->BinlogGtid().seq >= replicas[1]->BinlogGtid().seq ? 0 : 1;
  Relaykvd& next_primary = *replicas[chosen];
  Relaykvd& other = *replicas[1 - chosen];
  const Gtid before = next_primary.BinlogGtid();
  ASSERT_FALSE(next_primary.Put("early", "x").ok()) << "a replica takes no writes";

  auto start = next_primary.client().ResetReplicaAll();
  ASSERT_TRUE(start.ok()) << start.status();
  EXPECT_EQ(start->epoch, before.epoch + 1) << "a new epoch";
  EXPECT_EQ(start->seq, before.seq + 1) << "right after the relay log";
  EXPECT_TRUE(next_primary.ReplicaStatus().empty()) << "no longer a replica";
  EXPECT_FALSE(next_primary.client().ResetReplicaAll().ok()) << "only a replica can be promoted";
  for (const auto& [key, value] : acked.values) {
    auto got = next_primary.Get(key);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(*got, std::optional<std::string>(value)) << key << " was acknowledged but is lost after failover";
  }
  // The other replica follows the new primary and is its semi-sync replica
  // (with no semi-sync replica, a write would wait for the 60 s timeout).
  ASSERT_TRUE(other.client().ChangeMaster("127.0.0.1", static_cast<uint32_t>(next_primary.port())).ok());
  ASSERT_TRUE(other.client().StartReplica(ReplicaThreads::kBoth).ok());
  ASSERT_TRUE(WaitFor([&] { return next_primary.Status()["Rpl_semi_sync_master_clients"] == "1"; }));
  const auto yes_before = std::stoi(next_primary.Status()["Rpl_semi_sync_master_yes_tx"]);
  auto w = next_primary.Put("after-failover", "1");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->epoch, start->epoch);
  EXPECT_EQ(w->seq, start->seq + 1);
  EXPECT_EQ(std::stoi(next_primary.Status()["Rpl_semi_sync_master_yes_tx"]), yes_before + 1);
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(next_primary, other); }))
      << "the other replica converges on the new primary";

  // A restart keeps the new role and epoch.
  EXPECT_EQ(next_primary.Terminate(), 0);
  // (Semi-sync off: its replica still points at the old port.)
  auto restarted = Relaykvd::Start(next_primary.data_dir(), {"--server-id=" + std::to_string(chosen + 2)});
  ASSERT_NE(restarted, nullptr);
  auto again = restarted->Put("after-restart", "1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->epoch, start->epoch);
}

TEST(SemiSyncProcessTest, TimeoutLikeTheSeedThenRecovery) {
  TempDir dir;
  Pair pair = StartPair(dir, 1000);
  ASSERT_TRUE(pair.primary && pair.replica);
  Relaykvd* primary = pair.primary.get();
  SetReplicaIo(pair, false);
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(primary->Put("slow", "1").ok());
  auto took = std::chrono::steady_clock::now() - start;
  // Never before the timeout; the upper bound is only a hang guard (this
  // machine is shared and loaded: the seed drill, scripts/seed_walkthrough.sh,
  // keeps the exact timing check).
  EXPECT_GE(took, std::chrono::milliseconds(1000));
  EXPECT_LT(took, std::chrono::seconds(10));
  auto st = primary->Status();
  EXPECT_EQ(st["Rpl_semi_sync_master_no_tx"], "1");
  EXPECT_EQ(st["Rpl_semi_sync_master_no_times"], "1");
  EXPECT_EQ(st["Rpl_semi_sync_master_status"], "OFF");
  SetReplicaIo(pair, true);
  ASSERT_TRUE(WaitFor([&] { return primary->Status()["Rpl_semi_sync_master_status"] == "ON"; }));
  auto before = primary->Status();
  ASSERT_TRUE(primary->Put("fast", "2").ok());
  auto after = primary->Status();
  EXPECT_EQ(std::stoi(after["Rpl_semi_sync_master_yes_tx"]), std::stoi(before["Rpl_semi_sync_master_yes_tx"]) + 1);
  EXPECT_EQ(std::stoi(after["Rpl_semi_sync_master_tx_waits"]), std::stoi(before["Rpl_semi_sync_master_tx_waits"]) + 1);
}

// A commit whose client stops waiting — it goes away (cancel) or its gRPC
// deadline passes — is never answered OK, not counted in yes_tx, leaves no
// session waiting, does not switch semi-sync OFF, and still replicates.
TEST(SemiSyncProcessTest, AbandonedCommitIsNotCountedAndStillReplicates) {
  TempDir dir;
  Pair pair = StartPair(dir, 60000);
  ASSERT_TRUE(pair.primary && pair.replica);
  Relaykvd* primary = pair.primary.get();
  Relaykvd* replica = pair.replica.get();
  // A raw stub: the client library has no call a test could cancel.
  auto stub = v1::Kv::NewStub(grpc::CreateChannel(primary->address(), grpc::InsecureChannelCredentials()));
  auto abandon = [&](const std::string& key, bool cancel) {
    SetReplicaIo(pair, false);
    grpc::ClientContext ctx;
    if (!cancel) ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    v1::PutRequest req;
    req.set_key(key);
    req.set_value("v");
    v1::WriteReply reply;
    grpc::Status result;
    std::thread call([&] { result = stub->Put(&ctx, req, &reply); });
    if (cancel) {
      ASSERT_TRUE(WaitFor([&] { return primary->Status()["Rpl_semi_sync_master_wait_sessions"] == "1"; }));
      ctx.TryCancel();  // the client goes away
    }
    call.join();
    EXPECT_EQ(result.error_code(),
              cancel ? grpc::StatusCode::CANCELLED : grpc::StatusCode::DEADLINE_EXCEEDED)
        << key << ": " << result.error_message();
    ASSERT_TRUE(WaitFor([&] { return primary->Status()["Rpl_semi_sync_master_wait_sessions"] == "0"; }));
    EXPECT_EQ(primary->Status()["Rpl_semi_sync_master_status"], "ON") << key;
    SetReplicaIo(pair, true);
    ASSERT_TRUE(WaitFor([&] {
      auto v = replica->Get(key);
      return v.ok() && v->has_value();
    })) << key;
    EXPECT_EQ(primary->Status()["Rpl_semi_sync_master_yes_tx"], "0") << key;
  };
  abandon("orphan", /*cancel=*/true);
  abandon("impatient", /*cancel=*/false);
}

// Invariant 2 across a crash (review s31 F4): a write waiting for its ACK
// is in the primary's binlog but visible nowhere. SIGKILLed there and
// restarted with no replica, the primary must not serve it from its replayed
// tail at once: only once a replica ACKs it, or semi-sync times out and
// goes async (counted), as for any write. (MySQL serves it at once.)
TEST(SemiSyncProcessTest, RestartedPrimaryHoldsItsUnacknowledgedTailBack) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p", {"--rpl_semi_sync_master_enabled=ON",
                                                    "--rpl_semi_sync_master_timeout=600000"});
  ASSERT_NE(primary, nullptr);
  const uint64_t end = primary->BinlogGtid().seq;
  std::thread put([&] { primary->Put("unacked", "v").IgnoreError(); });  // waits for an ACK
  ASSERT_TRUE(WaitFor([&] { return primary->BinlogGtid().seq > end; }));
  primary->Kill();
  put.join();
  primary = Relaykvd::Start(dir.path() / "p", {"--rpl_semi_sync_master_enabled=ON",
                                               "--rpl_semi_sync_master_timeout=3000"});
  ASSERT_NE(primary, nullptr);
  auto got = primary->Get("unacked");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, std::nullopt) << "a write no replica ACKed was served after a restart";
  // A primary-fresh read cannot be answered meanwhile: writes answered OK
  // before the crash may be in the held tail too.
  ReadOptions fresh;
  fresh.consistency = ReadConsistency::kPrimaryFresh;
  auto read = primary->client().Read("unacked", fresh);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kUnavailable) << read.status();
  // No replica comes: the timeout makes it async, and then it is readable.
  ASSERT_TRUE(WaitFor([&] {
    auto v = primary->Get("unacked");
    return v.ok() && *v == std::optional<std::string>("v");
  }));
  EXPECT_EQ(primary->Status()["Rpl_semi_sync_master_status"], "OFF");
  read = primary->client().Read("unacked", fresh);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->value, std::optional<std::string>("v"));
}

// Review s33c F3: a restarted primary told to follow another (CHANGE
// MASTER) while its replayed tail is held stops waiting for it: the held
// wait neither applies that tail on what is now a replica (its new primary
// decides what it shows) nor times out into a semi-sync switch OFF there.
TEST(SemiSyncProcessTest, HeldTailIsLeftToTheNewPrimaryAfterChangeMaster) {
  TempDir dir;
  auto other = Relaykvd::Start(dir.path() / "other", {"--server-id=2"});
  ASSERT_NE(other, nullptr);
  auto primary = Relaykvd::Start(dir.path() / "p", {"--rpl_semi_sync_master_enabled=ON",
                                                    "--rpl_semi_sync_master_timeout=600000"});
  ASSERT_NE(primary, nullptr);
  std::thread put([&] { primary->Put("unacked", "v").IgnoreError(); });
  ASSERT_TRUE(WaitFor([&] { return primary->BinlogGtid().seq > 0; }));
  primary->Kill();
  put.join();
  primary = Relaykvd::Start(dir.path() / "p", {"--rpl_semi_sync_master_enabled=ON",
                                               "--rpl_semi_sync_master_timeout=5000"});
  ASSERT_NE(primary, nullptr);
  // Still held (a slow start would otherwise pass for the wrong reason).
  ReadOptions fresh;
  fresh.consistency = ReadConsistency::kPrimaryFresh;
  auto held = primary->client().Read("unacked", fresh);
  ASSERT_EQ(held.status().code(), absl::StatusCode::kUnavailable) << held.status();
  ASSERT_NE(held.status().message().find("restarted"), std::string::npos) << held.status();
  ASSERT_TRUE(primary->client().ChangeMaster("127.0.0.1", static_cast<uint32_t>(other->port())).ok());
  // Past the semi-sync timeout, whenever the hold began.
  std::this_thread::sleep_for(std::chrono::milliseconds(6000));
  auto status = primary->Status("Rpl_semi_sync_master%");
  EXPECT_EQ(status["Rpl_semi_sync_master_no_times"], "0") << "the held wait switched semi-sync OFF";
  EXPECT_EQ(status["Rpl_semi_sync_master_no_tx"], "0");
  auto got = primary->Get("unacked");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, std::nullopt) << "the tail its new primary never had was applied";
}

}  // namespace
}  // namespace relaykv::testing
