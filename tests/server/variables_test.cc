#include "server/variables.h"

#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/common/temp_dir.h"

namespace relaykv {
namespace {

TEST(VariablesTest, BooleansNormalize) {
  const VariableDef* d = FindVariable("READ_ONLY");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(*NormalizeValue(*d, "1"), "ON");
  EXPECT_EQ(*NormalizeValue(*d, "on"), "ON");
  EXPECT_EQ(*NormalizeValue(*d, "false"), "OFF");
  EXPECT_FALSE(NormalizeValue(*d, "2").ok());
}

TEST(VariablesTest, IntegersAreRangeChecked) {
  const VariableDef* d = FindVariable("sync_relay_log");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(*NormalizeValue(*d, "0"), "0");
  auto bad = NormalizeValue(*d, "2");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("sync_relay_log"), std::string::npos);
  EXPECT_FALSE(NormalizeValue(*d, "abc").ok());
  EXPECT_FALSE(NormalizeValue(*d, "99999999999999999999999").ok());
}

// Found by tests/fuzz/config_fuzzer (its corpus: regress_uint64_overflow.cnf):
// twenty digits above 2^64 - 1 made std::stoull throw, which ended relaykvd
// at startup (a config file) or while running (SET GLOBAL).
TEST(VariablesTest, IntegerAboveUint64IsOutOfRangeNotACrash) {
  const std::string cnf = "[relaykvd]\nmax_binlog_size = 99999999999999999999\n";
  auto entries = ParseIniEntries(cnf, "fuzz.cnf", "relaykvd");
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 1u);
  Variables vars;
  const absl::Status s = vars.Apply({{(*entries)[0].name, (*entries)[0].value}});
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(s.message().find("out of range"), std::string::npos) << s;
  auto set = vars.SetGlobal("sync_binlog", "18446744073709551616");  // 2^64
  EXPECT_TRUE(absl::IsInvalidArgument(set.status())) << set.status();
}

TEST(VariablesTest, LikeMatchesMySqlWildcards) {
  EXPECT_TRUE(SqlLike("rpl_semi_sync%", "rpl_semi_sync_master_enabled"));
  EXPECT_TRUE(SqlLike("RPL%", "rpl_x"));
  EXPECT_TRUE(SqlLike("sync_b_nlog", "sync_binlog"));
  EXPECT_FALSE(SqlLike("sync", "sync_binlog"));
  EXPECT_TRUE(SqlLike("%log", "sync_binlog"));
  EXPECT_TRUE(SqlLike("sync\\_binlog", "sync_binlog"));
  EXPECT_FALSE(SqlLike("sync\\_binlog", "syncXbinlog"));
}

// Review s49b M1: a hook that configures from several variables reads
// them at one moment, with the count of changes stored by then, so that it
// can tell an older read from a newer one.
TEST(VariablesTest, GetAllReadsAtOneMomentWithTheChangeCount) {
  Variables v;
  uint64_t before = 0, after = 0;
  auto old_values = v.GetAll({"rpl_semi_sync_master_timeout", "sync_binlog"}, &before);
  ASSERT_TRUE(v.SetGlobal("rpl_semi_sync_master_timeout", "5000").ok());
  ASSERT_TRUE(v.SetGlobal("sync_binlog", "0").ok());
  auto values = v.GetAll({"rpl_semi_sync_master_timeout", "sync_binlog"}, &after);
  EXPECT_EQ(after, before + 2);
  EXPECT_EQ(values, (std::vector<std::string>{"5000", "0"}));
  EXPECT_NE(old_values, values);
  EXPECT_FALSE(v.SetGlobal("sync_binlog", "-1").ok());
  v.GetAll({"sync_binlog"}, &before);
  EXPECT_EQ(before, after) << "a refused SET stored nothing";
}

// SET PERSIST records the value in force when it writes the file (review
// s49c L2: two concurrent SET PERSISTs could leave the file with the older).
TEST(VariablesTest, PersistWritesTheValueInForce) {
  testing::TempDir dir;
  PersistedSettings file(dir.path() / "relaykvd-auto.cnf");
  Variables v;
  ASSERT_TRUE(v.SetGlobal("sync_binlog", "0").ok());
  ASSERT_TRUE(v.SetGlobal("sync_binlog", "7").ok());
  ASSERT_TRUE(file.Persist("sync_binlog", v).ok());
  auto settings = file.Load();
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(*settings, (Settings{{"sync_binlog", "7"}}));
}

TEST(VariablesTest, ApplyIsAllOrNothing) {
  Variables v;
  auto s = v.Apply({{"sync_binlog", "5"}, {"nope", "1"}});
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(v.Get("sync_binlog"), "1");
}

TEST(VariablesTest, IniSectionIsRead) {
  testing::TempDir dir;
  auto path = dir.path() / "my.cnf";
  std::ofstream(path) << "# comment\n[mysqld]\nsync_binlog=9\n[relaykvd]\nsync-binlog = 3\n"
                         "loose-read_only\n; other\nmax_binlog_size='8192'\n";
  auto s = ReadIniSection(path, "relaykvd");
  ASSERT_TRUE(s.ok()) << s.status();
  Settings want = {{"sync_binlog", "3"}, {"read_only", "ON"}, {"max_binlog_size", "8192"}};
  EXPECT_EQ(*s, want);
}

TEST(VariablesTest, IniEntriesKeepTheirLineAndLooseMark) {
  testing::TempDir dir;
  auto path = dir.path() / "my.cnf";
  std::ofstream(path) << "[relaykvd]\n\nsync-binlog = 3\nloose-no-such = 1\n";
  auto e = ReadIniEntries(path, "relaykvd");
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->size(), 2u);
  EXPECT_EQ((*e)[0].name, "sync_binlog");
  EXPECT_EQ((*e)[0].line, 3);
  EXPECT_FALSE((*e)[0].loose);
  EXPECT_EQ((*e)[1].name, "no_such");
  EXPECT_EQ((*e)[1].line, 4);
  EXPECT_TRUE((*e)[1].loose);
}

TEST(VariablesTest, IniLineWithoutANameIsAnErrorNamingFileAndLine) {
  testing::TempDir dir;
  auto path = dir.path() / "my.cnf";
  std::ofstream(path) << "[relaykvd]\nsync_binlog = 1\n = 3\n";
  auto e = ReadIniEntries(path, "relaykvd");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find(path.string() + ":3: "), std::string::npos) << e.status();
}

TEST(VariablesTest, LogLevelIsAnEnumOfSpdlogLevels) {
  Variables v;
  EXPECT_EQ(v.Get("log_level"), "INFO");
  ASSERT_TRUE(v.Apply({{"log_level", "debug"}}).ok());
  EXPECT_EQ(v.Get("log_level"), "DEBUG");
  EXPECT_FALSE(v.Apply({{"log_level", "loud"}}).ok());
}

}  // namespace
}  // namespace relaykv
