// ReplicaIo: a replica's IO thread. Connects to the primary, subscribes from
// the GTID after the last one its relay log (the replica's own binlog, with
// the primary's GTIDs) holds, appends each received batch to the relay log
// — fdatasync'd per batch when sync_relay_log=1 — then ACKs the relay log's
// last durable GTID and releases the batch to the SQL thread (Applier).
//
// Reconnects with backoff (100 ms doubling to 5 s) when the primary goes
// away; after a connection that stayed up kWorkingConnection, from 100 ms
// again. Stops, with the error kept for SHOW SLAVE STATUS, until START SLAVE
// (or, under automatic failover, the coordinator's restart) when the
// primary refuses our position (purged / different history), a batch
// would break the GTID sequence (gap, duplicate, epoch going back), or the
// primary breaks the protocol (an empty batch, a message that is neither a
// batch nor a heartbeat, an event that does not decode or whose mutations
// fail server/limits.h, e.g. an unset op): never silent divergence, never
// undefined behaviour. Nothing of a refused batch reaches the relay log.
//
// Fencing (server/epoch_promise.h): every message states the primary's
// epoch (or, from an older primary, its last GTID's). Below the promised
// epoch, the stream ends with a FAILED_PRECONDITION naming both epochs and
// the thread stops: nothing of it is appended or ACKed. A batch with events
// of a newer epoch raises the promise durably before they are appended.
// Check, append and ACK run under the promise's Hold, so a Revoke that
// returned is never overtaken by an ACK; CutIfNotFollowing() ends a stream at once
// instead of at its next message. A Revoke therefore waits for at most one
// batch's append, fsync and ACK write; an ACK write blocked by a primary
// that stopped reading ends with the stream (the 10 s silence watchdog).
//
// sync_relay_log=0: before the first ACK (or hello) of a position that may
// not be on disk, the AckedUnsyncedMarker is made durable; it is cleared
// once everything ACKed is on disk (see its header). Review finding 5.
// It is read once per stream and stated in the hello (relay_log_synced):
// the primary does not count such a stream as a semi-sync replica, since
// its ACKs do not survive a power cut (review s47b M1). A change of it ends
// the stream, without an error, and the next one states the new value.
//
// Threads: Start/Stop/status are thread-safe; Stop() cancels the stream,
// wakes the thread and joins it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "client/channel_args.h"
#include "relaykv/tls.h"
#include "storage/applier.h"
#include "server/acked_unsynced_marker.h"
#include "server/epoch_promise.h"
#include "server/unapplied_times.h"
#include "storage/binlog.h"
#include "storage/thread_annotations.h"

namespace relaykv {

struct ReplicaIoConfig {
  std::string primary_address;  // HOST:PORT
  TlsOptions tls;               // MASTER_SSL*
  ChannelLimits channel;        // message size, keepalive (client/channel_args.h)
  uint32_t server_id = 0;
  std::string own_address;      // shown on the primary (SHOW REPLICAS)
  // Read on every batch / connect, so SET GLOBAL takes effect.
  std::function<bool()> sync_relay_log;
  std::function<bool()> semi_sync;
  EpochPromise* promise = nullptr;  // borrowed; must outlive the ReplicaIo
  AckedUnsyncedMarker* acked_unsynced = nullptr;  // borrowed, likewise; may be null
};

struct ReplicaIoStatus {
  enum class State { kNo, kConnecting, kYes };
  State state = State::kNo;
  Gtid retrieved;             // last event in the relay log
  Gtid primary_last;          // the primary's binlog end, last we heard
  int64_t primary_time_us = 0;
  std::string last_error;     // "" if none
  int64_t last_error_time_us = 0;
  bool semi_sync = false;     // connected as a semi-sync replica
  uint64_t primary_epoch = 0; // as the primary last stated it (0: not heard yet)
  uint32_t primary_server_id = 0;  // as the primary last stated it (0: not said)
};

class ReplicaIo {
 public:
  // Borrows relay log and applier; both must outlive this object.
  ReplicaIo(Binlog* relay_log, Applier* applier, ReplicaIoConfig config);
  ~ReplicaIo();
  ReplicaIo(const ReplicaIo&) = delete;
  ReplicaIo& operator=(const ReplicaIo&) = delete;

