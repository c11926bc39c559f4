// relaykvd's option parsing as mysqld's (README "Running a server"):
// MySQL's `loose-` prefix, and the [relaykvd] section of --defaults-file
// with errors naming the file and line. Main-thread only, at startup.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "server/variables.h"

namespace relaykv {

// `--loose-NAME[=VALUE]` is `--NAME[=VALUE]` if `app` knows NAME, else
// dropped with a warning (returned). A value must be joined with '=' for an
// unknown name to be dropped whole. *args gets argv (argv[0] included) with
// the prefixes resolved.
std::vector<std::string> StripLooseOptions(const CLI::App& app, int argc, char** argv,
                                           std::vector<std::string>* args);

// What the [relaykvd] section may set besides variables: the server options
// mysqld also reads there (datadir, port, bind-address, log-error, ...).
// The command line wins over each.
struct FileOptions {
  std::optional<std::string> data_dir, listen, bind_address, log_file, http_listen, replicate_from,
      roles_file;
  std::optional<int> port;
};

// Read when no --defaults-file is given (and no --no-defaults), if it exists:
// where the .deb installs it, as mysqld reads /etc/my.cnf.
inline constexpr const char* kDefaultConfigFile = "/etc/relaykv/relaykvd.cnf";

// Reads the [relaykvd] section of `path`: server options into *file,
// variables (validated) into *variables. An unknown name or a bad value is
// INVALID_ARGUMENT naming the file and line, unless written `loose-NAME`
// (then a warning, appended to *warnings).
[[nodiscard]] absl::Status ReadConfig(const std::string& path, FileOptions* file,
                                      Settings* variables, std::vector<std::string>* warnings);
// The same, of the [relaykvd] entries already read from `path` (which
// names it in errors): ReadConfig without the file, for the fuzzer.
[[nodiscard]] absl::Status ApplyConfigEntries(const std::string& path,
                                              const std::vector<IniEntry>& entries,
                                              FileOptions* file, Settings* variables,
                                              std::vector<std::string>* warnings);

}  // namespace relaykv
