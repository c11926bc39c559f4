// BinlogReader: reads events in seq order from a position, across segment
// files, never past what the Binlog has made visible (so, under
// sync_binlog=1, only durable events). Also a tailing reader: NextWait()
// blocks on the binlog's notification until a new event is visible.
//
// Threads: one reader is used by one thread at a time; any number of
// readers may run beside the writers. Every record is CRC-checked; a bad
// one fails with DATA_LOSS naming file and offset. A reader survives purges
// of the segment it is in (it keeps the file open), but fails with
// OUT_OF_RANGE if the next segment it needs was purged.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "proto/event.pb.h"
#include "storage/file.h"

namespace relaykv {

class Binlog;

struct BinlogRecord {
  v1::Event event;
  std::string payload;  // the event serialized (as stored, unwhitened)
};

// The event at `seq` while the binlog holds it visibly; nullopt if it was
// purged (or seq is 0 or past the visible end). Other read errors (a bad
// record: DATA_LOSS) as such. For checks of one event, not for streaming.
[[nodiscard]] absl::StatusOr<std::optional<v1::Event>> ReadEventAt(Binlog& binlog, uint64_t seq);

class BinlogReader {
 public:
  BinlogReader(const BinlogReader&) = delete;
  BinlogReader& operator=(const BinlogReader&) = delete;

  // The next visible event, or nullopt if none is visible yet.
  [[nodiscard]] absl::StatusOr<std::optional<BinlogRecord>> Next();
  // Like Next(), but waits until an event is visible or `deadline` passes
  // (nullopt then) or the binlog is closed (CANCELLED).
  [[nodiscard]] absl::StatusOr<std::optional<BinlogRecord>> NextWait(
      std::chrono::steady_clock::time_point deadline);

  // Seq of the event Next() returns next.
  uint64_t next_seq() const { return next_seq_; }

 private:
  friend class Binlog;
  BinlogReader(Binlog* binlog, uint64_t segment_number, File file, uint64_t offset,
               uint64_t next_seq);
  // Positions at `from_seq` by reading forward from where it is.
  absl::Status SkipTo(uint64_t from_seq);
  // Moves to a seek point of the open segment (Binlog::NewReader).
  void Seek(uint64_t offset, uint64_t seq);
  absl::Status OpenSegment(uint64_t number);
  // Makes [offset_, offset_ + n) available in buf_; false if fewer bytes exist.
  absl::StatusOr<bool> Fill(size_t n, uint64_t limit);

  Binlog* const binlog_;  // borrowed; must outlive the reader
  uint64_t segment_number_;
  uint32_t key_ = 0;       // the segment's: its event payloads are whitened with it
  File file_;
  uint64_t offset_;        // file offset of the next record
  uint64_t next_seq_;
  std::string buf_;        // file bytes [buf_offset_, buf_offset_ + buf_.size())
  uint64_t buf_offset_ = 0;
  uint64_t noted_offset_ = 0;  // the last seek point this reader passed or noted
};

}  // namespace relaykv
