// AckedUnsyncedMarker: the durable record that this node, as a replica, may
// have ACKed relay-log events that were not on disk (sync_relay_log=0:
// an ACK then means "written", not "fsynced"), file
// `relay_log.acked_unsynced` in the data dir. After a power cut such
// events are gone while the primary counted the ACK: the relay log's
// durable GTID (what Revoke reports) may lie below what this node
// acknowledged, so an election must not count it as a holder of every
// write it ACKed (RevokeReply.may_have_acked_unsynced,
// server/failover_rules.h). Review finding 5. Revoke reports only a marker
// found at open (inherited()): it syncs the relay log before it answers,
// so what this run ACKed is on disk by then (review s4 finding 4).
//
// Life cycle (server/replica_io.cc): Mark() makes the file durable before
// the first ACK (or hello, which counts as one) of a position that may not
// be on disk; it stays through restarts. It goes (Clear()) only once
// everything this node may have ACKed is on disk: for a marker this run
// wrote, a full sync of the relay log with sync_relay_log=1; for one found
// at open (the run that wrote it may have lost ACKed events), once the
// relay log holds, synced, the primary's binlog end as the primary stated
// it after reconnecting (everything it was ever sent); and at promotion
// (RESET SLAVE ALL syncs the log and starts a new epoch).
//
// Threads: all methods are thread-safe; Mark/Clear serialize on a mutex.
// Errors: the file system's, naming the file.
#pragma once

#include <atomic>
#include <filesystem>
#include <memory>
#include <mutex>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/thread_annotations.h"

namespace relaykv {

class AckedUnsyncedMarker {
 public:
  // Reads whether the file exists; UNAVAILABLE if that cannot be told
  // (an unknown state must not read as "nothing ACKed unsynced").
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<AckedUnsyncedMarker>> Open(
      const std::filesystem::path& data_dir);
  AckedUnsyncedMarker(const AckedUnsyncedMarker&) = delete;
  AckedUnsyncedMarker& operator=(const AckedUnsyncedMarker&) = delete;

  // The file exists (durably, once Mark returned).
  bool set() const { return set_.load(); }
  // It was there at open: what was ACKed before may be lost.
  bool inherited() const { return inherited_.load(); }
  // Durable before it returns; a no-op when set.
  [[nodiscard]] absl::Status Mark() EXCLUDES(mu_);
  // Removes the file durably (unlink, fsync of the directory); a no-op when
  // not set. The caller has made sure everything ACKed is on disk.
  [[nodiscard]] absl::Status Clear() EXCLUDES(mu_);

 private:
  AckedUnsyncedMarker(std::filesystem::path path, bool present)
      : path_(std::move(path)), set_(present), inherited_(present) {}

  const std::filesystem::path path_;
  std::mutex mu_;  // serializes Mark and Clear
  // Written under mu_ once the file system is durable; read without it.
  std::atomic<bool> set_;
  std::atomic<bool> inherited_;
};

}  // namespace relaykv
