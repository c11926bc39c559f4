#include "server/replication_messages.h"

#include <algorithm>

#include "server/limits.h"

namespace relaykv {

absl::Status CheckReplicaHello(const v1::ReplicaMessage& first, uint32_t own_server_id) {
  if (!first.has_hello()) {
    return absl::InvalidArgumentError("the first message on a replication stream must be a hello");
  }
  if (first.hello().server_id() == own_server_id) {
    return absl::FailedPreconditionError(
        "replica has server_id " + std::to_string(own_server_id) +
        ", the same as this primary's: give every node its own "
        "--server-id (MySQL refuses equal server ids too)");
  }
  return absl::OkStatus();
}

absl::Status DecodeEventBatch(const v1::PrimaryMessage& msg, const std::string& primary_address,
                              std::vector<v1::Event>* events) {
  // The primary broke the replication protocol: not fixed by reconnecting.
  auto protocol_error = [&](const std::string& what) {
    return absl::InvalidArgumentError("primary " + primary_address + " sent " + what);
  };
  if (!msg.has_batch()) {
    return protocol_error("a message with neither an event batch nor a heartbeat");
  }
  const v1::EventBatch& batch = msg.batch();
  if (batch.events_size() == 0) {
    return protocol_error("an empty event batch (a batch carries at least one event)");
  }
  events->resize(static_cast<size_t>(batch.events_size()));
  for (int i = 0; i < batch.events_size(); ++i) {
    v1::Event& ev = (*events)[static_cast<size_t>(i)];
    if (!ev.ParseFromString(batch.events(i))) {
      return absl::DataLossError("event " + std::to_string(i) + " of a batch from primary " +
                                 primary_address + " does not decode");
    }
    // An op left unset (OP_UNSPECIFIED) or unknown, an empty or oversized
    // key: refused here, before the relay log holds it.
    if (auto s = ValidateEventMutations(ev); !s.ok()) {
      return protocol_error("event " + GtidFromProto(ev.gtid()).ToString() +
                            " that cannot be applied: " + std::string(s.message()));
    }
  }
  return absl::OkStatus();
}

void SentBatches::Sent(const Gtid& last, size_t bytes) {
  std::lock_guard l(mu_);
  last_sent_ = last;
  if (!semi_sync_) return;  // only semi-sync streams ACK
  if (sent_.size() >= kMaxTracked) {
    if (untracked_up_to_ == 0) {
      untracked_after_ = sent_.back().last.seq;
      untracked_min_epoch_ = last.epoch;
    }
    untracked_up_to_ = last.seq;  // Unacked() says "too much" until it is ACKed
    return;
  }
  sent_.push_back({last, Clock::now(), bytes});
  unacked_bytes_ += bytes;
}

absl::StatusOr<int64_t> SentBatches::Acked(const Gtid& acked) {
  std::lock_guard l(mu_);
  if (acked.seq <= acked_seq_) return -1;  // nothing new: harmless
  if (acked.seq > last_sent_.seq) {
    return absl::InvalidArgumentError("replica ACKed " + acked.ToString() +
                                      " but this stream has sent only up to " +
                                      last_sent_.ToString());
  }
  auto batch = std::find_if(sent_.begin(), sent_.end(),
                            [&](const Batch& b) { return b.last.seq == acked.seq; });
  if (batch != sent_.end() && batch->last != acked) {
    return absl::InvalidArgumentError("replica ACKed " + acked.ToString() +
                                      " but the batch this stream sent ending at that seq ends at " +
                                      batch->last.ToString());
  }
  // Past kMaxTracked only the range is known: a seq after the batches
  // tracked before it, in an epoch this stream sent since (review s31,
  // replication 4; s32-late F1).
  const bool untracked = untracked_up_to_ != 0 && acked.seq > untracked_after_ && acked.seq <= untracked_up_to_ &&
                         acked.epoch >= untracked_min_epoch_ && acked.epoch <= last_sent_.epoch;
  if (batch == sent_.end() && semi_sync_ && !untracked) {
    return absl::InvalidArgumentError("replica ACKed " + acked.ToString() +
                                      ", which is not the end of a batch this stream sent");
  }
  acked_seq_ = acked.seq;
  int64_t net_wait_us = -1;
  while (!sent_.empty() && sent_.front().last.seq <= acked.seq) {
    if (sent_.front().last.seq == acked.seq) {
      net_wait_us =
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent_.front().at).count();
    }
    unacked_bytes_ -= sent_.front().bytes;
    sent_.pop_front();
  }
  if (acked.seq >= untracked_up_to_) untracked_up_to_ = 0;
  return net_wait_us;
}

uint64_t SentBatches::Unacked(uint64_t when_untracked) const {
  std::lock_guard l(mu_);
  return untracked_up_to_ != 0 ? when_untracked : unacked_bytes_;
}

}  // namespace relaykv
