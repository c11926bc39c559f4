// The promised epoch is bound to its owner (server/epoch_promise.h,
// "Owner"): fencing review finding 1 — two nodes can reach the same epoch
// number without coordination (a candidate promoted into E+1 while the old
// primary, never revoked, restarted and opened E+1 itself, or a node
// promoted while it had promised E+1 to another candidate), and epoch
// numbers alone could not tell their histories apart. Also finding 6: a
// revoked primary that restarts does not apply its never-acknowledged tail.
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "proto/event.pb.h"
#include "relaykv/node.h"
#include "tests/common/temp_dir.h"
#include "tests/server/fake_primary.h"
#include "tests/server/node_harness.h"

namespace relaykv {
namespace {

using testing::Field;
using testing::TempDir;
using testing::WaitFor;
namespace fs = std::filesystem;
constexpr auto Addr = testing::Address;
constexpr auto Stat = testing::Status;

uint64_t Num(const Node& n, const std::string& name) { return std::stoull(Stat(n, name)); }

std::unique_ptr<Node> Open(const fs::path& dir, int server_id, NameValues extra = {},
                           std::string replicate_from = "") {
  NameValues vars = {{"server_id", std::to_string(server_id)}};
  for (auto& v : extra) vars.push_back(std::move(v));
  return testing::OpenServingNode(dir, vars, std::move(replicate_from));
}

std::string IoStopError(const Node& replica) {
  const bool stopped =
      WaitFor([&] { return Field(replica.ReplicaStatus(), "Slave_IO_Running") == "No"; });
  EXPECT_TRUE(stopped) << "IO thread still running";
  return Field(replica.ReplicaStatus(), "Last_IO_Error");
}

TEST(EpochOwnerTest, RevokeBindsTheEpochToItsCandidateAcrossRestarts) {
  TempDir dir;
  {
    auto node = Open(dir.path() / "n", 1);
    ASSERT_NE(node, nullptr);
    auto r = node->Revoke(5, 3);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->promised_owner, 3u);
    auto other = node->Revoke(5, 4);
    ASSERT_TRUE(absl::IsFailedPrecondition(other.status())) << other.status();
    EXPECT_NE(other.status().message().find("promised to server_id 3"), std::string::npos)
        << other.status();
    auto again = node->Revoke(5, 3);
    EXPECT_TRUE(again.ok()) << again.status();
    auto anonymous = node->Revoke(5);
    ASSERT_TRUE(anonymous.ok()) << anonymous.status() << " (an operator's Revoke claims nothing)";
    EXPECT_EQ(anonymous->promised_owner, 3u);
    auto older = node->Revoke(4, 4);
    ASSERT_TRUE(older.ok()) << older.status() << " (a lower epoch is answered with the promise)";
    EXPECT_EQ(older->promised_epoch, 5u);
  }
  auto node = Open(dir.path() / "n", 1);
  ASSERT_NE(node, nullptr);
  auto r = node->Revoke(0);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->promised_epoch, 5u);
  EXPECT_EQ(r->promised_owner, 3u) << "the owner is durable";
  EXPECT_TRUE(absl::IsFailedPrecondition(node->Revoke(5, 4).status()));
  auto next = node->Revoke(6, 4);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->promised_owner, 4u);
}

// The owner is in a comment line: an older relaykvd, which reads comment
// lines and one number, still opens the data dir after a downgrade.
TEST(EpochOwnerTest, TheFileKeepsTheEpochAloneOnItsLine) {
  TempDir dir;
  auto node = Open(dir.path() / "n", 1);
  ASSERT_NE(node, nullptr);
  ASSERT_TRUE(node->Revoke(5, 3).ok());
  std::ifstream in(dir.path() / "n" / "promised_epoch");
  std::vector<std::string> values;
  bool owner_line = false;
  for (std::string line; std::getline(in, line);) {
    if (line == "# owner: 3") owner_line = true;
    if (!line.empty() && line[0] != '#') values.push_back(line);
  }
  EXPECT_TRUE(owner_line);
  EXPECT_EQ(values, std::vector<std::string>{"5"});
}

