// relaykvd's log (README "Logs"): UTC timestamps with microseconds and Z,
// the level, the thread's name; --log-level and SET GLOBAL log_level;
// --log-file reopened on SIGHUP as logrotate needs; state changes logged
// with their GTID. Real relaykvd processes.
#include <sys/stat.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Waits (up to 30 s) for `path` to contain `text`; its content either way.
std::string WaitForLine(const fs::path& path, const std::string& text) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::string log = Slurp(path);
  while (log.find(text) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    log = Slurp(path);
  }
  return log;
}

TEST(LoggingProcessTest, EveryLineHasAUtcTimestampLevelAndThreadName) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p");
  ASSERT_NE(primary, nullptr);
  auto replica = StartReplica(dir.path() / "r", *primary);
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(primary->Put("k", "v").ok());
  const std::string log =
      WaitForLine(dir.path() / "r.log", "replica IO thread: connected");
  const std::regex line(
      R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (trace|debug|info|warning|error|critical) \[[^\]]+\] .*)");
  std::istringstream in(log);
  std::string l;
  int lines = 0;
  while (std::getline(in, l)) {
    // RocksDB's messages may span lines; only relaykvd's own lines start a record.
    if (l.empty() || !std::isdigit(static_cast<unsigned char>(l[0]))) continue;
    EXPECT_TRUE(std::regex_match(l, line)) << l;
    ++lines;
  }
  EXPECT_GT(lines, 0);
  EXPECT_NE(log.find("[rkv-io] replica IO thread: connected"), std::string::npos)
      << "the IO thread's name\n" << log;
  EXPECT_NE(log.find("[relaykvd] relaykv node 2 open"), std::string::npos) << log;
}

TEST(LoggingProcessTest, LogFileIsReopenedOnSighupForLogrotate) {
  TempDir dir;
  const fs::path file = dir.path() / "relaykvd.log";
  auto s = Relaykvd::Start(dir.path() / "n", {"--log-file", file.string()});
  ASSERT_NE(s, nullptr);
  EXPECT_NE(Slurp(file).find("relaykv node 1 open as primary"), std::string::npos) << Slurp(file);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // logrotate: rename, then SIGHUP; the new lines go to a new file.
  const fs::path rotated = dir.path() / "relaykvd.log.1";
  fs::rename(file, rotated);
  s->Signal(SIGHUP);
  const std::string fresh = WaitForLine(file, "SIGHUP: log file reopened");
  EXPECT_NE(fresh.find("SIGHUP: log file reopened"), std::string::npos) << fresh;
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(s->Terminate(), 0);
  EXPECT_NE(Slurp(file).find("relaykvd stopped cleanly"), std::string::npos) << Slurp(file);
  EXPECT_EQ(Slurp(rotated).find("stopped cleanly"), std::string::npos) << "written before the rename only";
}

TEST(LoggingProcessTest, LogLevelFlagAndSetGlobal) {
  TempDir dir;
  const fs::path file = dir.path() / "relaykvd.log";
  auto s = Relaykvd::Start(dir.path() / "n", {"--log-file", file.string(), "--log-level=warning"});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(Slurp(file).find(" info "), std::string::npos) << Slurp(file);
  auto v = s->client().ShowVariables("log_level");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)["log_level"], "WARNING");

  ASSERT_TRUE(s->client().SetVariable("log_level", "info", /*persist=*/false).ok());
  s->Signal(SIGHUP);
  EXPECT_NE(WaitForLine(file, "SIGHUP: log file reopened").find(" info [relaykvd] SIGHUP"),
            std::string::npos)
      << Slurp(file);
  EXPECT_FALSE(s->client().SetVariable("log_level", "loud", false).ok());
}

TEST(LoggingProcessTest, StopSlaveAndReplicaDisconnectAreLoggedWithTheirGtid) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p");
  ASSERT_NE(primary, nullptr);
  auto replica = StartReplica(dir.path() / "r", *primary);
  ASSERT_NE(replica, nullptr);
  auto g = primary->Put("k", "v");
  ASSERT_TRUE(g.ok()) << g.status();
  // Caught up before STOP SLAVE, so the line names the write's GTID.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!SameChecksum(*primary, *replica) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(replica->client().StopReplica().ok());
  const std::string replica_log = WaitForLine(dir.path() / "r.log", "STOP SLAVE");
  EXPECT_NE(replica_log.find("STOP SLAVE: applied " + g->ToString()), std::string::npos)
      << replica_log;
  const std::string primary_log = WaitForLine(dir.path() / "p.log", "disconnected at sent");
  EXPECT_NE(primary_log.find("replica server_id 2"), std::string::npos) << primary_log;
  EXPECT_NE(primary_log.find("disconnected at sent " + g->ToString()), std::string::npos)
      << primary_log;
}

// Semi-sync switching OFF (timeout) and back ON: one line each, naming
// the binlog GTID (epoch:seq) where it happened.
TEST(LoggingProcessTest, SemiSyncOffAndOnAreLoggedWithTheGtid) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p", {"--rpl_semi_sync_master_enabled=ON",
                                                    "--rpl_semi_sync_master_timeout=200"});
  ASSERT_NE(primary, nullptr);
  auto g = primary->Put("k", "v");  // no replica: the timeout releases it
  ASSERT_TRUE(g.ok()) << g.status();
  const std::string off = WaitForLine(dir.path() / "p.log", "semi-sync switched OFF");
  EXPECT_NE(off.find("switched OFF at binlog GTID " + g->ToString()), std::string::npos) << off;
  ReplicaOptions semi;
  semi.semi_sync = true;
  auto replica = StartReplica(dir.path() / "r", *primary, semi);
  ASSERT_NE(replica, nullptr);
  const std::string on = WaitForLine(dir.path() / "p.log", "semi-sync switched ON");
  EXPECT_NE(on.find("switched ON at binlog GTID " + g->ToString()), std::string::npos) << on;
}

}  // namespace
}  // namespace relaykv::testing
