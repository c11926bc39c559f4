// master.info in the data dir: which primary this node replicates from
// (CHANGE MASTER TO / --replicate-from), kept across restarts.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "relaykv/tls.h"

namespace relaykv {

// The primary and how to reach it: master.info's [master] section
// (address = HOST:PORT; ssl = ON|OFF; ssl_ca, ssl_cert, ssl_key = paths).
struct MasterInfo {
  std::string address;  // "" : not a replica
  TlsOptions tls;       // MASTER_SSL*; paths only (one line each in the file)
};

// address "" when the node has never been pointed at a primary (no
// master.info). A master.info without a valid address is DATA_LOSS naming
// the file: the node must not start as a primary because its file was
// damaged.
[[nodiscard]] absl::StatusOr<MasterInfo> LoadMasterInfo(const std::filesystem::path& data_dir);
// Saves it atomically (durable before returning; the file is 0600).
// INVALID_ARGUMENT for a bad address or a path with a control character.
[[nodiscard]] absl::Status SaveMasterInfo(const std::filesystem::path& data_dir,
                                          const MasterInfo& info);
// `current` changed by CHANGE MASTER TO's MASTER_SSL* options.
MasterInfo WithTls(MasterInfo current, const ChangeMasterTls& change);
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
