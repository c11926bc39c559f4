// master.info in the data dir: which primary this node replicates from
// (CHANGE MASTER TO / --replicate-from), kept across restarts.
#pragma once

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace relaykv {

// "" when the node has never been pointed at a primary.
[[nodiscard]] absl::StatusOr<std::string> LoadMasterInfo(const std::filesystem::path& data_dir);
// Saves "HOST:PORT" atomically (durable before returning).
[[nodiscard]] absl::Status SaveMasterInfo(const std::filesystem::path& data_dir,
                                          const std::string& address);
// Forgets the primary (RESET SLAVE ALL), durably. OK if there was none.
[[nodiscard]] absl::Status ClearMasterInfo(const std::filesystem::path& data_dir);
// Checks "HOST:PORT" (host non-empty, port 1..65535).
[[nodiscard]] absl::Status ValidateHostPort(const std::string& address);

}  // namespace relaykv
