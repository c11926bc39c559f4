// The relaykv CLI's option files, as the mysql client reads them: the
// [client] section (shared by every client program), then [relaykv], of
// --defaults-file or else ~/.my.cnf when it exists. my.cnf syntax: '#'/';'
// comments, `name = value`, dashes read as '_', `loose-` dropped.
//
// Only `host`, `port`, `etcd` (HOST:PORT[,HOST:PORT...]) and `cluster`
// mean something to relaykv; other names (user, password, ... for other
// clients sharing [client]) are ignored. A bad port is INVALID_ARGUMENT
// naming the file and line. Single-threaded, at start.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace relaykv {

struct ClientFileOptions {
  std::optional<std::string> host;
  std::optional<int> port;
  std::optional<std::string> etcd;     // etcd endpoints: find the primary there
  std::optional<std::string> cluster;  // with etcd: whose primary
};

// `path` must exist (NOT_FOUND naming it otherwise).
[[nodiscard]] absl::StatusOr<ClientFileOptions> ReadClientOptionFile(
    const std::filesystem::path& path);

// The same, of the file's contents (`file_name` only names it in errors).
[[nodiscard]] absl::StatusOr<ClientFileOptions> ParseClientOptions(std::string_view contents,
                                                                   const std::string& file_name);

// $HOME/.my.cnf, or nullopt when HOME is unset or the file is absent.
std::optional<std::filesystem::path> DefaultClientOptionFile();

}  // namespace relaykv
