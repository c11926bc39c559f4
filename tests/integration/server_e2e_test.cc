// One real relaykvd over gRPC on 127.0.0.1, and the relaykv CLI against it.
#include <cstdio>
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

v1::Mutation M(const std::string& key, const std::string& value, bool del = false) {
  v1::Mutation m;
  m.set_op(del ? v1::Mutation::DELETE : v1::Mutation::PUT);
  m.set_key(key);
  if (!del) m.set_value(value);
  return m;
}

TEST(ServerE2eTest, PutGetDeleteAndBatchWithDenseGtids) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "n");
  ASSERT_NE(s, nullptr);
  auto g1 = s->Put("a", "1");
  auto g2 = s->Put("b", "2");
  ASSERT_TRUE(g1.ok() && g2.ok()) << g1.status() << g2.status();
  EXPECT_EQ(g2->seq(), g1->seq() + 1);
  auto g3 = s->Write({M("c", "3"), M("a", "", true)});
  ASSERT_TRUE(g3.ok()) << g3.status();
  EXPECT_EQ(g3->seq(), g2->seq() + 1) << "a batch is one GTID";
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
  std::vector<v1::Mutation> too_many(10001, M("x", "y"));
  std::vector<v1::Mutation> too_big;
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
  EXPECT_EQ(next->seq(), first->seq() + 1);
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
  EXPECT_EQ(s->BinlogGtid().seq(), 100u);
}

TEST(ServerE2eTest, SecondServerOnTheSameDataDirIsRefused) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "n");
  ASSERT_NE(s, nullptr);
  const std::string cmd = BinDir() + "/relaykvd --data-dir " + (dir.path() / "n").string() +
                          " --listen 127.0.0.1:0 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof(buf), p)) out += buf;
  EXPECT_NE(::pclose(p), 0);
  EXPECT_NE(out.find("in use by another relaykv node"), std::string::npos) << out;
  EXPECT_TRUE(s->Put("still", "fine").ok());
}

struct Cli {
  int status;
  std::string out;
};
Cli RunCli(const std::string& args) {
  const std::string cmd = BinDir() + "/relaykv " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), p)) out += buf;
  int rc = ::pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

TEST(ServerE2eTest, CliPutGetDelAndErrors) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "n");
  ASSERT_NE(s, nullptr);
  const std::string h = "-H " + s->address() + " ";
  Cli put = RunCli(h + "put name alice");
  EXPECT_EQ(put.status, 0);
  EXPECT_EQ(put.out, "1:1\n");
  Cli get = RunCli(h + "get name");
  EXPECT_EQ(get.status, 0);
  EXPECT_EQ(get.out, "alice\n");
  EXPECT_EQ(RunCli(h + "del name").status, 0);
  Cli missing = RunCli(h + "get name");
  EXPECT_EQ(missing.status, 1);
  EXPECT_EQ(missing.out, "");
  Cli bad = RunCli(h + "-e \"PUT '' 'v'\"");
  EXPECT_EQ(bad.status, 1);
  EXPECT_EQ(bad.out.rfind("ERROR ", 0), 0u) << bad.out;
  Cli syntax = RunCli(h + "-e \"FROBNICATE\"");
  EXPECT_EQ(syntax.status, 1);
  EXPECT_NE(syntax.out.find("ERROR 1064"), std::string::npos) << syntax.out;
  Cli batch = RunCli(h + "-N -e \"put 'x' '1'; get 'x'; show status like 'Binlog_gtid'\"");
  EXPECT_EQ(batch.status, 0);
  EXPECT_EQ(batch.out, "1\nBinlog_gtid\t1:3\n") << batch.out;
  Cli down = RunCli("-H 127.0.0.1:1 get x");
  EXPECT_EQ(down.status, 1);
  EXPECT_NE(down.out.find("ERROR 2003"), std::string::npos) << down.out;
}

// The DBA's failover, typed at the client: a replica refuses writes, RESET
// SLAVE needs ALL, a running IO thread must be stopped first, then STOP
// SLAVE; RESET SLAVE ALL makes it a primary whose writes start epoch 2.
TEST(ServerE2eTest, CliFailoverWithResetSlaveAll) {
  TempDir dir;
  auto p = Relaykvd::Start(dir.path() / "p");
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(p->Put("k", "v").ok());
  auto r = Relaykvd::Start(dir.path() / "r", {"--server-id=2", "--replicate-from=" + p->address()});
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(WaitFor([&] { return r->BinlogGtid().seq() == 1; }));
  const std::string h = "-H " + r->address() + " ";
  Cli refused = RunCli(h + "put k2 v2");
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.out.find("read-only replica"), std::string::npos) << refused.out;
  Cli no_all = RunCli(h + "-e \"RESET SLAVE\"");
  EXPECT_EQ(no_all.status, 1);
  EXPECT_NE(no_all.out.find("RESET SLAVE ALL makes this replica a primary"), std::string::npos) << no_all.out;
  Cli running = RunCli(h + "-e \"RESET SLAVE ALL\"");
  EXPECT_EQ(running.status, 1);
  EXPECT_NE(running.out.find("run STOP SLAVE first"), std::string::npos) << running.out;

  Cli failover = RunCli(h + "-e \"STOP SLAVE; RESET SLAVE ALL\"");
  EXPECT_EQ(failover.status, 0) << failover.out;
  Cli status = RunCli(h + "-e \"SHOW SLAVE STATUS\"");
  EXPECT_EQ(status.status, 0);
  EXPECT_EQ(status.out, "") << "no longer a replica";
  // Killed before any write: the promotion (role and epoch) was durable.
  r->Kill();
  r = Relaykvd::Start(dir.path() / "r", {"--server-id=2"});
  ASSERT_NE(r, nullptr);
  const std::string h2 = "-H " + r->address() + " ";
  Cli put = RunCli(h2 + "put k2 v2");
  EXPECT_EQ(put.status, 0);
  EXPECT_EQ(put.out, "2:3\n") << "the marker event took 2:2";
  Cli get = RunCli(h2 + "get k");
  EXPECT_EQ(get.out, "v\n");
  Cli again = RunCli(h2 + "-e \"RESET SLAVE ALL\"");
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.out.find("not a replica"), std::string::npos) << again.out;
}

}  // namespace
}  // namespace relaykv::testing
