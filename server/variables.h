// The server's variables: one table (variables.cc) gives each one's name,
// MySQL 8 alias, type, default, range and whether SET GLOBAL may change it;
// code and docs refer to that table. A Variables object holds the current
// values of one node.
//
// Settings are applied in MySQL's order: defaults, then the config file,
// then the command line, then relaykvd-auto.cnf in the data dir (SET
// PERSIST). SET GLOBAL changes the running node only.
//
// Threads: Variables is thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace relaykv {

enum class VariableType { kBool, kUint, kEnum, kString };  // kString: as given, trimmed

struct VariableDef {
  std::string_view name;    // canonical, lower case
  std::string_view alias;   // MySQL 8 spelling (source/replica), or empty
  VariableType type;
  std::string_view default_value;
  uint64_t min = 0;         // kUint range, inclusive
  uint64_t max = 0;
  std::vector<std::string_view> choices;  // kEnum values, upper case
  bool dynamic = true;      // SET GLOBAL allowed
  std::string_view help;
};

const std::vector<VariableDef>& AllVariableDefs();
// By either spelling, case-insensitive; nullptr if unknown.
const VariableDef* FindVariable(std::string_view name);
// The canonical text of `value` for `def` ("1"/"on"/"true" -> "ON", enum
// upper-cased), or INVALID_ARGUMENT naming the variable and the problem.
absl::StatusOr<std::string> NormalizeValue(const VariableDef& def, std::string_view value);

// SQL LIKE: % any run, _ any one char, case-insensitive, \ escapes.
bool SqlLike(std::string_view pattern, std::string_view text);

using Settings = std::vector<std::pair<std::string, std::string>>;  // name, value; in order

// Reads `name = value` lines of section [section] of an INI file (my.cnf
// style: '#'/';' comments, `loose-` prefixes dropped, dashes read as '_').
absl::StatusOr<Settings> ReadIniSection(const std::filesystem::path& path, std::string_view section);

// One `name = value` line of an option file, as ReadIniSection reads it,
// with where it came from: for errors naming the file and line, and for
// MySQL's rule that an unknown `loose-` option is a warning, not an error.
struct IniEntry {
  std::string name;   // lower case, dashes read as '_', `loose-` dropped
  std::string value;  // "ON" for a bare `name`
  int line = 0;       // 1-based
  bool loose = false; // written `loose-name`
};
// Errors name the file and line (a bad section header, a line without a name).
absl::StatusOr<std::vector<IniEntry>> ReadIniEntries(const std::filesystem::path& path,
                                                     std::string_view section);
// The same, of a file's contents `text` (`path` only names it in errors).
absl::StatusOr<std::vector<IniEntry>> ParseIniEntries(std::string_view text,
                                                      const std::filesystem::path& path,
                                                      std::string_view section);

class Variables {
 public:
  Variables();

  // Startup: validates and applies, dynamic or not.
  [[nodiscard]] absl::Status Apply(const Settings& settings);
  // SET GLOBAL: dynamic variables only. Returns the canonical name.
  [[nodiscard]] absl::StatusOr<std::string> SetGlobal(std::string_view name, std::string_view value);

  std::string Get(std::string_view canonical_name) const;
  uint64_t GetUint(std::string_view canonical_name) const;
  bool GetBool(std::string_view canonical_name) const;
  // Sorted by name; filtered by a LIKE pattern matched against either
  // spelling (the row shows the spelling that matched, canonical first).
  std::vector<std::pair<std::string, std::string>> List(std::string_view like) const;

  // The values of `names` (canonical) at one moment, and how many changes
  // were stored by then. Hooks of concurrent changes run concurrently, and
  // in any order: one that configures from several variables (semi-sync,
  // from four) reads them so, and applies a read only if none newer was
  // applied, or an earlier SET's hook could apply what it read after a
  // later SET applied its own (review s49b M1).
  std::vector<std::string> GetAll(std::initializer_list<std::string_view> names,
                                  uint64_t* version) const;

  // Called after every change with the canonical name and new value, with
  // no lock held (it may run commits' callbacks, which may SET again).
  void set_on_change(std::function<void(const std::string&, const std::string&)> fn);

 private:
  mutable std::mutex mu_;
  uint64_t version_ = 0;  // GUARDED_BY(mu_): changes stored so far
  std::map<std::string, std::string, std::less<>> values_;  // GUARDED_BY(mu_)
  std::function<void(const std::string&, const std::string&)> on_change_;
};

// relaykvd-auto.cnf: the SET PERSIST store in the data dir.
class PersistedSettings {
 public:
  explicit PersistedSettings(std::filesystem::path path) : path_(std::move(path)) {}
  [[nodiscard]] absl::StatusOr<Settings> Load() const;
  // Records one setting (replacing an earlier one), atomically: the value
  // `vars` holds once this file's lock is taken, so that of two concurrent
  // SET PERSISTs of one variable the file keeps the one in force, whichever
  // writes last (review s49c L2).
  [[nodiscard]] absl::Status Persist(const std::string& name, const Variables& vars);
  // Forgets one setting (empty name: all). NOT_FOUND if it was not persisted.
  [[nodiscard]] absl::Status Forget(const std::string& name);

 private:
  std::filesystem::path path_;
  std::mutex mu_;  // serializes read-modify-write of the file
};

}  // namespace relaykv