TEST(EpochOwnerTest, PromiseFileWithoutOwnerReadsAsUnknownAndTheFirstClaimBindsIt) {
  TempDir dir;
  fs::create_directories(dir.path() / "n");
  std::ofstream(dir.path() / "n" / "promised_epoch") << "# from before owners\n7\n";
  auto node = Open(dir.path() / "n", 1);
  ASSERT_NE(node, nullptr);
  EXPECT_EQ(node->promised_epoch(), 7u);
  auto first = node->Revoke(7, 2);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->promised_owner, 2u);
  EXPECT_TRUE(absl::IsFailedPrecondition(node->Revoke(7, 3).status()));
}

TEST(EpochOwnerTest, DamagedOwnerRefusesToOpen) {
  TempDir dir;
  fs::create_directories(dir.path() / "n");
  std::ofstream(dir.path() / "n" / "promised_epoch") << "# owner: x\n7\n";
  NodeOptions o;
  o.data_dir = dir.path() / "n";
  auto node = Node::Open(o);
  ASSERT_FALSE(node.ok());
  EXPECT_TRUE(absl::IsDataLoss(node.status())) << node.status();
}

// Review finding 1b: promoted while it had promised E+1 to another
// candidate, a node opens E+2 (the other may open E+1); promised to itself
// or to nobody in particular, it opens E+1.
TEST(EpochOwnerTest, PromotionSkipsAnEpochPromisedToAnotherNode) {
  TempDir dir;
  auto primary = Open(dir.path() / "p", 1);
  ASSERT_NE(primary, nullptr);
  auto w = primary->Put("a", "1");
  ASSERT_TRUE(w.ok()) << w.status();
  const uint64_t e = w->epoch;
  struct Case {
    int server_id;
    uint32_t candidate;
    uint64_t opens;
  };
  for (const Case& c : {Case{2, 9, e + 2}, Case{3, 3, e + 1}, Case{4, 0, e + 1}}) {
    SCOPED_TRACE("candidate " + std::to_string(c.candidate));
    auto replica = Open(dir.path() / ("r" + std::to_string(c.server_id)), c.server_id, {},
                        Addr(*primary));
    ASSERT_NE(replica, nullptr);
    ASSERT_TRUE(WaitFor([&] { return replica->applied_gtid() == *w; }));
    ASSERT_TRUE(replica->Revoke(e + 1, c.candidate).ok());
    ASSERT_TRUE(replica->StopReplica(ReplicaThreads::kBoth).ok());
    auto start = replica->BecomePrimary();
    ASSERT_TRUE(start.ok()) << start.status();
    EXPECT_EQ(start->epoch, c.opens);
    auto r = replica->Revoke(0);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->promised_epoch, c.opens);
    EXPECT_EQ(r->promised_owner, static_cast<uint32_t>(c.server_id)) << "its own epoch, bound to it";
  }
}

// Review finding 1a, end to end: a replica that promised epoch E to server
// 9 is refused by the primary of epoch E that is another server (its hello
// would count as an ACK of that primary's events at the same GTIDs).
TEST(EpochOwnerTest, PrimaryRefusesTheHelloOfAReplicaThatPromisedItsEpochToAnother) {
  TempDir dir;
  auto primary = Open(dir.path() / "p", 1, {{"rpl_semi_sync_master_enabled", "ON"}});
  ASSERT_NE(primary, nullptr);
  auto w = primary->Put("a", "1");
  ASSERT_TRUE(w.ok()) << w.status();
  auto replica = Open(dir.path() / "r", 2, {{"rpl_semi_sync_slave_enabled", "ON"}});
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(replica->Revoke(w->epoch, 9).ok());
  ASSERT_TRUE(replica->ChangePrimary("127.0.0.1", static_cast<uint32_t>(primary->bound_port())).ok());
  ASSERT_TRUE(replica->StartReplica(ReplicaThreads::kBoth).ok());
  const std::string err = IoStopError(*replica);
  EXPECT_NE(err.find("to server_id 9"), std::string::npos) << err;
  EXPECT_EQ(replica->binlog_gtid().seq, 0u) << "nothing of the other node's epoch is appended";
  EXPECT_EQ(Num(*primary, "Rpl_semi_sync_master_clients"), 0u);
}

// The same from the replica's side, against a primary that does not check
// hellos: batches of the promised epoch by another server are refused,
// whether the primary states its server_id or only its events do.
class EpochOwnerReplicaTest : public testing::ReplicaOfFakePrimaryTest {
 protected:
  void SetUp() override {
    fs::create_directories(dir_.path() / "replica");
    std::ofstream(dir_.path() / "replica" / "promised_epoch") << "# owner: 7\n3\n";
  }
};

