// The relaykv CLI's mysql-client flags (README "The client"): -h HOST
// -P PORT (and -H HOST:PORT as before), --defaults-file and the [client]
// section of ~/.my.cnf, --help and -?, and batch errors naming the line the
// failing statement starts on. Against a real relaykvd.
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

namespace fs = std::filesystem;

class CliMysqlFlagsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = Relaykvd::Start(dir_.path() / "n");
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->Put("k", "v").ok());
    port_ = std::to_string(server_->port());
    // No ~/.my.cnf of the machine's user leaks into these runs.
    home_ = dir_.path() / "home";
    fs::create_directories(home_);
  }
  CliRun Cli(const std::vector<std::string>& args, const std::string& stdin_text = "") {
    return RunBinary("relaykv", args, stdin_text, std::chrono::seconds(60),
                     {"HOME=" + home_.string()});
  }
  TempDir dir_;
  fs::path home_;
  std::string port_;
  std::unique_ptr<Relaykvd> server_;
};

TEST_F(CliMysqlFlagsTest, HostAndPortAsMysqlSpellsThem) {
  CliRun r = Cli({"-h", "127.0.0.1", "-P", port_, "-N", "-e", "GET 'k'"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "v\n");
  r = Cli({"--host=127.0.0.1", "--port=" + port_, "get", "k"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "v\n");
  r = Cli({"-H", server_->address(), "get", "k"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "v\n") << "-H HOST:PORT keeps working";
  r = Cli({"-H", server_->address(), "-P", port_, "get", "k"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("not both"), std::string::npos) << r.err;
}

TEST_F(CliMysqlFlagsTest, ClientSectionOfMyCnfAndDefaultsFile) {
  // ~/.my.cnf as a MySQL user has it: user and password are for mysql.
  std::ofstream(home_ / ".my.cnf") << "[mysql]\nport = 1\n"
                                      "[client]\nuser = root\npassword = 'x#y'\nhost = 127.0.0.1\n"
                                      "port = " << port_ << "  # relaykvd\n";
  CliRun r = Cli({"-N", "-e", "GET 'k'"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "v\n");

  // --defaults-file replaces ~/.my.cnf; the command line beats both.
  const fs::path other = dir_.path() / "other.cnf";
  std::ofstream(other) << "[client]\nport = 1\n";
  r = Cli({"--defaults-file=" + other.string(), "get", "k"});
  EXPECT_EQ(r.status, 1) << "port 1 has no relaykvd";
  EXPECT_NE(r.err.find("127.0.0.1:1"), std::string::npos) << r.err;
  r = Cli({"--defaults-file", other.string(), "-P", port_, "get", "k"});
  EXPECT_EQ(r.status, 0) << r.err;

  std::ofstream(other) << "[client]\n\nport = seven\n";
  r = Cli({"--defaults-file", other.string(), "get", "k"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(other.string() + ":3: port"), std::string::npos) << r.err;
}

TEST_F(CliMysqlFlagsTest, HelpAndQuestionMarkPrintUsage) {
  for (const std::string flag : {"--help", "-?"}) {
    const CliRun r = Cli({flag});
    EXPECT_EQ(r.status, 0) << flag << ": " << r.err;
    EXPECT_NE(r.out.find("-P,--port"), std::string::npos) << flag << ": " << r.out;
    EXPECT_NE(r.out.find("--defaults-file"), std::string::npos) << r.out;
  }
}

TEST_F(CliMysqlFlagsTest, BatchErrorNamesTheLineTheStatementStartsOn) {
  const std::string port_flag = port_;
  CliRun r = Cli({"-P", port_flag},
                 "-- a comment\n"
                 "GET 'k'; GET\n"
                 "  'k';\n"
                 "\n"
                 "SHOW\n"
                 "  FROBS;\n"
                 "GET 'k';\n");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "Value\nv\nValue\nv\n");
  EXPECT_EQ(r.err.rfind("ERROR 1064 (42000) at line 5: ", 0), 0u) << r.err;

  r = Cli({"-P", port_flag}, "GET 'k'; FROB;\n");
  EXPECT_EQ(r.err.rfind("ERROR 1064 (42000) at line 1: ", 0), 0u) << r.err;
  r = Cli({"-P", port_flag, "-e", "GET 'k';\nFROB"});
  EXPECT_EQ(r.err.rfind("ERROR 1064 (42000) at line 2: ", 0), 0u) << r.err;
}

}  // namespace
}  // namespace relaykv::testing
