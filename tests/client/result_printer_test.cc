#include "client/result_printer.h"

#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace relaykv {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;

template <typename F>
std::string Capture(F print) {
  std::ostringstream out;
  print(out);
  return out.str();
}

// The seed's `show variables like 'rpl_semi_sync%'` result.
ResultSet SeedVariables() {
  return {{"Variable_name", "Value"},
          {{"rpl_semi_sync_master_enabled", "ON"},
           {"rpl_semi_sync_master_timeout", "10000"},
           {"rpl_semi_sync_master_trace_level", "32"},
           {"rpl_semi_sync_master_wait_for_slave_count", "1"},
           {"rpl_semi_sync_master_wait_no_slave", "ON"},
           {"rpl_semi_sync_master_wait_point", "AFTER_SYNC"}}};
}

TEST(ResultPrinterTest, TableMatchesTheSeedTranscript) {
  const std::string want =
      "+-------------------------------------------+------------+\n"
      "| Variable_name                             | Value      |\n"
      "+-------------------------------------------+------------+\n"
      "| rpl_semi_sync_master_enabled              | ON         |\n"
      "| rpl_semi_sync_master_timeout              | 10000      |\n"
      "| rpl_semi_sync_master_trace_level          | 32         |\n"
      "| rpl_semi_sync_master_wait_for_slave_count | 1          |\n"
      "| rpl_semi_sync_master_wait_no_slave        | ON         |\n"
      "| rpl_semi_sync_master_wait_point           | AFTER_SYNC |\n"
      "+-------------------------------------------+------------+\n"
      "6 rows in set (0.01 sec)\n";
  EXPECT_EQ(Capture([](auto& o) { PrintTable(o, SeedVariables(), 10ms); }), want);
}

TEST(ResultPrinterTest, TableOfOneRowSaysRow) {
  const ResultSet rs{{"Variable_name", "Value"}, {{"Rpl_semi_sync_slave_status", "OFF"}}};
  EXPECT_EQ(Capture([&](auto& o) { PrintTable(o, rs, 30ms); }),
            "+----------------------------+-------+\n"
            "| Variable_name              | Value |\n"
            "+----------------------------+-------+\n"
            "| Rpl_semi_sync_slave_status | OFF   |\n"
            "+----------------------------+-------+\n"
            "1 row in set (0.03 sec)\n");
}

TEST(ResultPrinterTest, EmptySetPrintsOnlyTheSummary) {
  const ResultSet rs{{"Variable_name", "Value"}, {}};
  EXPECT_EQ(Capture([&](auto& o) { PrintTable(o, rs, 0s); }), "Empty set (0.00 sec)\n");
  EXPECT_EQ(Capture([&](auto& o) { PrintVertical(o, rs, 0s); }), "Empty set (0.00 sec)\n");
  EXPECT_EQ(Capture([&](auto& o) { PrintTable(o, rs, std::nullopt); }), "");
}

TEST(ResultPrinterTest, TableWithoutElapsedHasNoSummary) {
  const ResultSet rs{{"a"}, {{"1"}}};
  EXPECT_EQ(Capture([&](auto& o) { PrintTable(o, rs, std::nullopt); }),
            "+---+\n| a |\n+---+\n| 1 |\n+---+\n");
}

TEST(ResultPrinterTest, WidthsCountCharactersNotBytes) {
  // "半同步" is 9 bytes of UTF-8 and six terminal cells; "é" is one cell.
  const ResultSet rs{{"k", "v"}, {{"半同步", "é"}, {"x", "yy"}}};
  EXPECT_EQ(Capture([&](auto& o) { PrintTable(o, rs, std::nullopt); }),
            "+--------+----+\n"
            "| k      | v  |\n"
            "+--------+----+\n"
            "| 半同步 | é  |\n"
            "| x      | yy |\n"
            "+--------+----+\n");
}