v1::Event PutEvent(uint64_t epoch, uint64_t seq, uint32_t server_id) {
  v1::Event ev;
  ev.mutable_gtid()->set_epoch(epoch);
  ev.mutable_gtid()->set_seq(seq);
  ev.set_server_id(server_id);
  v1::Mutation* m = ev.add_mutations();
  m->set_op(v1::Mutation::PUT);
  m->set_key("k" + std::to_string(seq));
  m->set_value("v");
  return ev;
}

v1::PrimaryMessage Batch(const v1::Event& ev, uint64_t primary_epoch, uint32_t primary_server_id) {
  v1::PrimaryMessage msg = testing::BatchOf({ev});
  msg.mutable_batch()->set_primary_epoch(primary_epoch);
  msg.mutable_batch()->set_primary_server_id(primary_server_id);
  return msg;
}

TEST_F(EpochOwnerReplicaTest, RefusesAPrimaryOfItsPromisedEpochThatIsAnotherServer) {
  const std::string err = StopErrorFor({Batch(PutEvent(3, 1, 8), 3, 8)});
  EXPECT_NE(err.find("server_id 7"), std::string::npos) << err;
  EXPECT_NE(err.find("server_id 8"), std::string::npos) << err;
  EXPECT_EQ(replica_->binlog_gtid().seq, 0u);
}

TEST_F(EpochOwnerReplicaTest, RefusesEventsOfItsPromisedEpochByAnotherServer) {
  const std::string err = StopErrorFor({Batch(PutEvent(3, 1, 8), 3, 0)});
  EXPECT_NE(err.find("server_id 7"), std::string::npos) << err;
  EXPECT_NE(err.find("server_id 8"), std::string::npos) << err;
  EXPECT_EQ(replica_->binlog_gtid().seq, 0u);
}

TEST_F(EpochOwnerReplicaTest, FollowsTheOwnerAndANewerEpoch) {
  // The owner's batch is taken; then a bad batch stops the thread so the
  // test knows the first was handled. A newer epoch binds to its writer.
  const std::string err = StopErrorFor({Batch(PutEvent(3, 1, 7), 3, 7),
                                        Batch(PutEvent(4, 2, 8), 4, 8),
                                        Batch(PutEvent(4, 9, 8), 4, 8)});
  EXPECT_FALSE(err.empty());
  EXPECT_EQ(replica_->binlog_gtid(), (Gtid{4, 2}));
  auto r = replica_->Revoke(0);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->promised_epoch, 4u);
  EXPECT_EQ(r->promised_owner, 8u);
}

// A newer primary re-sending an older epoch's history has settled who
// wrote it: a replica that promised that epoch to a candidate whose
// election never finished follows it (review-owner finding 3).
TEST_F(EpochOwnerReplicaTest, FollowsANewerPrimaryWhoseHistoryHasAnotherOwnersEpoch) {
  const std::string err = StopErrorFor({Batch(PutEvent(3, 1, 5), 4, 8),
                                        Batch(PutEvent(4, 2, 8), 4, 8),
                                        Batch(PutEvent(4, 9, 8), 4, 8)});
  EXPECT_FALSE(err.empty());
  EXPECT_EQ(replica_->binlog_gtid(), (Gtid{4, 2})) << err;
  auto r = replica_->Revoke(0);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->promised_epoch, 4u);
  EXPECT_EQ(r->promised_owner, 8u);
}

// Review s4 finding 2: a newer primary re-sending the promised epoch's
// history is owner-checked once the relay log holds that epoch, whatever
// epoch the primary states: 3:2 by server 5 after the owner's 3:1 would
// leave two copies of epoch 3 in the relay log.
TEST_F(EpochOwnerReplicaTest, RefusesANewerPrimaryWhoseHistoryContradictsTheHeldEpoch) {
  const std::string err = StopErrorFor({Batch(PutEvent(3, 1, 7), 3, 7),
                                        Batch(PutEvent(3, 2, 5), 4, 8),
                                        Batch(PutEvent(4, 3, 8), 4, 8),
                                        Batch(PutEvent(4, 9, 8), 4, 8)});
  EXPECT_NE(err.find("server_id 5"), std::string::npos) << err;
  EXPECT_NE(err.find("server_id 7"), std::string::npos) << err;
  EXPECT_EQ(replica_->binlog_gtid(), (Gtid{3, 1})) << err;
  auto r = replica_->Revoke(0);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->promised_epoch, 3u) << "a refused batch raises nothing";
  EXPECT_EQ(r->promised_owner, 7u);
}

