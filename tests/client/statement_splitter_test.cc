#include "client/statement_splitter.h"

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "client/statement.h"

namespace relaykv {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(StatementSplitterTest, SemicolonsSplitAndEmptyStatementsVanish) {
  EXPECT_THAT(SplitStatements("a; b;c"), ElementsAre("a", "b", "c"));
  EXPECT_THAT(SplitStatements("  GET k  ;\n\n  GET j\n"), ElementsAre("GET k", "GET j"));
  EXPECT_THAT(SplitStatements(";;  ;\n"), IsEmpty());
  EXPECT_THAT(SplitStatements(""), IsEmpty());
  EXPECT_THAT(SplitStatements("GET k;\r\nGET j;\r\n"), ElementsAre("GET k", "GET j"));
}

TEST(StatementSplitterTest, QuotesProtectTerminators) {
  EXPECT_THAT(SplitStatements("PUT 'a;b' \"c;d\"; GET `x;y`"), ElementsAre("PUT 'a;b' \"c;d\"", "GET `x;y`"));
  EXPECT_THAT(SplitStatements(R"(PUT 'it\'s;' v; GET k)"), ElementsAre(R"(PUT 'it\'s;' v)", "GET k"));
  EXPECT_THAT(SplitStatements("PUT 'it''s;x' v; GET k"), ElementsAre("PUT 'it''s;x' v", "GET k"));
  EXPECT_THAT(SplitStatements("PUT k '-- no; # comment'; GET k"),
              ElementsAre("PUT k '-- no; # comment'", "GET k"));
  // A backslash does not escape inside `identifiers`.
  EXPECT_THAT(SplitStatements("GET `a\\`; GET b"), ElementsAre("GET `a\\`", "GET b"));
}

TEST(StatementSplitterTest, CommentsAreDropped) {
  EXPECT_THAT(SplitStatements("-- comment; not a statement\nSHOW STATUS; # another; x\nGET k"),
              ElementsAre("SHOW STATUS", "GET k"));
  EXPECT_THAT(SplitStatements("GET k#c;\n;"), ElementsAre("GET k"));
  EXPECT_THAT(SplitStatements("SHOW /* ; */ STATUS;"), ElementsAre("SHOW   STATUS"));
  EXPECT_THAT(SplitStatements("-- only comments\n# here\n/* and here */"), IsEmpty());
  EXPECT_THAT(SplitStatements("GET k --"), ElementsAre("GET k"));
  // "--" followed by anything but whitespace is text (mysql's rule).
  EXPECT_THAT(SplitStatements("PUT k --x; GET k"), ElementsAre("PUT k --x", "GET k"));
}

TEST(StatementSplitterTest, BackslashGTerminatesAndIsKept) {
  EXPECT_THAT(SplitStatements("SHOW SLAVE STATUS\\G SHOW STATUS;"), ElementsAre("SHOW SLAVE STATUS\\G", "SHOW STATUS"));
  EXPECT_THAT(SplitStatements("show replica status\\G\n"), ElementsAre("show replica status\\G"));
  EXPECT_THAT(SplitStatements("GET a\\gGET b"), ElementsAre("GET a", "GET b"));
  EXPECT_THAT(SplitStatements("PUT k '\\G'; GET k"), ElementsAre("PUT k '\\G'", "GET k"));
  EXPECT_THAT(SplitStatements("\\G;"), IsEmpty());
  const auto parts = SplitStatements("SHOW SLAVE STATUS\\G");
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_TRUE(RequestsVerticalOutput(parts[0]));
  EXPECT_TRUE(ParseStatement(parts[0]).ok());
}

TEST(StatementSplitterTest, UnterminatedQuoteAtEndIsLeftForTheParser) {
  const auto parts = SplitStatements("GET k; GET 'abc;");
  ASSERT_THAT(parts, ElementsAre("GET k", "GET 'abc;"));
  auto parsed = ParseStatement(parts[1]);
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(std::string(parsed.status().message()), ::testing::HasSubstr("unterminated quoted string"));
}

// The seed's whole session as one piped script: every statement parses.
TEST(StatementSplitterTest, SeedScriptSplitsIntoItsEightStatements) {
  const std::string script =
      "install plugin rpl_semi_sync_master soname 'semisync_master.so';\n"
      "set global rpl_semi_sync_master_enabled = 1;\n"
      "show variables like 'rpl_semi_sync%';\n"
      "show status like 'rpl_semi_sync%'\n"
      ";\n"
      "install plugin rpl_semi_sync_slave soname 'semisync_slave.so';\n"
      "set global rpl_semi_sync_slave_enabled=1;\n"
      "stop slave io_thread;\n"
      "start slave io_thread;\n";
  const auto parts = SplitStatements(script);
  ASSERT_THAT(parts, ElementsAre("install plugin rpl_semi_sync_master soname 'semisync_master.so'",
                                 "set global rpl_semi_sync_master_enabled = 1",
                                 "show variables like 'rpl_semi_sync%'", "show status like 'rpl_semi_sync%'",
                                 "install plugin rpl_semi_sync_slave soname 'semisync_slave.so'",
                                 "set global rpl_semi_sync_slave_enabled=1", "stop slave io_thread",
                                 "start slave io_thread"));
  for (const auto& p : parts) EXPECT_TRUE(ParseStatement(p).ok()) << p;
}

TEST(StatementSplitterTest, IncrementalFeedTracksOpenQuotesForThePrompt) {
  StatementSplitter s;
  EXPECT_FALSE(s.InStatement());
  EXPECT_THAT(s.Feed("show status like 'a;\n"), IsEmpty());
  EXPECT_TRUE(s.InStatement());
  EXPECT_EQ(s.OpenQuote(), '\'');
  EXPECT_THAT(s.Feed("b'\n"), IsEmpty());
  EXPECT_TRUE(s.InStatement());
  EXPECT_EQ(s.OpenQuote(), '\0');
  EXPECT_THAT(s.Feed(";\n"), ElementsAre("show status like 'a;\nb'"));
  EXPECT_FALSE(s.InStatement());
  EXPECT_THAT(s.Feed("# a comment line\n"), IsEmpty());
  EXPECT_FALSE(s.InStatement());
  EXPECT_THAT(s.Feed("GET k; GET j"), ElementsAre("GET k"));
  EXPECT_TRUE(s.InStatement());
  EXPECT_THAT(s.Finish(), ElementsAre("GET j"));
  EXPECT_FALSE(s.InStatement());
}

TEST(StatementSplitterTest, LookaheadWaitsAcrossChunkBoundaries) {
  StatementSplitter s;
  EXPECT_THAT(s.Feed("GET k -"), IsEmpty());
  EXPECT_THAT(s.Feed("- comment;\n;"), ElementsAre("GET k"));

  EXPECT_THAT(s.Feed("SHOW SLAVE STATUS\\"), IsEmpty());
  EXPECT_THAT(s.Feed("G"), ElementsAre("SHOW SLAVE STATUS\\G"));

  EXPECT_THAT(s.Feed("PUT k 'a\\"), IsEmpty());
  EXPECT_THAT(s.Feed("';'"), IsEmpty());
  EXPECT_THAT(s.Feed(";"), ElementsAre("PUT k 'a\\';'"));

  EXPECT_THAT(s.Feed("SHOW /"), IsEmpty());
  EXPECT_THAT(s.Feed("* x *"), IsEmpty());
  EXPECT_THAT(s.Feed("/ STATUS;"), ElementsAre("SHOW   STATUS"));

  EXPECT_THAT(s.Feed("PUT k --"), IsEmpty());
  EXPECT_THAT(s.Feed("x;"), ElementsAre("PUT k --x"));
  EXPECT_THAT(s.Finish(), IsEmpty());
}

TEST(StatementSplitterTest, FinishReadsATrailingDashOrBackslashAsText) {
  StatementSplitter s;
  EXPECT_THAT(s.Feed("PUT k -"), IsEmpty());
  EXPECT_THAT(s.Finish(), ElementsAre("PUT k -"));
  EXPECT_THAT(s.Feed("GET k\\"), IsEmpty());
  EXPECT_THAT(s.Finish(), ElementsAre("GET k\\"));
}

}  // namespace
}  // namespace relaykv
