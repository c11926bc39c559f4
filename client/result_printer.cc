#include "client/result_printer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>


namespace relaykv {
namespace {

// East Asian wide characters take two terminal cells, as in mysql's
// my_numcells_mb(); the seed tutorial's users write Chinese values.
bool IsWide(uint32_t cp) {
  return (cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF && cp != 0x303F) ||
         (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
         (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
         (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x20000 && cp <= 0x3FFFD);
}

// Terminal cells taken by UTF-8 text; a stray byte counts as one cell.
size_t DisplayWidth(std::string_view s) {
  size_t cells = 0;
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 1;
    if (i + len > s.size()) len = 1;
    uint32_t cp = len == 1 ? b : b & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    cells += IsWide(cp) ? 2 : 1;
    i += len;
  }
  return cells;
}

void PrintPadded(std::ostream& out, std::string_view s, size_t width) {
  out << s;
  for (size_t w = DisplayWidth(s); w < width; ++w) out << ' ';
}

void PrintSummary(std::ostream& out, size_t rows, Elapsed elapsed) {
  if (rows == 0) {
    out << "Empty set";
  } else {
    out << rows << (rows == 1 ? " row in set" : " rows in set");
  }
  out << " (" << FormatElapsed(elapsed) << ")\n";
}

// The cell at (row, col), or "" if the row is short (a caller's bug, but
// printing must not crash on it).
std::string_view Cell(const std::vector<std::string>& row, size_t col) {
  return col < row.size() ? std::string_view(row[col]) : std::string_view();
}

}  // namespace

std::string FormatElapsed(Elapsed elapsed) {
  // mysql's nice_time(): whole days, hours and minutes, then seconds with
  // two decimals.
  double sec = std::max(0.0, elapsed.count());
  std::string out;
  auto unit = [&](double size, const char* one, const char* many) {
    if (sec < size) return;
    const auto n = static_cast<unsigned long>(std::floor(sec / size));
    sec -= size * static_cast<double>(n);
    out += std::to_string(n) + (n > 1 ? many : one);
  };
  unit(86400.0, " day ", " days ");
  unit(3600.0, " hour ", " hours ");
  unit(60.0, " min ", " min ");
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f sec", sec);
  return out + buf;
}

void PrintTable(std::ostream& out, const ResultSet& rs, std::optional<Elapsed> elapsed) {
  if (!rs.rows.empty()) {
    std::vector<size_t> widths(rs.columns.size());
    for (size_t c = 0; c < rs.columns.size(); ++c) {
      widths[c] = DisplayWidth(rs.columns[c]);
      for (const auto& row : rs.rows) widths[c] = std::max(widths[c], DisplayWidth(Cell(row, c)));
    }
    auto border = [&] {
      out << '+';
      for (size_t w : widths) out << std::string(w + 2, '-') << '+';
      out << '\n';
    };
    auto line = [&](auto cell) {
      out << '|';
      for (size_t c = 0; c < widths.size(); ++c) {
        out << ' ';
        PrintPadded(out, cell(c), widths[c]);
        out << " |";
      }
      out << '\n';
    };
    border();
    line([&](size_t c) { return std::string_view(rs.columns[c]); });
    border();
    for (const auto& row : rs.rows) line([&](size_t c) { return Cell(row, c); });
    border();
  }
  if (elapsed) PrintSummary(out, rs.rows.size(), *elapsed);
}

void PrintVertical(std::ostream& out, const ResultSet& rs, std::optional<Elapsed> elapsed) {
  size_t name_width = 0;
  for (const auto& c : rs.columns) name_width = std::max(name_width, DisplayWidth(c));
  for (size_t r = 0; r < rs.rows.size(); ++r) {
    out << "*************************** " << r + 1 << ". row ***************************\n";
    for (size_t c = 0; c < rs.columns.size(); ++c) {
      for (size_t w = DisplayWidth(rs.columns[c]); w < name_width; ++w) out << ' ';
      out << rs.columns[c] << ": " << Cell(rs.rows[r], c) << '\n';
    }
  }
  if (elapsed) PrintSummary(out, rs.rows.size(), *elapsed);
}

void PrintBatch(std::ostream& out, const ResultSet& rs, bool with_header) {
  if (rs.rows.empty()) return;
  if (with_header) {
    for (size_t c = 0; c < rs.columns.size(); ++c) out << (c ? "\t" : "") << rs.columns[c];
    out << '\n';
  }
  for (const auto& row : rs.rows) {
    for (size_t c = 0; c < rs.columns.size(); ++c) {
      if (c) out << '\t';
      for (char ch : Cell(row, c)) {
        switch (ch) {
          case '\0': out << "\\0"; break;
          case '\t': out << "\\t"; break;
          case '\n': out << "\\n"; break;
          case '\\': out << "\\\\"; break;
          default: out << ch; break;
        }
      }
    }
    out << '\n';
  }
}

void PrintOk(std::ostream& out, const OkResult& ok, Elapsed elapsed) {
  out << "Query OK, " << ok.affected_rows << (ok.affected_rows == 1 ? " row affected" : " rows affected");
  if (!ok.warnings.empty()) {
    out << ", " << ok.warnings.size() << (ok.warnings.size() == 1 ? " warning" : " warnings");
  }
  out << " (" << FormatElapsed(elapsed) << ")\n";
  if (!ok.info.empty()) out << ok.info << '\n';
  for (const auto& w : ok.warnings) out << "Warning (Code 1105): " << w << '\n';
}

MysqlError ToMysqlError(const absl::Status& status) {
  const std::string_view msg(status.message().data(), status.message().size());
  auto contains = [&](std::string_view part) { return msg.find(part) != std::string_view::npos; };
  // The server's messages follow MySQL's wording (server/variables.cc), so
  // the specific MySQL errors can be told apart by it.
  if (msg.starts_with("You have an error in your SQL syntax")) return {1064, "42000"};
  if (msg == "No query specified") return {1065, "42000"};
  if (contains("Unknown system variable")) return {1193, "HY000"};
  if (contains("can't be set to the value")) return {1231, "42000"};
  if (contains("is a read only variable")) return {1238, "HY000"};
  if (msg.starts_with("Can't open shared library")) return {1126, "HY000"};
  if (contains("cannot be performed with a running")) return {3021, "HY000"};
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument: return {1210, "HY000"};
    case absl::StatusCode::kFailedPrecondition: return {1290, "HY000"};
    case absl::StatusCode::kUnavailable: return {2003, "HY000"};
    case absl::StatusCode::kDeadlineExceeded: return {2013, "HY000"};
    case absl::StatusCode::kCancelled: return {1317, "70100"};
    case absl::StatusCode::kUnimplemented: return {1235, "42000"};
    // MySQL's ER_SPECIFIC_ACCESS_DENIED_ERROR and ER_ACCESS_DENIED_ERROR.
    case absl::StatusCode::kPermissionDenied: return {1227, "42000"};
    case absl::StatusCode::kUnauthenticated: return {1045, "28000"};
    default: return {1105, "HY000"};
  }
}

void PrintError(std::ostream& out, const absl::Status& status, std::optional<int> line) {
  if (status.ok()) return;
  const MysqlError e = ToMysqlError(status);
  out << "ERROR " << e.code << " (" << e.sqlstate << ")";
  if (line) out << " at line " << *line;
  out << ": " << status.message() << '\n';
}

}  // namespace relaykv
