// A primary (embedded Node with its gRPC services on 127.0.0.1) against
// replicas played by the test on raw Subscribe streams: a replica that
// lies in its ACKs, reuses a server_id, reconnects holding what it never
// ACKed, or meets a primary whose older segments are purged. The primary
// must refuse or end such streams with a clear error, and never count an
// ACK it cannot trust toward a commit.
#include <grpcpp/grpcpp.h>

#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "proto/replication.grpc.pb.h"
#include "relaykv/node.h"
#include "tests/common/temp_dir.h"
#include "tests/server/node_harness.h"

namespace relaykv {
namespace {

using testing::TempDir;
using testing::Address;
using testing::Field;
using testing::Status;
using testing::OpenServingNode;
using testing::WaitFor;
using Clock = std::chrono::steady_clock;


const std::vector<std::pair<std::string, std::string>> kSemiSyncPrimary = {
    {"server_id", "1"},
    {"rpl_semi_sync_master_enabled", "ON"},
    {"rpl_semi_sync_master_timeout", "30000"}};

// One Subscribe stream, driven by hand.
class FakeReplica {
 public:
  FakeReplica(const std::string& primary, uint32_t server_id, Gtid durable, bool semi_sync = true,
              uint32_t durable_writer = 0) {
    stub_ = v1::Replication::NewStub(
        grpc::CreateChannel(primary, grpc::InsecureChannelCredentials()));
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    stream_ = stub_->Subscribe(&ctx_);
    v1::ReplicaMessage hello;
    hello.mutable_hello()->set_server_id(server_id);
    hello.mutable_hello()->mutable_durable_gtid()->set_epoch(durable.epoch);
    hello.mutable_hello()->mutable_durable_gtid()->set_seq(durable.seq);
    hello.mutable_hello()->set_semi_sync(semi_sync);
    hello.mutable_hello()->set_relay_log_synced(true);
    hello.mutable_hello()->set_durable_writer(durable_writer);
    stream_->Write(hello);
  }
  ~FakeReplica() {
    ctx_.TryCancel();
    if (!finished_) stream_->Finish().ok();
  }

  // The next event batch (heartbeats skipped); false once the stream ended.
  bool NextBatch(v1::EventBatch* batch) {
    v1::PrimaryMessage m;
    while (stream_->Read(&m)) {
      if (m.has_batch()) {
        *batch = m.batch();
        return true;
      }
    }
    return false;
  }
  // Reads until the primary ends the stream; its status.
  grpc::Status Ended() {
    v1::PrimaryMessage m;
    while (stream_->Read(&m)) {
    }
    finished_ = true;
    return stream_->Finish();
  }
  bool Ack(Gtid g) {
    v1::ReplicaMessage m;
    m.mutable_ack()->mutable_durable_gtid()->set_epoch(g.epoch);
    m.mutable_ack()->mutable_durable_gtid()->set_seq(g.seq);
    return stream_->Write(m);
  }

