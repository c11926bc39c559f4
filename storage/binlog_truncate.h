// Binlog tail truncation with quarantine (issue 16): cut a binlog right after
// a GTID `end`, for a node that rejoins a cluster whose next epoch began at
// `end` (server/failover_rules.h DecideRejoin says when that is allowed; this
// file only does it). Called through Binlog::TruncateAfter().
//
// What it does, in this order (each step durable before the next):
//   1. Recovers the directory (RecoverBinlogDir) and checks the request:
//      `end` must be in this binlog (end.seq+1 >= the first available seq,
//      end.seq <= the last, and the event at end.seq, or the segment header
//      for a purged one, must have end's epoch) and `applied` (the state
//      machine's position) must not be past end.seq. Otherwise an error, and
//      nothing of the request is done: OUT_OF_RANGE (end before the binlog
//      start), FAILED_PRECONDITION (not in this history, or applied past
//      end). (Recovery itself may have repaired the directory, as any open
//      would: a torn tail cut, an empty last segment dropped.)
//      end == the last GTID: nothing to do (truncated = false).
//   2. Copies every event after `end` to a quarantine file in
//      `quarantine_dir`, named binlog-quarantine.epoch<E1>-<E2>.seq<S1>-<S2>.
//      <UTC time>, fsynced with its directory. It has the segment format
//      (binlog_format.h): a header with first_seq S1 and prev_epoch end.epoch,
//      the removed events as stored, one kGroupEnd (S1, S2); an operator reads
//      it with ReadQuarantineFile() (or any segment reader).
//   3. Writes the intent file binlog.truncate (WriteFileAtomically: whole or
//      absent). This is the commit point.
//   4. Carries the intent out: rewrites binlog.index without the later
//      segments, cuts the segment holding the first removed event at that
//      event's record (appending a kGroupEnd closing [group start, end.seq]
//      when `end` was mid-group, so recovery does not take the kept events
//      for a torn tail), fdatasyncs it, removes the later segment files,
//      fsyncs the directory, removes the intent, fsyncs again; then logs one
//      warning line with file, offset, bytes and the first/last GTID removed.
// Crash safety: a crash before 3 leaves the old binlog (and maybe a
// quarantine file); after 3, RecoverBinlogDir() (so Binlog::Open) carries the
// intent out again (every step is idempotent) before anything else, so the
// binlog is either the old one or the truncated one, never a mix.
//
// Threads: no Binlog may have `binlog_dir` open (call it at startup, before
// Binlog::Open, or after closing it); it is not safe against concurrent
// appends or purges. Quarantine files are never removed by relaykv.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/event.pb.h"
#include "storage/gtid.h"

namespace relaykv {

struct TruncateRequest {
  std::filesystem::path binlog_dir;
  // Where the quarantine file goes; empty = binlog_dir's parent (the data dir).
  std::filesystem::path quarantine_dir;
  Gtid end;      // keep every event up to and including this one
  Gtid applied;  // the state machine's last applied GTID
};

struct TruncationReport {
  bool truncated = false;             // false: end was the last GTID
  std::filesystem::path quarantine;   // the quarantine file
  std::string segment;                // the segment cut, "binlog.000042"
  uint64_t offset = 0;                // where it was cut (before any kGroupEnd added)
  uint64_t bytes_removed = 0;         // binlog bytes removed, all segments
  uint64_t events_removed = 0;
  int segments_removed = 0;           // later segments deleted whole
  Gtid first_removed;
  Gtid last_removed;
};

[[nodiscard]] absl::StatusOr<TruncationReport> TruncateBinlogAfter(const TruncateRequest& request);

// If `binlog_dir` holds a truncation intent (an interrupted TruncateBinlogAfter),
// carries it out and logs it; OK if there is none. DATA_LOSS if the intent
// cannot be parsed or does not fit the segments. Called by RecoverBinlogDir.
[[nodiscard]] absl::Status CompletePendingTruncation(const std::filesystem::path& binlog_dir);

// The events of a quarantine file, in order. DATA_LOSS naming the file and
// offset if it does not parse.
[[nodiscard]] absl::StatusOr<std::vector<v1::Event>> ReadQuarantineFile(
    const std::filesystem::path& path);

}  // namespace relaykv
