// CloneInto: the receiving side of clone provisioning (relaykvd
// --clone-from, NodeOptions::clone_from). Copies a running node's state
// (server/clone_service.h) into an empty data dir so that the node then
// opens as a replica of the source, replicating from the clone's GTID.
//
// Data dir while cloning:
//   clone-staging/session.pb   the source and its Begin answer (resume point)
//   clone-staging/db/...       the checkpoint's files, as they arrive
//   clone-staging/binlog/      created once every file checks out: holds the
//                              source's event at the clone's GTID (who wrote
//                              it: the history check a primary makes), or
//                              from an older source or a purged event begins
//                              empty after that GTID (CreateBinlogStartingAfter)
//   clone-staging/master.info  points at the source
//   clone-staging/READY        all of the above durable; only moves remain
// then db/, binlog/ and master.info are renamed into the data dir, the
// directory fsynced, clone.done written (source and GTID) and the staging
// dir removed. A crash anywhere leaves a state that the same command
// resumes: before READY it downloads what is missing (from the offset each
// file reached, if the source still has the session; else anew), after it
// only the moves are redone.
//
// Checks: every chunk's CRC32C (a bad chunk is refused and fetched again);
// every file's size and SHA-256 once complete (a mismatch fails the clone
// with DATA_LOSS, nothing moved into place); the staged RocksDB's own
// applied GTID must equal the one the source announced. Dropped connections
// are retried from the offset reached, up to `max_attempts` in a row
// without progress.
//
// Refusals: a data dir holding anything but relaykvd.lock, an interrupted
// clone or a finished clone of the same source is FAILED_PRECONDITION
// naming what it holds. A finished clone of the same source (a restart
// with the same flags) is not cloned again: `already_cloned` is set.
// Threads: blocking; call from one thread (Node::Open, before services).
#pragma once

#include <cstdint>
#include <chrono>
#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "relaykv/tls.h"
#include "storage/gtid.h"

namespace relaykv {

struct CloneRequest {
  std::string source;  // HOST:PORT
  TlsOptions tls;      // how to reach it (--master-ssl-*)
  std::filesystem::path data_dir;
  int max_attempts = 30;  // consecutive failed fetches (no progress) before giving up
  // A fetch that receives less than 64 KiB in this long is cut off and
  // resumed (a source that keeps the connection up but stops sending, or
  // trickles: review s43a M4, s43c); it counts as a failed fetch, as does
  // one that brought less than 64 KiB before it broke. After such a cut
  // the source is asked for 64 KiB chunks (progress is seen per chunk).
  std::chrono::milliseconds stall_timeout = std::chrono::seconds(60);
};

struct CloneResult {
  Gtid gtid;                  // the clone holds exactly the events up to this
  std::string source;
  std::string source_primary; // the source's primary, "" if it was a primary
  uint64_t bytes = 0;         // file bytes received this run
  uint64_t total_bytes = 0;   // size of the checkpoint
  uint64_t files = 0;
  uint64_t chunks_refused = 0;  // failed their CRC32C, fetched again
  uint64_t reconnects = 0;
  double seconds = 0;
  bool resumed = false;         // continued an interrupted clone
  bool already_cloned = false;  // the data dir held a finished clone of `source`
};

[[nodiscard]] absl::StatusOr<CloneResult> CloneInto(const CloneRequest& request);

inline constexpr char kCloneStagingDir[] = "clone-staging";
inline constexpr char kCloneDoneFile[] = "clone.done";

}  // namespace relaykv