 private:
  std::unique_ptr<v1::Replication::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ReplicaMessage, v1::PrimaryMessage>> stream_;
  bool finished_ = false;
};

Gtid LastOf(const v1::EventBatch& batch) {
  v1::Event e;
  EXPECT_TRUE(e.ParseFromString(batch.events(batch.events_size() - 1)));
  return Gtid{e.gtid().epoch(), e.gtid().seq()};
}

// Issue 14.8: an ACK beyond anything sent on the stream is a lie: the stream
// ends with an error naming it, and no commit counts it.
TEST(HostileReplicaTest, AckBeyondWhatWasSentEndsTheStreamAndCountsNothing) {
  TempDir dir;
  auto primary = OpenServingNode(dir.path() / "p", kSemiSyncPrimary);
  ASSERT_NE(primary, nullptr);
  FakeReplica liar(Address(*primary), 2, Gtid{});
  ASSERT_TRUE(WaitFor([&] { return Status(*primary, "Rpl_semi_sync_master_clients") == "1"; }));
  liar.Ack(Gtid{1, 1000});
  const grpc::Status ended = liar.Ended();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << ended.error_message();
  EXPECT_NE(ended.error_message().find("1:1000"), std::string::npos) << ended.error_message();
  EXPECT_NE(ended.error_message().find("sent only up to"), std::string::npos) << ended.error_message();
  // A commit now has no replica: it times out rather than counting the lie.
  ASSERT_TRUE(primary->SetVariable("rpl_semi_sync_master_timeout", "300", false).ok());
  ASSERT_TRUE(primary->Put("k", "v").ok());
  EXPECT_EQ(Status(*primary, "Rpl_semi_sync_master_yes_tx"), "0");
  EXPECT_EQ(Status(*primary, "Rpl_semi_sync_master_no_tx"), "1");
}

// An ACK naming a sent seq with another epoch is another history's.
TEST(HostileReplicaTest, AckOfAnotherEpochEndsTheStream) {
  TempDir dir;
  auto primary = OpenServingNode(dir.path() / "p", kSemiSyncPrimary);
  ASSERT_NE(primary, nullptr);
  FakeReplica r(Address(*primary), 2, Gtid{});
  ASSERT_TRUE(WaitFor([&] { return Status(*primary, "Rpl_semi_sync_master_clients") == "1"; }));
  auto put = std::async(std::launch::async, [&] { return primary->Put("k", "v"); });
  v1::EventBatch batch;
  ASSERT_TRUE(r.NextBatch(&batch));
  const Gtid sent = LastOf(batch);
  r.Ack(Gtid{sent.epoch + 7, sent.seq});
  const grpc::Status ended = r.Ended();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << ended.error_message();
  EXPECT_EQ(Status(*primary, "Rpl_semi_sync_master_yes_tx"), "0");
  ASSERT_TRUE(primary->SetVariable("rpl_semi_sync_master_enabled", "OFF", false).ok());
  ASSERT_TRUE(put.get().ok());
}

// Issue 14.7: one replica is one vote, however many streams it opens; its
// new stream ends the old one (MySQL ends the old dump thread).
TEST(HostileReplicaTest, SecondStreamOfAServerIdReplacesTheFirstAndCountsOnce) {
  TempDir dir;
  auto vars = kSemiSyncPrimary;
  vars.push_back({"rpl_semi_sync_master_wait_for_slave_count", "2"});
  auto primary = OpenServingNode(dir.path() / "p", vars);
  ASSERT_NE(primary, nullptr);
  auto first = std::make_unique<FakeReplica>(Address(*primary), 2, Gtid{});
  ASSERT_TRUE(WaitFor([&] { return Status(*primary, "Rpl_semi_sync_master_clients") == "1"; }));
  FakeReplica second(Address(*primary), 2, Gtid{});
  const grpc::Status old_end = first->Ended();
  EXPECT_FALSE(old_end.ok()) << "the replica's old stream must be ended";
  EXPECT_EQ(Status(*primary, "Rpl_semi_sync_master_clients"), "1");
  ASSERT_TRUE(primary->SetVariable("rpl_semi_sync_master_timeout", "500", false).ok());
  auto put = std::async(std::launch::async, [&] { return primary->Put("k", "v"); });
  v1::EventBatch batch;
  ASSERT_TRUE(second.NextBatch(&batch));
  second.Ack(LastOf(batch));
  ASSERT_TRUE(put.get().ok());
  EXPECT_EQ(Status(*primary, "Rpl_semi_sync_master_yes_tx"), "0")
      << "one replica met rpl_semi_sync_master_wait_for_slave_count=2";
  EXPECT_EQ(Status(*primary, "Rpl_semi_sync_master_no_tx"), "1");
}

// Issue 14.7: a replica with the primary's own server_id is refused (every
// node defaults to server_id 1).
TEST(HostileReplicaTest, ReplicaWithThePrimarysServerIdIsRefused) {
  TempDir dir;
  auto primary = OpenServingNode(dir.path() / "p", kSemiSyncPrimary);
  ASSERT_NE(primary, nullptr);
  FakeReplica twin(Address(*primary), 1, Gtid{});
  const grpc::Status ended = twin.Ended();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(ended.error_message().find("server_id 1"), std::string::npos) << ended.error_message();

  // The same through a real replica node left at the default server_id.
  auto replica = OpenServingNode(dir.path() / "r", {}, Address(*primary));
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(WaitFor([&] {
    return Field(replica->ReplicaStatus(), "Last_IO_Error").find("server_id") != std::string::npos;
  })) << Field(replica->ReplicaStatus(), "Last_IO_Error");
  EXPECT_EQ(Field(replica->ReplicaStatus(), "Slave_IO_Running"), "No");
}

// Review s4 finding 2: a replica whose last event has the primary's GTID
// but another writer holds another history (two nodes opened that epoch):
// refused, naming both writers. Its own writer, or none (an older
// replica), is served.
TEST(HostileReplicaTest, LastEventOfAnotherWriterIsRefused) {
  TempDir dir;
  auto primary = OpenServingNode(dir.path() / "p", {{"server_id", "1"}});
  ASSERT_NE(primary, nullptr);
  auto first = primary->Put("a", "1");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(primary->Put("b", "2").ok());

  FakeReplica other(Address(*primary), 2, *first, false, 9);
  const grpc::Status ended = other.Ended();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  const std::string& why = ended.error_message();
  EXPECT_NE(why.find(first->ToString() + " was written by server_id 9"), std::string::npos) << why;
  EXPECT_NE(why.find("by server_id 1"), std::string::npos) << why;

  for (const uint32_t writer : {1u, 0u}) {
    FakeReplica same(Address(*primary), 2, *first, false, writer);
    v1::EventBatch batch;
    ASSERT_TRUE(same.NextBatch(&batch)) << "writer " << writer << ": " << same.Ended().error_message();
    v1::Event ev;
    ASSERT_TRUE(ev.ParseFromString(batch.events(0)));
    EXPECT_EQ(ev.gtid().seq(), first->seq + 1);
  }
}

// Issue 14.11: the replica held the event durably but its stream broke
// before the ACK; it reconnects with that GTID in its hello. The waiting
// commit is released at once, not after the whole timeout.
TEST(HostileReplicaTest, ReconnectWithAnUnackedEventReleasesTheCommit) {
  TempDir dir;
  auto primary = OpenServingNode(dir.path() / "p", kSemiSyncPrimary);  // 30 s timeout
  ASSERT_NE(primary, nullptr);
  Gtid held;
  std::future<absl::StatusOr<Gtid>> put;
  {
    FakeReplica r(Address(*primary), 2, Gtid{});
    ASSERT_TRUE(WaitFor([&] { return Status(*primary, "Rpl_semi_sync_master_clients") == "1"; }));
    put = std::async(std::launch::async, [&] { return primary->Put("k", "v"); });
    v1::EventBatch batch;
    ASSERT_TRUE(r.NextBatch(&batch));
    held = LastOf(batch);
  }  // gone without ACKing
  const auto start = Clock::now();
  FakeReplica back(Address(*primary), 2, held);
  ASSERT_EQ(put.wait_for(std::chrono::seconds(20)), std::future_status::ready)
      << "the commit waited for an ACK the replica had no reason to send";
  auto g = put.get();
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(*g, held);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(20));
  EXPECT_EQ(Status(*primary, "Rpl_semi_sync_master_yes_tx"), "1");
  EXPECT_EQ(Status(*primary, "Rpl_semi_sync_master_no_times"), "0");
  EXPECT_EQ(Status(*primary, "Rpl_semi_sync_master_status"), "ON");
}

// Issue 14.15: once a replica's IO thread is stopped, the primary stops
// counting it at once — not at the next commit that times out.
TEST(HostileReplicaTest, StoppedIoThreadLeavesTheClientCountWithoutAnyCommit) {
  TempDir dir;
  auto primary = OpenServingNode(dir.path() / "p", kSemiSyncPrimary);
  ASSERT_NE(primary, nullptr);
  auto replica = OpenServingNode(dir.path() / "r", {{"server_id", "2"}, {"rpl_semi_sync_slave_enabled", "ON"}},
                          Address(*primary));
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Status(*primary, "Rpl_semi_sync_master_clients") == "1"; }));
  ASSERT_TRUE(replica->StopReplica(ReplicaThreads::kIo).ok());
  EXPECT_TRUE(WaitFor([&] { return Status(*primary, "Rpl_semi_sync_master_clients") == "0"; },
                      std::chrono::seconds(5)))
      << "still counted after STOP SLAVE IO_THREAD";
}

