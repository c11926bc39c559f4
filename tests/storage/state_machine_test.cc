// The RocksDB state machine and the applier that feeds it from the binlog.
#include "storage/state_machine.h"

#include "gtest/gtest.h"
#include "storage/applier.h"
#include "tests/storage/storage_test_util.h"

namespace relaykv {
namespace {

using testing::PutEvent;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

v1::Event At(v1::Event e, uint64_t seq) {
  e.mutable_gtid()->set_epoch(1);
  e.mutable_gtid()->set_seq(seq);
  return e;
}

TEST(StateMachineTest, AppliesBatchesAtomicallyWithTheGtid) {
  TempDir dir;
  auto sm = *StateMachine::Open(dir.path());
  v1::Event del = At(PutEvent("a", ""), 3);
  del.mutable_mutations(0)->set_op(v1::Mutation::DELETE);
  std::string binary_key("k\0ey", 4);
  std::vector<v1::Event> batch = {At(PutEvent("a", "1"), 1), At(PutEvent(binary_key, ""), 2), del};
  ASSERT_TRUE(sm->Apply(batch).ok());
  EXPECT_EQ(sm->Applied(), (Gtid{1, 3}));
  EXPECT_EQ(*sm->Get("a"), std::nullopt);
  EXPECT_EQ(*sm->Get(binary_key), std::optional<std::string>(""));
}

TEST(StateMachineTest, OutOfOrderBatchChangesNothing) {
  TempDir dir;
  auto sm = *StateMachine::Open(dir.path());
  std::vector<v1::Event> first = {At(PutEvent("a", "1"), 1)};
  ASSERT_TRUE(sm->Apply(first).ok());
  std::vector<v1::Event> gap = {At(PutEvent("b", "2"), 3)};
  EXPECT_EQ(sm->Apply(gap).code(), absl::StatusCode::kFailedPrecondition);
  std::vector<v1::Event> half = {At(PutEvent("c", "3"), 2), At(PutEvent("d", "4"), 4)};
  EXPECT_EQ(sm->Apply(half).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*sm->Get("c"), std::nullopt) << "a refused batch applies nothing";
  EXPECT_EQ(sm->Applied().seq, 1u);
}

TEST(StateMachineTest, SurvivesReopen) {
  TempDir dir;
  {
    auto sm = *StateMachine::Open(dir.path());
    std::vector<v1::Event> b = {At(PutEvent("a", "1"), 1), At(PutEvent("b", "2"), 2)};
    ASSERT_TRUE(sm->Apply(b).ok());
  }
  auto sm = *StateMachine::Open(dir.path());
  EXPECT_EQ(sm->Applied().seq, 2u);
  EXPECT_EQ(*sm->Get("b"), std::optional<std::string>("2"));
}

TEST(ApplierTest, AppliesOnlyWhatIsReleased) {
  TempDir dir;
  auto binlog = testing::OpenBinlog(dir.path() / "binlog");
  auto sm = *StateMachine::Open(dir.path() / "db");
  Applier applier(binlog.get(), sm.get());
  ASSERT_TRUE(applier.Start().ok());
  for (int i = 1; i <= 3; ++i) {
    v1::Event e = PutEvent("k" + std::to_string(i), "v");
    ASSERT_TRUE(binlog->Commit(&e).ok());
  }
  applier.Release(2);
  ASSERT_TRUE(applier.WaitApplied(2, Clock::now() + std::chrono::seconds(20)).ok());
  EXPECT_EQ(*sm->Get("k2"), std::optional<std::string>("v"));
  EXPECT_EQ(applier.WaitApplied(3, Clock::now() + std::chrono::milliseconds(100)).code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(*sm->Get("k3"), std::nullopt) << "not released, not visible";
  applier.Release(3);
  applier.ApplyReleased();
  ASSERT_TRUE(applier.WaitApplied(3, Clock::now() + std::chrono::seconds(20)).ok());
  EXPECT_EQ(*sm->Get("k3"), std::optional<std::string>("v"));
}

TEST(ApplierTest, StopCancelsWaitersAndRestartReplaysTheRest) {
  TempDir dir;
  auto binlog = testing::OpenBinlog(dir.path() / "binlog");
  auto sm = *StateMachine::Open(dir.path() / "db");
  auto applier = std::make_unique<Applier>(binlog.get(), sm.get());
  ASSERT_TRUE(applier->Start().ok());
  for (int i = 1; i <= 5; ++i) {
    v1::Event e = PutEvent("k" + std::to_string(i), "v");
    ASSERT_TRUE(binlog->Commit(&e).ok());
  }
  applier->Release(2);
  ASSERT_TRUE(applier->WaitApplied(2, Clock::now() + std::chrono::seconds(20)).ok());
  applier->Stop();
  EXPECT_EQ(applier->WaitApplied(5, Clock::now() + std::chrono::seconds(20)).code(),
            absl::StatusCode::kCancelled);
  applier = std::make_unique<Applier>(binlog.get(), sm.get());
  ASSERT_TRUE(applier->Start().ok());
  applier->Release(5);
  ASSERT_TRUE(applier->WaitApplied(5, Clock::now() + std::chrono::seconds(20)).ok());
  EXPECT_EQ(*sm->Get("k5"), std::optional<std::string>("v"));
}

}  // namespace
}  // namespace relaykv
