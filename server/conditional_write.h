// Conditional writes (WriteRequest with compares; README "Conditional
// writes"): validation of the request, and the evaluation that picks the
// branch at GTID assignment (Node::Impl), against PendingKeys.
#pragma once

#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/event.pb.h"
#include "proto/kv.pb.h"
#include "server/pending_keys.h"

namespace relaykv {

// What a conditional write carries until its branch is picked.
struct Condition {
  std::vector<v1::Compare> compares;
  std::vector<v1::Mutation> else_mutations;
};

// INVALID_ARGUMENT naming the problem: a compare with no target or a bad
// key, a VALUE over the value limit, a version or value its target does not
// read, more than kMaxTxnCompares compares, an else branch without
// compares (it could never run), either branch failing ValidateMutations'
// checks, or nothing at all.
[[nodiscard]] absl::Status ValidateConditional(std::span<const v1::Mutation> then_mutations,
                                               const Condition& condition);

// Whether every compare holds in the state writes before seq `before`
// leave. UNAVAILABLE if that state is not known yet (PendingKeys::Lookup).
[[nodiscard]] absl::StatusOr<bool> CompareAll(std::span<const v1::Compare> compares,
                                              PendingKeys* keys, uint64_t before);

// The answer to a conditional write whose branch could not be picked at
// assignment (`unresolved`: CompareAll's error, not OK). Its event went out
// with no mutations, so nothing was written whatever became of that event:
// `unresolved` is the answer even when the event's own wait failed
// (`event`), which would say "outcome unknown" or "do not retry" (review
// s34-txn F3). That failure is named too: it may say why a retry will not
// help yet.
[[nodiscard]] absl::Status UnresolvedConditionAnswer(const absl::Status& unresolved,
                                                     const absl::Status& event);

}  // namespace relaykv
