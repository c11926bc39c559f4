// Prints statement results the way the mysql client does, so that a DBA
// reads relaykv output like mysql's and scripts parse it the same way:
//   PrintTable     +---+ bordered table, then "N rows in set (0.01 sec)"
//   PrintVertical  the \G form: "*************************** 1. row ***..."
//   PrintBatch     -B / piped output: tab-separated, mysql's escapes
//   PrintOk        "Query OK, N rows affected (0.00 sec)"
//   PrintError     "ERROR 1064 (42000): ..." from an absl::Status
// Blank lines between results and prompts are the shell's business.
//
// Elapsed times are measured by the caller. All functions only write to
// the given stream; safe from any thread for distinct streams.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace relaykv {

struct ResultSet {
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;  // each row has columns.size() cells
};

// A statement that returns no rows (SET, PUT, START SLAVE, ...).
struct OkResult {
  uint64_t affected_rows = 0;
  // mysql_info()'s line under "Query OK", e.g. "Gtid: 1:42"; may be empty.
  std::string info;
  // Shown as "Warning (Code 1105): ..." lines, counted in "N warnings".
  std::vector<std::string> warnings;
};

using Elapsed = std::chrono::duration<double>;

// mysql's time format: "0.01 sec", "1 min 2.50 sec", "1 hour 1 min 0.00 sec".
std::string FormatElapsed(Elapsed elapsed);

// The bordered table (nothing for an empty set), then, if `elapsed` is
// given, "N rows in set (..)", "1 row in set (..)" or "Empty set (..)".
// mysql omits that line when it is not interactive (-t -e): pass nullopt.
// Cells are printed raw; widths count UTF-8 characters, not bytes.
void PrintTable(std::ostream& out, const ResultSet& rs, std::optional<Elapsed> elapsed);

// One block per row, column names right-aligned to the longest, then the
// same summary line as PrintTable.
void PrintVertical(std::ostream& out, const ResultSet& rs, std::optional<Elapsed> elapsed);

// Tab-separated rows under a header line (unless !with_header, mysql -N).
// Cells are escaped like mysql -B: tab \t, newline \n, backslash \\, NUL
// \0. An empty set prints nothing, as mysql does.
void PrintBatch(std::ostream& out, const ResultSet& rs, bool with_header);

// "Query OK, 1 row affected, 1 warning (0.00 sec)", then ok.info and the
// warnings, one line each.
void PrintOk(std::ostream& out, const OkResult& ok, Elapsed elapsed);

// The MySQL error number and SQLSTATE that `status` reads as. The mapping
// looks at the message for the cases MySQL distinguishes (syntax error,
// unknown variable, bad value, read-only variable) and else at the code:
//   INVALID_ARGUMENT syntax 1064 (42000) | unknown variable 1193 (HY000)
//   bad value 1231 (42000) | read-only variable 1238 (HY000)
//   unknown plugin ("Can't open shared library") 1126 (HY000)
//   replica thread must stop first ("cannot be performed with a running") 3021 (HY000)
//   other INVALID_ARGUMENT 1210 (HY000) | FAILED_PRECONDITION 1290 (HY000)
//   UNAVAILABLE 2003 (HY000) | DEADLINE_EXCEEDED 2013 (HY000)
//   CANCELLED 1317 (70100) | UNIMPLEMENTED 1235 (42000) | others 1105 (HY000)
struct MysqlError {
  int code;
  std::string_view sqlstate;
};
MysqlError ToMysqlError(const absl::Status& status);

// "ERROR <code> (<sqlstate>): <message>" (or "ERROR <code> (<sqlstate>) at
// line N: ..." for a statement from a script, as mysql prints it). Prints
// nothing for an OK status.
void PrintError(std::ostream& out, const absl::Status& status, std::optional<int> line = std::nullopt);

}  // namespace relaykv
