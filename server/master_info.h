// master.info in the data dir: which primary this node replicates from
// (CHANGE MASTER TO / --replicate-from), kept across restarts.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace relaykv {

// "" when the node has never been pointed at a primary (no master.info).
// A master.info without a valid address is DATA_LOSS naming the file: the
// node must not start as a primary because its file was damaged.
[[nodiscard]] absl::StatusOr<std::string> LoadMasterInfo(const std::filesystem::path& data_dir);
// Saves "HOST:PORT" atomically (durable before returning).
[[nodiscard]] absl::Status SaveMasterInfo(const std::filesystem::path& data_dir,
                                          const std::string& address);
// Forgets the primary (RESET SLAVE ALL), durably. OK if there was none.
[[nodiscard]] absl::Status ClearMasterInfo(const std::filesystem::path& data_dir);
// Checks "HOST:PORT" (host as ValidatePrimaryHost, port 1..65535).
[[nodiscard]] absl::Status ValidateHostPort(const std::string& address);
// CHANGE MASTER TO's values, each checked on its own so that the
// INVALID_ARGUMENT names it: MASTER_HOST non-empty, without control
// characters or spaces (it is saved as one line of master.info and must read
// back the same); MASTER_PORT 1..65535.
[[nodiscard]] absl::Status ValidatePrimaryHost(std::string_view host);
[[nodiscard]] absl::Status ValidatePrimaryPort(uint32_t port);

}  // namespace relaykv
