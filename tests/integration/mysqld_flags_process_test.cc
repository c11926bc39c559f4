// relaykvd's flags as mysqld spells them (README "Running a server"):
// --version, --datadir, --port/--bind-address, --defaults-file, and the
// `loose-` prefix (command line and config file) that makes an unknown
// option a warning instead of an error; config errors name the file and
// line. Real relaykvd processes.
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// A port that was free a moment ago (the OS picked it for a socket now closed).
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

TEST(MysqldFlagsProcessTest, VersionPrintsTheVersionAndExitsZero) {
  const CliRun r = RunBinary("relaykvd", {"--version"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("relaykvd Ver ", 0), 0u) << r.out;
}

TEST(MysqldFlagsProcessTest, DatadirAndPortServeOnLoopbackAtThatPort) {
  TempDir dir;
  const int port = FreePort();
  auto s = Relaykvd::StartWithArgs(dir.path() / "n", {"--datadir=" + (dir.path() / "n").string(),
                                                     "--port", std::to_string(port)});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->address(), "127.0.0.1:" + std::to_string(port));
  EXPECT_TRUE(s->Put("k", "v").ok());
}

TEST(MysqldFlagsProcessTest, DefaultsFileSetsDatadirPortAndVariables) {
  TempDir dir;
  const int port = FreePort();
  const fs::path data = dir.path() / "n";
  const fs::path cnf = dir.path() / "relaykvd.cnf";
  std::ofstream(cnf) << "[relaykvd]\n"
                        "datadir = " << data.string() << "\n"
                        "port = " << port << "\n"
                        "bind-address = 127.0.0.1\n"
                        "sync_binlog = 0\n"
                        "loose-innodb-buffer-pool-size = 1G\n";
  auto s = Relaykvd::StartWithArgs(data, {"--defaults-file=" + cnf.string()});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->port(), port);
  auto v = s->client().ShowVariables("sync_binlog");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)["sync_binlog"], "0");
  EXPECT_EQ(s->Terminate(), 0);
  const std::string log = Slurp(data.string() + ".log");
  EXPECT_NE(log.find(cnf.string() + ":6: ignoring unknown option 'loose-innodb_buffer_pool_size'"),
            std::string::npos)
      << log;
}

TEST(MysqldFlagsProcessTest, UnknownLooseOptionOnTheCommandLineIsAWarning) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "n", {"--loose-skip-name-resolve=ON",
                                              "--loose-sync-binlog=0"});
  ASSERT_NE(s, nullptr);
  auto v = s->client().ShowVariables("sync_binlog");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)["sync_binlog"], "0") << "a known option keeps working under loose-";
  EXPECT_EQ(s->Terminate(), 0);
  const std::string log = Slurp((dir.path() / "n").string() + ".log");
  EXPECT_NE(log.find("ignoring unknown option '--loose-skip-name-resolve=ON'"), std::string::npos)
      << log;
}

// As in mysqld, an option given twice is not an error: the last one wins.
TEST(MysqldFlagsProcessTest, AnOptionGivenTwiceTakesTheLastValue) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "n", {"--sync_binlog=0", "--rpl_semi_sync_master_timeout=5",
                                              "--sync-binlog=7", "--rpl_semi_sync_source_timeout=9"});
  ASSERT_NE(s, nullptr);
  auto v = s->client().ShowVariables("%");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)["sync_binlog"], "7");
  EXPECT_EQ((*v)["rpl_semi_sync_master_timeout"], "9");
}

TEST(MysqldFlagsProcessTest, UnknownOptionWithoutLooseIsRefused) {
  TempDir dir;
  const StartupRefusal r = StartExpectingRefusal(dir.path() / "n", {"--skip-name-resolve"});
  EXPECT_TRUE(r.exited);
  EXPECT_NE(r.exit_status, 0);
}

TEST(MysqldFlagsProcessTest, ConfigErrorsNameTheFileAndLine) {
  TempDir dir;
  const fs::path cnf = dir.path() / "bad.cnf";
  std::ofstream(cnf) << "[mysqld]\n"
                        "whatever = 1\n"
                        "[relaykvd]\n"
                        "sync_binlog = 1\n"
                        "no_such_option = 3\n";
  StartupRefusal r = StartExpectingRefusal(dir.path() / "n", {"--defaults-file", cnf.string()});
  EXPECT_TRUE(r.exited);
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_NE(r.log.find(cnf.string() + ":5: unknown option 'no_such_option'"), std::string::npos)
      << r.log;

  std::ofstream(cnf) << "[relaykvd]\n"
                        "\n"
                        "max_binlog_size = lots\n";
  r = StartExpectingRefusal(dir.path() / "n", {"--config", cnf.string()});
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_NE(r.log.find(cnf.string() + ":3: Variable 'max_binlog_size'"), std::string::npos)
      << r.log;
}

// roles-file belongs in the config file too (the .deb's relaykvd.cnf
// shows it): a file that cannot be read stops the start, naming it.
TEST(MysqldFlagsProcessTest, RolesFileInTheConfigFileIsRead) {
  TempDir dir;
  const fs::path cnf = dir.path() / "relaykvd.cnf";
  const fs::path roles = dir.path() / "no-such-roles";
  std::ofstream(cnf) << "[relaykvd]\nroles-file = " << roles.string() << "\n";
  const StartupRefusal r =
      StartExpectingRefusal(dir.path() / "n", {"--defaults-file", cnf.string()});
  EXPECT_TRUE(r.exited);
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_NE(r.log.find(roles.string()), std::string::npos) << r.log;
}

// mysqld: --no-defaults reads no option file; naming one as well is a
// contradiction, refused rather than resolved silently.
TEST(MysqldFlagsProcessTest, NoDefaultsWithADefaultsFileIsRefused) {
  TempDir dir;
  const fs::path cnf = dir.path() / "relaykvd.cnf";
  std::ofstream(cnf) << "[relaykvd]\n";
  const StartupRefusal r = StartExpectingRefusal(
      dir.path() / "n", {"--no-defaults", "--defaults-file", cnf.string()});
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_NE(r.log.find("--no-defaults and --defaults-file"), std::string::npos) << r.log;
}

TEST(MysqldFlagsProcessTest, ListenWithPortIsRefused) {
  TempDir dir;
  const StartupRefusal r = StartExpectingRefusal(dir.path() / "n", {"--port", "1"});
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_NE(r.log.find("not both"), std::string::npos) << r.log;
}

}  // namespace
}  // namespace relaykv::testing
