#include "client/statement.h"

#include <cctype>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace relaykv {
namespace {

using namespace std::string_literals;
using stmt::ReplicaThreads;
using Action = ReplicaThreads::Action;
using Threads = ReplicaThreads::Threads;

void ExpectParses(const std::string& text, const Statement& want) {
  auto got = ParseStatement(text);
  ASSERT_TRUE(got.ok()) << "[" << text << "]: " << got.status();
  EXPECT_EQ(*got, want) << "[" << text << "] parsed as " << FormatStatement(*got) << ", want "
                        << FormatStatement(want);
}

// The message of the error `text` must produce; fails the test if it parses.
std::string ErrorOf(const std::string& text) {
  auto got = ParseStatement(text);
  EXPECT_FALSE(got.ok()) << "[" << text << "] parsed as " << FormatStatement(*got);
  if (got.ok()) return "";
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << text;
  return std::string(got.status().message());
}

// Changes the case of everything outside quotes: keywords and names must
// not care, quoted text must keep its case.
std::string MapOutsideQuotes(const std::string& text, int (*f)(int), bool alternate) {
  std::string out;
  char quote = 0;
  int n = 0;
  for (char c : text) {
    if (quote != 0) {
      if (c == quote) quote = 0;
      out += c;
    } else if (c == '\'' || c == '"' || c == '`') {
      quote = c;
      out += c;
    } else {
      const bool upper = alternate ? (n++ % 2 == 0) : f == ::toupper;
      out += static_cast<char>(upper ? std::toupper(static_cast<unsigned char>(c))
                                     : std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

// Every case spelling of `text`, each with every terminator style.
void ExpectParsesInAllForms(const std::string& text, const Statement& want) {
  const std::vector<std::string> cases = {text, MapOutsideQuotes(text, ::toupper, false),
                                          MapOutsideQuotes(text, ::tolower, false),
                                          MapOutsideQuotes(text, nullptr, true)};
  for (const std::string& c : cases) {
    for (const char* end : {"", ";", " ;", ";  \n", "\n;", "\\g", "\\G"}) {
      ExpectParses(c + end, want);
    }
  }
}

struct GrammarCase {
  std::string text;
  Statement want;
};

std::vector<GrammarCase> GrammarCases() {
  return {
      {"SET GLOBAL rpl_semi_sync_master_enabled = '1'", stmt::SetVariable{"rpl_semi_sync_master_enabled", "1", false}},
      {"SET GLOBAL Rpl_Semi_Sync_Source_Timeout=\"5000\"", stmt::SetVariable{"rpl_semi_sync_source_timeout", "5000", false}},
      {"SET PERSIST sync_binlog = '0'", stmt::SetVariable{"sync_binlog", "0", true}},
      {"SET @@global.read_only = 'ON'", stmt::SetVariable{"read_only", "ON", false}},
      {"SET @@persist.server_id='7'", stmt::SetVariable{"server_id", "7", true}},
      {"RESET PERSIST", stmt::ResetPersist{}},
      {"RESET PERSIST sync_relay_log", stmt::ResetPersist{"sync_relay_log"}},
      {"RESET SLAVE ALL", stmt::ResetReplica{}},
      {"RESET REPLICA ALL", stmt::ResetReplica{}},
      {"SWITCHOVER TO '127.0.0.1:7401'", stmt::Switchover{"127.0.0.1:7401"}},
      {"switchover to \"h:1\"", stmt::Switchover{"h:1"}},
      {"FAILOVER FORCE", stmt::ForceFailover{}},
      {"failover force", stmt::ForceFailover{}},
      {"SHOW VARIABLES", stmt::ShowVariables{""}},
      {"SHOW GLOBAL VARIABLES", stmt::ShowVariables{""}},
      {"SHOW VARIABLES LIKE 'Rpl_semi%'", stmt::ShowVariables{"Rpl_semi%"}},
      {"SHOW GLOBAL VARIABLES LIKE \"sync\\_%\"", stmt::ShowVariables{"sync\\_%"}},
      {"SHOW STATUS", stmt::ShowStatus{""}},
      {"SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_%'", stmt::ShowStatus{"Rpl_semi_sync_master_%"}},
      {"SHOW SLAVE STATUS", stmt::ShowReplicaStatus{}},
      {"SHOW REPLICA STATUS", stmt::ShowReplicaStatus{}},
      {"SHOW REPLICAS", stmt::ShowReplicas{}},
      {"SHOW SLAVE HOSTS", stmt::ShowReplicas{}},
      {"STOP SLAVE", ReplicaThreads{Action::kStop, Threads::kBoth}},
      {"STOP SLAVE IO_THREAD", ReplicaThreads{Action::kStop, Threads::kIo}},
      {"STOP SLAVE SQL_THREAD", ReplicaThreads{Action::kStop, Threads::kSql}},
      {"STOP REPLICA", ReplicaThreads{Action::kStop, Threads::kBoth}},
      {"STOP REPLICA IO_THREAD", ReplicaThreads{Action::kStop, Threads::kIo}},
      {"STOP REPLICA SQL_THREAD", ReplicaThreads{Action::kStop, Threads::kSql}},
      {"START SLAVE", ReplicaThreads{Action::kStart, Threads::kBoth}},
      {"START SLAVE IO_THREAD", ReplicaThreads{Action::kStart, Threads::kIo}},
      {"START SLAVE SQL_THREAD", ReplicaThreads{Action::kStart, Threads::kSql}},
      {"START REPLICA", ReplicaThreads{Action::kStart, Threads::kBoth}},
      {"START REPLICA IO_THREAD", ReplicaThreads{Action::kStart, Threads::kIo}},
      {"START REPLICA SQL_THREAD", ReplicaThreads{Action::kStart, Threads::kSql}},
      {"START SLAVE IO_THREAD, SQL_THREAD", ReplicaThreads{Action::kStart, Threads::kBoth}},
      {"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=7400", stmt::ChangeMaster{"127.0.0.1", 7400}},
      {"CHANGE MASTER TO MASTER_PORT = 7401 , MASTER_HOST = 'Db1.Example'", stmt::ChangeMaster{"Db1.Example", 7401}},
      {"CHANGE REPLICATION SOURCE TO SOURCE_HOST='::1', SOURCE_PORT=1", stmt::ChangeMaster{"::1", 1}},
      {"CHANGE REPLICATION SOURCE TO SOURCE_PORT=65535, SOURCE_HOST=\"h\"", stmt::ChangeMaster{"h", 65535}},
      {"INSTALL PLUGIN rpl_semi_sync_master SONAME 'semisync_master.so'", stmt::InstallPlugin{"rpl_semi_sync_master", "semisync_master.so"}},
      {"INSTALL PLUGIN rpl_semi_sync_slave SONAME 'semisync_slave.so'", stmt::InstallPlugin{"rpl_semi_sync_slave", "semisync_slave.so"}},
      {"PUT 'Key' 'Value'", stmt::Put{"Key", "Value"}},
      {"PUT \"k\" \"v w\"", stmt::Put{"k", "v w"}},
      {"GET 'Key'", stmt::Get{"Key"}},
      {"GET 'Key' WITH VERSION", stmt::Get{"Key", true}},
      {"GET 'Key' WITH CONSISTENCY PRIMARY_FRESH", stmt::Get{"Key", false, true}},
      {"GET 'Key' WITH CONSISTENCY LOCAL WITH VERSION", stmt::Get{"Key", true, false}},
      {"GET 'Key' WITH VERSION WITH CONSISTENCY PRIMARY_FRESH", stmt::Get{"Key", true, true}},
      {"DELETE 'Key'", stmt::Delete{"Key"}},
      {"PUT 'k' 'v' IF ABSENT", stmt::Put{"k", "v", stmt::Condition{}}},
      {"PUT 'k' 'v' IF VERSION = '2:17'",
       stmt::Put{"k", "v", stmt::Condition{stmt::Condition::Kind::kVersion, 2, 17, ""}}},
      {"PUT 'k' 'v' IF VALUE 'Old'",
       stmt::Put{"k", "v", stmt::Condition{stmt::Condition::Kind::kValue, 0, 0, "Old"}}},
      {"DELETE 'k' IF VERSION '1:5'",
       stmt::Delete{"k", stmt::Condition{stmt::Condition::Kind::kVersion, 1, 5, ""}}},
      {"CHECKSUM", stmt::Checksum{}},
      {"SHOW BINARY LOGS", stmt::ShowBinaryLogs{}},
      {"SHOW MASTER LOGS", stmt::ShowBinaryLogs{}},
      {"SHOW MASTER STATUS", stmt::ShowMasterStatus{}},
      {"SHOW BINARY LOG STATUS", stmt::ShowMasterStatus{}},
      {"PURGE BINARY LOGS TO 'binlog.000042'", stmt::PurgeBinaryLogs{"binlog.000042"}},
      {"PURGE MASTER LOGS TO 'binlog.000042'", stmt::PurgeBinaryLogs{"binlog.000042"}},
  };
}

TEST(StatementTest, EveryGrammarStatementParsesInEveryCaseAndTerminatorStyle) {
  for (const auto& c : GrammarCases()) {
    SCOPED_TRACE(c.text);
    ExpectParsesInAllForms(c.text, c.want);
  }
}

TEST(StatementTest, FormatStatementReadsBackToTheSameStatement) {
  std::vector<Statement> all;
  for (const auto& c : GrammarCases()) all.push_back(c.want);
  all.push_back(stmt::Put{"nul\0and'quote\"\\back\n\t\r\x1a"s, "rpl\\_x\\%y\\\\"});
  all.push_back(stmt::SetVariable{"odd name`", "", true});
  all.push_back(stmt::ResetPersist{"--"});
  for (const Statement& s : all) {
    const std::string text = FormatStatement(s);
    ExpectParses(text, s);
  }
}

TEST(StatementTest, ConditionalWritesNameWhatIsWrong) {
  EXPECT_NE(ErrorOf("PUT 'k' 'v' IF").find("expected VERSION, VALUE or ABSENT after IF"),
            std::string::npos);
  EXPECT_NE(ErrorOf("PUT 'k' 'v' IF VERSION = '12'").find("is not EPOCH:SEQ"), std::string::npos);
  EXPECT_NE(ErrorOf("DELETE 'k' IF VERSION = '1:2x'").find("is not EPOCH:SEQ"), std::string::npos);
  // Review s44e L5: a sign or a number past 2^64-1 is no version.
  EXPECT_NE(ErrorOf("PUT 'k' 'v' IF VERSION = '-1:5'").find("is not EPOCH:SEQ"), std::string::npos);
  EXPECT_NE(ErrorOf("PUT 'k' 'v' IF VERSION = '99999999999999999999:1'").find("is not EPOCH:SEQ"),
            std::string::npos);
  EXPECT_NE(ErrorOf("PUT 'k' 'v' IF VERSION = ' 1:5'").find("is not EPOCH:SEQ"), std::string::npos);
  EXPECT_NE(ErrorOf("GET 'k' WITH").find("expected VERSION or CONSISTENCY after WITH"),
            std::string::npos);
  EXPECT_NE(ErrorOf("GET 'k' WITH CONSISTENCY").find("expected LOCAL or PRIMARY_FRESH"),
            std::string::npos);
  EXPECT_NE(ErrorOf("GET 'k' WITH CONSISTENCY STRONG").find("expected LOCAL or PRIMARY_FRESH"),
            std::string::npos);
  EXPECT_NE(ErrorOf("GET 'k' WITH VERSION WITH VERSION").find("WITH VERSION is given twice"),
            std::string::npos);
  EXPECT_NE(ErrorOf("GET 'k' WITH CONSISTENCY LOCAL WITH CONSISTENCY LOCAL")
                .find("WITH CONSISTENCY is given twice"),
            std::string::npos);
}

// The seed tutorial's statements, byte for byte (its `//` notes removed).
TEST(StatementTest, SeedInstallPlugins) {
  ExpectParses("install plugin rpl_semi_sync_master soname 'semisync_master.so';",
               stmt::InstallPlugin{"rpl_semi_sync_master", "semisync_master.so"});
  ExpectParses("install plugin rpl_semi_sync_slave soname 'semisync_slave.so';",
               stmt::InstallPlugin{"rpl_semi_sync_slave", "semisync_slave.so"});
}

TEST(StatementTest, SeedSetGlobalWithAndWithoutSpaces) {
  ExpectParses("set global rpl_semi_sync_master_enabled = 1;",
               stmt::SetVariable{"rpl_semi_sync_master_enabled", "1", false});
  ExpectParses("set global rpl_semi_sync_slave_enabled=1;",
               stmt::SetVariable{"rpl_semi_sync_slave_enabled", "1", false});
}

TEST(StatementTest, SeedShowVariablesAndStatusLike) {
  ExpectParses("show variables like 'rpl_semi_sync%';", stmt::ShowVariables{"rpl_semi_sync%"});
  ExpectParses("show status like 'rpl_semi_sync%';", stmt::ShowStatus{"rpl_semi_sync%"});
  // The seed ends this one with ';' alone on the next line.
  ExpectParses("show status like 'rpl_semi_sync%'\n;", stmt::ShowStatus{"rpl_semi_sync%"});
  ExpectParses("show status like 'rpl_semi_sync%'\n    ;", stmt::ShowStatus{"rpl_semi_sync%"});
}

TEST(StatementTest, SeedStopAndStartSlaveIoThread) {
  ExpectParses("stop slave io_thread;", ReplicaThreads{Action::kStop, Threads::kIo});
  ExpectParses("start slave io_thread;", ReplicaThreads{Action::kStart, Threads::kIo});
}

TEST(StatementTest, SetValuesKeepTheirTextAndNamesAreLowerCased) {
  ExpectParses("SET GLOBAL RPL_SEMI_SYNC_MASTER_WAIT_POINT = AFTER_SYNC",
               stmt::SetVariable{"rpl_semi_sync_master_wait_point", "AFTER_SYNC", false});
  ExpectParses("set global rpl_semi_sync_master_wait_point = after_commit",
               stmt::SetVariable{"rpl_semi_sync_master_wait_point", "after_commit", false});
  ExpectParses("SET GLOBAL read_only = on", stmt::SetVariable{"read_only", "on", false});
  ExpectParses("SET GLOBAL read_only = FALSE", stmt::SetVariable{"read_only", "FALSE", false});
  ExpectParses("SET GLOBAL sync_binlog = -1", stmt::SetVariable{"sync_binlog", "-1", false});
  ExpectParses("SET GLOBAL x = 1.5", stmt::SetVariable{"x", "1.5", false});
  ExpectParses("SET GLOBAL x = ''", stmt::SetVariable{"x", "", false});
  ExpectParses("SET GLOBAL `Sync_Binlog` = 0", stmt::SetVariable{"sync_binlog", "0", false});
  ExpectParses("SET @@GLOBAL.Sync_Binlog = 0", stmt::SetVariable{"sync_binlog", "0", false});
}

TEST(StatementTest, StringsUnescapeLikeMysql) {
  ExpectParses(R"(PUT 'it\'s' "say \"hi\"")", stmt::Put{"it's", "say \"hi\""});
  ExpectParses(R"(PUT 'it''s' "a""b")", stmt::Put{"it's", "a\"b"});
  ExpectParses(R"(PUT 'a\\b' 'x\ny\tz')", stmt::Put{"a\\b", "x\ny\tz"});
  ExpectParses(R"(PUT 'nul\0' '\q')", stmt::Put{std::string("nul\0", 4), "q"});
  ExpectParses("PUT 'semi;colon' '#not a comment -- really'", stmt::Put{"semi;colon", "#not a comment -- really"});
  // \% and \_ keep the backslash so that LIKE still sees an escaped wildcard.
  ExpectParses(R"(SHOW VARIABLES LIKE 'rpl\_semi\%')", stmt::ShowVariables{"rpl\\_semi\\%"});
}

TEST(StatementTest, KeysAndValuesMayBeBareWords) {
  ExpectParses("PUT user:1 alice", stmt::Put{"user:1", "alice"});
  ExpectParses("put a/b.c -5", stmt::Put{"a/b.c", "-5"});
  ExpectParses("GET user:1;", stmt::Get{"user:1"});
  ExpectParses("DELETE Key", stmt::Delete{"Key"});
  ExpectParses("del k", stmt::Delete{"k"});
  ExpectParses("GET status", stmt::Get{"status"});  // keywords are fine as keys
  ExpectParses("PURGE BINARY LOGS TO binlog.000007", stmt::PurgeBinaryLogs{"binlog.000007"});
  ExpectParses("CHANGE MASTER TO MASTER_HOST=localhost, MASTER_PORT=7400", stmt::ChangeMaster{"localhost", 7400});
}

TEST(StatementTest, CommentsAreIgnored) {
  ExpectParses("SHOW STATUS -- what the seed shows", stmt::ShowStatus{""});
  ExpectParses("SHOW /* inline */ STATUS # trailing", stmt::ShowStatus{""});
  ExpectParses("-- leading\nCHECKSUM", stmt::Checksum{});
  ExpectParses("PUT k --v", stmt::Put{"k", "--v"});  // "--" without a space is text
}

TEST(StatementTest, EitherOptionPrefixWorksInEitherChangeForm) {
  ExpectParses("CHANGE MASTER TO SOURCE_HOST='h', MASTER_PORT=2", stmt::ChangeMaster{"h", 2});
  ExpectParses("CHANGE REPLICATION SOURCE TO MASTER_HOST='h', SOURCE_PORT=3", stmt::ChangeMaster{"h", 3});
}

TEST(StatementTest, BackslashGRequestsVerticalOutput) {
  EXPECT_TRUE(RequestsVerticalOutput("SHOW SLAVE STATUS\\G"));
  EXPECT_TRUE(RequestsVerticalOutput("show replica status \\G  "));
  EXPECT_FALSE(RequestsVerticalOutput("SHOW SLAVE STATUS"));
  EXPECT_FALSE(RequestsVerticalOutput("SHOW SLAVE STATUS;"));
  EXPECT_FALSE(RequestsVerticalOutput("SHOW SLAVE STATUS\\g"));
  EXPECT_FALSE(RequestsVerticalOutput("PUT k '\\G'"));
  EXPECT_FALSE(RequestsVerticalOutput("PUT k 'unterminated \\G"));
}

// --- malformed statements: each error names the problem and the token ---

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kSyntax[] = "You have an error in your SQL syntax";

TEST(StatementErrorTest, SetGlobalWithoutEqualsNamesTheValue) {
  EXPECT_EQ(ErrorOf("SET GLOBAL rpl_semi_sync_master_enabled 1"),
            std::string(kSyntax) + " near '1': expected '=' after the variable name");
  EXPECT_EQ(ErrorOf("set global rpl_semi_sync_master_enabled"),
            std::string(kSyntax) + " at the end of the statement: expected '=' after the variable name");
  EXPECT_EQ(ErrorOf("SET GLOBAL x =;"), std::string(kSyntax) + " near ';': expected a value after '='");
  EXPECT_EQ(ErrorOf("SET GLOBAL = 1"), std::string(kSyntax) + " near '= 1': expected a variable name");
}

TEST(StatementErrorTest, ShowVariablesLikeWithoutPattern) {
  EXPECT_EQ(ErrorOf("SHOW VARIABLES LIKE"),
            std::string(kSyntax) + " at the end of the statement: expected a quoted pattern after LIKE");
  EXPECT_EQ(ErrorOf("show status like ;"),
            std::string(kSyntax) + " near ';': expected a quoted pattern after LIKE");
  EXPECT_EQ(ErrorOf("show variables like rpl%"),
            std::string(kSyntax) + " near 'rpl%': expected a quoted pattern after LIKE");
  EXPECT_THAT(ErrorOf("SHOW VARIABLES WHERE Variable_name = 'x'"), HasSubstr("use LIKE 'pattern'"));
}

TEST(StatementErrorTest, UnterminatedQuotes) {
  EXPECT_EQ(ErrorOf("PUT 'abc"),
            std::string(kSyntax) + " near ''abc': unterminated quoted string (missing closing ')");
  EXPECT_EQ(ErrorOf("GET \"k\\\""),
            std::string(kSyntax) + " near '\"k\\\"': unterminated quoted string (missing closing \")");
  EXPECT_THAT(ErrorOf("show variables like 'rpl_semi_sync%;"), HasSubstr("unterminated quoted string"));
  EXPECT_THAT(ErrorOf("SET GLOBAL `x = 1"), HasSubstr("unterminated quoted identifier (missing closing `)"));
  EXPECT_THAT(ErrorOf("SHOW /* STATUS"), HasSubstr("near '/* STATUS': unterminated comment"));
}

TEST(StatementErrorTest, ChangeMasterNeedsHostAndPort) {
  EXPECT_EQ(ErrorOf("CHANGE MASTER TO MASTER_HOST='h'"),
            std::string(kSyntax) + " at the end of the statement: CHANGE MASTER TO needs MASTER_PORT");
  EXPECT_EQ(ErrorOf("change master to master_port=7400;"),
            std::string(kSyntax) + " near ';': CHANGE MASTER TO needs MASTER_HOST");
  EXPECT_THAT(ErrorOf("CHANGE REPLICATION SOURCE TO SOURCE_PORT=1"),
              HasSubstr("CHANGE REPLICATION SOURCE TO needs SOURCE_HOST"));
  EXPECT_THAT(ErrorOf("CHANGE MASTER TO"), HasSubstr("expected MASTER_HOST, MASTER_PORT, MASTER_SSL"));
  EXPECT_THAT(ErrorOf("CHANGE MASTER MASTER_HOST='h'"), HasSubstr("near 'MASTER_HOST='h'': expected TO"));
  EXPECT_THAT(ErrorOf("CHANGE FOO"), HasSubstr("expected MASTER TO or REPLICATION SOURCE TO"));
  EXPECT_THAT(ErrorOf("CHANGE MASTER TO MASTER_HOST='', MASTER_PORT=1"),
              HasSubstr("MASTER_HOST must be a non-empty host name"));
  EXPECT_THAT(ErrorOf("CHANGE MASTER TO MASTER_HOST='h' MASTER_PORT=1"),
              HasSubstr("near 'MASTER_PORT=1': expected ',' or the end of the statement"));
  EXPECT_THAT(ErrorOf("CHANGE MASTER TO MASTER_PORT=1, MASTER_PORT=2"),
              HasSubstr("near 'MASTER_PORT=2': MASTER_PORT is given twice"));
  EXPECT_THAT(ErrorOf("CHANGE MASTER TO MASTER_HOST='h', MASTER_PORT=1, MASTER_USER='repl'"),
              HasSubstr("near 'MASTER_USER='repl'': expected MASTER_HOST, MASTER_PORT"));
  EXPECT_THAT(ErrorOf("CHANGE MASTER TO MASTER_HOST 'h'"), HasSubstr("expected '=' after MASTER_HOST"));
}

TEST(StatementTest, ChangeMasterTakesTheSslOptions) {
  stmt::ChangeMaster want{"h", 1};
  want.ssl = true;
  want.ssl_ca = "/etc/relaykv/ca.pem";
  want.ssl_cert = "/etc/relaykv/repl.pem";
  want.ssl_key = "/etc/relaykv/repl.key";
  ExpectParses("CHANGE MASTER TO MASTER_HOST='h', MASTER_PORT=1, MASTER_SSL=1, "
               "MASTER_SSL_CA='/etc/relaykv/ca.pem', MASTER_SSL_CERT='/etc/relaykv/repl.pem', "
               "MASTER_SSL_KEY='/etc/relaykv/repl.key'",
               want);
  stmt::ChangeMaster off{"h", 1};
  off.ssl = false;
  ExpectParses("CHANGE REPLICATION SOURCE TO SOURCE_HOST='h', SOURCE_PORT=1, SOURCE_SSL=0", off);
}

TEST(StatementErrorTest, ChangeMasterSslOptionsAreChecked) {
  EXPECT_THAT(ErrorOf("CHANGE MASTER TO MASTER_HOST='h', MASTER_PORT=1, MASTER_SSL=2"),
              HasSubstr("MASTER_SSL must be 0 or 1"));
  EXPECT_THAT(ErrorOf("CHANGE MASTER TO MASTER_HOST='h', MASTER_PORT=1, MASTER_SSL_CA=ca.pem"),
              HasSubstr("MASTER_SSL_CA must be a quoted file path"));
  EXPECT_THAT(ErrorOf("CHANGE MASTER TO MASTER_HOST='h', MASTER_PORT=1, MASTER_SSL=1, MASTER_SSL=1"),
              HasSubstr("MASTER_SSL is given twice"));
}

TEST(StatementErrorTest, PortMustBeANumberInRange) {
  for (const char* port : {"abc", "0", "65536", "'7400'", "-1", "7400x", "99999999999999999999", "1.5"}) {
    const std::string text = std::string("CHANGE MASTER TO MASTER_HOST='h', MASTER_PORT=") + port;
    EXPECT_EQ(ErrorOf(text), std::string(kSyntax) + " near '" + port + "': MASTER_PORT must be a number from 1 to 65535");
  }
}

TEST(StatementErrorTest, UnknownStatementIsNamed) {
  EXPECT_THAT(ErrorOf("FROBNICATE"), StartsWith(std::string(kSyntax) + " near 'FROBNICATE': unknown statement"));
  EXPECT_THAT(ErrorOf("frobnicate the database;"), StartsWith(std::string(kSyntax) + " near 'frobnicate the database;'"));
  EXPECT_THAT(ErrorOf("INSERT INTO t VALUES (1)"), HasSubstr("unknown statement"));
  EXPECT_THAT(ErrorOf("SHOW TABLES"), HasSubstr("near 'TABLES': unknown SHOW statement"));
}

TEST(StatementErrorTest, TrailingGarbageIsNamed) {
  EXPECT_EQ(ErrorOf("SHOW SLAVE STATUS garbage"),
            std::string(kSyntax) + " near 'garbage': expected the end of the statement");
  EXPECT_THAT(ErrorOf("CHECKSUM TABLE t"), HasSubstr("near 'TABLE t': expected the end"));
  EXPECT_THAT(ErrorOf("GET a b"), HasSubstr("near 'b': expected the end"));
  EXPECT_THAT(ErrorOf("SHOW STATUS; SHOW VARIABLES"), HasSubstr("near 'SHOW VARIABLES': expected the end"));
  EXPECT_THAT(ErrorOf("STOP SLAVE IO_THREAD FOR CHANNEL 'x'"), HasSubstr("near 'FOR CHANNEL 'x''"));
  EXPECT_THAT(ErrorOf("SHOW STATUS;;"), HasSubstr("near ';'"));
  EXPECT_THAT(ErrorOf("SET GLOBAL a = 1, b = 2"), HasSubstr("near ', b = 2': one variable per SET statement"));
}

TEST(StatementErrorTest, EmptyStatement) {
  for (const char* text : {"", "   ", ";", " ; ", "-- only a comment", "/* nothing */", "\\G"}) {
    EXPECT_EQ(ErrorOf(text), "No query specified") << text;
  }
}

TEST(StatementErrorTest, SetNeedsGlobalOrPersist) {
  EXPECT_THAT(ErrorOf("SET x = 1"), HasSubstr("near 'x = 1': expected GLOBAL or PERSIST after SET"));
  EXPECT_THAT(ErrorOf("SET SESSION x = 1"), HasSubstr("expected GLOBAL or PERSIST"));
  EXPECT_THAT(ErrorOf("SET PERSIST_ONLY x = 1"), HasSubstr("PERSIST_ONLY is not supported"));
  EXPECT_THAT(ErrorOf("SET @x = 1"), HasSubstr("user variables are not supported"));
  EXPECT_THAT(ErrorOf("SET @@x = 1"), HasSubstr("near 'x = 1': expected @@global.name or @@persist.name"));
  EXPECT_THAT(ErrorOf("SET @@session.x = 1"), HasSubstr("expected @@global.name"));
  EXPECT_THAT(ErrorOf("SET @@global. = 1"), HasSubstr("expected @@global.name"));
}

TEST(StatementErrorTest, IncompleteStatementsSayWhatIsMissing) {
  EXPECT_THAT(ErrorOf("START TRANSACTION"), HasSubstr("near 'TRANSACTION': expected SLAVE or REPLICA after START"));
  EXPECT_THAT(ErrorOf("stop"), HasSubstr("at the end of the statement: expected SLAVE or REPLICA after STOP"));
  EXPECT_THAT(ErrorOf("STOP SLAVE IO_THREAD,"), HasSubstr("expected IO_THREAD or SQL_THREAD"));
  EXPECT_THAT(ErrorOf("INSTALL rpl"), HasSubstr("expected PLUGIN after INSTALL"));
  EXPECT_THAT(ErrorOf("INSTALL PLUGIN rpl_semi_sync_master"), HasSubstr("expected SONAME"));
  EXPECT_THAT(ErrorOf("INSTALL PLUGIN x SONAME"), HasSubstr("expected the plugin's library name"));
  EXPECT_THAT(ErrorOf("PURGE BINARY LOGS BEFORE '2024-01-01'"), HasSubstr("BEFORE is not supported"));
  EXPECT_THAT(ErrorOf("PURGE BINARY LOGS TO"), HasSubstr("expected a binlog file name after TO"));
  EXPECT_THAT(ErrorOf("PURGE LOGS"), HasSubstr("expected BINARY LOGS after PURGE"));
  EXPECT_THAT(ErrorOf("SHOW GLOBAL SLAVE STATUS"), HasSubstr("expected VARIABLES or STATUS after SHOW GLOBAL"));
  EXPECT_THAT(ErrorOf("SHOW SLAVE"), HasSubstr("expected STATUS or HOSTS after SHOW SLAVE"));
  EXPECT_THAT(ErrorOf("SHOW BINARY LOG"), HasSubstr("expected STATUS after SHOW BINARY LOG"));
  EXPECT_THAT(ErrorOf("RESET MASTER"), HasSubstr("near 'MASTER': expected PERSIST, SLAVE ALL or REPLICA ALL after RESET"));
  // Without ALL, MySQL deletes the relay log: here that is the node's binlog.
  EXPECT_THAT(ErrorOf("RESET SLAVE"), HasSubstr("expected ALL: RESET SLAVE without ALL would delete the relay log"));
  EXPECT_THAT(ErrorOf("SWITCHOVER 'h:1'"), HasSubstr("expected TO after SWITCHOVER"));
  EXPECT_THAT(ErrorOf("SWITCHOVER TO"), HasSubstr("expected the new primary's 'host:port'"));
  EXPECT_THAT(ErrorOf("FAILOVER TO 'h:1'"), HasSubstr("expected FORCE after FAILOVER"));
  EXPECT_THAT(ErrorOf("reset replica;"), HasSubstr("RESET SLAVE ALL makes this replica a primary"));
  EXPECT_THAT(ErrorOf("PUT k"), HasSubstr("expected a value after the key"));
  EXPECT_THAT(ErrorOf("GET"), HasSubstr("expected a key after GET"));
  EXPECT_THAT(ErrorOf("DELETE"), HasSubstr("expected a key after DELETE"));
}

TEST(StatementErrorTest, LongExcerptIsCut) {
  const std::string e = ErrorOf("FROBNICATE " + std::string(200, 'x'));
  EXPECT_THAT(e, HasSubstr("near 'FROBNICATE xxx"));
  EXPECT_THAT(e, HasSubstr("...': unknown statement"));
  EXPECT_LT(e.size(), 340u);  // the excerpt cut, plus the list of known statements
}

}  // namespace
}  // namespace relaykv
