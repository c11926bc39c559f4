// One real relaykvd over gRPC on 127.0.0.1, and the relaykv CLI against it.
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

Mutation M(const std::string& key, const std::string& value, bool del = false) {
  return del ? Mutation::Delete(key) : Mutation::Put(key, value);
}

TEST(ServerE2eTest, PutGetDeleteAndBatchWithDenseGtids) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "n");
  ASSERT_NE(s, nullptr);
  auto g1 = s->Put("a", "1");
  auto g2 = s->Put("b", "2");
  ASSERT_TRUE(g1.ok() && g2.ok()) << g1.status() << g2.status();
  EXPECT_EQ(g2->seq, g1->seq + 1);
  auto g3 = s->Write({M("c", "3"), M("a", "", true)});
  ASSERT_TRUE(g3.ok()) << g3.status();
  EXPECT_EQ(g3->seq, g2->seq + 1) << "a batch is one GTID";
  EXPECT_EQ(*s->Get("a"), std::nullopt);
  EXPECT_EQ(*s->Get("c"), std::optional<std::string>("3"));
  auto g4 = s->Delete("b");
  ASSERT_TRUE(g4.ok());
  EXPECT_EQ(*s->Get("b"), std::nullopt);
}

TEST(ServerE2eTest, BadInputIsRefusedByNameAndChangesNothing) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "n");
  ASSERT_NE(s, nullptr);
  auto first = s->Put("k", "v");
  ASSERT_TRUE(first.ok());
  struct Case {
    std::string what;
    absl::Status status;
    std::string must_mention;
  };
  std::vector<Mutation> too_many(10001, M("x", "y"));
  std::vector<Mutation> too_big;
  for (int i = 0; i < 3; ++i) too_big.push_back(M("big" + std::to_string(i), std::string(12 << 20, 'b')));
  std::vector<Case> cases = {
      {"oversized key", s->Put(std::string(65537, 'k'), "v").status(), "65536"},
      {"empty key", s->Put("", "v").status(), "empty"},
      {"oversized value", s->Put("k2", std::string((16 << 20) + 1, 'v')).status(), "16777216"},
      {"too many mutations", s->Write(too_many).status(), "10000"},
      {"oversized batch", s->Write(too_big).status(), "33554432"},
      {"empty batch", s->Write({}).status(), "no mutations"},
      {"bad key in a batch", s->Write({M("ok", "1"), M("", "2")}).status(), "mutation 1"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(c.status.code(), absl::StatusCode::kInvalidArgument) << c.what << ": " << c.status;
    EXPECT_NE(c.status.message().find(c.must_mention), std::string::npos) << c.what << ": " << c.status;
  }
  EXPECT_EQ(*s->Get("ok"), std::nullopt);
  EXPECT_EQ(*s->Get("k2"), std::nullopt);
  // Nothing reached the binlog: the next write gets the next seq.
  auto next = s->Put("after", "v");
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->seq, first->seq + 1);
}

TEST(ServerE2eTest, SigtermStopsCleanlyAndRestartServesTheData) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "n");
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(s->Put("k" + std::to_string(i), std::to_string(i)).ok());
  EXPECT_EQ(s->Terminate(), 0);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "n" / "relaykvd.addr"));
  s = Relaykvd::Start(dir.path() / "n");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(*s->Get("k99"), std::optional<std::string>("99"));
  EXPECT_EQ(s->BinlogGtid().seq, 100u);
}

TEST(ServerE2eTest, SecondServerOnTheSameDataDirIsRefused) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "n");
  ASSERT_NE(s, nullptr);
  const StartupRefusal second = StartExpectingRefusal(dir.path() / "n");
  EXPECT_TRUE(second.exited);
  EXPECT_NE(second.exit_status, 0);
  EXPECT_NE(second.log.find("in use by another relaykv node"), std::string::npos) << second.log;
  EXPECT_TRUE(s->Put("still", "fine").ok());
}