TEST(ResultPrinterTest, VerticalRightAlignsNamesLikeMysqlBackslashG) {
  const ResultSet rs{{"Slave_IO_State", "Master_Port", "Last_IO_Error"},
                     {{"Waiting for source to send event", "7400", ""}}};
  EXPECT_EQ(Capture([&](auto& o) { PrintVertical(o, rs, 0ms); }),
            "*************************** 1. row ***************************\n"
            "Slave_IO_State: Waiting for source to send event\n"
            "   Master_Port: 7400\n"
            " Last_IO_Error: \n"
            "1 row in set (0.00 sec)\n");
  const ResultSet two{{"a"}, {{"1"}, {"2"}}};
  EXPECT_EQ(Capture([&](auto& o) { PrintVertical(o, two, std::nullopt); }),
            "*************************** 1. row ***************************\n"
            "a: 1\n"
            "*************************** 2. row ***************************\n"
            "a: 2\n");
}

TEST(ResultPrinterTest, BatchIsTabSeparatedUnderAHeader) {
  EXPECT_EQ(Capture([](auto& o) { PrintBatch(o, SeedVariables(), /*with_header=*/true); }),
            "Variable_name\tValue\n"
            "rpl_semi_sync_master_enabled\tON\n"
            "rpl_semi_sync_master_timeout\t10000\n"
            "rpl_semi_sync_master_trace_level\t32\n"
            "rpl_semi_sync_master_wait_for_slave_count\t1\n"
            "rpl_semi_sync_master_wait_no_slave\tON\n"
            "rpl_semi_sync_master_wait_point\tAFTER_SYNC\n");
}

TEST(ResultPrinterTest, BatchWithoutHeaderIsDashN) {
  const ResultSet rs{{"Gtid", "Checksum", "Keys"}, {{"1:42", "ab12", "3"}}};
  EXPECT_EQ(Capture([&](auto& o) { PrintBatch(o, rs, /*with_header=*/false); }), "1:42\tab12\t3\n");
}

TEST(ResultPrinterTest, BatchEscapesLikeMysqlDashB) {
  const ResultSet rs{{"Value"}, {{"tab\there"}, {"two\nlines"}, {"back\\slash"}, {"nul\0byte"s}, {"plain 'q' \"d\""}}};
  EXPECT_EQ(Capture([&](auto& o) { PrintBatch(o, rs, true); }),
            "Value\n"
            "tab\\there\n"
            "two\\nlines\n"
            "back\\\\slash\n"
            "nul\\0byte\n"
            "plain 'q' \"d\"\n");
}

TEST(ResultPrinterTest, BatchOfEmptySetPrintsNothing) {
  EXPECT_EQ(Capture([](auto& o) { PrintBatch(o, ResultSet{{"Value"}, {}}, true); }), "");
}

TEST(ResultPrinterTest, OkLines) {
  EXPECT_EQ(Capture([](auto& o) { PrintOk(o, OkResult{}, 50ms); }), "Query OK, 0 rows affected (0.05 sec)\n");
  EXPECT_EQ(Capture([](auto& o) { PrintOk(o, OkResult{1, "Gtid: 1:42", {}}, 10ms); }),
            "Query OK, 1 row affected (0.01 sec)\nGtid: 1:42\n");
  EXPECT_EQ(Capture([](auto& o) { PrintOk(o, OkResult{2, "", {}}, 0ms); }), "Query OK, 2 rows affected (0.00 sec)\n");
  EXPECT_EQ(Capture([](auto& o) {
              PrintOk(o, OkResult{0, "Purged files: 0", {"binlog.000003 is still needed by replica 2"}}, 0ms);
            }),
            "Query OK, 0 rows affected, 1 warning (0.00 sec)\n"
            "Purged files: 0\n"
            "Warning (Code 1105): binlog.000003 is still needed by replica 2\n");
  EXPECT_EQ(Capture([](auto& o) { PrintOk(o, OkResult{0, "", {"a", "b"}}, 0ms); }),
            "Query OK, 0 rows affected, 2 warnings (0.00 sec)\nWarning (Code 1105): a\nWarning (Code 1105): b\n");
}

TEST(ResultPrinterTest, ElapsedUsesMysqlUnits) {
  EXPECT_EQ(FormatElapsed(0ms), "0.00 sec");
  EXPECT_EQ(FormatElapsed(10050ms), "10.05 sec");
  EXPECT_EQ(FormatElapsed(62500ms), "1 min 2.50 sec");
  EXPECT_EQ(FormatElapsed(3725s), "1 hour 2 min 5.00 sec");
  EXPECT_EQ(FormatElapsed(2 * 86400s + 7200s), "2 days 2 hours 0.00 sec");
  EXPECT_EQ(FormatElapsed(-1s), "0.00 sec");
}

