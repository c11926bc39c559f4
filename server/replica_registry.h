// ReplicaRegistry: the replicas connected to this primary, with what was
// sent to each and what each has ACKed. Feeds SHOW REPLICAS and the binlog
// retention floor (never purge what a connected replica still needs).
//
// Threads: thread-safe; one mutex.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "storage/gtid.h"
#include "storage/thread_annotations.h"

namespace relaykv {

struct ConnectedReplica {
  uint64_t connection_id = 0;
  uint32_t server_id = 0;
  std::string address;
  bool semi_sync = false;
  Gtid sent;   // last event sent on the stream
  Gtid acked;  // last event the replica says its relay log holds
  // ApplyProgress: its SQL thread's position and the timestamp_us of its
  // oldest unapplied event (0: caught up); nullopt until it says.
  Gtid applied;
  std::optional<int64_t> oldest_unapplied_us;
};

class ReplicaRegistry {
 public:
  // Registers a new stream; returns its connection id.
  uint64_t Add(ConnectedReplica replica) EXCLUDES(mu_);
  void Remove(uint64_t connection_id) EXCLUDES(mu_);
  void UpdateSent(uint64_t connection_id, Gtid sent) EXCLUDES(mu_);
  void UpdateAcked(uint64_t connection_id, Gtid acked) EXCLUDES(mu_);
  void UpdateApplied(uint64_t connection_id, Gtid applied, int64_t oldest_unapplied_us)
      EXCLUDES(mu_);

  std::vector<ConnectedReplica> List() const EXCLUDES(mu_);
  // The lowest seq a connected replica still needs (acked + 1);
  // max() when none is connected.
  uint64_t MinNeededSeq() const EXCLUDES(mu_);

 private:
  mutable std::mutex mu_;
  uint64_t next_id_ GUARDED_BY(mu_) = 1;
  std::map<uint64_t, ConnectedReplica> replicas_ GUARDED_BY(mu_);
};

}  // namespace relaykv
