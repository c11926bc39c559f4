// A real replica (embedded Node) against a fake primary that breaks the
// replication protocol (proto/replication.proto). Whatever the primary sends,
// the replica's IO thread stops with a Last_IO_Error naming the problem:
// never a crash, never silently applied (DESIGN.md invariant 5).
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
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

v1::Event MakeEvent(uint64_t epoch, uint64_t seq, v1::Mutation::Op op, const std::string& key) {
  v1::Event ev;
  ev.mutable_gtid()->set_epoch(epoch);
  ev.mutable_gtid()->set_seq(seq);
  ev.set_server_id(1);
  v1::Mutation* m = ev.add_mutations();
  m->set_op(op);
  m->set_key(key);
  if (op != v1::Mutation::DELETE) m->set_value("v");
  return ev;
}

using testing::BatchOf;
using testing::FakePrimary;
using testing::Field;

class HostilePrimaryTest : public testing::ReplicaOfFakePrimaryTest {
 protected:
  // Starts a replica of a fake primary playing `script`, waits for its IO
  // thread to stop, and returns Last_IO_Error ("" if it never stopped).


  // The replica is still whole after refusing: it answers reads, applied
  // nothing from the hostile primary and never reconnected on its own.
  void ExpectReplicaUnharmed() {
    ASSERT_NE(replica_, nullptr);
    EXPECT_EQ(replica_->applied_gtid().seq, 0u);
    EXPECT_EQ(replica_->binlog_gtid().seq, 0u);
    EXPECT_TRUE(replica_->Get("k").ok());
    EXPECT_EQ(primary_->connections(), 1);
  }

};

TEST_F(HostilePrimaryTest, EmptyEventBatchStopsIoThreadWithClearError) {
  const std::string err = StopErrorFor({BatchOf({})});
  EXPECT_NE(err.find("empty event batch"), std::string::npos) << err;
  EXPECT_NE(err.find(primary_->address()), std::string::npos) << err;
  ExpectReplicaUnharmed();
}

TEST_F(HostilePrimaryTest, EmptyEventBatchAfterGoodOneStopsIoThread) {
  const std::string err =
      StopErrorFor({BatchOf({MakeEvent(1, 1, v1::Mutation::PUT, "a")}), BatchOf({})});
  EXPECT_NE(err.find("empty event batch"), std::string::npos) << err;
  // The good batch before it stays: it was whole and in order.
  EXPECT_EQ(replica_->binlog_gtid().seq, 1u);
  EXPECT_TRUE(WaitFor([&] { return replica_->applied_gtid().seq == 1u; }));
  EXPECT_EQ(primary_->connections(), 1);
}

TEST_F(HostilePrimaryTest, MessageWithNeitherBatchNorHeartbeatStopsIoThread) {
  const std::string err = StopErrorFor({v1::PrimaryMessage()});
  EXPECT_NE(err.find("neither an event batch nor a heartbeat"), std::string::npos) << err;
  ExpectReplicaUnharmed();
}

TEST_F(HostilePrimaryTest, BatchThatSkipsAheadStopsIoThreadWithClearError) {
  const std::string err = StopErrorFor({BatchOf({MakeEvent(1, 5, v1::Mutation::PUT, "k")})});
  EXPECT_NE(err.find("gap"), std::string::npos) << err;
  ExpectReplicaUnharmed();
}

TEST_F(HostilePrimaryTest, BatchWithNonConsecutiveSeqsStopsIoThread) {
  const std::string err = StopErrorFor({BatchOf(
      {MakeEvent(1, 1, v1::Mutation::PUT, "k"), MakeEvent(1, 1, v1::Mutation::PUT, "k")})});
  EXPECT_NE(err.find("gap, duplicate"), std::string::npos) << err;
  ExpectReplicaUnharmed();
}

TEST_F(HostilePrimaryTest, UndecodableEventStopsIoThread) {
  v1::PrimaryMessage msg;
  msg.mutable_batch()->add_events("\xff\xff\xff\xff not an event");
  const std::string err = StopErrorFor({msg});
  EXPECT_NE(err.find("does not decode"), std::string::npos) << err;
  ExpectReplicaUnharmed();
}

TEST_F(HostilePrimaryTest, EventWithUnspecifiedOpIsRefusedNotApplied) {
  const std::string err =
      StopErrorFor({BatchOf({MakeEvent(1, 1, v1::Mutation::OP_UNSPECIFIED, "k")})});
  EXPECT_NE(err.find("OP_UNSPECIFIED"), std::string::npos) << err;
  ExpectReplicaUnharmed();
  EXPECT_EQ(*replica_->Get("k"), std::nullopt);
}

TEST_F(HostilePrimaryTest, EventWithUnknownOpIsRefusedNotApplied) {
  const std::string err =
      StopErrorFor({BatchOf({MakeEvent(1, 1, static_cast<v1::Mutation::Op>(7), "k")})});
  EXPECT_NE(err.find("op 7"), std::string::npos) << err;
  ExpectReplicaUnharmed();
}

TEST_F(HostilePrimaryTest, EventWithEmptyKeyIsRefusedNotApplied) {
  const std::string err = StopErrorFor({BatchOf({MakeEvent(1, 1, v1::Mutation::PUT, "")})});
  EXPECT_NE(err.find("key is empty"), std::string::npos) << err;
  ExpectReplicaUnharmed();
}

TEST_F(HostilePrimaryTest, HeartbeatsAloneKeepIoThreadRunning) {
  v1::PrimaryMessage hb;
  hb.mutable_heartbeat()->mutable_primary_last_gtid()->set_epoch(1);
  hb.mutable_heartbeat()->set_primary_time_us(1);
  primary_ = std::make_unique<FakePrimary>(std::vector<v1::PrimaryMessage>{hb});
  NodeOptions o;
  o.data_dir = dir_.path() / "replica";
  o.replicate_from = primary_->address();
  o.variables = {{"server_id", "2"}};
  replica_ = *Node::Open(o);
  ASSERT_TRUE(
      WaitFor([&] { return Field(replica_->ReplicaStatus(), "Slave_IO_Running") == "Yes"; }));
  EXPECT_EQ(Field(replica_->ReplicaStatus(), "Last_IO_Error"), "");
}

// The reconnect backoff grows while connections end at once: a primary
// that accepts every stream and drops it after its first message is
// retried about every 0.1, 0.2, 0.4, 0.8, 1.6 s (5 connections in 3 s),
// not every 100 ms (~30) — review s41a F1: a connection resets the
// backoff only once it stayed up 1 s.
TEST_F(HostilePrimaryTest, AStreamDroppedAtOnceIsRetriedLessAndLessOften) {
  v1::PrimaryMessage hb;
  hb.mutable_heartbeat()->mutable_primary_last_gtid()->set_epoch(1);
  hb.mutable_heartbeat()->set_primary_time_us(1);
  primary_ = std::make_unique<FakePrimary>(std::vector<v1::PrimaryMessage>{hb}, true);
  replica_ = testing::OpenServingNode(dir_.path() / "replica", {{"server_id", "2"}},
                                      primary_->address());
  ASSERT_NE(replica_, nullptr);
  ASSERT_TRUE(WaitFor([&] { return primary_->connections() >= 1; }));
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const int connections = primary_->connections();
  EXPECT_GE(connections, 3) << "the IO thread should keep retrying";
  EXPECT_LE(connections, 8) << "the IO thread retried a stream that ended at once without backing off";
  EXPECT_NE(Field(replica_->ReplicaStatus(), "Slave_IO_Running"), "No") << "a dropped stream is retried";
}

}  // namespace
}  // namespace relaykv
