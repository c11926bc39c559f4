// SCAN statements (client/statement.cc ParseScan): ranges, prefixes and
// options in any order and case, read back by FormatStatement; each error
// names what is wrong.
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "client/admin_executor.h"
#include "client/statement.h"

namespace relaykv {
namespace {

stmt::Scan Range(std::string start, std::string end) {
  stmt::Scan s;
  s.start = std::move(start);
  s.end = std::move(end);
  return s;
}

stmt::Scan Prefix(std::string p) {
  stmt::Scan s;
  s.prefix = std::move(p);
  return s;
}

template <typename F>
stmt::Scan With(stmt::Scan s, F f) {
  f(s);
  return s;
}

void ExpectScan(const std::string& text, const stmt::Scan& want) {
  for (const char* end : {"", ";", "\\G"}) {
    auto got = ParseStatement(text + end);
    ASSERT_TRUE(got.ok()) << "[" << text << end << "]: " << got.status();
    ASSERT_TRUE(std::holds_alternative<stmt::Scan>(*got)) << text;
    EXPECT_EQ(*got, Statement(want)) << "[" << text << "] parsed as " << FormatStatement(*got);
    // And the canonical text reads back to the same statement.
    auto again = ParseStatement(FormatStatement(*got));
    ASSERT_TRUE(again.ok()) << FormatStatement(*got) << ": " << again.status();
    EXPECT_EQ(*again, *got) << FormatStatement(*got);
  }
}

std::string ErrorOf(const std::string& text) {
  auto got = ParseStatement(text);
  EXPECT_FALSE(got.ok()) << "[" << text << "] parsed as " << FormatStatement(*got);
  if (got.ok()) return "";
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << text;
  return std::string(got.status().message());
}

TEST(ScanStatementTest, RangesPrefixesAndOptionsParse) {
  ExpectScan("SCAN 'a' 'b' LIMIT 10", With(Range("a", "b"), [](auto& s) { s.limit = 10; }));
  ExpectScan("scan 'a' 'b' limit 10", With(Range("a", "b"), [](auto& s) { s.limit = 10; }));
  ExpectScan("SCAN", Range("", ""));
  ExpectScan("SCAN 'a'", Range("a", ""));
  ExpectScan("SCAN '' 'm'", Range("", "m"));
  ExpectScan("SCAN user:1 user:9", Range("user:1", "user:9"));
  ExpectScan("SCAN PREFIX 'user:'", Prefix("user:"));
  ExpectScan("SCAN PREFIX 'user:' LIMIT 5 REVERSE KEYS ONLY",
             With(Prefix("user:"), [](auto& s) {
               s.limit = 5;
               s.reverse = true;
               s.keys_only = true;
             }));
  ExpectScan("Scan Prefix 'User:' keys only reverse", With(Prefix("User:"), [](auto& s) {
               s.reverse = true;
               s.keys_only = true;
             }));
  ExpectScan("SCAN 'a' 'z' COUNT", With(Range("a", "z"), [](auto& s) { s.count = true; }));
  ExpectScan("SCAN PREFIX 'x' COUNT LIMIT 0", With(Prefix("x"), [](auto& s) {
               s.count = true;
               s.limit = 0;
             }));
  // A key that spells an option is quoted.
  ExpectScan("SCAN 'limit' LIMIT 3", With(Range("limit", ""), [](auto& s) { s.limit = 3; }));
  ExpectScan("SCAN REVERSE", With(Range("", ""), [](auto& s) { s.reverse = true; }));
  ExpectScan("SCAN 'a' 'b' WITH CONSISTENCY PRIMARY_FRESH LIMIT 2",
             With(Range("a", "b"), [](auto& s) {
               s.limit = 2;
               s.primary_fresh = true;
             }));
  ExpectScan("SCAN PREFIX 'p' with consistency local", Prefix("p"));
  ExpectScan("SCAN 'with'", Range("with", ""));
}

TEST(ScanStatementTest, ErrorsNameTheProblem) {
  EXPECT_NE(ErrorOf("SCAN 'a' 'b' 'c'").find("SCAN takes at most a start and an end key"),
            std::string::npos);
  EXPECT_NE(ErrorOf("SCAN 'a' LIMIT").find("LIMIT must be a whole number of keys"), std::string::npos);
  EXPECT_NE(ErrorOf("SCAN 'a' LIMIT -1").find("LIMIT must be a whole number of keys"),
            std::string::npos);
  EXPECT_NE(ErrorOf("SCAN 'a' LIMIT 1 LIMIT 2").find("LIMIT is given twice"), std::string::npos);
  EXPECT_NE(ErrorOf("SCAN 'a' REVERSE reverse").find("REVERSE is given twice"), std::string::npos);
  EXPECT_NE(ErrorOf("SCAN KEYS").find("expected ONLY after KEYS"), std::string::npos);
  EXPECT_NE(ErrorOf("SCAN PREFIX").find("expected a non-empty prefix after PREFIX"),
            std::string::npos);
  EXPECT_NE(ErrorOf("SCAN PREFIX ''").find("expected a non-empty prefix after PREFIX"),
            std::string::npos);
  EXPECT_NE(ErrorOf("SCAN PREFIX 'p' 'b'").find("expected LIMIT n, REVERSE"), std::string::npos);
  EXPECT_NE(ErrorOf("SCAN 'a' WITH VERSION").find("expected CONSISTENCY after WITH"),
            std::string::npos);
  EXPECT_NE(ErrorOf("SCAN WITH CONSISTENCY LOCAL WITH CONSISTENCY PRIMARY_FRESH")
                .find("WITH CONSISTENCY is given twice"),
            std::string::npos);
  EXPECT_NE(ErrorOf("SCAN 'a' 'b' WHERE x").find("near 'WHERE x'"), std::string::npos);
}

// The executor's mapping of a SCAN's pages onto one result set.
TEST(ScanResultTest, PagesAddUpToOneResultSet) {
  v1::ScanReply p1, p2;
  for (const char* k : {"a", "b"}) {
    auto* row = p1.add_rows();
    row->set_key(k);
    row->set_value(std::string("v") + k);
  }
  p1.set_count(2);
  auto* row = p2.add_rows();
  row->set_key("c");
  row->set_value("vc");
  p2.set_count(1);
  using Rows = std::vector<std::vector<std::string>>;
  ResultSet rs = ScanResult(Range("", ""), {p1, p2});
  EXPECT_EQ(rs.columns, (std::vector<std::string>{"Key", "Value"}));
  EXPECT_EQ(rs.rows, (Rows{{"a", "va"}, {"b", "vb"}, {"c", "vc"}}));
  rs = ScanResult(With(Range("", ""), [](auto& s) { s.keys_only = true; }), {p1, p2});
  EXPECT_EQ(rs.columns, (std::vector<std::string>{"Key"}));
  EXPECT_EQ(rs.rows, (Rows{{"a"}, {"b"}, {"c"}}));
  v1::ScanReply c1, c2;
  c1.set_count(10000000);
  c2.set_count(5);
  rs = ScanResult(With(Range("", ""), [](auto& s) { s.count = true; }), {c1, c2});
  EXPECT_EQ(rs.columns, (std::vector<std::string>{"Count"}));
  EXPECT_EQ(rs.rows, (Rows{{"10000005"}}));
}

}  // namespace
}  // namespace relaykv
