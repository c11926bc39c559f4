// Limits on what one write may carry, checked before anything is written so
// that a bad request changes nothing. Messages name the limit:
//   "key is 70000 bytes; the limit is 65536".
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "absl/status/status.h"
#include "proto/event.pb.h"

namespace relaykv {

inline constexpr size_t kMaxKeyBytes = 64 * 1024;
inline constexpr size_t kMaxValueBytes = 16 * 1024 * 1024;
inline constexpr size_t kMaxBatchMutations = 10000;
// Compares in one conditional write: each is checked on the binlog's group
// leader, ahead of every other write (etcd allows 128 operations per Txn).
inline constexpr size_t kMaxTxnCompares = 128;
inline constexpr size_t kMaxBatchBytes = 32 * 1024 * 1024;  // keys + values
// gRPC messages must fit the largest batch plus framing.
inline constexpr int kMaxGrpcMessageBytes = 48 * 1024 * 1024;

// OK, or INVALID_ARGUMENT naming the first violated limit (empty key, key
// or value too big, too many mutations, batch too big, op unset
// (OP_UNSPECIFIED) or unknown).
[[nodiscard]] absl::Status ValidateMutations(std::span<const v1::Mutation> mutations);
// The same checks on the mutations of an event received from a primary
// (server/replica_io.cc), except that an event without mutations (the
// marker that starts an epoch) is OK.
[[nodiscard]] absl::Status ValidateEventMutations(const v1::Event& event);
// For reads: empty or oversized key.
[[nodiscard]] absl::Status ValidateKey(std::string_view key);

}  // namespace relaykv
