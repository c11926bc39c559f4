// The checks a primary and a replica make on what the other sends over a
// replication stream (proto/replication.proto), as pure code apart from the
// stream handlers (replication_service.cc, replica_io.cc) so that tests and
// the fuzzer (tests/fuzz/) drive them with any bytes:
//   - a primary: the first message must be a hello from another server_id;
//     every ACK must name the end of a batch this stream sent (SentBatches);
//   - a replica: a message is a heartbeat or a non-empty batch of events that
//     decode and whose mutations pass server/limits.h.
// Errors are values naming the problem; nothing here touches a stream.
//
// Threads: the functions are pure; SentBatches is thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/replication.pb.h"
#include "storage/gtid.h"
#include "storage/thread_annotations.h"

namespace relaykv {

// The first message of a Subscribe stream: INVALID_ARGUMENT if it is not a
// hello, FAILED_PRECONDITION if the replica has the primary's server_id.
[[nodiscard]] absl::Status CheckReplicaHello(const v1::ReplicaMessage& first,
                                             uint32_t own_server_id);

// A replica's view of a PrimaryMessage that is not a heartbeat: its events,
// decoded into *events (resized to the batch), or INVALID_ARGUMENT (neither
// batch nor heartbeat, an empty batch, mutations that fail
// ValidateEventMutations) / DATA_LOSS (an event that does not decode), each
// naming `primary_address`. The GTID order is the relay log's to check.
[[nodiscard]] absl::Status DecodeEventBatch(const v1::PrimaryMessage& msg,
                                            const std::string& primary_address,
                                            std::vector<v1::Event>* events);

// What a primary's stream sent and its replica has not ACKed yet. An ACK
// is believed only if it names a position this stream sent — the end of a
// batch, same GTID — else an error: a forged or confused ACK would otherwise
// count for commits no replica holds.
class SentBatches {
 public:
  // Batches tracked at most (a replica that stopped ACKing).
  static constexpr size_t kMaxTracked = 10000;

  // A stream that starts at the replica's hello `durable`; only semi-sync
  // streams ACK, so only they track batches.
  SentBatches(bool semi_sync, const Gtid& durable)
      : semi_sync_(semi_sync), last_sent_(durable), acked_seq_(durable.seq) {}

  // A batch ending at `last`, `bytes` long, is about to go out.
  void Sent(const Gtid& last, size_t bytes) EXCLUDES(mu_);
  // The replica says it holds everything up to `acked`. Returns the µs since
  // that batch was sent, -1 if unknown or nothing new, or INVALID_ARGUMENT.
  absl::StatusOr<int64_t> Acked(const Gtid& acked) EXCLUDES(mu_);
  // Bytes sent and not ACKed, or `when_untracked` while batches beyond
  // kMaxTracked went out untracked.
  uint64_t Unacked(uint64_t when_untracked) const EXCLUDES(mu_);

 private:
  using Clock = std::chrono::steady_clock;
  struct Batch {
    Gtid last;
    Clock::time_point at;
    size_t bytes;
  };
  const bool semi_sync_;
  mutable std::mutex mu_;
  Gtid last_sent_ GUARDED_BY(mu_);      // the last event sent (or the replica's hello)
  uint64_t acked_seq_ GUARDED_BY(mu_);  // the highest ACK believed
  std::deque<Batch> sent_ GUARDED_BY(mu_);  // not ACKed yet, oldest first
  uint64_t unacked_bytes_ GUARDED_BY(mu_) = 0;  // of the batches in sent_
  uint64_t untracked_up_to_ GUARDED_BY(mu_) = 0;  // last seq sent while sent_ was full
  // Where the untracked range began: an untracked ACK must name a seq past
  // the last batch tracked before it (later tracked batches do not move this:
  // tracking resumes as soon as the oldest batch is ACKed), in an epoch
  // between the lowest sent untracked and last_sent_'s.
  uint64_t untracked_after_ GUARDED_BY(mu_) = 0;
  uint64_t untracked_min_epoch_ GUARDED_BY(mu_) = 0;
};

}  // namespace relaykv
