// Decodes ChangeStream.Watch's answers (proto/watch.proto WatchResponse)
// from the bytes gRPC received straight into a WatchBatch reused answer
// after answer (Client::Watch): no protobuf message in between, so no
// key or value is copied twice, and once the batch's strings have grown
// nothing is allocated. The server side writes these bytes by hand too
// (server/watch_wire.h).
//
// Reads what protobuf's parser reads: fields in any order, unknown fields
// skipped, the last of a field given twice (a GTID given twice merged);
// an op other than DELETE is a PUT, as Client::Watch always read it. It
// refuses what that parser refuses (a zero tag, a length past the end, a
// tag or length over 5 bytes...), and unknown groups nested over 90 deep:
// DATA_LOSS naming the problem — then `batch` holds garbage. Pure
// functions, any thread.
#pragma once

#include <cstddef>
#include <string_view>

#include "absl/status/status.h"
#include "google/protobuf/io/zero_copy_stream.h"
#include "relaykv/watch.h"

namespace relaykv {

// Decodes the `length` bytes `in` holds into `batch` (its events, progress
// and head, all replaced).
absl::Status DecodeWatchResponse(google::protobuf::io::ZeroCopyInputStream* in, size_t length,
                                 WatchBatch* batch);
absl::Status DecodeWatchResponse(std::string_view bytes, WatchBatch* batch);

}  // namespace relaykv
