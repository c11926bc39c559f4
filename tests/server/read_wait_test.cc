// A read that first waits for a GTID (read-your-writes): it ends when the
// caller goes away or the node shuts down, not only at a deadline, and a
// GTID of another history is refused rather than waited for.
#include <grpcpp/grpcpp.h>

#include <future>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "proto/kv.grpc.pb.h"
#include "proto/replication.grpc.pb.h"
#include "relaykv/node.h"
#include "tests/common/temp_dir.h"

namespace relaykv {
namespace {

using testing::TempDir;
using Clock = std::chrono::steady_clock;

std::unique_ptr<Node> OpenPrimary(const std::filesystem::path& dir) {
  NodeOptions o;
  o.data_dir = dir;
  o.listen_address = "127.0.0.1:0";
  auto node = Node::Open(o);
  EXPECT_TRUE(node.ok()) << node.status();
  return node.ok() ? *std::move(node) : nullptr;
}

// A node serving gRPC on loopback with `server_id`.
std::unique_ptr<Node> OpenServing(const std::filesystem::path& dir, uint32_t server_id,
                                  std::string replicate_from = "") {
  NodeOptions o;
  o.data_dir = dir;
  o.listen_address = "127.0.0.1:0";
  o.replicate_from = std::move(replicate_from);
  o.variables = {{"server_id", std::to_string(server_id)}};
  auto node = Node::Open(o);
  EXPECT_TRUE(node.ok()) << node.status();
  return node.ok() ? *std::move(node) : nullptr;
}

std::string Addr(const Node& n) { return "127.0.0.1:" + std::to_string(n.bound_port()); }

// An embedded replica (server_id 2, no gRPC service) of `primary`.
std::unique_ptr<Node> OpenReplicaOf(const Node& primary, const std::filesystem::path& dir) {
  NodeOptions o;
  o.data_dir = dir;
  o.replicate_from = "127.0.0.1:" + std::to_string(primary.bound_port());
  o.variables = {{"server_id", "2"}};
  auto node = Node::Open(o);
  EXPECT_TRUE(node.ok()) << node.status();
  return node.ok() ? *std::move(node) : nullptr;
}

// Issue 14.10: a Get waiting, with no deadline, for a seq far ahead ends
// when its client cancels; before, it waited until shutdown, and shutdown
// then waited its whole grace period for it.
TEST(ReadWaitTest, ClientCancellingAGtidWaitEndsIt) {
  TempDir dir;
  auto node = OpenPrimary(dir.path() / "n");
  ASSERT_NE(node, nullptr);
  ASSERT_TRUE(node->Put("k", "v").ok());
  auto stub = v1::Kv::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(node->bound_port()), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;  // no deadline
  v1::GetRequest req;
  req.set_key("k");
  req.mutable_wait_for_gtid()->set_epoch(1);
  req.mutable_wait_for_gtid()->set_seq(1000000);
  auto call = std::async(std::launch::async, [&] {
    v1::GetReply reply;
    return stub->Get(&ctx, req, &reply);
  });
  ASSERT_EQ(call.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout)
      << "the read should be waiting";
  ctx.TryCancel();
  EXPECT_EQ(call.get().error_code(), grpc::StatusCode::CANCELLED);
  // The server's side has ended too: closing does not sit out its grace
  // period (10 s) for a call still in flight.
  const auto start = Clock::now();
  node->Close();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
}

TEST(ReadWaitTest, EmbeddedGtidWaitEndsWhenTheCallerIsGone) {
  TempDir dir;
  auto node = OpenPrimary(dir.path() / "n");
  ASSERT_NE(node, nullptr);
  std::atomic<bool> gone{false};
  GetOptions o;
  o.wait_for = Gtid{1, 1000};
  o.cancelled = [&] { return gone.load(); };
  auto read = std::async(std::launch::async, [&] { return node->Get("k", o); });
  ASSERT_EQ(read.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
  gone = true;
  auto r = read.get();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
}

TEST(ReadWaitTest, ShutdownEndsAGtidWaitWithUnavailable) {
  TempDir dir;
  auto node = OpenPrimary(dir.path() / "n");
  ASSERT_NE(node, nullptr);
  GetOptions o;
  o.wait_for = Gtid{1, 1000};
  auto read = std::async(std::launch::async, [&] { return node->Get("k", o); });
  ASSERT_EQ(read.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
  const auto start = Clock::now();
  node->Close();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(read.get().status().code(), absl::StatusCode::kUnavailable);
}

// A GTID of another history: refused at once, naming both GTIDs, whether
// this node has that seq already (another epoch there) or, on a primary,
// the epoch is one it will never write.
TEST(ReadWaitTest, GtidOfAnotherEpochIsRefusedNotWaitedFor) {
  TempDir dir;
  auto node = OpenPrimary(dir.path() / "n");
  ASSERT_NE(node, nullptr);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(node->Put("k", "v").ok());
  GetOptions o;
  o.wait_for = Gtid{2, 2};
  auto r = node->Get("k", o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_NE(r.status().message().find("2:2 is not in this node's history (it has 1:2"),
            std::string::npos)
      << r.status();
  o.wait_for = Gtid{5, 100};
  r = node->Get("k", o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  o.wait_for = Gtid{1, 3};
  r = node->Get("k", o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, std::optional<std::string>("v"));
}

// Primary-fresh reads on an embedded replica (no gRPC service of its own):
// it asks its primary, waits for its stopped SQL thread to be started
// again, and reads what the primary had answered OK. Its primary gone: a
// clear UNAVAILABLE naming it.
TEST(ReadWaitTest, EmbeddedReplicaPrimaryFreshRead) {
  TempDir dir;
  auto primary = OpenPrimary(dir.path() / "p");
  ASSERT_NE(primary, nullptr);
  const std::string primary_address = "127.0.0.1:" + std::to_string(primary->bound_port());
  auto replica = OpenReplicaOf(*primary, dir.path() / "r");
  ASSERT_NE(replica, nullptr);

  auto v1 = primary->Put("k", "v1");
  ASSERT_TRUE(v1.ok());
  GetOptions fresh;
  fresh.consistency = ReadConsistency::kPrimaryFresh;
  fresh.deadline = Clock::now() + std::chrono::seconds(30);
  auto r = replica->Get("k", fresh);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, std::optional<std::string>("v1"));

  ASSERT_TRUE(replica->StopReplica(ReplicaThreads::kSql).ok());
  auto v2 = primary->Put("k", "v2");
  ASSERT_TRUE(v2.ok());
  auto local = replica->Get("k", GetOptions{});
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(*local, std::optional<std::string>("v1")) << "its SQL thread is stopped";
  fresh.deadline = Clock::now() + std::chrono::milliseconds(300);
  auto expired = replica->Get("k", fresh);
  ASSERT_EQ(expired.status().code(), absl::StatusCode::kDeadlineExceeded) << expired.status();
  EXPECT_NE(expired.status().message().find("SQL thread is stopped"), std::string::npos)
      << expired.status();
  auto starter = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return replica->StartReplica(ReplicaThreads::kSql);
  });
  fresh.deadline = Clock::now() + std::chrono::seconds(30);
  r = replica->Get("k", fresh);
  EXPECT_TRUE(starter.get().ok());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, std::optional<std::string>("v2"));
  auto index = replica->ReadIndex(fresh);
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_GE(*index, *v2);

  // Bad input: wait_for_gtid without a GTID.
  GetOptions bad;
  bad.consistency = ReadConsistency::kWaitForGtid;
  EXPECT_EQ(replica->Get("k", bad).status().code(), absl::StatusCode::kInvalidArgument);

  primary->Close();
  fresh.deadline = Clock::now() + std::chrono::seconds(5);
  auto scan = replica->Scan(ScanRange{}, fresh);
  ASSERT_EQ(scan.status().code(), absl::StatusCode::kUnavailable) << scan.status();
  EXPECT_NE(scan.status().message().find(primary_address), std::string::npos) << scan.status();
}

// Review s4 finding 1: a replica that promised a newer epoch away (an
// election revoked its primary, which was never reached) must not take
// its old primary's word for what is fresh: the new primary may have
// answered writes the old one never saw.
TEST(ReadWaitTest, PrimaryFreshReadRefusesAPrimaryOfARevokedEpoch) {
  TempDir dir;
  auto primary = OpenPrimary(dir.path() / "p");
  ASSERT_NE(primary, nullptr);
  auto replica = OpenReplicaOf(*primary, dir.path() / "r");
  ASSERT_NE(replica, nullptr);
  auto v1 = primary->Put("k", "v1");
  ASSERT_TRUE(v1.ok());
  GetOptions fresh;
  fresh.consistency = ReadConsistency::kPrimaryFresh;
  fresh.deadline = Clock::now() + std::chrono::seconds(30);
  ASSERT_TRUE(replica->Get("k", fresh).ok());

  // Another node (server_id 9) is being elected into the next epoch.
  ASSERT_TRUE(replica->Revoke(v1->epoch + 1, 9).ok());
  auto r = replica->Get("k", fresh);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_NE(r.status().message().find("promised epoch " + std::to_string(v1->epoch + 1)),
            std::string::npos)
      << r.status();
}

// Review s4 finding 6: a replica whose CHANGE MASTER names itself asked
// itself for every primary-fresh read, again at every level, until the
// read's deadline, using up the gRPC handler threads meanwhile. Now it
// fails at once, naming the cycle, and local reads go on.
TEST(ReadWaitTest, PrimaryFreshReadOnAReplicaOfItselfFailsAtOnceAndLocalReadsGoOn) {
  TempDir dir;
  auto node = OpenServing(dir.path() / "n", 2);
  ASSERT_NE(node, nullptr);
  ASSERT_TRUE(node->Put("k", "v").ok());
  ASSERT_TRUE(node->ChangePrimary("127.0.0.1", node->bound_port()).ok());
  auto stub = v1::Kv::NewStub(grpc::CreateChannel(Addr(*node), grpc::InsecureChannelCredentials()));
  auto fresh = std::async(std::launch::async, [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    v1::GetRequest req;
    req.set_key("k");
    req.set_consistency(v1::READ_PRIMARY_FRESH);
    v1::GetReply reply;
    const auto start = Clock::now();
    grpc::Status s = stub->Get(&ctx, req, &reply);
    return std::make_pair(s, Clock::now() - start);
  });
  // Meanwhile (while it recursed, before the fix) a local read answers.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    v1::GetRequest req;
    req.set_key("k");
    v1::GetReply reply;
    const grpc::Status s = stub->Get(&ctx, req, &reply);
    ASSERT_TRUE(s.ok()) << s.error_code() << ": " << s.error_message();
    EXPECT_TRUE(reply.found());
    EXPECT_EQ(reply.value(), "v");
  }
  const auto [s, took] = fresh.get();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_NE(s.error_message().find("cycle"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("server_id 2 -> 2 (this node)"), std::string::npos)
      << s.error_message();
  EXPECT_LT(took, std::chrono::milliseconds(1500)) << "should fail at once, not at its deadline";

  GetOptions embedded;
  embedded.consistency = ReadConsistency::kPrimaryFresh;
  embedded.deadline = Clock::now() + std::chrono::seconds(3);
  auto r = node->Get("k", embedded);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
}

// The same for two replicas of each other: refused where the read comes
// back, and passed back to the reader as FAILED_PRECONDITION.
TEST(ReadWaitTest, PrimaryFreshReadThroughACycleOfTwoReplicasIsRefused) {
  TempDir dir;
  auto a = OpenServing(dir.path() / "a", 1);
  auto b = OpenServing(dir.path() / "b", 2);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->ChangePrimary("127.0.0.1", b->bound_port()).ok());
  ASSERT_TRUE(b->ChangePrimary("127.0.0.1", a->bound_port()).ok());
  GetOptions fresh;
  fresh.consistency = ReadConsistency::kPrimaryFresh;
  fresh.deadline = Clock::now() + std::chrono::seconds(3);
  const auto start = Clock::now();
  auto r = a->Get("k", fresh);
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(1500));
  ASSERT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_NE(r.status().message().find("server_id 1 -> 2 -> 1 (this node)"), std::string::npos)
      << r.status();
  EXPECT_NE(r.status().message().find(Addr(*b)), std::string::npos) << r.status();
}

