// A key as an error message shows it: quoted, escaped, cut at 64 bytes.
#pragma once

#include <string>
#include <string_view>

#include "absl/strings/escaping.h"

namespace relaykv {

inline std::string ShowKey(std::string_view key) {
  constexpr size_t kShown = 64;
  const std::string_view shown = key.substr(0, kShown);
  // Debian's Abseil has its own string_view.
  std::string out = "'" + absl::CEscape(absl::string_view(shown.data(), shown.size())) + "'";
  if (key.size() > kShown) out += "... (" + std::to_string(key.size()) + " bytes)";
  return out;
}

}  // namespace relaykv
