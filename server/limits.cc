#include "server/limits.h"

#include <string>

namespace relaykv {
namespace {

absl::Status TooBig(std::string_view what, size_t size, size_t limit) {
  return absl::InvalidArgumentError(std::string(what) + " is " + std::to_string(size) +
                                    " bytes; the limit is " + std::to_string(limit));
}

}  // namespace

absl::Status ValidateKey(std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("key is empty; keys must be 1 to 65536 bytes");
  if (key.size() > kMaxKeyBytes) return TooBig("key", key.size(), kMaxKeyBytes);
  return absl::OkStatus();
}

absl::Status ValidateMutations(std::span<const v1::Mutation> mutations) {
  if (mutations.empty()) return absl::InvalidArgumentError("batch has no mutations");
  if (mutations.size() > kMaxBatchMutations) {
    return absl::InvalidArgumentError("batch has " + std::to_string(mutations.size()) +
                                      " mutations; the limit is " +
                                      std::to_string(kMaxBatchMutations));
  }
  size_t bytes = 0;
  for (size_t i = 0; i < mutations.size(); ++i) {
    const v1::Mutation& m = mutations[i];
    const std::string where = mutations.size() > 1 ? " (mutation " + std::to_string(i) + ")" : "";
    if (m.op() != v1::Mutation::PUT && m.op() != v1::Mutation::DELETE) {
      return absl::InvalidArgumentError("unknown mutation op " + std::to_string(m.op()) + where);
    }
    if (auto s = ValidateKey(m.key()); !s.ok()) {
      return absl::InvalidArgumentError(std::string(s.message()) + where);
    }
    if (m.op() == v1::Mutation::DELETE && !m.value().empty()) {
      return absl::InvalidArgumentError("a DELETE carries no value" + where);
    }
    if (m.value().size() > kMaxValueBytes) {
      return absl::InvalidArgumentError(
          std::string(TooBig("value", m.value().size(), kMaxValueBytes).message()) + where);
    }
    bytes += m.key().size() + m.value().size();
  }
  if (bytes > kMaxBatchBytes) return TooBig("batch", bytes, kMaxBatchBytes);
  return absl::OkStatus();
}

}  // namespace relaykv
