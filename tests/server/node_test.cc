// One embedded Node: the write path, limits, the data-dir lock, variables,
// and the gRPC services' checks of what a request leaves unset.
#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <vector>
#include <string>

#include "gtest/gtest.h"
#include "proto/admin.grpc.pb.h"
#include "proto/kv.grpc.pb.h"
#include "relaykv/node.h"
#include "storage/binlog.h"
#include "storage/crc32c.h"
#include "tests/common/temp_dir.h"

namespace relaykv {
namespace {

using testing::TempDir;

NodeOptions Options(const std::filesystem::path& dir) {
  NodeOptions o;
  o.data_dir = dir;
  return o;  // no listen address: embedded only
}

std::string Value(const NameValues& rows, const std::string& name) {
  for (const auto& [n, v] : rows) {
    if (n == name) return v;
  }
  return "<missing>";
}

TEST(NodeTest, WritesGetDenseGtidsAndAreReadable) {
  TempDir dir;
  auto node = *Node::Open(Options(dir.path()));
  auto g1 = node->Put("a", "1");
  auto g2 = node->Put("b", "2");
  auto g3 = node->Delete("a");
  ASSERT_TRUE(g1.ok() && g2.ok() && g3.ok());
  EXPECT_EQ(g1->seq, 1u);
  EXPECT_EQ(g2->seq, 2u);
  EXPECT_EQ(g3->seq, 3u);
  EXPECT_EQ(*node->Get("a"), std::nullopt);
  EXPECT_EQ(*node->Get("b"), std::optional<std::string>("2"));
  EXPECT_EQ(node->applied_gtid(), *g3);
}

TEST(NodeTest, AsyncWritesAreEachAnsweredOnceInOrderAndReadable) {
  TempDir dir;
  auto node = *Node::Open(Options(dir.path()));
  constexpr int kWrites = 500;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<absl::StatusOr<Gtid>> answers(kWrites, absl::UnknownError("no answer"));
  int answered = 0;
  for (int i = 0; i < kWrites; ++i) {
    node->WriteAsync({Mutation::Put("k" + std::to_string(i), std::to_string(i))}, {},
                     [&, i](absl::StatusOr<Gtid> r) {
                       std::lock_guard l(mu);
                       answers[i] = std::move(r);
                       ++answered;
                       cv.notify_all();
                     });
  }
  {
    std::unique_lock l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(60), [&] { return answered == kWrites; }))
        << answered << " of " << kWrites << " answered";
  }
  for (int i = 0; i < kWrites; ++i) {
    ASSERT_TRUE(answers[i].ok()) << i << ": " << answers[i].status();
    EXPECT_EQ(answers[i]->seq, static_cast<uint64_t>(i + 1)) << "in the order they were made";
    EXPECT_EQ(*node->Get("k" + std::to_string(i)), std::optional<std::string>(std::to_string(i)));
  }
  // Bad input: answered at once, on this thread, nothing written.
  absl::Status bad;
  node->WriteAsync({Mutation::Put("", "v")}, {}, [&](absl::StatusOr<Gtid> r) { bad = r.status(); });
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(node->binlog_gtid().seq, static_cast<uint64_t>(kWrites));
  // Closed: answered UNAVAILABLE, never OK.
  node->Close();
  absl::Status closed;
  node->WriteAsync({Mutation::Put("late", "v")}, {}, [&](absl::StatusOr<Gtid> r) { closed = r.status(); });
  EXPECT_EQ(closed.code(), absl::StatusCode::kUnavailable);
}

