// The pure checks of server/replication_messages.h, which the replication
// stream handlers use and tests/fuzz/replication_fuzzer drives with any bytes.
#include "server/replication_messages.h"

#include "gtest/gtest.h"

namespace relaykv {
namespace {

TEST(ReplicationMessagesTest, FirstMessageMustBeAHelloFromAnotherServer) {
  v1::ReplicaMessage ack;
  ack.mutable_ack()->mutable_durable_gtid()->set_seq(1);
  EXPECT_TRUE(absl::IsInvalidArgument(CheckReplicaHello(ack, 1)));
  v1::ReplicaMessage hello;
  hello.mutable_hello()->set_server_id(1);
  EXPECT_TRUE(absl::IsFailedPrecondition(CheckReplicaHello(hello, 1)));
  hello.mutable_hello()->set_server_id(2);
  EXPECT_TRUE(CheckReplicaHello(hello, 1).ok());
}

TEST(ReplicationMessagesTest, BatchIsDecodedAndCheckedNamingThePrimary) {
  std::vector<v1::Event> events;
  v1::PrimaryMessage msg;
  msg.mutable_heartbeat();
  EXPECT_TRUE(absl::IsInvalidArgument(DecodeEventBatch(msg, "p:1", &events)));
  msg.mutable_batch();
  const absl::Status empty = DecodeEventBatch(msg, "p:1", &events);
  EXPECT_TRUE(absl::IsInvalidArgument(empty));
  EXPECT_NE(empty.message().find("primary p:1 sent an empty event batch"), std::string::npos);

  v1::Event e;
  e.mutable_gtid()->set_seq(1);
  v1::Mutation* m = e.add_mutations();
  m->set_op(v1::Mutation::PUT);
  m->set_key("k");
  msg.mutable_batch()->add_events(e.SerializeAsString());
  ASSERT_TRUE(DecodeEventBatch(msg, "p:1", &events).ok());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].mutations(0).key(), "k");

  msg.mutable_batch()->add_events("\xff");  // not an Event
  EXPECT_TRUE(absl::IsDataLoss(DecodeEventBatch(msg, "p:1", &events)));
  m->set_op(v1::Mutation::OP_UNSPECIFIED);
  *msg.mutable_batch()->mutable_events(1) = e.SerializeAsString();
  const absl::Status unset = DecodeEventBatch(msg, "p:1", &events);
  EXPECT_TRUE(absl::IsInvalidArgument(unset));
  EXPECT_NE(unset.message().find("OP_UNSPECIFIED"), std::string::npos) << unset;
}

TEST(ReplicationMessagesTest, AckIsBelievedOnlyAtTheEndOfABatchSent) {
  SentBatches acks(/*semi_sync=*/true, Gtid{1, 10});
  acks.Sent(Gtid{1, 12}, 100);
  acks.Sent(Gtid{2, 15}, 50);
  EXPECT_EQ(acks.Unacked(0), 150u);
  EXPECT_TRUE(absl::IsInvalidArgument(acks.Acked(Gtid{2, 16}).status()));  // beyond what was sent
  EXPECT_TRUE(absl::IsInvalidArgument(acks.Acked(Gtid{1, 13}).status()));  // not a batch end
  EXPECT_TRUE(absl::IsInvalidArgument(acks.Acked(Gtid{1, 15}).status()));  // another epoch
  EXPECT_EQ(*acks.Acked(Gtid{1, 9}), -1);  // old news: harmless
  ASSERT_TRUE(acks.Acked(Gtid{1, 12}).ok());
  EXPECT_EQ(acks.Unacked(0), 50u);
  ASSERT_TRUE(acks.Acked(Gtid{2, 15}).ok());
  EXPECT_EQ(acks.Unacked(0), 0u);
}

// Review s31, replication finding 4: past kMaxTracked batches an ACK is no
// longer matched to a batch end, but it must still fall after the tracked
// batches and in an epoch the stream sent there.
TEST(ReplicationMessagesTest, AckBeyondTheTrackedBatchesStillNeedsAPlausibleGtid) {
  SentBatches acks(/*semi_sync=*/true, Gtid{1, 0});
  for (uint64_t seq = 1; seq <= SentBatches::kMaxTracked; ++seq) acks.Sent(Gtid{1, seq * 2}, 1);
  const uint64_t tracked_end = SentBatches::kMaxTracked * 2;
  acks.Sent(Gtid{2, tracked_end + 10}, 1);  // untracked from here
  acks.Sent(Gtid{2, tracked_end + 20}, 1);
  EXPECT_TRUE(absl::IsInvalidArgument(acks.Acked(Gtid{1, 3}).status()))
      << "inside the tracked batches, not a batch end";
  EXPECT_TRUE(absl::IsInvalidArgument(acks.Acked(Gtid{999, tracked_end + 15}).status()))
      << "an epoch this stream never sent";
  EXPECT_TRUE(absl::IsInvalidArgument(acks.Acked(Gtid{1, tracked_end + 15}).status()))
      << "an epoch older than the untracked batches'";
  EXPECT_TRUE(absl::IsInvalidArgument(acks.Acked(Gtid{2, tracked_end + 21}).status()));
  ASSERT_TRUE(acks.Acked(Gtid{2, tracked_end + 20}).ok());
  EXPECT_EQ(acks.Unacked(7), 0u);
}

// Review s32-late F1: once the oldest tracked batch is ACKed, tracking resumes
// while the untracked range is still open; a later tracked batch must not make
// the valid ACK of an untracked one look implausible (that ended the stream).
TEST(ReplicationMessagesTest, AckOfAnUntrackedBatchStaysValidAfterTrackingResumes) {
  SentBatches acks(/*semi_sync=*/true, Gtid{1, 0});
  for (uint64_t seq = 1; seq <= SentBatches::kMaxTracked; ++seq) acks.Sent(Gtid{1, seq}, 1);
  const uint64_t tracked_end = SentBatches::kMaxTracked;
  acks.Sent(Gtid{1, tracked_end + 1}, 1);  // untracked: sent_ is full
  ASSERT_TRUE(acks.Acked(Gtid{1, 1}).ok());  // frees a slot
  acks.Sent(Gtid{1, tracked_end + 2}, 1);  // tracked again
  EXPECT_TRUE(acks.Acked(Gtid{1, tracked_end + 1}).ok()) << "the untracked batch's end";
  EXPECT_TRUE(absl::IsInvalidArgument(acks.Acked(Gtid{1, tracked_end + 3}).status()))
      << "beyond what was sent";
  ASSERT_TRUE(acks.Acked(Gtid{1, tracked_end + 2}).ok());
  EXPECT_EQ(acks.Unacked(7), 0u);
}

}  // namespace
}  // namespace relaykv
