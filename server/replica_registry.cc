#include "server/replica_registry.h"

#include <algorithm>

namespace relaykv {

uint64_t ReplicaRegistry::Add(ConnectedReplica replica) {
  std::lock_guard l(mu_);
  replica.connection_id = next_id_++;
  replicas_[replica.connection_id] = replica;
  return replica.connection_id;
}

void ReplicaRegistry::Remove(uint64_t connection_id) {
  std::lock_guard l(mu_);
  replicas_.erase(connection_id);
}

void ReplicaRegistry::UpdateSent(uint64_t connection_id, Gtid sent) {
  std::lock_guard l(mu_);
  if (auto it = replicas_.find(connection_id); it != replicas_.end()) it->second.sent = sent;
}

void ReplicaRegistry::UpdateAcked(uint64_t connection_id, Gtid acked) {
  std::lock_guard l(mu_);
  if (auto it = replicas_.find(connection_id); it != replicas_.end()) {
    it->second.acked = std::max(it->second.acked, acked);
  }
}

void ReplicaRegistry::UpdateApplied(uint64_t connection_id, Gtid applied,
                                    int64_t oldest_unapplied_us) {
  std::lock_guard l(mu_);
  if (auto it = replicas_.find(connection_id); it != replicas_.end()) {
    it->second.applied = applied;
    it->second.oldest_unapplied_us = oldest_unapplied_us;
  }
}

std::vector<ConnectedReplica> ReplicaRegistry::List() const {
  std::lock_guard l(mu_);
  std::vector<ConnectedReplica> out;
  for (const auto& [id, r] : replicas_) out.push_back(r);
  return out;
}

uint64_t ReplicaRegistry::MinNeededSeq() const {
  std::lock_guard l(mu_);
  uint64_t min = std::numeric_limits<uint64_t>::max();
  for (const auto& [id, r] : replicas_) min = std::min(min, r.acked.seq + 1);
  return min;
}

}  // namespace relaykv
