// RESET SLAVE ALL (Node::BecomePrimary) between embedded nodes on loopback:
// while it runs, START SLAVE, STOP SLAVE, CHANGE MASTER and a second RESET
// SLAVE ALL are refused (stopping the SQL thread or repointing would break
// the promotion halfway); a promotion that fails leaves the node a replica
// of its old primary — same epoch, no marker, writes refused — across a
// restart too.
#include <atomic>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "proto/event.pb.h"
#include "relaykv/node.h"
#include "storage/binlog.h"
#include "tests/common/temp_dir.h"
#include "tests/server/node_harness.h"

namespace relaykv {
namespace {

using testing::TempDir;
using testing::Field;
constexpr auto Addr = testing::Address;
using testing::WaitFor;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

std::unique_ptr<Node> Open(const fs::path& dir, int server_id, std::string replicate_from = "") {
  return testing::OpenServingNode(dir, {{"server_id", std::to_string(server_id)}},
                                  std::move(replicate_from));
}

constexpr const char* kInProgress = "RESET SLAVE ALL is in progress";

TEST(PromotionTest, ReplicaCommandsAndASecondResetAreRefusedWhileResetSlaveAllRuns) {
  TempDir dir;
  auto primary = Open(dir.path() / "p", 1);
  ASSERT_NE(primary, nullptr);
  auto replica = Open(dir.path() / "r", 2, Addr(*primary));
  ASSERT_NE(replica, nullptr);
  // A relay log the SQL thread has not applied: the promotion applies it
  // all before anything changes, which keeps it in progress a while.
  ASSERT_TRUE(replica->StopReplica(ReplicaThreads::kSql).ok());
  constexpr int kEvents = 600, kKeysPerEvent = 100;
  const std::string value(1000, 'v');
  for (int e = 0; e < kEvents; ++e) {
    std::vector<Mutation> batch;
    for (int k = 0; k < kKeysPerEvent; ++k) {
      batch.push_back(Mutation::Put("e" + std::to_string(e) + "/" + std::to_string(k), value));
    }
    ASSERT_TRUE(primary->Write(std::move(batch)).ok());
  }
  ASSERT_TRUE(WaitFor([&] { return replica->binlog_gtid().seq == kEvents; }));
  ASSERT_TRUE(replica->StopReplica(ReplicaThreads::kIo).ok());
  const Gtid relay_end = replica->binlog_gtid();
  const uint64_t applied_before = replica->applied_gtid().seq;
  ASSERT_LT(applied_before, relay_end.seq);

  std::atomic<bool> done{false};
  const auto promotion_began = Clock::now();
  auto promotion = std::async(std::launch::async, [&] {
    auto r = replica->BecomePrimary();
    done = true;
    return r;
  });
  // The promotion restarts the applier: seqs moving while the SQL thread is
  // stopped mean it is under way (the flag is set before that).
  const auto guard = Clock::now() + std::chrono::seconds(60);
  while (!done && replica->applied_gtid().seq == applied_before && Clock::now() < guard) {
    std::this_thread::yield();
  }
  ASSERT_FALSE(done) << "the promotion ended before the test saw it start; relay log too small";
  ASSERT_GT(replica->applied_gtid().seq, applied_before) << "no progress within 60 s";
  const absl::Status start = replica->StartReplica(ReplicaThreads::kIo);
  const absl::Status stop_sql = replica->StopReplica(ReplicaThreads::kSql);
  const absl::Status stop_all = replica->StopReplica(ReplicaThreads::kBoth);
  const absl::Status change = replica->ChangePrimary("127.0.0.1", 1);
  const absl::StatusOr<Gtid> second = replica->BecomePrimary();
  const bool still_running = !done;
  for (const auto& [what, s] : std::vector<std::pair<std::string, absl::Status>>{
           {"START SLAVE IO_THREAD", start},
           {"STOP SLAVE SQL_THREAD", stop_sql},
           {"STOP SLAVE", stop_all},
           {"CHANGE MASTER", change},
           {"second RESET SLAVE ALL", second.status()}}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << what << ": " << s;
    EXPECT_NE(s.message().find(kInProgress), std::string::npos) << what << ": " << s;
  }
  EXPECT_TRUE(still_running) << "the promotion ended while the refusals were made: relay log too small";

  ASSERT_EQ(promotion.wait_for(std::chrono::seconds(120)), std::future_status::ready);
  auto epoch_start = promotion.get();
  // How wide the window was (the refusals above take well under 1 ms).
  RecordProperty("promotion_ms", static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                       Clock::now() - promotion_began)
                                                       .count()));
  ASSERT_TRUE(epoch_start.ok()) << epoch_start.status() << " (the refusals must not have broken it)";
  EXPECT_EQ(epoch_start->epoch, relay_end.epoch + 1);
  EXPECT_EQ(epoch_start->seq, relay_end.seq + 1);
  EXPECT_FALSE(replica->is_replica()) << "the refused CHANGE MASTER must not have repointed it";
  EXPECT_EQ(replica->applied_gtid(), *epoch_start) << "the refused STOP SLAVE must not have stopped it";
  auto k = replica->Get("e" + std::to_string(kEvents - 1) + "/" + std::to_string(kKeysPerEvent - 1));
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(*k, std::optional<std::string>(value));
  auto w = replica->Put("new", "1");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->epoch, epoch_start->epoch);
}

