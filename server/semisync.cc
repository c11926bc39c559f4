#include "server/semisync.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "spdlog/spdlog.h"

namespace relaykv {

using Clock = std::chrono::steady_clock;

SemiSyncMaster::SemiSyncMaster(std::function<uint64_t()> binlog_end,
                               std::function<void(uint64_t)> on_acked)
    : binlog_end_(std::move(binlog_end)), on_acked_(std::move(on_acked)) {}

uint64_t SemiSyncMaster::QuorumSeq() const {
  const size_t need = static_cast<size_t>(settings_.wait_for_slave_count);
  if (semi_acks_.size() < need) return 0;
  std::vector<uint64_t> acks;
  for (const auto& [id, seq] : semi_acks_) acks.push_back(seq);
  // The need-th highest ACK: that many distinct replicas are at or past it.
  std::nth_element(acks.begin(), acks.begin() + static_cast<long>(need - 1), acks.end(),
                   std::greater<>());
  return acks[need - 1];
}

void SemiSyncMaster::SwitchOff(const std::string& why) {
  if (!status_on_) return;
  status_on_ = false;
  ++counters_.no_times;
  spdlog::warn("semi-sync switched OFF: {}", why);
  waiters_.Take();
}

void SemiSyncMaster::MaybeSwitchOn() {
  // Back ON once a counted ACK reaches the current end of the binlog.
  if (status_on_ || !settings_.enabled || quorum_seq_ == 0) return;
  const uint64_t end = binlog_end_();
  if (quorum_seq_ >= end) {
    status_on_ = true;
    spdlog::info("semi-sync switched ON: replicas have ACKed up to the binlog end (seq {})", end);
  }
}

void SemiSyncMaster::Register(uint64_t seq) {
  std::lock_guard l(mu_);
  if (closed_ || !settings_.enabled || !status_on_) return;
  if (!waiting_.empty() && seq < *waiting_.begin()) ++counters_.wait_pos_backtraverse;
  waiting_.insert(seq);
  registered_[seq] = Clock::now();
}

void SemiSyncMaster::Unregister(uint64_t seq) {
  std::lock_guard l(mu_);
  if (registered_.erase(seq) == 0) return;
  if (auto it = waiting_.find(seq); it != waiting_.end()) waiting_.erase(it);
}

absl::StatusOr<SemiSyncMaster::Outcome> SemiSyncMaster::WaitForAck(
    uint64_t seq, Clock::time_point deadline, const std::function<bool()>& cancelled) {
  std::unique_lock l(mu_);
  // Registered at seq assignment: the wait began then (see Register()).
  std::optional<Clock::time_point> registered;
  if (auto r = registered_.find(seq); r != registered_.end()) {
    registered = r->second;
    registered_.erase(r);
    if (auto it = waiting_.find(seq); it != waiting_.end()) waiting_.erase(it);
  }
  if (closed_) return absl::UnavailableError("server is shutting down");
  if (!settings_.enabled) return Outcome::kAsync;  // not counted: semi-sync is off entirely
  if (status_on_ && !settings_.wait_no_slave && semi_acks_.size() < settings_.wait_for_slave_count) {
    SwitchOff("fewer semi-sync replicas connected than rpl_semi_sync_master_wait_for_slave_count "
              "and rpl_semi_sync_master_wait_no_slave is OFF");
  }
  if (!status_on_) {
    ++counters_.no_tx;
    return Outcome::kAsync;
  }
  if (quorum_seq_ >= seq) {
    if (registered) {  // it waited from its registration until the ACK
      ++counters_.tx_waits;
      counters_.tx_wait_time += static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - *registered).count());
    }  // else: the ACK was there before it ever waited — counted, not as a wait
    ++counters_.yes_tx;
    return Outcome::kAcked;
  }
  if (!registered && !waiting_.empty() && seq < *waiting_.begin()) ++counters_.wait_pos_backtraverse;
  auto it = waiting_.insert(seq);
  const Clock::time_point start = registered.value_or(Clock::now());
  const Clock::time_point timeout_at = start + std::chrono::milliseconds(settings_.timeout_ms);
  const Clock::time_point until = std::min(timeout_at, deadline);
  auto released = [&] { return closed_ || !settings_.enabled || !status_on_ || quorum_seq_ >= seq; };
  bool gone = false;
  while (!released() && Clock::now() < until && !(cancelled && (gone = cancelled()))) {
    // The client going away has no notification of its own: look every 20 ms.
    SeqWaiters::Waiter w(seq);
    waiters_.Wait(&w, l, cancelled ? std::min(until, Clock::now() + std::chrono::milliseconds(20)) : until);
  }
  waiting_.erase(it);
  if (gone && quorum_seq_ < seq) {
    return absl::CancelledError("the client went away while its commit waited for replicas to ACK seq " +
                                std::to_string(seq) + "; the write is in the binlog and will replicate");
  }
  const auto waited_us =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();

  if (quorum_seq_ >= seq) {
    ++counters_.tx_waits;
    counters_.tx_wait_time += static_cast<uint64_t>(waited_us);
    ++counters_.yes_tx;
    return Outcome::kAcked;
  }
  if (closed_) return absl::UnavailableError("server shut down while the commit waited for replicas");
  if (!settings_.enabled || !status_on_) {
    ++counters_.no_tx;
    return Outcome::kAsync;
  }
  if (Clock::now() >= timeout_at) {
    SwitchOff("timeout waiting for replicas to ACK seq " + std::to_string(seq) + " after " +
              std::to_string(settings_.timeout_ms) + " ms (ACKed up to seq " +
              std::to_string(quorum_seq_) + "); commits continue asynchronously");
    ++counters_.no_tx;
    return Outcome::kAsync;
  }
  // The caller's deadline: never answered OK, not counted.
  return absl::DeadlineExceededError("deadline passed while waiting for replicas to ACK seq " +
                                     std::to_string(seq) +
                                     "; the write is in the binlog and will replicate");
}

