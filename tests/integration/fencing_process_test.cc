// Fencing by epoch across real relaykvd processes: once both semi-sync
// replicas answered Revoke(epoch+1), the old primary collects no ACK for a
// new write (it is not answered OK), a revoked old primary refuses writes,
// and the replicas fail over to one of them with equal checksums.
#include <chrono>
#include <cstdlib>
#include <future>
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

// Starts relaykvd with RELAYKV_TEST_PAUSE=<point> for `seconds`
// (server/test_pause.h).
std::unique_ptr<Relaykvd> StartPausing(const std::filesystem::path& dir,
                                       std::vector<std::string> flags, const std::string& point,
                                       int seconds) {
  return Relaykvd::Start(dir, std::move(flags), 0, {},
                         {"RELAYKV_TEST_PAUSE=" + point,
                          "RELAYKV_TEST_PAUSE_SECONDS=" + std::to_string(seconds)});
}

bool Paused(const Relaykvd& server, const std::string& point) {
  return server.Log().find("test pause at " + point) != std::string::npos;
}

bool IoStoppedWith(Relaykvd& replica, const std::string& text) {
  auto st = replica.ReplicaStatus();
  return st["Slave_IO_Running"] == "No" && st["Last_IO_Error"].find(text) != std::string::npos;
}

TEST(FencingProcessTest, RevokedAckersGiveTheOldPrimaryNoAckAndFailOverWithEqualChecksums) {
  TempDir dir;
  // A long semi-sync timeout: no fallback to async within the test.
  auto primary = Relaykvd::Start(dir.path() / "p", {"--rpl_semi_sync_master_enabled=ON",
                                                    "--rpl_semi_sync_master_timeout=600000"});
  ASSERT_NE(primary, nullptr);
  auto r1 = StartSemiSyncReplica(dir.path() / "r1", *primary, 2, 1);
  ASSERT_NE(r1, nullptr);
  auto r2 = StartSemiSyncReplica(dir.path() / "r2", *primary, 3, 2);
  ASSERT_NE(r2, nullptr);
  RunMixedLoad(*primary, 200, "before");
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*r1, *primary) && SameChecksum(*r2, *primary); }));
  const Gtid last = primary->BinlogGtid();
  const uint64_t next_epoch = last.epoch + 1;

  // The election's first step: both ackers promise the next epoch.
  for (Relaykvd* r : {r1.get(), r2.get()}) {
    auto revoked = r->client().Revoke(next_epoch);
    ASSERT_TRUE(revoked.ok()) << revoked.status();
    EXPECT_EQ(revoked->promised_epoch, next_epoch);
    EXPECT_EQ(revoked->durable_gtid, last);
    EXPECT_EQ(revoked->applied_gtid, last);
    EXPECT_FALSE(revoked->revoked_primary);
    // Idempotent, and a lower epoch is answered with the promise.
    auto lower = r->client().Revoke(last.epoch);
    ASSERT_TRUE(lower.ok()) << lower.status();
    EXPECT_EQ(lower->promised_epoch, next_epoch);
  }
  const std::string why = "is at epoch " + std::to_string(last.epoch) +
                          " but this replica has promised epoch " + std::to_string(next_epoch);
  ASSERT_TRUE(WaitFor([&] { return IoStoppedWith(*r1, why) && IoStoppedWith(*r2, why); }))
      << r1->ReplicaStatus()["Last_IO_Error"] << " / " << r2->ReplicaStatus()["Last_IO_Error"];
  ASSERT_TRUE(WaitFor([&] { return primary->Status()["Rpl_semi_sync_master_clients"] == "0"; }));

  // A write on the old primary: no ACK can come, so it is not answered OK.
  // With a 2 s client deadline it ends DEADLINE_EXCEEDED; the old primary
  // holds it in its binlog (an unacknowledged tail), counts it neither as
  // yes_tx nor no_tx, and stays semi-sync ON; no replica has it.
  auto before = primary->Status("Rpl_semi_sync_master%");
  ClientOptions two_seconds;
  two_seconds.timeout = std::chrono::milliseconds(2000);
  auto impatient = Client::Connect({primary->address()}, two_seconds);
  ASSERT_TRUE(impatient.ok()) << impatient.status();
  auto late = (*impatient)->Put("late", "x");
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded) << late.status();
  ASSERT_TRUE(WaitFor([&] { return primary->Status()["Rpl_semi_sync_master_wait_sessions"] == "0"; }));
  auto after = primary->Status("Rpl_semi_sync_master%");
  EXPECT_EQ(after["Rpl_semi_sync_master_yes_tx"], before["Rpl_semi_sync_master_yes_tx"]);
  EXPECT_EQ(after["Rpl_semi_sync_master_no_tx"], before["Rpl_semi_sync_master_no_tx"]);
  EXPECT_EQ(after["Rpl_semi_sync_master_status"], "ON");
  EXPECT_EQ(primary->BinlogGtid().seq, last.seq + 1);
  EXPECT_EQ(r1->BinlogGtid(), last);
  EXPECT_EQ(r2->BinlogGtid(), last);
  auto invisible = primary->Get("late");
  ASSERT_TRUE(invisible.ok()) << invisible.status();
  EXPECT_EQ(*invisible, std::nullopt) << "AFTER_SYNC: never applied without its ACK";

  // The old primary revoked as well: it takes no write at all.
  auto fenced = primary->client().Revoke(next_epoch);
  ASSERT_TRUE(fenced.ok()) << fenced.status();
  EXPECT_TRUE(fenced->revoked_primary);
  EXPECT_EQ(primary->Status()["Rpl_revoked_primary"], "ON");
  auto refused = primary->Put("refused", "x");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();

  // Failover: r1 becomes the primary of the next epoch, r2 follows it.
  ASSERT_TRUE(r1->client().StopReplica().ok());
  auto start = r1->client().ResetReplicaAll();
  ASSERT_TRUE(start.ok()) << start.status();
  EXPECT_EQ(*start, (Gtid{next_epoch, last.seq + 1}));
  ASSERT_TRUE(r2->client().StopReplica().ok());
  ASSERT_TRUE(r2->client().ChangeMaster("127.0.0.1", static_cast<uint32_t>(r1->port())).ok());
  ASSERT_TRUE(r2->client().StartReplica().ok());
  RunMixedLoad(*r1, 100, "after");
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*r1, *r2); }));
  EXPECT_EQ(r2->ReplicaStatus()["Slave_IO_Running"], "Yes");
  EXPECT_EQ(r2->Status()["Rpl_promised_epoch"], std::to_string(next_epoch));
  auto lost = r1->Get("late");
  ASSERT_TRUE(lost.ok()) << lost.status();
  EXPECT_EQ(*lost, std::nullopt) << "the old primary's unacknowledged write is not in the new history";
}

