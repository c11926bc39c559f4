// relaykvd's log (README "Logs"): one line per event,
//   2026-11-26T15:04:05.123456Z info [rkv-io] replica IO thread: connected ...
// a UTC timestamp with microseconds and the Z offset, the level, the name of
// the thread that logged (NameThisThread; gRPC's threads carry gRPC's
// names), the message. To stderr, or to --log-file, which SIGHUP reopens
// (logrotate: rename, then `kill -HUP`; nothing is lost: lines written
// between the rename and the reopen land in the renamed file).
//
// Threads: InstallLogging() once, on the main thread, before other threads
// log; ReopenLogFile() and SetLogLevel() from any thread.
// Process-global (spdlog's default logger): relaykvd's, not a Node's.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "spdlog/common.h"

namespace relaykv {

struct LogOptions {
  std::filesystem::path file;  // empty: stderr
  std::string level = "info";  // trace, debug, info, warning, error, critical
};

// The spdlog level for "trace".."critical" ("warn" too), any case; the
// error names the accepted spellings.
[[nodiscard]] absl::StatusOr<spdlog::level::level_enum> ParseLogLevel(std::string_view name);

// Makes spdlog's default logger relaykvd's: the format above, to stderr or
// the file (created 0600 if missing, appended to). Errors: the file cannot
// be opened (named), or a bad level.
[[nodiscard]] absl::Status InstallLogging(const LogOptions& options);

// SIGHUP: closes and reopens --log-file at its path (a no-op on stderr).
// A failure is returned and the old file stays in use.
[[nodiscard]] absl::Status ReopenLogFile();

// SET GLOBAL log_level / --log-level after startup.
[[nodiscard]] absl::Status SetLogLevel(std::string_view name);

}  // namespace relaykv