// The same within one batch whose newest epoch is newer: the promised
// epoch's events are checked before the promise is raised past it.
TEST_F(EpochOwnerReplicaTest, RefusesAContradictionOfTheHeldEpochInABatchThatRaises) {
  v1::PrimaryMessage mixed = testing::BatchOf({PutEvent(3, 2, 5), PutEvent(4, 3, 8)});
  mixed.mutable_batch()->set_primary_epoch(4);
  mixed.mutable_batch()->set_primary_server_id(8);
  const std::string err =
      StopErrorFor({Batch(PutEvent(3, 1, 7), 3, 7), mixed, Batch(PutEvent(4, 9, 8), 4, 8)});
  EXPECT_NE(err.find("server_id 5"), std::string::npos) << err;
  EXPECT_NE(err.find("server_id 7"), std::string::npos) << err;
  EXPECT_EQ(replica_->binlog_gtid(), (Gtid{3, 1})) << err;
}

// Review-owner2 1: the promise is usually above the held epoch (an
// election raised it before the new primary's stream came); the held
// epoch's events are checked all the same: 3:2 by server 5 after 3:1 by
// server 7, with epoch 4 promised to server 8.
class EpochOwnerPromisedAboveTest : public testing::ReplicaOfFakePrimaryTest {
 protected:
  void SetUp() override {
    fs::create_directories(dir_.path() / "replica");
    std::ofstream(dir_.path() / "replica" / "promised_epoch") << "# owner: 8\n4\n";
  }
};

TEST_F(EpochOwnerPromisedAboveTest, RefusesAContradictionOfTheHeldEpochBelowThePromise) {
  const std::string err = StopErrorFor({Batch(PutEvent(3, 1, 7), 4, 8),
                                        Batch(PutEvent(3, 2, 5), 4, 8),
                                        Batch(PutEvent(4, 9, 8), 4, 8)});
  EXPECT_NE(err.find("server_id 5"), std::string::npos) << err;
  EXPECT_NE(err.find("server_id 7"), std::string::npos) << err;
  EXPECT_EQ(replica_->binlog_gtid(), (Gtid{3, 1})) << err;
}

// The legitimate case spread over batches: history of the promised epoch
// by another server, taken while the relay log held none of it, goes on.
TEST_F(EpochOwnerReplicaTest, FollowsANewerPrimaryWhoseOtherOwnersEpochSpansBatches) {
  const std::string err = StopErrorFor({Batch(PutEvent(3, 1, 5), 4, 8),
                                        Batch(PutEvent(3, 2, 5), 4, 8),
                                        Batch(PutEvent(4, 3, 8), 4, 8),
                                        Batch(PutEvent(4, 9, 8), 4, 8)});
  EXPECT_FALSE(err.empty());
  EXPECT_EQ(replica_->binlog_gtid(), (Gtid{4, 3})) << err;
}

// The primary's side (review s4 finding 2, "the real guard"): the hello
// names the writer of the replica's last event, and a primary that has
// another writer's event at that GTID refuses the stream naming both.
// Two nodes opened the same epoch; a replica of one is pointed at a newer
// primary promoted from the other's line, whose history has the same GTID.
TEST(EpochOwnerTest, PrimaryRefusesAReplicaWhoseLastEventHasAnotherWriter) {
  TempDir dir;
  auto p1 = Open(dir.path() / "p1", 1);
  ASSERT_NE(p1, nullptr);
  auto p2 = Open(dir.path() / "p2", 2);
  ASSERT_NE(p2, nullptr);
  auto a = p1->Put("a", "1");
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = p2->Put("b", "2");
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(*a, *b) << "one GTID, two events";
  auto r = Open(dir.path() / "r", 3, {}, Addr(*p1));
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(WaitFor([&] { return r->binlog_gtid() == *a; }));
  auto d = Open(dir.path() / "d", 4, {}, Addr(*p2));
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(WaitFor([&] { return d->applied_gtid() == *b; }));
  ASSERT_TRUE(d->StopReplica(ReplicaThreads::kIo).ok());
  auto start = d->BecomePrimary();
  ASSERT_TRUE(start.ok()) << start.status();
  auto c = d->Put("c", "3");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_GT(c->epoch, a->epoch);

  ASSERT_TRUE(r->StopReplica(ReplicaThreads::kIo).ok());
  ASSERT_TRUE(r->ChangePrimary("127.0.0.1", static_cast<uint32_t>(d->bound_port())).ok());
  ASSERT_TRUE(r->StartReplica(ReplicaThreads::kIo).ok());
  const std::string err = IoStopError(*r);
  EXPECT_NE(err.find(a->ToString()), std::string::npos) << err;
  EXPECT_NE(err.find("server_id 1"), std::string::npos) << err;
  EXPECT_NE(err.find("server_id 2"), std::string::npos) << err;
  EXPECT_EQ(r->binlog_gtid(), *a) << "nothing of the other history is appended";
}