std::string ErrorLine(const absl::Status& s, std::optional<int> line = std::nullopt) {
  return Capture([&](auto& o) { PrintError(o, s, line); });
}

TEST(ResultPrinterTest, ErrorLinesUseMysqlCodes) {
  EXPECT_EQ(ErrorLine(absl::InvalidArgumentError(
                "You have an error in your SQL syntax near 'FROBNICATE': unknown statement")),
            "ERROR 1064 (42000): You have an error in your SQL syntax near 'FROBNICATE': unknown statement\n");
  EXPECT_EQ(ErrorLine(absl::InvalidArgumentError("Unknown system variable 'nope'")),
            "ERROR 1193 (HY000): Unknown system variable 'nope'\n");
  EXPECT_EQ(ErrorLine(absl::InvalidArgumentError(
                "Variable 'sync_binlog' can't be set to the value of 'x': expected a non-negative integer")),
            "ERROR 1231 (42000): Variable 'sync_binlog' can't be set to the value of 'x': expected a "
            "non-negative integer\n");
  EXPECT_EQ(ErrorLine(absl::InvalidArgumentError("Variable 'server_id' is a read only variable (set it at startup)")),
            "ERROR 1238 (HY000): Variable 'server_id' is a read only variable (set it at startup)\n");
  EXPECT_EQ(ErrorLine(absl::InvalidArgumentError("key is 70000 bytes; the limit is 65536")),
            "ERROR 1210 (HY000): key is 70000 bytes; the limit is 65536\n");
  EXPECT_EQ(ErrorLine(absl::FailedPreconditionError("this node is a read-only replica; send writes to its primary at h:1")),
            "ERROR 1290 (HY000): this node is a read-only replica; send writes to its primary at h:1\n");
  EXPECT_EQ(ErrorLine(absl::FailedPreconditionError(
                "This operation cannot be performed with a running replica io thread; run STOP SLAVE IO_THREAD first")),
            "ERROR 3021 (HY000): This operation cannot be performed with a running replica io thread; run STOP "
            "SLAVE IO_THREAD first\n");
  EXPECT_EQ(ErrorLine(absl::UnavailableError("failed to connect to all addresses")),
            "ERROR 2003 (HY000): failed to connect to all addresses\n");
  EXPECT_EQ(ErrorLine(absl::NotFoundError("binlog.000099 is not in the binlog index")),
            "ERROR 1105 (HY000): binlog.000099 is not in the binlog index\n");
  EXPECT_EQ(ErrorLine(absl::DeadlineExceededError("Deadline Exceeded")), "ERROR 2013 (HY000): Deadline Exceeded\n");
  EXPECT_EQ(ErrorLine(absl::CancelledError("cancelled")), "ERROR 1317 (70100): cancelled\n");
  EXPECT_EQ(ErrorLine(absl::UnimplementedError("Admin.Checksum")), "ERROR 1235 (42000): Admin.Checksum\n");
  EXPECT_EQ(ErrorLine(absl::InternalError("boom")), "ERROR 1105 (HY000): boom\n");
  EXPECT_EQ(ErrorLine(absl::NotFoundError("Can't open shared library 'x.so': no such plugin")),
            "ERROR 1126 (HY000): Can't open shared library 'x.so': no such plugin\n");
  EXPECT_EQ(ErrorLine(absl::InvalidArgumentError("No query specified")), "ERROR 1065 (42000): No query specified\n");
}

TEST(ResultPrinterTest, ErrorLineFromAScriptNamesTheLine) {
  EXPECT_EQ(ErrorLine(absl::UnavailableError("down"), 3), "ERROR 2003 (HY000) at line 3: down\n");
}

TEST(ResultPrinterTest, OkStatusPrintsNoError) { EXPECT_EQ(ErrorLine(absl::OkStatus()), ""); }

}  // namespace
}  // namespace relaykv