// Issue 14.5: the history check also runs at the purge boundary. The old
// primary holds an errant 1:91..; the new primary (promoted at 2:91) has
// purged everything up to the seq the old one ends at. Without the GTID of
// the last purged event the check would be skipped and the old primary's
// errant events silently kept.
TEST(HostileReplicaTest, HistoryIsCheckedAtThePurgeBoundary) {
  TempDir dir;
  auto a = OpenServingNode(dir.path() / "a", {{"server_id", "1"}});
  auto b = OpenServingNode(dir.path() / "b", {{"server_id", "2"}, {"max_binlog_size", "4096"}},
                    Address(*(a)));
  ASSERT_TRUE(a && b);
  for (int i = 1; i <= 90; ++i) ASSERT_TRUE(a->Put("k" + std::to_string(i), "v").ok());
  ASSERT_TRUE(WaitFor([&] { return b->applied_gtid() == a->binlog_gtid(); }));
  ASSERT_TRUE(b->StopReplica(ReplicaThreads::kIo).ok());
  auto start = b->BecomePrimary();
  ASSERT_TRUE(start.ok()) << start.status();
  ASSERT_EQ(start->seq, 91u);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(b->Put("n" + std::to_string(i), std::string(200, 'x')).ok());
  // A segment of b that starts past its epoch marker: purge everything before it.
  const auto logs = b->BinaryLogs();
  const BinaryLogInfo* boundary = nullptr;
  for (const auto& l : logs) {
    if (l.first_seq > 93 && &l != &logs.back()) {
      boundary = &l;
      break;
    }
  }
  ASSERT_NE(boundary, nullptr) << "b's binlog should have rotated";
  const uint64_t first = boundary->first_seq;
  std::string note;
  auto purged = b->PurgeBinaryLogsTo(boundary->name, &note);
  ASSERT_TRUE(purged.ok()) << purged.status();
  ASSERT_GT(*purged, 0) << note;
  // a, the old primary, wrote on alone up to the seq before b's first kept one.
  while (a->binlog_gtid().seq < first - 1) ASSERT_TRUE(a->Put("errant", "e").ok());
  ASSERT_EQ(a->binlog_gtid(), (Gtid{1, first - 1}));
  const std::filesystem::path a_dir = a->options().data_dir;
  a.reset();
  auto old = OpenServingNode(a_dir, {{"server_id", "1"}}, Address(*b));
  ASSERT_NE(old, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Field(old->ReplicaStatus(), "Slave_IO_Running") == "No"; }));
  const std::string err = Field(old->ReplicaStatus(), "Last_IO_Error");
  EXPECT_NE(err.find("1:" + std::to_string(first - 1) + " is not in this primary's history"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("2:" + std::to_string(first - 1)), std::string::npos) << err;
  EXPECT_EQ(old->applied_gtid(), (Gtid{1, first - 1})) << "nothing of b's applied on top";
}