// A replica that serves its own replicas relays its primary's epoch: it
// states no owner of its own, and its replicas keep following it
// (review-owner finding 1: they used to stop at its first heartbeat).
TEST(EpochOwnerTest, ChainedReplicaKeepsItsReplicasFollowing) {
  TempDir dir;
  auto primary = Open(dir.path() / "p", 1);
  ASSERT_NE(primary, nullptr);
  auto middle = Open(dir.path() / "m", 2, {}, Addr(*primary));
  ASSERT_NE(middle, nullptr);
  auto leaf = Open(dir.path() / "l", 3, {}, Addr(*middle));
  ASSERT_NE(leaf, nullptr);
  Gtid last;
  for (int i = 0; i < 5; ++i) {
    auto w = primary->Put("k" + std::to_string(i), "v");
    ASSERT_TRUE(w.ok()) << w.status();
    last = *w;
    // Past a heartbeat period (1 s) in all.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  ASSERT_TRUE(WaitFor([&] { return leaf->applied_gtid() == last; }))
      << Field(leaf->ReplicaStatus(), "Last_IO_Error");
  EXPECT_EQ(Field(leaf->ReplicaStatus(), "Slave_IO_Running"), "Yes");
}

// Review finding 6: a revoked primary's binlog tail past what it had
// applied (a commit that waited for an ACK that never came) is not applied
// when it restarts: the elected primary may not have it.
TEST(EpochOwnerTest, RevokedPrimaryRestartDoesNotApplyItsUnacknowledgedTail) {
  TempDir dir;
  const NameValues semi = {{"rpl_semi_sync_master_enabled", "ON"},
                           {"rpl_semi_sync_master_timeout", "600000"}};
  auto primary = Open(dir.path() / "p", 1, semi);
  ASSERT_NE(primary, nullptr);
  auto replica = Open(dir.path() / "r", 2, {{"rpl_semi_sync_slave_enabled", "ON"}}, Addr(*primary));
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Num(*primary, "Rpl_semi_sync_master_clients") == 1; }));
  auto a = primary->Put("a", "1");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(replica->StopReplica(ReplicaThreads::kIo).ok());
  ASSERT_TRUE(WaitFor([&] { return Num(*primary, "Rpl_semi_sync_master_clients") == 0; }));
  auto waiting = std::async(std::launch::async, [&] { return primary->Put("b", "2"); });
  ASSERT_TRUE(WaitFor([&] { return Num(*primary, "Rpl_semi_sync_master_wait_sessions") == 1; }));
  auto r = primary->Revoke(a->epoch + 1, 2);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(waiting.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_FALSE(waiting.get().ok());
  const Gtid tail = primary->binlog_gtid();
  EXPECT_GT(tail.seq, a->seq) << "b is in the binlog, never acknowledged";
  primary->Close();
  primary.reset();

  primary = Open(dir.path() / "p", 1, semi);
  ASSERT_NE(primary, nullptr);
  EXPECT_EQ(Stat(*primary, "Rpl_revoked_primary"), "ON");
  EXPECT_EQ(primary->binlog_gtid(), tail) << "kept, not truncated";
  auto b = primary->Get("b");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*b, std::nullopt) << "the revoked primary applied its unacknowledged tail at restart";
  auto got = primary->Get("a");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, std::optional<std::string>("1"));
}

}  // namespace
}  // namespace relaykv