TEST(NodeTest, BadInputIsRefusedAndChangesNothing) {
  TempDir dir;
  auto node = *Node::Open(Options(dir.path()));
  ASSERT_TRUE(node->Put("k", "v").ok());
  const Gtid before = node->binlog_gtid();
  auto big_key = node->Put(std::string(65537, 'k'), "v");
  EXPECT_EQ(big_key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(big_key.status().message().find("65536"), std::string::npos) << big_key.status();
  EXPECT_EQ(node->Put("", "v").status().code(), absl::StatusCode::kInvalidArgument);
  auto big_value = node->Put("k", std::string(16 * 1024 * 1024 + 1, 'v'));
  EXPECT_EQ(big_value.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(big_value.status().message().find("16777216"), std::string::npos);
  // The second mutation is bad: nothing applies.
  std::vector<Mutation> batch = {Mutation::Put("ok", ""), Mutation::Put("", "v")};
  EXPECT_EQ(node->Write(batch).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(node->binlog_gtid(), before);
  EXPECT_EQ(*node->Get("ok"), std::nullopt);
  EXPECT_EQ(*node->Get("k"), std::optional<std::string>("v"));
}

TEST(NodeTest, SecondNodeOnSameDataDirIsRefused) {
  TempDir dir;
  auto first = Node::Open(Options(dir.path()));
  ASSERT_TRUE(first.ok());
  auto second = Node::Open(Options(dir.path()));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("in use"), std::string::npos) << second.status();
  ASSERT_TRUE((*first)->Put("still", "works").ok());
}

TEST(NodeTest, UnusableDataDirIsAClearError) {
  TempDir dir;
  const auto file = dir.path() / "not-a-dir";
  std::ofstream(file) << "x";
  auto node = Node::Open(Options(file / "data"));
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(node.status().message().find("cannot create data dir"), std::string::npos) << node.status();
  EXPECT_EQ(Node::Open(NodeOptions{}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NodeTest, ClosedNodeRefusesCalls) {
  TempDir dir;
  auto node = *Node::Open(Options(dir.path()));
  node->Close();
  EXPECT_EQ(node->Put("a", "b").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(node->Get("a").status().code(), absl::StatusCode::kUnavailable);
}

TEST(NodeTest, DataSurvivesReopen) {
  TempDir dir;
  {
    auto node = *Node::Open(Options(dir.path()));
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(node->Put("k" + std::to_string(i), "v").ok());
  }
  auto node = *Node::Open(Options(dir.path()));
  EXPECT_EQ(node->applied_gtid().seq, 100u);
  EXPECT_EQ(*node->Get("k99"), std::optional<std::string>("v"));
  EXPECT_EQ(node->Put("next", "x")->seq, 101u);
}

// Review s31 L2: the state machine's applied GTID must be the binlog's
// event at that seq, epoch included, or the node refuses to start.
TEST(NodeTest, StateMachineFromAnotherHistoryIsRefusedAtOpen) {
  TempDir dir;
  {
    auto node = *Node::Open(Options(dir.path()));
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(node->Put("k" + std::to_string(i), "v").ok());
  }
  TempDir other;
  {
    BinlogOptions bo;
    bo.dir = other.path() / "binlog";
    auto b = Binlog::Open(bo);
    ASSERT_TRUE(b.ok()) << b.status();
    std::vector<v1::Event> events(3);
    for (uint64_t seq = 1; seq <= 3; ++seq) {
      events[seq - 1].mutable_gtid()->set_epoch(7);
      events[seq - 1].mutable_gtid()->set_seq(seq);
    }
    ASSERT_TRUE((*b)->AppendReplicated(events, /*sync=*/true).ok());
  }
  std::filesystem::remove_all(dir.path() / "binlog");
  std::filesystem::rename(other.path() / "binlog", dir.path() / "binlog");
  auto node = Node::Open(Options(dir.path()));
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), absl::StatusCode::kDataLoss) << node.status();
  EXPECT_NE(node.status().message().find("is 7:3"), std::string::npos) << node.status();
}

TEST(NodeTest, ReadOnlyRefusesWrites) {
  TempDir dir;
  auto node = *Node::Open(Options(dir.path()));
  ASSERT_TRUE(node->SetVariable("read_only", "ON", false).ok());
  EXPECT_EQ(node->Put("a", "b").status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(node->SetVariable("read_only", "0", false).ok());
  EXPECT_TRUE(node->Put("a", "b").ok());
}

TEST(NodeTest, SetPersistSurvivesRestartSetGlobalDoesNot) {
  TempDir dir;
  {
    auto node = *Node::Open(Options(dir.path()));
    ASSERT_TRUE(node->SetVariable("sync_binlog", "7", /*persist=*/true).ok());
    ASSERT_TRUE(node->SetVariable("max_binlog_size", "8192", /*persist=*/false).ok());
    EXPECT_EQ(Value(node->ShowVariables("max_binlog_size"), "max_binlog_size"), "8192");
  }
  {
    auto node = *Node::Open(Options(dir.path()));
    EXPECT_EQ(Value(node->ShowVariables("sync%"), "sync_binlog"), "7");
    EXPECT_EQ(Value(node->ShowVariables("max_binlog_size"), "max_binlog_size"), "1073741824");
    ASSERT_TRUE(node->ResetPersist("sync_binlog").ok());
    EXPECT_EQ(node->ResetPersist("sync_binlog").code(), absl::StatusCode::kNotFound);
  }
  auto node = *Node::Open(Options(dir.path()));
  EXPECT_EQ(Value(node->ShowVariables("sync_binlog"), "sync_binlog"), "1");
}

TEST(NodeTest, BadVariableChangesNothing) {
  TempDir dir;
  auto node = *Node::Open(Options(dir.path()));
  EXPECT_EQ(node->SetVariable("no_such_var", "1", false).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(node->SetVariable("sync_binlog", "-1", false).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(node->SetVariable("read_only", "maybe", false).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(node->SetVariable("server_id", "5", false).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Value(node->ShowVariables(""), "sync_binlog"), "1");
  EXPECT_EQ(Value(node->ShowVariables(""), "read_only"), "OFF");
  EXPECT_EQ(Value(node->ShowVariables(""), "server_id"), "1");
}

TEST(NodeTest, BadOptionsFailOpenClearly) {
  TempDir dir;
  NodeOptions o = Options(dir.path());
  o.variables = {{"sync_binlog", "lots"}};
  auto node = Node::Open(o);
  ASSERT_FALSE(node.ok());
  EXPECT_NE(node.status().message().find("sync_binlog"), std::string::npos) << node.status();
  o.variables.clear();
  o.replicate_from = "nonsense";
  node = Node::Open(o);
  ASSERT_FALSE(node.ok());
  EXPECT_NE(node.status().message().find("HOST:PORT"), std::string::npos) << node.status();
}

TEST(NodeTest, ChecksumIsOrderIndependentOfHistory) {
  TempDir dir;
  auto a = *Node::Open(Options(dir.path() / "a"));
  auto b = *Node::Open(Options(dir.path() / "b"));
  ASSERT_TRUE(a->Put("x", "1").ok());
  ASSERT_TRUE(a->Put("y", "2").ok());
  ASSERT_TRUE(b->Put("y", "2").ok());
  ASSERT_TRUE(b->Put("x", "1").ok());
  EXPECT_EQ(a->Checksum()->hash, b->Checksum()->hash);
  ASSERT_TRUE(b->Put("x", "3").ok());
  EXPECT_NE(a->Checksum()->hash, b->Checksum()->hash);
  EXPECT_EQ(b->Checksum()->keys, 2u);
}

// A node serving gRPC on 127.0.0.1 (a replica when `replicate_from` is set).
std::unique_ptr<Node> ServingNode(const std::filesystem::path& dir,
                                  std::string replicate_from = "") {
  NodeOptions o = Options(dir);
  o.listen_address = "127.0.0.1:0";
  o.replicate_from = std::move(replicate_from);
  auto node = Node::Open(o);
  EXPECT_TRUE(node.ok()) << node.status();
  return node.ok() ? *std::move(node) : nullptr;
}

std::shared_ptr<grpc::Channel> ChannelTo(const Node& node) {
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(node.bound_port()),
                             grpc::InsecureChannelCredentials());
}

TEST(NodeTest, EmptyReplicaThreadsRequestIsRefusedAndStopsNothing) {
  TempDir dir;
  // A replica of a primary that is not there: both threads run (the IO
  // thread keeps reconnecting), so a request taken for STOP would show.
  auto node = ServingNode(dir.path(), "127.0.0.1:1");
  ASSERT_NE(node, nullptr);
  auto admin = v1::Admin::NewStub(ChannelTo(*node));
  grpc::ClientContext ctx;
  v1::ReplicaThreadsReply reply;
  grpc::Status s = admin->ReplicaThreads(&ctx, v1::ReplicaThreadsRequest(), &reply);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_NE(s.error_message().find("ReplicaThreadsRequest.action"), std::string::npos)
      << s.error_message();
  EXPECT_EQ(Value(node->ReplicaStatus(), "Slave_SQL_Running"), "Yes");
  EXPECT_NE(Value(node->ReplicaStatus(), "Slave_IO_Running"), "No");
}

TEST(NodeTest, ReplicaThreadsRequestWithoutThreadsIsRefused) {
  TempDir dir;
  auto node = ServingNode(dir.path(), "127.0.0.1:1");
  ASSERT_NE(node, nullptr);
  auto admin = v1::Admin::NewStub(ChannelTo(*node));
  v1::ReplicaThreadsRequest req;
  req.set_action(v1::ReplicaThreadsRequest::STOP);
  grpc::ClientContext ctx;
  v1::ReplicaThreadsReply reply;
  grpc::Status s = admin->ReplicaThreads(&ctx, req, &reply);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_NE(s.error_message().find("ReplicaThreadsRequest.threads"), std::string::npos)
      << s.error_message();
  EXPECT_EQ(Value(node->ReplicaStatus(), "Slave_SQL_Running"), "Yes");
  // Both fields set: accepted.
  req.set_threads(v1::ReplicaThreadsRequest::SQL);
  grpc::ClientContext ctx2;
  s = admin->ReplicaThreads(&ctx2, req, &reply);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(Value(node->ReplicaStatus(), "Slave_SQL_Running"), "No");
}

TEST(NodeTest, WriteWithOpUnsetIsRefusedNamingTheField) {
  TempDir dir;
  auto node = ServingNode(dir.path());
  ASSERT_NE(node, nullptr);
  auto kv = v1::Kv::NewStub(ChannelTo(*node));
  v1::WriteRequest req;
  v1::Mutation* m = req.add_mutations();
  m->set_key("k");
  m->set_value("v");  // op left unset
  grpc::ClientContext ctx;
  v1::WriteReply reply;
  grpc::Status s = kv->Write(&ctx, req, &reply);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_NE(s.error_message().find("Mutation.op"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("OP_UNSPECIFIED"), std::string::npos) << s.error_message();
  // An unknown number is refused too, naming it.
  m->set_op(static_cast<v1::Mutation::Op>(7));
  grpc::ClientContext ctx2;
  s = kv->Write(&ctx2, req, &reply);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_NE(s.error_message().find("Mutation.op 7"), std::string::npos) << s.error_message();
  EXPECT_EQ(node->binlog_gtid().seq, 0u);
  EXPECT_EQ(*node->Get("k"), std::nullopt);
  // Set: written.
  m->set_op(v1::Mutation::PUT);
  grpc::ClientContext ctx3;
  s = kv->Write(&ctx3, req, &reply);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(*node->Get("k"), std::optional<std::string>("v"));
}

// Rewrites the format version in a segment header, with a valid header CRC
// (as an older relaykv would have written it).
void SetSegmentVersion(const std::filesystem::path& segment, uint32_t version) {
  std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f.is_open()) << segment;
  char header[32];
  f.read(header, sizeof(header));
  ASSERT_TRUE(f.good());
  for (int i = 0; i < 4; ++i) header[8 + i] = static_cast<char>((version >> (8 * i)) & 0xff);
  const uint32_t crc = Crc32c(std::string_view(header, 24));
  for (int i = 0; i < 4; ++i) header[24 + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
  f.seekp(0);
  f.write(header, sizeof(header));
  ASSERT_TRUE(f.good());
}

TEST(NodeTest, BinlogOfFormatVersion1IsRefusedAsUnsupported) {
  TempDir dir;
  {
    auto node = *Node::Open(Options(dir.path()));
    ASSERT_TRUE(node->Put("k", "v").ok());
  }
  // Version 1 stored Mutation.op with PUT = 0, DELETE = 1: read with today's
  // numbers every DELETE would be taken for a PUT.
  SetSegmentVersion(dir.path() / "binlog" / "binlog.000001", 1);
  auto node = Node::Open(Options(dir.path()));
  ASSERT_FALSE(node.ok());
  EXPECT_NE(node.status().message().find("binlog.000001"), std::string::npos) << node.status();
  EXPECT_NE(node.status().message().find("version 1 is not supported"), std::string::npos)
      << node.status();
}

TEST(NodeTest, RecoveryRefusesToApplyABinlogEventWithUnsetOp) {
  TempDir dir;
  {
    BinlogOptions bo;
    bo.dir = dir.path() / "binlog";
    auto binlog = Binlog::Open(bo);
    ASSERT_TRUE(binlog.ok()) << binlog.status();
    v1::Event ev;
    ev.mutable_gtid()->set_epoch(1);
    ev.mutable_gtid()->set_seq(1);
    v1::Mutation* m = ev.add_mutations();
    m->set_key("k");  // op left unset: once read as PUT
    ASSERT_TRUE((*binlog)->AppendReplicated({&ev, 1}, /*sync=*/true).ok());
  }
  auto node = Node::Open(Options(dir.path()));
  ASSERT_FALSE(node.ok()) << "opened with k = " << (*node)->Get("k")->value_or("<absent>");
  EXPECT_NE(node.status().message().find("OP_UNSPECIFIED"), std::string::npos) << node.status();
  EXPECT_NE(node.status().message().find("1:1"), std::string::npos) << node.status();
}

}  // namespace
}  // namespace relaykv