// The writer check at the purge boundary (invariant 3): a replica whose
// last event is exactly the newest purged one was served whoever wrote it
// — only the GTID is in the oldest segment's header, and two nodes that
// opened one epoch hold equal GTIDs. The purge records the writer
// (binlog.purged), before and after a restart.
TEST(HostileReplicaTest, AnotherWritersLastEventIsRefusedAtThePurgeBoundary) {
  TempDir dir;
  const std::vector<std::pair<std::string, std::string>> vars = {{"server_id", "1"},
                                                                 {"max_binlog_size", "4096"}};
  auto primary = OpenServingNode(dir.path() / "p", vars);
  ASSERT_NE(primary, nullptr);
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(primary->Put("k" + std::to_string(i), std::string(200, 'x')).ok());
  const auto logs = primary->BinaryLogs();
  ASSERT_GE(logs.size(), 3u) << "the binlog should have rotated";
  const BinaryLogInfo& boundary = logs[logs.size() - 2];
  std::string note;
  auto purged = primary->PurgeBinaryLogsTo(boundary.name, &note);
  ASSERT_TRUE(purged.ok()) << purged.status();
  ASSERT_GT(*purged, 0) << note;
  ASSERT_EQ(primary->BinaryLogs().front().first_seq, boundary.first_seq) << "purged up to it";
  const Gtid last_purged{primary->binlog_gtid().epoch, boundary.first_seq - 1};
  for (const bool restarted : {false, true}) {
    if (restarted) {
      const std::filesystem::path data_dir = primary->options().data_dir;
      primary.reset();
      primary = OpenServingNode(data_dir, vars);
      ASSERT_NE(primary, nullptr);
    }
    FakeReplica other(Address(*primary), 2, last_purged, false, 9);
    const grpc::Status ended = other.Ended();
    EXPECT_EQ(ended.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << (restarted ? "after a restart: " : "") << ended.error_message();
    EXPECT_NE(ended.error_message().find(last_purged.ToString() + " was written by server_id 9"),
              std::string::npos)
        << ended.error_message();
    FakeReplica same(Address(*primary), 2, last_purged, false, 1);
    v1::EventBatch batch;
    ASSERT_TRUE(same.NextBatch(&batch)) << same.Ended().error_message();
    v1::Event ev;
    ASSERT_TRUE(ev.ParseFromString(batch.events(0)));
    EXPECT_EQ(ev.gtid().seq(), boundary.first_seq);
  }
}

// The replica's side of the same: its relay log's last event purged (each
// 5 KB event rotates a 4 KiB relay log, so the active segment is empty),
// its hello said "writer unknown" and a primary whose equal GTIDs another
// node wrote (a and b both opened epoch 1) served it: b's history would
// have been appended onto a's. It says the writer from binlog.purged. (Its
// promise names epoch 1's owner too, which refuses b by itself; a promise
// from a relaykv before owners has none, as here.)
TEST(HostileReplicaTest, AReplicaWhoseLastEventIsPurgedStillSaysWhoWroteIt) {
  TempDir dir;
  auto a = OpenServingNode(dir.path() / "a", {{"server_id", "1"}});
  auto b = OpenServingNode(dir.path() / "b", {{"server_id", "3"}});
  ASSERT_TRUE(a && b);
  const std::string big(5000, 'x');
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(a->Put("k" + std::to_string(i), big).ok());
    ASSERT_TRUE(b->Put("k" + std::to_string(i), big).ok());
  }
  ASSERT_EQ(a->binlog_gtid(), b->binlog_gtid());
  auto r = OpenServingNode(dir.path() / "r", {{"server_id", "2"}, {"max_binlog_size", "4096"}},
                           Address(*a));
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(WaitFor([&] { return r->applied_gtid() == a->binlog_gtid(); }));
  ASSERT_TRUE(r->StopReplica(ReplicaThreads::kIo).ok());
  const auto logs = r->BinaryLogs();
  ASSERT_EQ(logs.back().first_seq, a->binlog_gtid().seq + 1) << "the active relay segment is empty";
  std::string note;
  auto purged = r->PurgeBinaryLogsTo(logs.back().name, &note);
  ASSERT_TRUE(purged.ok()) << purged.status();
  ASSERT_GT(*purged, 0) << note;
  ASSERT_TRUE(r->ChangePrimary("127.0.0.1", b->bound_port()).ok());
  const std::filesystem::path r_dir = r->options().data_dir;
  r.reset();
  std::ofstream(r_dir / "promised_epoch", std::ios::trunc) << "1\n";  // no owner
  r = OpenServingNode(r_dir, {{"server_id", "2"}, {"max_binlog_size", "4096"}}, Address(*b));
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Field(r->ReplicaStatus(), "Slave_IO_Running") == "No"; }))
      << Field(r->ReplicaStatus(), "Last_IO_Error");
  const std::string err = Field(r->ReplicaStatus(), "Last_IO_Error");
  EXPECT_NE(err.find("was written by server_id 1"), std::string::npos) << err;
  EXPECT_EQ(r->applied_gtid(), a->binlog_gtid()) << "nothing of b's applied on top";
}

}  // namespace
}  // namespace relaykv
