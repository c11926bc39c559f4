#include "server/limits.h"

#include <string>

namespace relaykv {
namespace {

absl::Status TooBig(std::string_view what, size_t size, size_t limit) {
  return absl::InvalidArgumentError(std::string(what) + " is " + std::to_string(size) +
                                    " bytes; the limit is " + std::to_string(limit));
}

// Mutation.op: OP_UNSPECIFIED (the zero value, what an unset field reads as)
// and numbers this build does not know are refused, never taken for a PUT.
absl::Status ValidateOp(v1::Mutation::Op op, const std::string& where) {
  if (op == v1::Mutation::PUT || op == v1::Mutation::DELETE) return absl::OkStatus();
  if (op == v1::Mutation::OP_UNSPECIFIED) {
    return absl::InvalidArgumentError("Mutation.op is OP_UNSPECIFIED (unset); set PUT or DELETE" +
                                      where);
  }
  return absl::InvalidArgumentError("Mutation.op " + std::to_string(op) +
                                    " is not a known op (PUT or DELETE)" + where);
}

// The checks of ValidateMutations over any range of v1::Mutation (a span from
// a request, an event's RepeatedPtrField).
template <typename Range>
absl::Status ValidateRange(const Range& mutations, size_t count) {
  if (count > kMaxBatchMutations) {
    return absl::InvalidArgumentError("batch has " + std::to_string(count) +
                                      " mutations; the limit is " +
                                      std::to_string(kMaxBatchMutations));
  }
  size_t bytes = 0;
  size_t i = 0;
  for (const v1::Mutation& m : mutations) {
    const std::string where = count > 1 ? " (mutation " + std::to_string(i) + ")" : "";
    ++i;
    if (auto s = ValidateOp(m.op(), where); !s.ok()) return s;
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

}  // namespace

absl::Status ValidateKey(std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("key is empty; keys must be 1 to 65536 bytes");
  if (key.size() > kMaxKeyBytes) return TooBig("key", key.size(), kMaxKeyBytes);
  return absl::OkStatus();
}

absl::Status ValidateMutations(std::span<const v1::Mutation> mutations) {
  if (mutations.empty()) return absl::InvalidArgumentError("batch has no mutations");
  return ValidateRange(mutations, mutations.size());
}

absl::Status ValidateEventMutations(const v1::Event& event) {
  return ValidateRange(event.mutations(), static_cast<size_t>(event.mutations_size()));
}

}  // namespace relaykv