TEST(PromotionTest, FailedPromotionLeavesAReplicaOfTheOldPrimary) {
  TempDir dir;
  const fs::path rdir = dir.path() / "r";
  std::string primary_address;
  {
    auto primary = Open(dir.path() / "p", 1);
    ASSERT_NE(primary, nullptr);
    primary_address = Addr(*primary);
    auto replica = Open(rdir, 2, primary_address);
    ASSERT_NE(replica, nullptr);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(primary->Put("k" + std::to_string(i), "v").ok());
    ASSERT_TRUE(WaitFor([&] { return replica->applied_gtid().seq == 3; }));
    replica->Close();
    primary->Close();
  }
  // The relay log gets an event the state machine cannot apply (an
  // unspecified op, which the IO thread would have refused): applying the
  // relay log, the first step of the promotion, fails.
  Gtid held;
  {
    BinlogOptions o;
    o.dir = rdir / "binlog";
    auto b = Binlog::Open(o);
    ASSERT_TRUE(b.ok()) << b.status();
    held = {(*b)->LastVisible().epoch, (*b)->LastVisible().seq + 1};
    v1::Event bad;
    bad.set_timestamp_us(1);
    bad.set_server_id(1);
    bad.mutable_gtid()->set_epoch(held.epoch);
    bad.mutable_gtid()->set_seq(held.seq);
    auto* m = bad.add_mutations();
    m->set_op(v1::Mutation::OP_UNSPECIFIED);
    m->set_key("bad");
    ASSERT_TRUE((*b)->AppendReplicated({&bad, 1}, /*sync=*/true).ok());
  }
  auto replica = Open(rdir, 2);  // from master.info: a replica of the (gone) primary
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(replica->is_replica());
  ASSERT_TRUE(replica->StopReplica(ReplicaThreads::kBoth).ok());

  auto promoted = replica->BecomePrimary();
  ASSERT_FALSE(promoted.ok()) << "promoted to " << promoted->ToString() << " over an unappliable relay log";
  EXPECT_NE(promoted.status().message().find(held.ToString()), std::string::npos)
      << "the error names the event it could not apply: " << promoted.status();

  // Still a replica of its old primary: no marker, same epoch, no writes.
  auto still_a_replica = [&](Node& n, const std::string& when) {
    EXPECT_TRUE(n.is_replica()) << when;
    const NameValues rs = n.ReplicaStatus();
    EXPECT_EQ(Field(rs, "Master_Host") + ":" + Field(rs, "Master_Port"), primary_address) << when;
    EXPECT_EQ(n.binlog_gtid(), held) << when << ": the promotion wrote to the binlog";
    auto w = n.Put("x", "1");
    EXPECT_EQ(w.status().code(), absl::StatusCode::kFailedPrecondition) << when << ": " << w.status();
    EXPECT_NE(w.status().message().find(primary_address), std::string::npos) << when << ": " << w.status();
  };
  still_a_replica(*replica, "after the failed promotion");
  EXPECT_TRUE(fs::exists(rdir / "master.info"));
  // Not stuck "in progress": replica commands work again.
  EXPECT_TRUE(replica->StartReplica(ReplicaThreads::kIo).ok());
  EXPECT_TRUE(replica->StopReplica(ReplicaThreads::kIo).ok());
  auto again = replica->BecomePrimary();
  EXPECT_FALSE(again.ok());
  EXPECT_EQ(again.status().message().find(kInProgress), std::string::npos) << again.status();
  replica->Close();

  replica = Open(rdir, 2);
  ASSERT_NE(replica, nullptr);
  still_a_replica(*replica, "after a restart");
}

}  // namespace
}  // namespace relaykv
