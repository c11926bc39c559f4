// The nemesis checker (tests/common/history_checker.h) must catch each way a
// failover can break a promise; a checker that passes everything proves
// nothing. Each test builds a healed cluster by hand and breaks one thing.
#include "tests/common/history_checker.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace relaykv::testing {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Three nodes that all hold writes a..d: a, b in epoch 1 (seq 1, 2), then a
// failover to epoch 2 starting after 1:2, c, d in epoch 2 (seq 3, 4).
class HistoryCheckerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Write("a", {1, 1});
    Write("b", {1, 2});
    Write("c", {2, 3});
    Write("d", {2, 4});
    for (const char* name : {"n1", "n2", "n3"}) {
      NodeState n;
      n.name = name;
      for (const auto& op : history_.Ops()) Keep(n, op.key, op.value, op.gtid);
      nodes_.push_back(n);
    }
    epochs_ = {{1, {0, 0}, "n1", false}, {2, {1, 2}, "n2", false}};
  }

  void Write(const std::string& key, Gtid g) {
    history_.Ok(history_.Invoke(0, key, key + "-value"), g);
  }

  static void Keep(NodeState& n, const std::string& key, const std::string& value, Gtid g) {
    n.events.push_back({g, key, value, false});
    n.keys[key] = {value, g};
  }

  std::vector<std::string> Check() { return CheckHistory(history_.Ops(), nodes_, epochs_); }

  OpHistory history_;
  std::vector<NodeState> nodes_;
  std::vector<EpochRecord> epochs_;
};

TEST_F(HistoryCheckerTest, HealthyClusterHasNoViolation) { EXPECT_THAT(Check(), IsEmpty()); }

TEST_F(HistoryCheckerTest, OkWriteMissingOnOneNode) {
  nodes_[2].keys.erase("c");
  EXPECT_THAT(Check(), ElementsAre(AllOf(HasSubstr("n3"), HasSubstr("'c'"), HasSubstr("missing"))));
}

TEST_F(HistoryCheckerTest, OkWriteWithAnotherValueOrVersion) {
  nodes_[1].keys["b"] = {"other", {1, 2}};
  nodes_[0].keys["d"] = {"d-value", {2, 5}};
  auto v = Check();
  EXPECT_THAT(v, Contains(AllOf(HasSubstr("n2"), HasSubstr("'b'"), HasSubstr("'other'"))));
  EXPECT_THAT(v, Contains(AllOf(HasSubstr("n1"), HasSubstr("'d'"), HasSubstr("2:5"))));
}

TEST_F(HistoryCheckerTest, FailedWritePresentIsAViolationAbsentIsNot) {
  history_.Fail(history_.Invoke(1, "e", "e-value"), "UNAVAILABLE: not the primary");
  EXPECT_THAT(Check(), IsEmpty());
  Keep(nodes_[0], "e", "e-value", {2, 5});
  EXPECT_THAT(Check(), Contains(AllOf(HasSubstr("n1"), HasSubstr("'e'"), HasSubstr("failed"))));
}

TEST_F(HistoryCheckerTest, OldPrimaryKeepingItsTailIsErrant) {
  // n1 was primary of epoch 1 and kept 1:3, never acknowledged, past 1:2
  // where epoch 2 started; its seq 3 also forks from the others' 2:3.
  history_.Unknown(history_.Invoke(0, "x", "x-value"), "DEADLINE_EXCEEDED");
  nodes_[0].events.resize(2);
  Keep(nodes_[0], "x", "x-value", {1, 3});
  auto v = Check();
  EXPECT_THAT(v, Contains(AllOf(HasSubstr("n1"), HasSubstr("1:3"), HasSubstr("errant"))));
  EXPECT_THAT(v, Contains(HasSubstr("fork at seq 3")));
}

TEST_F(HistoryCheckerTest, OneGtidNamingTwoChanges) {
  nodes_[2].events[3].value = "forged";
  EXPECT_THAT(Check(), Contains(AllOf(HasSubstr("2:4 names two changes"), HasSubstr("forged"))));
}

TEST_F(HistoryCheckerTest, HistoryOutOfOrder) {
  std::swap(nodes_[1].events[1], nodes_[1].events[2]);
  EXPECT_THAT(Check(), Contains(AllOf(HasSubstr("n2"), HasSubstr("not in seq and epoch order"))));
}

TEST_F(HistoryCheckerTest, TwoPrimariesInOneEpoch) {
  epochs_.push_back({2, {1, 2}, "n3", false});
  EXPECT_THAT(Check(), Contains(HasSubstr("epoch 2 recorded twice")));
}

TEST_F(HistoryCheckerTest, EpochStartingBeforeThePreviousOne) {
  epochs_.push_back({3, {1, 1}, "n3", false});
  EXPECT_THAT(Check(), Contains(AllOf(HasSubstr("epoch 3"), HasSubstr("before epoch 2"))));
}

TEST_F(HistoryCheckerTest, OkWritePastTheNextEpochsStartWasDropped) {
  // The primary of epoch 1 answered OK for 1:3, but epoch 2 started after 1:2.
  history_.Ok(history_.Invoke(0, "lost", "lost-value"), {1, 3});
  EXPECT_THAT(Check(), Contains(AllOf(HasSubstr("'lost'"), HasSubstr("dropped by a failover"))));
}

TEST_F(HistoryCheckerTest, QuarantinedOkWrite) {
  nodes_[0].quarantined.push_back({2, 3});
  EXPECT_THAT(Check(), ElementsAre(AllOf(HasSubstr("n1"), HasSubstr("'c'"), HasSubstr("quarantined"))));
}

TEST_F(HistoryCheckerTest, ForcedEpochExcusesTheWritesItDropped) {
  // Epoch 3 was forced by an operator, starting after 2:3: OK write d (2:4)
  // may be gone — from the nodes, and from the histories (truncated).
  epochs_.push_back({3, {2, 3}, "n3", true});
  for (auto& n : nodes_) {
    n.keys.erase("d");
    n.events.pop_back();
  }
  EXPECT_THAT(Check(), IsEmpty());
}

TEST_F(HistoryCheckerTest, UnknownWriteAppliedTwice) {
  history_.Unknown(history_.Invoke(0, "u", "u-value"), "cut by failover");
  for (auto& n : nodes_) {
    Keep(n, "u", "u-value", {2, 5});
    Keep(n, "u", "u-value", {2, 6});
  }
  EXPECT_THAT(Check(), Contains(AllOf(HasSubstr("'u'"), HasSubstr("changed 2 times"))));
}

TEST(OpHistoryTest, PendingWritesCountAsUnknownAndKeysMustBeUnique) {
  OpHistory h;
  h.Invoke(0, "k", "v");
  h.Invoke(1, "k", "w");
  auto ops = h.Ops();
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[0].outcome, Outcome::kUnknown);
  EXPECT_THAT(CheckHistory(ops, {}, {}), ElementsAre(HasSubstr("'k' written twice")));
}

}  // namespace
}  // namespace relaykv::testing
