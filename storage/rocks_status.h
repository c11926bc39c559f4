// rocksdb::Status -> absl::Status for the state machine's files, the
// message naming what failed: corruption is DATA_LOSS, a full disk
// RESOURCE_EXHAUSTED, anything else INTERNAL.
#pragma once

#include <rocksdb/status.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace relaykv {

inline absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = "rocksdb: " + std::string(what) + ": " + s.ToString();
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsIOError() && s.subcode() == rocksdb::Status::kNoSpace) {
    return absl::ResourceExhaustedError(msg);
  }
  return absl::InternalError(msg);
}

}  // namespace relaykv
