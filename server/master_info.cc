#include "server/master_info.h"

#include "server/variables.h"
#include "storage/file.h"

namespace relaykv {
namespace {

std::filesystem::path InfoPath(const std::filesystem::path& data_dir) {
  return data_dir / "master.info";
}

}  // namespace

absl::Status ValidateHostPort(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError("primary address '" + address + "' is not HOST:PORT");
  }
  const std::string port = address.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) == 0 ||
      std::stoul(port) > 65535) {
    return absl::InvalidArgumentError("primary address '" + address +
                                      "' has a bad port (expected 1..65535)");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> LoadMasterInfo(const std::filesystem::path& data_dir) {
  if (!std::filesystem::exists(InfoPath(data_dir))) return std::string();
  auto settings = ReadIniSection(InfoPath(data_dir), "master");
  if (!settings.ok()) return settings.status();
  for (const auto& [name, value] : *settings) {
    if (name == "address") {
      if (auto s = ValidateHostPort(value); !s.ok()) {
        return absl::DataLossError(InfoPath(data_dir).string() + ": " + std::string(s.message()));
      }
      return value;
    }
  }
  return std::string();
}

absl::Status SaveMasterInfo(const std::filesystem::path& data_dir, const std::string& address) {
  if (auto s = ValidateHostPort(address); !s.ok()) return s;
  return WriteFileAtomically(InfoPath(data_dir),
                             "# Written by CHANGE MASTER TO / --replicate-from.\n[master]\naddress = " +
                                 address + "\n");
}

absl::Status ClearMasterInfo(const std::filesystem::path& data_dir) {
  std::error_code ec;
  if (!std::filesystem::remove(InfoPath(data_dir), ec) && ec) {
    return absl::InternalError("cannot remove " + InfoPath(data_dir).string() + ": " + ec.message());
  }
  return SyncDir(data_dir);
}

}  // namespace relaykv
