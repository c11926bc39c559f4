#include "server/master_info.h"

#include "absl/strings/escaping.h"

#include "server/variables.h"
#include "storage/file.h"

namespace relaykv {
namespace {

std::filesystem::path InfoPath(const std::filesystem::path& data_dir) {
  return data_dir / "master.info";
}

// A value for a message: quoted, control characters escaped.
std::string Quoted(std::string_view value) {
  return "'" + absl::CHexEscape(absl::string_view(value.data(), value.size())) + "'";
}

// What is wrong with a primary's host name, or "" if nothing. A control
// character (a newline above all) would break master.info, which holds the
// host on one line; a space would not read back (values are trimmed).
std::string HostProblem(std::string_view host) {
  if (host.empty()) return "is empty";
  for (size_t i = 0; i < host.size(); ++i) {
    const auto c = static_cast<unsigned char>(host[i]);
    if (c < 0x20 || c == 0x7f) {
      constexpr char kHex[] = "0123456789abcdef";
      return "contains a control character (byte " + std::to_string(i) + " is 0x" +
             kHex[c >> 4] + kHex[c & 0xf] + ")";
    }
    if (c == ' ') return "contains a space (byte " + std::to_string(i) + ")";
  }
  return "";
}

}  // namespace

absl::Status ValidatePrimaryHost(std::string_view host) {
  const std::string problem = HostProblem(host);
  if (problem.empty()) return absl::OkStatus();
  if (host.empty()) {
    return absl::InvalidArgumentError(
        "MASTER_HOST is empty; give the primary's host name or address");
  }
  return absl::InvalidArgumentError("MASTER_HOST " + Quoted(host) + " " + problem);
}

absl::Status ValidatePrimaryPort(uint32_t port) {
  if (port >= 1 && port <= 65535) return absl::OkStatus();
  return absl::InvalidArgumentError("MASTER_PORT " + std::to_string(port) + " is outside 1..65535");
}

absl::Status ValidateHostPort(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError("primary address " + Quoted(address) + " is not HOST:PORT");
  }
  if (std::string problem = HostProblem(std::string_view(address).substr(0, colon));
      !problem.empty()) {
    return absl::InvalidArgumentError("primary address " + Quoted(address) + ": the host " +
                                      problem);
  }
  const std::string port = address.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) == 0 ||
      std::stoul(port) > 65535) {
    return absl::InvalidArgumentError("primary address " + Quoted(address) +
                                      " has a bad port (expected 1..65535)");
  }
  return absl::OkStatus();
}

absl::StatusOr<MasterInfo> LoadMasterInfo(const std::filesystem::path& data_dir) {
  const std::filesystem::path path = InfoPath(data_dir);
  if (!std::filesystem::exists(path)) return MasterInfo{};
  auto settings = ReadIniSection(path, "master");
  if (!settings.ok()) return settings.status();
  MasterInfo info;
  for (const auto& [name, value] : *settings) {
    if (name == "address") {
      if (auto s = ValidateHostPort(value); !s.ok()) {
        return absl::DataLossError(path.string() + ": " + std::string(s.message()) +
                                   "; refusing to start (fix the address, or remove the file if "
                                   "this node is to be a primary)");
      }
      info.address = value;
    } else if (name == "ssl") {
      info.tls.enabled = value == "ON" || value == "1";
    } else if (name == "ssl_ca") {
      info.tls.ca = value;
    } else if (name == "ssl_cert") {
      info.tls.cert = value;
    } else if (name == "ssl_key") {
      info.tls.key = value;
    }
  }
  if (!info.address.empty()) return info;
  // The file exists, so this node was made a replica: starting it as a
  // primary would let two nodes take writes.
  return absl::DataLossError(path.string() +
                             ": no primary address (expected 'address = HOST:PORT' under "
                             "[master]); refusing to start rather than start as a primary (fix "
                             "the address, or remove the file if this node is to be a primary)");
}

absl::Status SaveMasterInfo(const std::filesystem::path& data_dir, const MasterInfo& info) {
  if (auto s = ValidateHostPort(info.address); !s.ok()) return s;
  std::string text = "# Written by CHANGE MASTER TO / --replicate-from.\n[master]\naddress = " +
                     info.address + "\nssl = " + (info.tls.enabled ? "ON" : "OFF") + "\n";
  const std::pair<const char*, const std::string*> paths[] = {
      {"ssl_ca", &info.tls.ca}, {"ssl_cert", &info.tls.cert}, {"ssl_key", &info.tls.key}};
  for (const auto& [name, value] : paths) {
    if (value->empty()) continue;
    for (char c : *value) {
      if (static_cast<unsigned char>(c) < 0x20 || c == '#' || c == '"' || c == '\'') {
        return absl::InvalidArgumentError(std::string("MASTER_") + name + " " + Quoted(*value) +
                                          " contains a control character, '#' or a quote: give "
                                          "a plain file path");
      }
    }
    text += std::string(name) + " = " + *value + "\n";
  }
  return WriteFileAtomically(InfoPath(data_dir), text);
}

MasterInfo WithTls(MasterInfo current, const ChangeMasterTls& change) {
  if (change.ssl) current.tls.enabled = *change.ssl;
  if (change.ca) current.tls.ca = *change.ca;
  if (change.cert) current.tls.cert = *change.cert;
  if (change.key) current.tls.key = *change.key;
  return current;
}

absl::Status ClearMasterInfo(const std::filesystem::path& data_dir) {
  std::error_code ec;
  if (!std::filesystem::remove(InfoPath(data_dir), ec) && ec) {
    return absl::InternalError("cannot remove " + InfoPath(data_dir).string() + ": " + ec.message());
  }
  return SyncDir(data_dir);
}

}  // namespace relaykv
