// relaykvd's `--config FILE` and the order variables are set in (README,
// "Running a server"): defaults, config file ([relaykvd] section), command
// line, then DIR/relaykvd-auto.cnf (SET PERSIST); SET GLOBAL changes the
// running server only. Real relaykvd processes, restarted.
#include <fstream>
#include <map>
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

namespace fs = std::filesystem;

// SHOW VARIABLES; a node that does not answer fails the test.
std::map<std::string, std::string> Variables(Relaykvd& s) {
  auto v = s.client().ShowVariables();
  EXPECT_TRUE(v.ok()) << "SHOW VARIABLES: " << v.status();
  return v.ok() ? *v : std::map<std::string, std::string>();
}

TEST(ConfigProcessTest, ConfigFileThenCommandLineThenSetPersist) {
  TempDir dir;
  const fs::path cnf = dir.path() / "my.cnf";
  {
    std::ofstream f(cnf);
    f << "# a my.cnf-style file\n"
         "[mysqld]\n"
         "read_only = ON\n"
         "[relaykvd]\n"
         "rpl_semi_sync_master_timeout = 2000\n"
         "max_binlog_size = 8192\n"
         "; dashes as in my.cnf\n"
         "sync-binlog = 0\n"
         "rpl_semi_sync_master_wait_for_slave_count = 3\n"
         "[client]\n"
         "max_binlog_size = 4096\n";
  }
  const fs::path data = dir.path() / "n";
  const std::vector<std::string> flags = {"--config", cnf.string(),
                                          "--rpl_semi_sync_master_timeout=3000",
                                          "--rpl_semi_sync_master_wait_for_slave_count=2"};
  auto s = Relaykvd::Start(data, flags);
  ASSERT_NE(s, nullptr);
  {
    auto v = Variables(*s);
    EXPECT_EQ(v["max_binlog_size"], "8192") << "the config file beats the default";
    EXPECT_EQ(v["sync_binlog"], "0") << "the config file beats the default";
    EXPECT_EQ(v["read_only"], "OFF") << "only the [relaykvd] section counts";
    EXPECT_EQ(v["rpl_semi_sync_master_timeout"], "3000") << "the command line beats the config file";
    EXPECT_EQ(v["rpl_semi_sync_master_wait_for_slave_count"], "2")
        << "the command line beats the config file";
    EXPECT_EQ(v["binlog_expire_logs_seconds"], "2592000") << "untouched: the default";

    ASSERT_TRUE(s->client().SetVariable("rpl_semi_sync_master_timeout", "4000", /*persist=*/true).ok());
    ASSERT_TRUE(s->client().SetVariable("sync_binlog", "1", /*persist=*/true).ok());
    ASSERT_TRUE(s->client().SetVariable("max_binlog_size", "16384", /*persist=*/false).ok());
    v = Variables(*s);
    EXPECT_EQ(v["rpl_semi_sync_master_timeout"], "4000");
    EXPECT_EQ(v["max_binlog_size"], "16384") << "SET GLOBAL changes the running server";
  }
  EXPECT_EQ(s->Terminate(), 0);
  EXPECT_TRUE(fs::exists(data / "relaykvd-auto.cnf"));

  // Restarted with the same file and flags: SET PERSIST beats both.
  s = Relaykvd::Start(data, flags);
  ASSERT_NE(s, nullptr);
  {
    auto v = Variables(*s);
    EXPECT_EQ(v["rpl_semi_sync_master_timeout"], "4000") << "SET PERSIST beats the command line";
    EXPECT_EQ(v["sync_binlog"], "1") << "SET PERSIST beats the config file";
    EXPECT_EQ(v["max_binlog_size"], "8192") << "SET GLOBAL does not outlive a restart";
    EXPECT_EQ(v["rpl_semi_sync_master_wait_for_slave_count"], "2");
    // RESET PERSIST: the next start is back to the command line's value.
    ASSERT_TRUE(s->client().ResetPersist("rpl_semi_sync_master_timeout").ok());
    EXPECT_EQ(Variables(*s)["rpl_semi_sync_master_timeout"], "4000")
        << "RESET PERSIST leaves the running value";
  }
  EXPECT_EQ(s->Terminate(), 0);
  s = Relaykvd::Start(data, flags);
  ASSERT_NE(s, nullptr);
  {
    auto v = Variables(*s);
    EXPECT_EQ(v["rpl_semi_sync_master_timeout"], "3000") << "after RESET PERSIST: the command line";
    EXPECT_EQ(v["sync_binlog"], "1") << "still persisted";
  }
  // Without the flags: the config file's value shows through.
  EXPECT_EQ(s->Terminate(), 0);
  s = Relaykvd::Start(data, {"--config", cnf.string()});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(Variables(*s)["rpl_semi_sync_master_timeout"], "2000");
}

// my.cnf allows a '#' comment to start in the middle of a line (MySQL
// manual, "Using Option Files"); a "my.cnf-style" file must too.
TEST(ConfigProcessTest, HashCommentAfterAValueIsIgnoredAsInMyCnf) {
  TempDir dir;
  const fs::path cnf = dir.path() / "my.cnf";
  {
    std::ofstream f(cnf);
    f << "[relaykvd]\n"
         "rpl_semi_sync_master_timeout = 2000   # two seconds\n";
  }
  auto s = Relaykvd::Start(dir.path() / "n", {"--config", cnf.string()});
  ASSERT_NE(s, nullptr) << "relaykvd refused a my.cnf line with a trailing # comment";
  EXPECT_EQ(Variables(*s)["rpl_semi_sync_master_timeout"], "2000");
}

}  // namespace
}  // namespace relaykv::testing
