// Segment bookkeeping shared by the binlog, its recovery and its readers:
// file naming, the index file, and recovery of a binlog directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/file.h"
#include "storage/gtid.h"

namespace relaykv {

struct SegmentState {
  uint64_t number = 0;     // binlog.<number>
  uint64_t first_seq = 0;  // seq of its first event (or the next event, if empty)
  uint64_t end_offset = 0; // bytes that hold whole, visible records
  uint64_t prev_epoch = 0; // epoch of the event before first_seq (0: none), from the header
  uint32_t key = 0;        // whitens its event payloads (0: none; binlog_format.h)
  // Where a reader may start instead of the header: record boundaries
  // (offset) with the seq of the next event there, ascending and at least
  // Binlog::kSeekStride apart. In memory only: the leader adds one per
  // stride it writes, readers one per stride they read of a segment an
  // earlier run wrote (binlog.h, "Seek points").
  struct SeekPoint {
    uint64_t seq = 0;
    uint64_t offset = 0;
  };
  std::vector<SeekPoint> seek_points;
};

// "binlog.000042" for 42.
std::string SegmentFileName(uint64_t number);
// Parses "binlog.000042"; false for anything else.
bool ParseSegmentFileName(const std::string& name, uint64_t* number);

struct RecoveredBinlog {
  std::vector<SegmentState> segments;  // oldest first; never empty
  Gtid last;                           // last event ({0,0} if none)
  uint64_t next_seq = 1;
};

// Brings `dir` to a consistent state and describes it: finishes an
// interrupted tail truncation (binlog_truncate.h); creates a fresh
// binlog (segment 1, index) if the directory holds none; removes segment
// files the index does not list (left by an interrupted rotation or purge);
// scans the last segment and truncates a torn tail (logged with file, offset
// and bytes dropped). Corruption returns DATA_LOSS naming file and offset.
// `unsynced_groups`: the last run published groups without syncing them
// (binlog.unsynced), whose pages may have reached the disk in any order: the
// last segment is cut at its first damage instead of judged.
[[nodiscard]] absl::StatusOr<RecoveredBinlog> RecoverBinlogDir(const std::filesystem::path& dir,
                                                               bool unsynced_groups = false);

// The segment numbers binlog.index lists, oldest first (DATA_LOSS if it is
// malformed or lists none).
[[nodiscard]] absl::StatusOr<std::vector<uint64_t>> ReadBinlogIndex(
    const std::filesystem::path& dir);
// What ScanLastSegment found in a last segment.
struct SegmentScan {
  uint64_t valid_end = 0;   // end of the last whole group
  uint64_t events = 0;
  Gtid last;
  // Events past valid_end that still decode (the torn group's), for the
  // truncation log line: [dropped_first, dropped_last] if dropped_events > 0.
  uint64_t dropped_events = 0;
  Gtid dropped_first;
  Gtid dropped_last;
};

// Scans the bytes of a whole last segment (header included; `path` only
// names it in errors) checking every record, and decides between a torn
// tail (returns the end of the last whole group) and corruption (DATA_LOSS)
// by the rule in binlog_format.h. Events after the last kGroupEnd belong to
// a write that did not finish, so never synced: they go with the torn tail.
// Pure: no I/O. Used by RecoverBinlogDir (and the fuzzer, tests/fuzz/).
[[nodiscard]] absl::StatusOr<SegmentScan> ScanLastSegment(const std::filesystem::path& path,
                                                          std::string_view data,
                                                          uint64_t first_seq,
                                                          bool unsynced_groups);

// Writes binlog.index listing `numbers` (atomically replaced; `renamed` as
// in WriteFileAtomically).
[[nodiscard]] absl::Status WriteBinlogIndex(const std::filesystem::path& dir,
                                            const std::vector<uint64_t>& numbers,
                                            bool* renamed = nullptr);

// Creates a new binlog in `dir` (which must hold none) whose history begins
// after `before` — a node cloned at GTID `before`: segment 1 starts at seq
// before.seq+1 and its header keeps before.epoch, exactly as the oldest
// segment of a purged binlog does, so the binlog opens with LastVisible()
// == before and replication resumes from before.seq+1. Durable on return.
[[nodiscard]] absl::Status CreateBinlogStartingAfter(const std::filesystem::path& dir,
                                                     const Gtid& before);

// Creates segment `number` with its header (event payloads whitened with
// `key`, NewSegmentKey()), fsyncs it and the directory. Written as a tmp file
// renamed into place, so that whatever a crash leaves under the segment's
// name has a whole header: a rotation retried after a rename of the index
// that may have happened replaces a segment the index may already list
// (review s39d L1). A failure leaves the name with the old file or the new.
[[nodiscard]] absl::StatusOr<File> CreateSegment(const std::filesystem::path& dir,
                                                 uint64_t number, uint64_t first_seq,
                                                 uint64_t prev_epoch, uint32_t key);

}  // namespace relaykv
