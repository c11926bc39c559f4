// PendingKeys on its own, over a real StateMachine: what a compare sees of
// writes assigned but not applied, and when it must refuse instead (gaps,
// seqs given out again after a failed group write).
#include "server/pending_keys.h"

#include "gtest/gtest.h"
#include "storage/gtid.h"
#include "tests/common/temp_dir.h"

namespace relaykv {
namespace {

v1::Event Put(uint64_t seq, const std::string& key, const std::string& value) {
  v1::Event e;
  GtidToProto(Gtid{1, seq}, e.mutable_gtid());
  v1::Mutation* m = e.add_mutations();
  m->set_op(v1::Mutation::PUT);
  m->set_key(key);
  m->set_value(value);
  return e;
}

class PendingKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto sm = StateMachine::Open(dir_.path() / "db");
    ASSERT_TRUE(sm.ok()) << sm.status();
    state_ = *std::move(sm);
    keys_ = std::make_unique<PendingKeys>(state_.get());
  }
  testing::TempDir dir_;
  std::unique_ptr<StateMachine> state_;
  std::unique_ptr<PendingKeys> keys_;
};

TEST_F(PendingKeysTest, SeesRecordedWritesBeforeRocksDbThenRocksDb) {
  ASSERT_TRUE(state_->Apply(std::vector<v1::Event>{Put(1, "k", "applied")}).ok());
  keys_->Record(Put(2, "k", "pending"));
  auto v = keys_->Lookup("k", 3);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_TRUE(v->has_value());
  EXPECT_EQ((*v)->value, "pending");
  EXPECT_EQ((*v)->version, (Gtid{1, 2}));
  // Applied: the entry goes, RocksDB answers the same.
  ASSERT_TRUE(state_->Apply(std::vector<v1::Event>{Put(2, "k", "pending")}).ok());
  v = keys_->Lookup("k", 3);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ((*v)->value, "pending");
}

// The review's interleaving: a group got seqs 2..3, was recorded, then its
// write failed; seq 2 is given out again to a conditional write. The
// failed group's entries must not decide its compare.
TEST_F(PendingKeysTest, SeqsGivenOutAgainAfterAFailedGroupAreNotTrusted) {
  ASSERT_TRUE(state_->Apply(std::vector<v1::Event>{Put(1, "k", "applied")}).ok());
  keys_->Record(Put(2, "k", "never-written"));
  keys_->Record(Put(3, "other", "never-written"));
  // Seq 2 again. RocksDB has applied everything before it: its answer is
  // the truth.
  auto v = keys_->Lookup("k", 2);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)->value, "applied");
  auto o = keys_->Lookup("other", 2);
  ASSERT_TRUE(o.ok());
  EXPECT_FALSE(o->has_value());
}

TEST_F(PendingKeysTest, AGapIsRefusedUntilRocksDbHasAppliedIt) {
  keys_->Record(Put(1, "k", "a"));
  // Seqs 2..4 bypassed Record (a replica's relay log, an epoch marker).
  auto v = keys_->Lookup("k", 5);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kUnavailable) << v.status();
  EXPECT_FALSE(keys_->CaughtUp(4));
  ASSERT_TRUE(state_->Apply(std::vector<v1::Event>{Put(1, "k", "a"), Put(2, "k", "b"),
                                                   Put(3, "x", "y"), Put(4, "x", "z")})
                  .ok());
  EXPECT_TRUE(keys_->CaughtUp(4));
  v = keys_->Lookup("k", 5);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)->value, "b");
}

}  // namespace
}  // namespace relaykv
