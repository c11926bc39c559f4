// ReadClusterView (server/coordinator.h) against a real etcd: what a
// coordinator decides on is what etcd holds under each key, and a record
// that contradicts its key is refused, not read as another key's.
#include <google/protobuf/util/json_util.h>

#include "etcd_client/etcd_client.h"
#include "gtest/gtest.h"
#include "proto/coordination.pb.h"
#include "server/coordinator.h"
#include "tests/common/etcd_fixture.h"

namespace relaykv {
namespace {

std::string EpochRecordJson(uint64_t epoch, uint32_t primary, bool quorum_met) {
  v1::EpochRecord r;
  r.set_epoch(epoch);
  r.set_primary(primary);
  r.set_revoke_quorum_met(quorum_met);
  r.mutable_start_after()->set_epoch(epoch - 1);
  r.mutable_start_after()->set_seq(10);
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(r, &json).ok());
  return json;
}

class ClusterViewTest : public relaykv::testing::OneEtcdTest {
 protected:
  void SetUp() override {
    OneEtcdTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    for (uint64_t e : {2, 3}) {
      ASSERT_TRUE(direct_->Put(HistoryKey("c", e), EpochRecordJson(e, e, false)).ok());
    }
  }
};

TEST_F(ClusterViewTest, HistoryIsReadUnderEachRecordsOwnKey) {
  auto view = ReadClusterView(direct_.get(), "c");
  ASSERT_TRUE(view.ok()) << view.status();
  ASSERT_EQ(view->history.size(), 2u);
  EXPECT_EQ(view->history.at(3).primary, 3u);
  EXPECT_FALSE(view->history.at(3).revoke_quorum_met);
}

// A record of epoch 3 stored under epoch 7's key replaced the real epoch-3
// record (here with a revoke quorum that was never met, which lets a tail
// be truncated) and hid epoch 7 (review s44e L2).
TEST_F(ClusterViewTest, AHistoryRecordUnderAnotherEpochsKeyIsRefused) {
  ASSERT_TRUE(direct_->Put(HistoryKey("c", 7), EpochRecordJson(3, 9, true)).ok());
  auto view = ReadClusterView(direct_.get(), "c");
  EXPECT_EQ(view.status().code(), absl::StatusCode::kDataLoss) << view.status();
  EXPECT_NE(view.status().message().find(HistoryKey("c", 7)), std::string::npos) << view.status();
}

}  // namespace
}  // namespace relaykv
