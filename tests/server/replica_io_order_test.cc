// README, "Replication": "A gap, a duplicate, an epoch going backwards ...
// stop the IO thread with the error in SHOW SLAVE STATUS — never silent
// divergence." A real replica (embedded Node) against a fake primary whose
// batches are each well formed but do not continue the relay log: the IO
// thread stops with Last_IO_Error naming the GTID, what was expected and
// why; the relay log keeps exactly what came before, and the replica does
// not reconnect by itself.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "proto/replication.grpc.pb.h"
#include "relaykv/node.h"
#include "tests/common/temp_dir.h"
#include "tests/server/fake_primary.h"
#include "tests/server/node_harness.h"

namespace relaykv {
namespace {

using testing::TempDir;
using testing::WaitFor;

v1::Event Put(uint64_t epoch, uint64_t seq) {
  v1::Event ev;
  ev.mutable_gtid()->set_epoch(epoch);
  ev.mutable_gtid()->set_seq(seq);
  ev.set_server_id(1);
  ev.set_timestamp_us(1);
  v1::Mutation* m = ev.add_mutations();
  m->set_op(v1::Mutation::PUT);
  m->set_key("k" + std::to_string(seq));
  m->set_value(std::to_string(epoch) + ":" + std::to_string(seq));
  return ev;
}

using testing::BatchOf;
using testing::Field;

class ReplicaIoOrderTest : public testing::ReplicaOfFakePrimaryTest {
 protected:
  // Replicates from a primary playing `script`; returns Last_IO_Error once
  // the IO thread stopped (a test failure and "" if it kept running).


  // The relay log holds exactly `gtid` (and the state machine applies it);
  // the replica did not come back for more.
  void ExpectKeptUpTo(Gtid gtid) {
    ASSERT_NE(replica_, nullptr);
    EXPECT_EQ(replica_->binlog_gtid(), gtid) << replica_->binlog_gtid().ToString();
    EXPECT_TRUE(WaitFor([&] { return replica_->applied_gtid() == gtid; }))
        << replica_->applied_gtid().ToString();
    EXPECT_EQ(primary_->connections(), 1) << "a stopped IO thread reconnected by itself";
    EXPECT_EQ(Field(replica_->ReplicaStatus(), "Last_SQL_Error"), "");
  }

};

TEST_F(ReplicaIoOrderTest, DuplicateBatchStopsIoThreadAndKeepsTheFirst) {
  const std::string err = StopErrorFor({BatchOf({Put(1, 1), Put(1, 2)}), BatchOf({Put(1, 2)})});
  EXPECT_NE(err.find("gtid 1:2"), std::string::npos) << err;
  EXPECT_NE(err.find("expects seq 3"), std::string::npos) << err;
  EXPECT_NE(err.find("duplicate"), std::string::npos) << err;
  ExpectKeptUpTo({1, 2});
  auto v = replica_->Get("k2");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, std::optional<std::string>("1:2"));
}

TEST_F(ReplicaIoOrderTest, GapAcrossBatchesStopsIoThread) {
  const std::string err = StopErrorFor({BatchOf({Put(1, 1)}), BatchOf({Put(1, 3)})});
  EXPECT_NE(err.find("gtid 1:3"), std::string::npos) << err;
  EXPECT_NE(err.find("expects seq 2"), std::string::npos) << err;
  ExpectKeptUpTo({1, 1});
}

TEST_F(ReplicaIoOrderTest, EpochGoingBackAcrossBatchesStopsIoThread) {
  // The second batch states epoch 2: a primary whose own epoch went back
  // to 1 would be refused earlier, by the replica's promise (fencing_test).
  v1::PrimaryMessage back = BatchOf({Put(1, 2)});
  back.mutable_batch()->set_primary_epoch(2);
  const std::string err = StopErrorFor({BatchOf({Put(2, 1)}), back});
  EXPECT_NE(err.find("gtid 1:2"), std::string::npos) << err;
  EXPECT_NE(err.find("epoch >= 2"), std::string::npos) << err;
  EXPECT_NE(err.find("epoch going back"), std::string::npos) << err;
  ExpectKeptUpTo({2, 1});
}

TEST_F(ReplicaIoOrderTest, EpochGoingBackInsideABatchWritesNothingOfIt) {
  const std::string err = StopErrorFor({BatchOf({Put(1, 1)}), BatchOf({Put(3, 2), Put(2, 3)})});
  EXPECT_NE(err.find("gtid 2:3"), std::string::npos) << err;
  EXPECT_NE(err.find("epoch >= 3"), std::string::npos) << err;
  ExpectKeptUpTo({1, 1});  // 3:2 was whole and in order, but its batch is refused whole
}

}  // namespace
}  // namespace relaykv