TEST(ServerE2eTest, CliPutGetDelAndErrors) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "n");
  ASSERT_NE(s, nullptr);
  CliRun put = RunCliOn(*s, {"put", "name", "alice"});
  EXPECT_EQ(put.status, 0);
  EXPECT_EQ(put.out, "1:1\n");
  CliRun get = RunCliOn(*s, {"get", "name"});
  EXPECT_EQ(get.status, 0);
  EXPECT_EQ(get.out, "alice\n");
  EXPECT_EQ(RunCliOn(*s, {"del", "name"}).status, 0);
  CliRun missing = RunCliOn(*s, {"get", "name"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_EQ(missing.out, "");
  CliRun bad = RunCliOn(*s, {"-e", "PUT '' 'v'"});
  EXPECT_EQ(bad.status, 1);
  EXPECT_EQ(bad.err.rfind("ERROR ", 0), 0u) << bad.err;
  CliRun syntax = RunCliOn(*s, {"-e", "FROBNICATE"});
  EXPECT_EQ(syntax.status, 1);
  EXPECT_NE(syntax.err.find("ERROR 1064"), std::string::npos) << syntax.err;
  CliRun batch = RunCliOn(*s, {"-N", "-e", "put 'x' '1'; get 'x'; show status like 'Binlog_gtid'"});
  EXPECT_EQ(batch.status, 0);
  EXPECT_EQ(batch.out, "1\nBinlog_gtid\t1:3\n") << batch.out;
  CliRun down = RunCli({"-H", "127.0.0.1:1", "get", "x"});
  EXPECT_EQ(down.status, 1);
  EXPECT_NE(down.err.find("ERROR 2003"), std::string::npos) << down.err;
}

// The DBA's failover, typed at the client: a replica refuses writes, RESET
// SLAVE needs ALL, a running IO thread must be stopped first, then STOP
// SLAVE; RESET SLAVE ALL makes it a primary whose writes start epoch 2.
TEST(ServerE2eTest, CliFailoverWithResetSlaveAll) {
  TempDir dir;
  auto p = Relaykvd::Start(dir.path() / "p");
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(p->Put("k", "v").ok());
  auto r = StartReplica(dir.path() / "r", *p);
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(WaitFor([&] { return r->BinlogGtid().seq == 1; }));
  CliRun refused = RunCliOn(*r, {"put", "k2", "v2"});
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.err.find("read-only replica"), std::string::npos) << refused.err;
  CliRun no_all = RunCliOn(*r, {"-e", "RESET SLAVE"});
  EXPECT_EQ(no_all.status, 1);
  EXPECT_NE(no_all.err.find("RESET SLAVE ALL makes this replica a primary"), std::string::npos) << no_all.err;
  CliRun running = RunCliOn(*r, {"-e", "RESET SLAVE ALL"});
  EXPECT_EQ(running.status, 1);
  EXPECT_NE(running.err.find("run STOP SLAVE first"), std::string::npos) << running.err;

  CliRun failover = RunCliOn(*r, {"-e", "STOP SLAVE; RESET SLAVE ALL"});
  EXPECT_EQ(failover.status, 0) << failover.err;
  CliRun status = RunCliOn(*r, {"-e", "SHOW SLAVE STATUS"});
  EXPECT_EQ(status.status, 0);
  EXPECT_EQ(status.out, "") << "no longer a replica";
  // Killed before any write: the promotion (role and epoch) was durable.
  r->Kill();
  r = Relaykvd::Start(dir.path() / "r", {"--server-id=2"});
  ASSERT_NE(r, nullptr);
  CliRun put = RunCliOn(*r, {"put", "k2", "v2"});
  EXPECT_EQ(put.status, 0);
  EXPECT_EQ(put.out, "2:3\n") << "the marker event took 2:2";
  CliRun get = RunCliOn(*r, {"get", "k"});
  EXPECT_EQ(get.out, "v\n");
  CliRun again = RunCliOn(*r, {"-e", "RESET SLAVE ALL"});
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.err.find("not a replica"), std::string::npos) << again.err;
}

}  // namespace
}  // namespace relaykv::testing
