#include "server/conditional_write.h"

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "server/limits.h"
#include "storage/gtid.h"

namespace relaykv {

absl::Status ValidateConditional(std::span<const v1::Mutation> then_mutations,
                                 const Condition& condition) {
  if (condition.compares.empty() && then_mutations.empty() &&
      condition.else_mutations.empty()) {
    return absl::InvalidArgumentError("batch has no mutations");
  }
  if (condition.compares.size() > kMaxTxnCompares) {
    return absl::InvalidArgumentError("transaction has " +
                                      std::to_string(condition.compares.size()) +
                                      " compares; the limit is " +
                                      std::to_string(kMaxTxnCompares));
  }
  if (condition.compares.empty() && !condition.else_mutations.empty()) {
    // Every compare of none holds: the else branch could never run.
    return absl::InvalidArgumentError(
        "transaction has an else branch but no compares, so the else branch would never run; "
        "add a compare or send its mutations as the then branch");
  }
  size_t i = 0;
  for (const v1::Compare& c : condition.compares) {
    const std::string where = " (compare " + std::to_string(i++) + ")";
    if (auto s = ValidateKey(c.key()); !s.ok()) {
      return absl::InvalidArgumentError(std::string(s.message()) + where);
    }
    switch (c.target()) {
      case v1::Compare::VERSION:
      case v1::Compare::ABSENT:
      case v1::Compare::VALUE:
        break;
      default:
        return absl::InvalidArgumentError("compare target " + std::to_string(c.target()) +
                                          " is not VERSION, VALUE or ABSENT" + where);
    }
    // A field the target does not read is refused, not ignored: a caller
    // who set it meant another compare than the one it would get.
    const bool has_version = c.version().epoch() != 0 || c.version().seq() != 0;
    if (c.target() != v1::Compare::VERSION && has_version) {
      return absl::InvalidArgumentError("compare has a version but its target is not VERSION" +
                                        where);
    }
    if (c.target() != v1::Compare::VALUE && !c.value().empty()) {
      return absl::InvalidArgumentError("compare has a value but its target is not VALUE" + where);
    }
    if (c.value().size() > kMaxValueBytes) {
      return absl::InvalidArgumentError("compare value is " + std::to_string(c.value().size()) +
                                        " bytes; the limit is " + std::to_string(kMaxValueBytes) +
                                        where);
    }
  }
  if (!then_mutations.empty()) {
    if (auto s = ValidateMutations(then_mutations); !s.ok()) {
      return absl::InvalidArgumentError("then branch: " + std::string(s.message()));
    }
  }
  if (!condition.else_mutations.empty()) {
    if (auto s = ValidateMutations(condition.else_mutations); !s.ok()) {
      return absl::InvalidArgumentError("else branch: " + std::string(s.message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> CompareAll(std::span<const v1::Compare> compares, PendingKeys* keys,
                                uint64_t before) {
  // One lookup per key, with its value only if a VALUE compare needs it: a
  // small request must not copy big values once per compare on the thread
  // every write waits behind (review s34-txn F1). Hashed, so that many long
  // keys cost no quadratic comparing either (review s34-last F2).
  std::unordered_map<std::string_view, bool> wants_value;
  for (const v1::Compare& c : compares) {
    wants_value[c.key()] |= c.target() == v1::Compare::VALUE;
  }
  std::unordered_map<std::string_view, std::optional<StateMachine::Versioned>> looked;
  for (const v1::Compare& c : compares) {
    auto it = looked.find(c.key());
    if (it == looked.end()) {
      auto current = keys->Lookup(c.key(), before, wants_value.at(c.key()));
      if (!current.ok()) return current.status();
      it = looked.emplace(c.key(), *std::move(current)).first;
    }
    const std::optional<StateMachine::Versioned>& current = it->second;
    bool holds = false;
    switch (c.target()) {
      case v1::Compare::ABSENT: holds = !current.has_value(); break;
      case v1::Compare::VALUE: holds = current.has_value() && current->value == c.value(); break;
      case v1::Compare::VERSION:
        holds = current.has_value() && current->version == GtidFromProto(c.version());
        break;
      default: holds = false; break;  // refused by ValidateConditional
    }
    if (!holds) return false;
  }
  return true;
}

absl::Status UnresolvedConditionAnswer(const absl::Status& unresolved, const absl::Status& event) {
  if (event.ok()) return unresolved;
  return absl::Status(unresolved.code(), std::string(unresolved.message()) +
                                             "; then its empty event failed too: " +
                                             std::string(event.message()));
}

}  // namespace relaykv