void SemiSyncMaster::ReplicaConnected(uint64_t connection_id, bool semi_sync) {
  if (!semi_sync) return;
  std::lock_guard l(mu_);
  semi_acks_[connection_id] = 0;
}

void SemiSyncMaster::ReplicaDisconnected(uint64_t connection_id) {
  std::lock_guard l(mu_);
  if (semi_acks_.erase(connection_id) == 0) return;
  quorum_seq_ = std::max(quorum_seq_, QuorumSeq());
  if (settings_.enabled && !settings_.wait_no_slave &&
      semi_acks_.size() < settings_.wait_for_slave_count) {
    SwitchOff("a semi-sync replica left and rpl_semi_sync_master_wait_no_slave is OFF");
  }
}

void SemiSyncMaster::Ack(uint64_t connection_id, uint64_t seq, int64_t net_wait_us) {
  uint64_t released = 0;
  {
    std::lock_guard l(mu_);
    auto it = semi_acks_.find(connection_id);
    if (it == semi_acks_.end()) return;  // not a semi-sync replica
    it->second = std::max(it->second, seq);
    ++counters_.net_waits;
    if (net_wait_us >= 0) counters_.net_wait_time += static_cast<uint64_t>(net_wait_us);
    const uint64_t q = QuorumSeq();
    if (q > quorum_seq_) {
      quorum_seq_ = q;
      released = q;
    }
    MaybeSwitchOn();
  }
  if (released == 0) return;
  // First what the new position allows (the applier, on this thread), then
  // the commits it releases: they wake once, to find their write applied.
  if (on_acked_) on_acked_(released);
  std::lock_guard l(mu_);
  waiters_.Take(released);
}

void SemiSyncMaster::Configure(const SemiSyncSettings& s) {
  std::lock_guard l(mu_);
  const bool was_enabled = settings_.enabled;
  settings_ = s;
  if (was_enabled && !s.enabled) {
    SwitchOff("rpl_semi_sync_master_enabled set to OFF");
  } else if (!was_enabled && s.enabled) {
    status_on_ = true;  // as MySQL: ON at once, even before a replica connects
  }
  quorum_seq_ = std::max(quorum_seq_, QuorumSeq());
  waiters_.Take();
}

void SemiSyncMaster::Close() {
  std::lock_guard l(mu_);
  closed_ = true;
  waiters_.Take();
}

NameValues SemiSyncMaster::Status() const {
  std::lock_guard l(mu_);
  const Counters& c = counters_;
  auto n = [](uint64_t v) { return std::to_string(v); };
  const std::string p = "Rpl_semi_sync_master_";
  return {
      {p + "clients", n(semi_acks_.size())},
      {p + "net_avg_wait_time", n(c.net_waits ? c.net_wait_time / c.net_waits : 0)},
      {p + "net_wait_time", n(c.net_wait_time)},
      {p + "net_waits", n(c.net_waits)},
      {p + "no_times", n(c.no_times)},
      {p + "no_tx", n(c.no_tx)},
      {p + "status", status_on_ && settings_.enabled ? "ON" : "OFF"},
      {p + "timefunc_failures", n(c.timefunc_failures)},
      {p + "tx_avg_wait_time", n(c.tx_waits ? c.tx_wait_time / c.tx_waits : 0)},
      {p + "tx_wait_time", n(c.tx_wait_time)},
      {p + "tx_waits", n(c.tx_waits)},
      {p + "wait_pos_backtraverse", n(c.wait_pos_backtraverse)},
      {p + "wait_sessions", n(waiting_.size())},
      {p + "yes_tx", n(c.yes_tx)},
  };
}

}  // namespace relaykv