// ReadIndex as a replica is asked it by others: it passes the read on as
// the 4th replica in a row at most, and never when it asked itself.
TEST(ReadWaitTest, ReplicaRefusesToPassAReadIndexOnTooFarOrToItself) {
  TempDir dir;
  auto primary = OpenServing(dir.path() / "p", 1);
  ASSERT_NE(primary, nullptr);
  auto v = primary->Put("k", "v");
  ASSERT_TRUE(v.ok());
  auto replica = OpenServing(dir.path() / "r", 2, Addr(*primary));
  ASSERT_NE(replica, nullptr);
  auto stub = v1::Replication::NewStub(
      grpc::CreateChannel(Addr(*replica), grpc::InsecureChannelCredentials()));
  const auto ask = [&](uint32_t hops, std::vector<uint32_t> asked_by, v1::ReadIndexReply* reply,
                       bool* chain_trailer) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ReadIndexRequest req;
    req.set_hops(hops);
    for (uint32_t id : asked_by) req.add_asked_by(id);
    grpc::Status s = stub->ReadIndex(&ctx, req, reply);
    *chain_trailer = ctx.GetServerTrailingMetadata().count("relaykv-read-index-chain") != 0;
    return s;
  };
  v1::ReadIndexReply reply;
  bool trailer = false;
  // The 4th replica in a row: asks its primary.
  grpc::Status s = ask(3, {7, 8, 9}, &reply, &trailer);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_GE(reply.applied_gtid().seq(), v->seq);
  // It would be the 5th.
  s = ask(4, {6, 7, 8, 9}, &reply, &trailer);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_NE(s.error_message().find("at most 4"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("6 -> 7 -> 8 -> 9 -> 2 (this node)"), std::string::npos)
      << s.error_message();
  EXPECT_TRUE(trailer);
  // A count without the list (or a hostile one) counts too.
  s = ask(1000, {}, &reply, &trailer);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  // Asked by itself.
  s = ask(1, {2}, &reply, &trailer);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_NE(s.error_message().find("cycle"), std::string::npos) << s.error_message();
  EXPECT_TRUE(trailer);
  // A primary answers whoever asks: it asks nobody.
  auto primary_stub = v1::Replication::NewStub(
      grpc::CreateChannel(Addr(*primary), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  v1::ReadIndexRequest req;
  req.set_hops(4);
  for (uint32_t id : {6u, 7u, 8u, 9u}) req.add_asked_by(id);
  s = primary_stub->ReadIndex(&ctx, req, &reply);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

}  // namespace
}  // namespace relaykv
