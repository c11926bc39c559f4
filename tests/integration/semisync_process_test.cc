// Lossless semi-sync across real processes: SIGKILL the primary in the
// middle of a load; every write the client saw succeed is on the replica.
#include <atomic>
#include <mutex>
#include <thread>

#include "gtest/gtest.h"
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
  p.replica = Relaykvd::Start(dir.path() / "r", {"--server-id=2", "--rpl_semi_sync_slave_enabled=ON",
                                                 "--replicate-from=" + p.primary->address()});
  EXPECT_TRUE(WaitFor([&] { return p.primary->Status()["Rpl_semi_sync_master_clients"] == "1"; }));
  return p;
}

// Stops (or starts) the replica's IO thread and waits until the primary sees it.
void SetReplicaIo(Pair& p, bool running) {
  using R = v1::ReplicaThreadsRequest;
  ASSERT_TRUE(p.replica->ReplicaThreads(running ? R::START : R::STOP, R::IO).ok());
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
  auto replica = Relaykvd::Start(dir.path() / "r", {"--server-id=2", "--rpl_semi_sync_slave_enabled=ON",
                                                    "--replicate-from=" + primary->address()});
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(WaitFor([&] { return primary->Status()["Rpl_semi_sync_master_clients"] == "1"; }));

  std::mutex mu;
  std::map<std::string, std::string> acked;
  uint64_t max_seq = 0;
  std::atomic<bool> stop{false};
  std::atomic<int> next{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&] {
      while (!stop) {
        const int i = next++;
        const std::string key = "k" + std::to_string(i);
        auto g = primary->Put(key, "v" + std::to_string(i));
        if (!g.ok()) break;
        std::lock_guard l(mu);
        acked[key] = "v" + std::to_string(i);
        max_seq = std::max<uint64_t>(max_seq, g->seq());
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  auto status = primary->Status("Rpl_semi_sync_master%");
  EXPECT_EQ(status["Rpl_semi_sync_master_status"], "ON");
  EXPECT_EQ(status["Rpl_semi_sync_master_no_tx"], "0");
  primary->Kill();
  stop = true;
  for (auto& w : writers) w.join();
  ASSERT_GT(acked.size(), 50u);

  // Everything acknowledged is in the replica's relay log (durably: the
  // replica is restarted too, so only what reached its disk counts).
  replica->Kill();
  replica = Relaykvd::Start(dir.path() / "r", {"--server-id=2"});
  ASSERT_NE(replica, nullptr);
  EXPECT_GE(replica->BinlogGtid().seq(), max_seq);
  ASSERT_TRUE(WaitFor([&] {
    v1::Gtid applied;
    auto v = replica->Get("k0", &applied);
    return v.ok() && applied.seq() == replica->BinlogGtid().seq();
  }));
  for (const auto& [key, value] : acked) {
    auto got = replica->Get(key);
    ASSERT_TRUE(got.ok());
    ASSERT_EQ(*got, std::optional<std::string>(value)) << key << " was acknowledged but is not on the replica";
  }
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
  EXPECT_GE(took, std::chrono::milliseconds(1000));
  EXPECT_LT(took, std::chrono::milliseconds(1500));
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

}  // namespace
}  // namespace relaykv::testing