// Review finding 8: Revoke waits for the promise's lock at most 10 s (here
// an IO thread holds it, paused between its epoch check and its ACK, as a
// stuck relay-log disk would), then answers UNAVAILABLE, promising nothing.
TEST(FencingProcessTest, RevokeWithThePromiseLockHeldAnswersUnavailableWithinItsBound) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p");
  ASSERT_NE(primary, nullptr);
  ASSERT_TRUE(primary->Put("a", "1").ok());
  auto replica = StartPausing(dir.path() / "r", {"--server-id=2", "--replicate-from=" +
                                                 primary->address()},
                              "replica-io:promise-held", 40);
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Paused(*replica, "replica-io:promise-held"); },
                      std::chrono::seconds(30)));
  const auto began = std::chrono::steady_clock::now();
  auto r = replica->client().Revoke(2);
  const auto took = std::chrono::steady_clock::now() - began;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_NE(r.status().message().find("nothing was promised"), std::string::npos) << r.status();
  EXPECT_GE(took, std::chrono::seconds(9));
  EXPECT_LT(took, std::chrono::seconds(25)) << "Revoke waited for the lock past its bound";
  EXPECT_EQ(replica->Status()["Rpl_promised_epoch"], "0");
}

// Review finding 3: RESET SLAVE ALL's fence update and a Revoke of a newer
// epoch are serialized. The promoted node pauses after deciding it is a
// writable primary; a Revoke(5) meanwhile must not be undone by that stale
// decision: the node ends revoked (epoch 2 < 5) and refuses writes.
TEST(FencingProcessTest, RevokeDuringPromotionNeverLeavesAWritablePrimaryBelowThePromise) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p");
  ASSERT_NE(primary, nullptr);
  ASSERT_TRUE(primary->Put("a", "1").ok());
  auto r = StartPausing(dir.path() / "r",
                        {"--server-id=2", "--replicate-from=" + primary->address()},
                        "fence:evaluated-writable", 5);
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(WaitFor([&] { return r->BinlogGtid() == primary->BinlogGtid(); }));
  ASSERT_TRUE(r->client().StopReplica().ok());
  auto promoted = std::async(std::launch::async, [&] { return r->client().ResetReplicaAll(); });
  ASSERT_TRUE(WaitFor([&] { return Paused(*r, "fence:evaluated-writable"); },
                      std::chrono::seconds(30)));
  auto revoked = r->client().Revoke(5);
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  EXPECT_EQ(revoked->promised_epoch, 5u);
  auto start = promoted.get();
  ASSERT_TRUE(start.ok()) << start.status();
  EXPECT_EQ(start->epoch, 2u);
  EXPECT_EQ(r->Status()["Rpl_revoked_primary"], "ON");
  auto w = r->Put("b", "2");
  EXPECT_EQ(w.status().code(), absl::StatusCode::kFailedPrecondition) << w.status();
}

}  // namespace
}  // namespace relaykv::testing
