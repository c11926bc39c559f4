// One embedded Node: the write path, limits, the data-dir lock, variables.
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <vector>
#include <string>

#include "gtest/gtest.h"
#include "relaykv/node.h"
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

}  // namespace
}  // namespace relaykv
