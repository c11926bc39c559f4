// server/logging.cc: level names, and a --log-file that SIGHUP's reopen
// moves to a new file at the same path.
#include "server/logging.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "gtest/gtest.h"
#include "spdlog/spdlog.h"
#include "tests/common/temp_dir.h"

namespace relaykv {
namespace {

std::string Slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

TEST(LoggingTest, LevelNamesFromTraceToCritical) {
  EXPECT_EQ(*ParseLogLevel("trace"), spdlog::level::trace);
  EXPECT_EQ(*ParseLogLevel("DEBUG"), spdlog::level::debug);
  EXPECT_EQ(*ParseLogLevel("Info"), spdlog::level::info);
  EXPECT_EQ(*ParseLogLevel("warning"), spdlog::level::warn);
  EXPECT_EQ(*ParseLogLevel("warn"), spdlog::level::warn);
  EXPECT_EQ(*ParseLogLevel("error"), spdlog::level::err);
  EXPECT_EQ(*ParseLogLevel("critical"), spdlog::level::critical);
  auto bad = ParseLogLevel("loud");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'loud'"), std::string::npos);
}

TEST(LoggingTest, ReopenAfterRenameWritesToANewPrivateFile) {
  testing::TempDir dir;
  const auto file = dir.path() / "relaykvd.log";
  ASSERT_TRUE(InstallLogging({file, "info"}).ok());
  spdlog::info("before rotation");
  std::filesystem::rename(file, dir.path() / "relaykvd.log.1");
  ASSERT_TRUE(ReopenLogFile().ok());
  spdlog::info("after rotation");
  spdlog::debug("below the level");
  ASSERT_TRUE(SetLogLevel("debug").ok());
  spdlog::debug("at the level now");
  EXPECT_NE(Slurp(dir.path() / "relaykvd.log.1").find("before rotation"), std::string::npos);
  const std::string fresh = Slurp(file);
  EXPECT_NE(fresh.find("Z info ["), std::string::npos) << fresh;
  EXPECT_NE(fresh.find("after rotation"), std::string::npos) << fresh;
  EXPECT_EQ(fresh.find("below the level"), std::string::npos) << fresh;
  EXPECT_NE(fresh.find("at the level now"), std::string::npos) << fresh;
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_TRUE(InstallLogging({}).ok());  // back to stderr for the other tests
}

TEST(LoggingTest, UnwritableLogFileIsAnErrorNamingIt) {
  auto s = InstallLogging({"/nonexistent-dir/relaykvd.log", "info"});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/nonexistent-dir/relaykvd.log"), std::string::npos) << s;
}

}  // namespace
}  // namespace relaykv