  void Start() EXCLUDES(mu_);  // no-op if running
  void Stop() EXCLUDES(mu_);
  bool running() const EXCLUDES(mu_);
  // True once the thread stopped by itself on an error it does not retry
  // (not by Stop(), not before the first Start()), until the next Start or
  // Stop: what an automatic restart may undo without undoing STOP SLAVE.
  bool stopped_on_error() const EXCLUDES(mu_);
  // Start(), only if stopped_on_error() — checked and started under one
  // lock, so a Stop() (STOP SLAVE) that came first is never undone.
  bool StartIfStoppedOnError() EXCLUDES(mu_);
  ReplicaIoStatus status() const EXCLUDES(mu_);
  const ReplicaIoConfig& config() const { return config_; }
  // Revoke: ends the live stream if its primary's epoch is below
  // `promised` (the promise is raised already); the thread stops with the
  // fencing error.
  void CutIfNotFollowing(uint64_t promised, uint32_t owner) EXCLUDES(mu_);
  // timestamp_us of the oldest event the relay log holds that the SQL
  // thread has not applied; 0 when it has applied all (server/unapplied_times.h).
  int64_t OldestUnappliedTimestampUs();

 private:
  void StartLocked() REQUIRES(mu_);
  void Run();
  // One connection: returns why it ended. *permanent: do not retry.
  // `*resync`: it ended because sync_relay_log changed (OK returned): the
  // next stream is made without the backoff's wait.
  absl::Status Stream(bool* permanent, bool* resync);
  static constexpr std::chrono::seconds kWorkingConnection{1};
  void SetError(const absl::Status& s) REQUIRES(mu_);
  // FAILED_PRECONDITION naming both epochs.
  absl::Status FencedError(uint64_t primary_epoch, uint64_t promised) const;
  // Before an ACK (or hello) of a relay-log position that may not be on
  // disk: the AckedUnsyncedMarker, durably.
  absl::Status MarkAckedUnsynced();
  // sync_relay_log=1: removes the marker once all ACKed is on disk
  // (AckedUnsyncedMarker); `relay_end` is what the relay log holds.
  absl::Status ClearAckedUnsyncedIfCovered(const Gtid& relay_end);
  // OK if a primary stating (epoch, server_id) may be followed under the
  // promise (promised, owner): its epoch is not older, and if it is the
  // promised epoch, the primary is its owner (either server_id 0: unknown).
  absl::Status CheckFollows(uint64_t primary_epoch, uint32_t primary_server_id, uint64_t promised,
                            uint32_t owner) const;
  // INVALID_ARGUMENT unless `events` continue the relay log exactly (the
  // check AppendReplicated makes; only this thread appends), so a batch is
  // judged before its epochs are promised.
  absl::Status CheckContinues(std::span<const v1::Event> events) const;
  // One epoch, one writer (review s4 finding 2, review-owner2 1):
  // FAILED_PRECONDITION if an event follows one of its own epoch (the
  // relay log's last, or earlier in `events`) written by another
  // server_id — whatever epoch the primary states or this replica
  // promised. The relay log's writer is held_writer_ (0, unknown: not
  // checked here). A relay log that holds nothing of an epoch takes a
  // newer primary's history of it, whoever wrote it (review-owner finding
  // 3). Checked before the promise is raised; `promised`/`owner` only name
  // the promise in the message.
  absl::Status CheckHeldEpochWriter(std::span<const v1::Event> events, uint64_t promised,
                                    uint32_t owner) const;

  Binlog* const relay_log_;
  Applier* const applier_;
  const ReplicaIoConfig config_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // stop_ changed
  bool stop_ GUARDED_BY(mu_) = false;
  bool running_ GUARDED_BY(mu_) = false;
  bool stopped_on_error_ GUARDED_BY(mu_) = false;
  grpc::ClientContext* ctx_ GUARDED_BY(mu_) = nullptr;  // the live stream's, for Stop()
  ReplicaIoStatus status_ GUARDED_BY(mu_);
  absl::Status cut_ GUARDED_BY(mu_);  // why CutIfNotFollowing ended the live stream
  UnappliedTimes unapplied_;  // fed by the IO thread
  // An inherited AckedUnsyncedMarker goes once the relay log holds this,
  // synced: the primary's binlog end at this stream's first message. IO
  // thread only.
  std::optional<Gtid> catch_up_;
  bool catch_up_from_primary_ = false;  // catch_up_ is an acting primary's end
  // The server_id that wrote the relay log's last event (0: unknown — none,
  // purged, or not set): read at each connect (the hello names it), then
  // kept by the appends. IO thread only.
  uint32_t held_writer_ = 0;
  Gtid held_writer_at_;  // the relay log's end held_writer_ describes
  // When the primary's first message arrived on the current connection.
  // IO thread only.
  std::optional<std::chrono::steady_clock::time_point> connected_at_;
  std::thread thread_;
};

}  // namespace relaykv
