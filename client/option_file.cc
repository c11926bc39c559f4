#include "client/option_file.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"

namespace relaykv {
namespace {

std::string Trim(std::string s) {
  absl::StripAsciiWhitespace(&s);
  return s;
}

// A value as mysql reads it: a '#' outside quotes starts a comment, one
// pair of enclosing quotes is dropped.
std::string Value(const std::string& raw) {
  std::string v;
  char quote = 0;
  for (char c : raw) {
    if (quote == 0 && c == '#') break;
    if (c == '"' || c == '\'') quote = quote == 0 ? c : (quote == c ? 0 : quote);
    v += c;
  }
  v = Trim(v);
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) {
    v = v.substr(1, v.size() - 2);
  }
  return v;
}

}  // namespace

absl::StatusOr<ClientFileOptions> ReadClientOptionFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("cannot read option file " + path.string());
  std::stringstream text;
  text << in.rdbuf();
  return ParseClientOptions(text.str(), path.string());
}

absl::StatusOr<ClientFileOptions> ParseClientOptions(std::string_view contents,
                                                     const std::string& file_name) {
  std::istringstream text{std::string(contents)};
  ClientFileOptions out;
  std::string line, section;
  int lineno = 0;
  const std::string where_prefix = file_name + ":";
  while (std::getline(text, line)) {
    ++lineno;
    const std::string where = where_prefix + std::to_string(lineno) + ": ";
    std::string l = Trim(line);
    if (l.empty() || l[0] == '#' || l[0] == ';') continue;
    if (l.front() == '[') {
      if (l.back() != ']') return absl::InvalidArgumentError(where + "bad section header '" + l + "'");
      section = Trim(l.substr(1, l.size() - 2));
      absl::AsciiStrToLower(&section);
      continue;
    }
    // [relaykv] comes after [client] in the file's order only if written
    // so; as mysql, the last setting read wins.
    if (section != "client" && section != "relaykv") continue;
    const auto eq = l.find('=');
    std::string name = Trim(eq == std::string::npos ? l : l.substr(0, eq));
    absl::AsciiStrToLower(&name);
    if (name.rfind("loose-", 0) == 0 || name.rfind("loose_", 0) == 0) name = name.substr(6);
    std::replace(name.begin(), name.end(), '-', '_');
    const std::string value = eq == std::string::npos ? "" : Value(l.substr(eq + 1));
    if (name == "host") {
      out.host = value;
    } else if (name == "etcd") {
      out.etcd = value;
    } else if (name == "cluster") {
      out.cluster = value;
    } else if (name == "port") {
      int port = -1;
      try {
        size_t used = 0;
        port = std::stoi(value, &used);
        if (used != value.size()) port = -1;
      } catch (const std::exception&) {
      }
      if (port < 1 || port > 65535) {
        return absl::InvalidArgumentError(where + "port must be 1..65535, got '" + value + "'");
      }
      out.port = port;
    }
  }
  return out;
}

std::optional<std::filesystem::path> DefaultClientOptionFile() {
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') return std::nullopt;
  std::filesystem::path p = std::filesystem::path(home) / ".my.cnf";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(p, ec)) return std::nullopt;
  return p;
}

}  // namespace relaykv
