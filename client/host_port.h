// HOST:PORT checks shared by relaykv::Client and its primary discovery.
#pragma once

#include <string>

namespace relaykv {

// "host:port" with a non-empty host and a decimal port ("[::1]:7400" too).
inline bool IsHostPort(const std::string& a) {
  const auto colon = a.rfind(':');
  return colon != std::string::npos && colon > 0 && colon + 1 < a.size() &&
         a.find_first_not_of("0123456789", colon + 1) == std::string::npos;
}

}  // namespace relaykv
