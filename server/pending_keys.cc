#include "server/pending_keys.h"

#include "storage/gtid.h"

namespace relaykv {

void PendingKeys::Record(const v1::Event& event) {
  const uint64_t seq = event.gtid().seq();
  std::lock_guard l(mu_);
  if (last_ == 0 || seq != last_ + 1) {
    // A gap (or the first write): what happened in it is only in RocksDB,
    // once applied. Older entries are superseded by that.
    latest_.clear();
    order_.clear();
    first_ = seq;
  }
  last_ = seq;
  Prune(state_->Applied().seq);
  const Gtid version = GtidFromProto(event.gtid());
  for (const v1::Mutation& m : event.mutations()) {
    Entry& e = latest_[m.key()];
    e.seq = seq;
    e.version = version;
    e.deleted = m.op() == v1::Mutation::DELETE;
    e.value = e.deleted ? std::string() : m.value();
    order_.emplace_back(seq, m.key());
  }
}

void PendingKeys::Prune(uint64_t applied) {
  while (!order_.empty() && order_.front().first <= applied) {
    auto it = latest_.find(order_.front().second);
    // Only if no later write of the key replaced the entry.
    if (it != latest_.end() && it->second.seq == order_.front().first) latest_.erase(it);
    order_.pop_front();
  }
}

bool PendingKeys::KnownLocked(uint64_t before, uint64_t applied) {
  // Every write before `before` is applied, or recorded since a point
  // RocksDB has reached.
  if (applied + 1 >= before) return true;
  return last_ + 1 == before && applied + 1 >= first_;
}

bool PendingKeys::CaughtUp(uint64_t binlog_end) {
  std::lock_guard l(mu_);
  const uint64_t applied = state_->Applied().seq;
  // Everything visible is applied, or recorded since a point RocksDB has
  // reached (writes assigned and not yet visible are recorded too).
  return applied >= binlog_end || (last_ >= binlog_end && applied + 1 >= first_);
}

absl::StatusOr<std::optional<StateMachine::Versioned>> PendingKeys::Lookup(const std::string& key,
                                                                           uint64_t before,
                                                                           bool with_value) {
  {
    std::lock_guard l(mu_);
    if (last_ != 0 && last_ + 1 != before) {
      // The recorded writes do not end right before this one: a gap (writes
      // that bypassed Record), or seqs assigned again after a group whose
      // write failed (its entries name writes that never happened). Only
      // RocksDB, once it has applied everything before `before`, knows.
      latest_.clear();
      order_.clear();
      first_ = before;
      last_ = before - 1;
    }
    const uint64_t applied = state_->Applied().seq;
    if (!KnownLocked(before, applied)) {
      return absl::UnavailableError(
          "the primary is still applying its binlog (applied seq " + std::to_string(applied) +
          " of " + std::to_string(before - 1) + "), so a compare cannot be checked yet; retry");
    }
    Prune(applied);
    auto it = latest_.find(key);
    if (it != latest_.end()) {
      if (it->second.deleted) return std::nullopt;
      return StateMachine::Versioned{with_value ? it->second.value : std::string(),
                                     it->second.version};
    }
  }
  // Not changed since RocksDB's applied seq (entries leave only once their
  // seq is applied, so RocksDB has every change of the key before `before`).
  return state_->GetVersioned(key, with_value);
}

}  // namespace relaykv
