// ReusedMessageLimit: when to drop a protobuf message that a stream reuses
// write after write (server/watch_service.cc). Clear() keeps every
// repeated slot and each string's capacity, so a reused message holds the
// largest contents each slot ever had; this bounds that to about
// 3 × max_bytes (what it held at the last check, what was written since,
// and string slack) without SpaceUsedLong on every write — it walks every
// field by reflection (2% of the machine, per message, with 16 watchers).
//
// Threads: one per instance (the stream's).
#pragma once

#include <cstddef>

#include <google/protobuf/message.h>

namespace relaykv {

class ReusedMessageLimit {
 public:
  explicit ReusedMessageLimit(size_t max_bytes) : max_bytes_(max_bytes) {}

  // After `msg` was serialized (its cached size set, as gRPC's Write does):
  // whether to replace it by a fresh one. A big message is dropped at
  // once; otherwise what it keeps is measured once the bytes written since
  // the last measurement pass max_bytes.
  bool ShouldDrop(const google::protobuf::Message& msg) {
    const size_t size = static_cast<size_t>(msg.GetCachedSize());
    written_ += size;
    if (size <= max_bytes_ && written_ <= max_bytes_) return false;
    written_ = 0;
    return size > max_bytes_ || msg.SpaceUsedLong() > max_bytes_;
  }

 private:
  const size_t max_bytes_;
  size_t written_ = 0;  // serialized bytes since the last measurement
};

}  // namespace relaykv
