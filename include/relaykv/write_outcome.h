// What a failed write means for the data (public API): refused before it
// reached the binlog, so it was not written and may be retried as is; or
// its outcome is unknown — it may be in the binlog (a failover, a lost
// connection, a deadline, a fenced or closing primary cut it after it was
// queued) and may or may not survive. Retrying an unknown write can apply it
// twice: read it back first (a key's version, relaykv/txn.h) or make it
// conditional. The same statuses come from relaykv::Node and relaykv::Client.
#pragma once

#include "absl/status/status.h"

namespace relaykv {

// True for an error after which the write may exist; false for OK and for
// the refusals relaykvd gives only before a write is queued: bad input
// (INVALID_ARGUMENT, OUT_OF_RANGE), not the primary / read-only / a newer
// epoch seen / a failed compare check (FAILED_PRECONDITION), admission or
// message-size limits (RESOURCE_EXHAUSTED), and roles (PERMISSION_DENIED,
// UNAUTHENTICATED). Everything else — UNAVAILABLE, DEADLINE_EXCEEDED,
// CANCELLED, INTERNAL, UNKNOWN, ... — is unknown: an error that can come
// before the write was queued is still counted unknown when it can also come
// after.
inline bool WriteOutcomeUnknown(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return false;
    default:
      return true;
  }
}

}  // namespace relaykv
