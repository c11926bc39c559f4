// Limits on what one write may carry, checked before anything is written so
// that a bad request changes nothing. Messages name the limit:
//   "key is 70000 bytes; the limit is 65536".
#pragma once

#include <cstddef>
#include <span>

#include "absl/status/status.h"
#include "proto/event.pb.h"

namespace relaykv {

inline constexpr size_t kMaxKeyBytes = 64 * 1024;
inline constexpr size_t kMaxValueBytes = 16 * 1024 * 1024;
inline constexpr size_t kMaxBatchMutations = 10000;
inline constexpr size_t kMaxBatchBytes = 32 * 1024 * 1024;  // keys + values
// gRPC messages must fit the largest batch plus framing.
inline constexpr int kMaxGrpcMessageBytes = 48 * 1024 * 1024;

// OK, or INVALID_ARGUMENT naming the first violated limit (empty key, key
// or value too big, too many mutations, batch too big, unknown op).
[[nodiscard]] absl::Status ValidateMutations(std::span<const v1::Mutation> mutations);
// For reads: empty or oversized key.
[[nodiscard]] absl::Status ValidateKey(std::string_view key);

}  // namespace relaykv
