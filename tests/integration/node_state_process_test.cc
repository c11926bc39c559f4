// CollectNodeState against real relaykvd processes: what it reads back is
// what the writes were answered with, and the checker catches a real fork.
#include "tests/integration/node_state.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/temp_dir.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

using ::testing::Contains;
using ::testing::Each;
using ::testing::HasSubstr;

constexpr int kWrites = 40;

class NodeStateProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    primary_ = Relaykvd::Start(dir_.path() / "p", {"--server-id=1",
                                                   "--rpl_semi_sync_master_enabled=ON",
                                                   "--rpl_semi_sync_master_timeout=60000"});
    ASSERT_NE(primary_, nullptr);
    replica_ = StartSemiSyncReplica(dir_.path() / "r", *primary_);
    ASSERT_NE(replica_, nullptr);
    for (int i = 0; i < kWrites; ++i) {
      const std::string key = "key" + std::to_string(i);
      const size_t id = history_.Invoke(0, key, "v" + std::to_string(i));
      auto g = primary_->Put(key, "v" + std::to_string(i));
      ASSERT_TRUE(g.ok()) << g.status();
      history_.Ok(id, *g);
    }
    ASSERT_TRUE(primary_->Delete("key0").ok());  // a delete, not from the history
  }

  absl::StatusOr<NodeState> Collect(Relaykvd& n, const std::string& name) {
    return CollectNodeState(n.client(), n.address(), name);
  }

  TempDir dir_;
  std::unique_ptr<Relaykvd> primary_;
  std::unique_ptr<Relaykvd> replica_;
  OpHistory history_;
};

TEST_F(NodeStateProcessTest, ReadsBackEveryEventAndVersion) {
  auto p = Collect(*primary_, "primary");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->events.size(), kWrites + 1u);
  EXPECT_TRUE(p->events.back().deleted);
  EXPECT_EQ(p->events.back().key, "key0");
  EXPECT_EQ(p->keys.size(), kWrites - 1u);
  for (const auto& op : history_.Ops()) {
    if (op.key == "key0") continue;
    ASSERT_EQ(p->keys.count(op.key), 1u) << op.key;
    EXPECT_EQ(p->keys.at(op.key).value, op.value);
    EXPECT_EQ(p->keys.at(op.key).gtid, op.gtid);
  }
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*primary_, *replica_); }, std::chrono::seconds(30)));
  auto r = Collect(*replica_, "replica");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->events.size(), p->events.size());
  // key0 was deleted after it was acknowledged (and so changed twice): the
  // checker must say so for each node, and find nothing else.
  auto v = CheckHistory(history_.Ops(), {*p, *r}, {});
  EXPECT_THAT(v, Contains(HasSubstr("primary: OK write 'key0'")));
  EXPECT_THAT(v, Contains(HasSubstr("replica: OK write 'key0'")));
  EXPECT_THAT(v, Each(HasSubstr("'key0'")));
  EXPECT_EQ(v.size(), 4u);
}

TEST_F(NodeStateProcessTest, CheckerCatchesANodeWithItsOwnHistory) {
  // A node started on its own in the same epoch: its seq 1 is another change.
  auto stray = Relaykvd::Start(dir_.path() / "s", {"--server-id=3"});
  ASSERT_NE(stray, nullptr);
  ASSERT_TRUE(stray->Put("stray", "x").ok());
  auto p = Collect(*primary_, "primary");
  auto s = Collect(*stray, "stray");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE(s.ok()) << s.status();
  auto v = CheckHistory(history_.Ops(), {*p, *s}, {});
  EXPECT_THAT(v, Contains(HasSubstr("names two changes")));
  EXPECT_THAT(v, Contains(HasSubstr("stray: OK write 'key1'")));
}

}  // namespace
}  // namespace relaykv::testing
