// Client::Watch's decoder of the server's answers (client/watch_decode.h),
// fed arbitrary bytes as a hostile or broken server could send, against
// protobuf's own parser: it must never crash, hang or take memory beyond
// the input; accept exactly what protobuf accepts (but unknown groups
// nested past its depth); and read what protobuf reads, as Client::Watch
// delivered it when it parsed with protobuf (tests/common/watch_batch_from_proto.h).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "client/watch_decode.h"
#include "proto/watch.pb.h"
#include "tests/common/watch_batch_from_proto.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

bool Same(const relaykv::WatchBatch& a, const relaykv::WatchBatch& b) {
  if (a.progress != b.progress || a.head != b.head || a.events.size() != b.events.size()) return false;
  for (size_t i = 0; i < a.events.size(); ++i) {
    const relaykv::WatchEvent& x = a.events[i];
    const relaykv::WatchEvent& y = b.events[i];
    if (x.gtid != y.gtid || x.timestamp_us != y.timestamp_us || x.changes.size() != y.changes.size()) {
      return false;
    }
    for (size_t j = 0; j < x.changes.size(); ++j) {
      if (x.changes[j].op != y.changes[j].op || x.changes[j].key != y.changes[j].key ||
          x.changes[j].value != y.changes[j].value) {
        return false;
      }
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Reused input after input, as Client::Watch reuses it answer after answer.
  static relaykv::WatchBatch batch;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const absl::Status decoded = relaykv::DecodeWatchResponse(bytes, &batch);
  relaykv::v1::WatchResponse parsed;
  const bool protobuf_ok = parsed.ParseFromArray(data, static_cast<int>(size));
  if (!decoded.ok()) {
    Check(decoded.code() == absl::StatusCode::kDataLoss);
    Check(!protobuf_ok || decoded.message().find("nested too deep") != std::string_view::npos);
    return 0;
  }
  Check(protobuf_ok);
  Check(Same(relaykv::WatchBatchFromProto(parsed), batch));
  return 0;
}
