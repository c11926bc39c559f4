#include "server/semisync.h"

#include <algorithm>
#include <optional>
#include <semaphore>
#include <vector>

#include "spdlog/spdlog.h"
#include "storage/thread_name.h"

namespace relaykv {

using Clock = std::chrono::steady_clock;

namespace {
// How often the timer asks waiting commits' callers whether they are gone,
// and how long it keeps that pace after the last wait ended (so a steady
// stream of commits never has to wake it).
constexpr auto kPollPeriod = std::chrono::milliseconds(20);
constexpr auto kIdleAfter = std::chrono::seconds(1);

// The masters whose callbacks (or on_acked_) this thread is running
// outside their lock, innermost last.
thread_local std::vector<const SemiSyncMaster*> tl_outside;

absl::Status RevokedError(uint64_t seq, const std::string& why) {
  return absl::UnavailableError("commit of seq " + std::to_string(seq) + " not acknowledged: " +
                                why + "; the write is in this node's binlog, outcome unknown (it "
                                "survives only if the new primary has it)");
}
}  // namespace

SemiSyncMaster::SemiSyncMaster(std::function<Gtid()> binlog_end,
                               std::function<void(uint64_t)> on_acked)
    : binlog_end_(std::move(binlog_end)),
      on_acked_(std::move(on_acked)),
      timer_at_(Clock::time_point::max()),
      timer_([this] {
        NameThisThread("rkv-semisync");
        TimerLoop();
      }) {}

SemiSyncMaster::~SemiSyncMaster() {
  Close();
  WaitIdle();
  {
    std::lock_guard l(mu_);
    stop_ = true;
  }
  timer_cv_.notify_all();
  timer_.join();
}

size_t SemiSyncMaster::CountedReplicas() const {
  if (!ackers_) return semi_acks_.size();
  return static_cast<size_t>(std::count_if(semi_acks_.begin(), semi_acks_.end(),
                                           [&](const auto& r) { return Counts(r.first); }));
}

uint64_t SemiSyncMaster::QuorumSeq(uint32_t credit, uint32_t not_from) const {
  const uint64_t count = settings_.wait_for_slave_count;
  if (count == 0) return 0;
  // A credit never lets a tail show on this node alone (invariant 1: it
  // must survive the loss of one copy).
  const size_t need = static_cast<size_t>(count > credit ? count - credit : 1);
  std::vector<uint64_t> acks;
  for (const auto& [server_id, r] : semi_acks_) {
    if (credit > 0 && not_from != 0 && server_id == not_from) continue;
    if (Counts(server_id)) acks.push_back(r.acked_seq);
  }
  if (acks.size() < need) return 0;
  // The need-th highest ACK: that many distinct replicas are at or past it.
  std::nth_element(acks.begin(), acks.begin() + static_cast<long>(need - 1), acks.end(),
                   std::greater<>());
  return acks[need - 1];
}

void SemiSyncMaster::set_async_gate(std::function<bool()> gate) {
  std::lock_guard l(mu_);
  async_gate_ = std::move(gate);
}

bool SemiSyncMaster::async_wanted() const {
  std::lock_guard l(mu_);
  return async_wanted_;
}

bool SemiSyncMaster::waits() const {
  std::lock_guard l(mu_);
  return status_on_ && (settings_.enabled || (async_gate_ && !async_gate_()));
}

uint64_t SemiSyncMaster::acked_seq() const {
  std::lock_guard l(mu_);
  return quorum_seq_;
}

uint64_t SemiSyncMaster::released_seq() const {
  std::lock_guard l(mu_);
  return std::max(quorum_seq_, async_max_);
}

bool SemiSyncMaster::Resynced() const {
  return status_on_ && settings_.enabled && revoked_.empty() && quorum_seq_ >= async_max_;
}

std::optional<uint64_t> SemiSyncMaster::resynced_at() const {
  std::lock_guard l(mu_);
  if (!Resynced()) return std::nullopt;
  return quorum_seq_;
}

std::optional<uint64_t> SemiSyncMaster::TakeResync() {
  std::lock_guard l(mu_);
  if (!Resynced()) return std::nullopt;
  async_wanted_ = false;
  return quorum_seq_;
}

void SemiSyncMaster::WarnIfNotCounted(uint32_t server_id) const {
  if (Counts(server_id)) return;
  if (ackers_ && ackers_->empty()) {
    // A coordinated primary that has not read etcd's nodes/ yet (just
    // started): nobody counts yet, which says nothing about this replica.
    spdlog::info("semi-sync: replica server_id {}'s ACKs count once the cluster's members are "
                 "read from etcd",
                 server_id);
    return;
  }
  spdlog::warn("semi-sync: replica server_id {} did not join the cluster (no --etcd): its ACKs do "
               "not count",
               server_id);
}

bool SemiSyncMaster::counts(uint32_t server_id) const {
  std::lock_guard l(mu_);
  return Counts(server_id);
}

void SemiSyncMaster::set_ackers(std::optional<std::set<uint32_t>> ackers) {
  std::unique_lock l(mu_);
  if (ackers_ == ackers) return;
  ackers_ = std::move(ackers);
  for (const auto& [server_id, r] : semi_acks_) {
    WarnIfNotCounted(server_id);
  }
  // Fewer may count now (nothing already released moves back), or more.
  Advance(l);
}

bool SemiSyncMaster::SwitchOff(const std::string& why) {
  if (!status_on_) return true;
  if (async_gate_ && !async_gate_()) {
    if (!async_wanted_) {
      spdlog::warn("semi-sync would switch OFF ({}), but automatic failover needs that recorded "
                   "in etcd first: commits keep waiting meanwhile",
                   why);
    }
    async_wanted_ = true;
    return false;
  }
  async_wanted_ = false;
  status_on_ = false;
  ++counters_.no_times;
  spdlog::warn("semi-sync switched OFF at binlog GTID {}: {}", binlog_end_().ToString(), why);
  ResolveUpTo();
  return true;
}

void SemiSyncMaster::MaybeSwitchOn() {
  // Back ON once the replicas connected now (not some that have left) have
  // ACKed the current end of the binlog.
  if (status_on_ || !settings_.enabled) return;
  const uint64_t q = QuorumSeq();
  if (q == 0) return;
  const Gtid end = binlog_end_();
  if (q >= end.seq) {
    status_on_ = true;
    spdlog::info("semi-sync switched ON at binlog GTID {}: replicas have ACKed up to the binlog end",
                 end.ToString());
  }
}

SemiSyncMaster::Registration SemiSyncMaster::Register(uint64_t seq) {
  std::lock_guard l(mu_);
  if (closed_ || !revoked_.empty() || !settings_.enabled || !status_on_) return kNotRegistered;
  const Registration mine = ++last_registration_;
  if (auto r = registered_.find(seq); r != registered_.end()) {
    // Only a failed group's seqs are given out again, and its commits
    // unregister from their callbacks, which may run after the next group
    // took the seqs: this commit takes the failed one's place, whose
    // Unregister then finds another registration and leaves it (review
    // s31, replication 5; s32-late F2).
    r->second = {mine, Clock::now()};
    return mine;
  }
  if (!waiting_.empty() && seq < *waiting_.begin()) ++counters_.wait_pos_backtraverse;
  waiting_.insert(seq);
  registered_[seq] = {mine, Clock::now()};
  return mine;
}

void SemiSyncMaster::Unregister(uint64_t seq, Registration registration) {
  std::lock_guard l(mu_);
  TakeRegistration(seq, registration);
}

std::optional<Clock::time_point> SemiSyncMaster::TakeRegistration(
    uint64_t seq, Registration registration) {
  auto r = registered_.find(seq);
  if (registration == kNotRegistered || r == registered_.end() ||
      r->second.registration != registration) {
    return std::nullopt;
  }
  const Clock::time_point start = r->second.start;
  registered_.erase(r);
  if (auto it = waiting_.find(seq); it != waiting_.end()) waiting_.erase(it);
  return start;
}

SemiSyncMaster::Result SemiSyncMaster::Resolve(const Pending& p) {
  const bool counted = p.hold == 0;
  if (quorum_seq_ >= p.seq) {
    if (counted) {
      ++counters_.tx_waits;
      counters_.tx_wait_time += static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - p.start).count());
      ++counters_.yes_tx;
    }
    return Outcome::kAcked;
  }
  if (closed_) return absl::UnavailableError("server shut down while the commit waited for replicas");
  if (!revoked_.empty()) return RevokedError(p.seq, revoked_);
  // Switched OFF (timeout, no replicas) or disabled while it waited.
  if (counted) ++counters_.no_tx;
  ReleasedAsync(p.seq);
  return Outcome::kAsync;
}

void SemiSyncMaster::Forget(const Pending& p) {
  if (p.hold == 0) waiting_.erase(waiting_.find(p.seq));
}

bool SemiSyncMaster::CompleteRefusedOff() {
  if (settings_.enabled || !status_on_) return false;
  return SwitchOff("rpl_semi_sync_master_enabled set to OFF");
}

void SemiSyncMaster::ResolveUpTo(uint64_t seq) {
  auto end = pending_.upper_bound(seq);
  for (auto it = pending_.begin(); it != end; ++it) {
    ready_.emplace_back(std::move(it->second.done), Resolve(it->second));
    Forget(it->second);
  }
  pending_.erase(pending_.begin(), end);
}

void SemiSyncMaster::RunReady(std::unique_lock<std::mutex>& l) {
  if (ready_.empty()) return;
  Ready ready;
  ready.swap(ready_);
  Outside(l, [&] {
    for (auto& [done, result] : ready) done(std::move(result));
  });
}

void SemiSyncMaster::Outside(std::unique_lock<std::mutex>& l, const std::function<void()>& f) {
  ++outside_;
  tl_outside.push_back(this);
  l.unlock();
  // Counted back even if `f` throws: WaitIdle() must not wait forever.
  struct Back {
    SemiSyncMaster* m;
    std::unique_lock<std::mutex>& l;
    ~Back() {
      l.lock();
      tl_outside.pop_back();
      if (--m->outside_ == 0) m->outside_cv_.notify_all();
    }
  } back{this, l};
  f();
}

void SemiSyncMaster::WaitAsync(uint64_t seq, Registration registration,
                               Clock::time_point deadline, std::function<bool()> cancelled,
                               Done done) {
  Wait(seq, registration, deadline, std::move(cancelled), std::move(done), 0);
}

SemiSyncMaster::Hold SemiSyncMaster::HoldTail(uint64_t seq, Done done, uint32_t credit,
                                              uint32_t credit_not_from) {
  Hold hold;
  {
    std::lock_guard l(mu_);
    hold = ++last_hold_;
  }
  Wait(seq, kNotRegistered, Clock::time_point::max(), nullptr, std::move(done), hold, credit,
       credit_not_from);
  return hold;
}

void SemiSyncMaster::ResolveCreditedHolds() {
  for (auto it = pending_.begin(); it != pending_.end();) {
    const Pending& p = it->second;
    if (p.credit == 0 || QuorumSeq(p.credit, p.credit_not_from) < p.seq) {
      ++it;
      continue;
    }
    ready_.emplace_back(std::move(it->second.done), Outcome::kAcked);  // a hold: nothing counted
    it = pending_.erase(it);
  }
}

void SemiSyncMaster::EndHold(Hold hold) {
  std::unique_lock l(mu_);
  auto it = std::find_if(pending_.begin(), pending_.end(),
                         [&](const auto& e) { return e.second.hold == hold; });
  if (it == pending_.end()) return;
  Done done = std::move(it->second.done);
  const uint64_t seq = it->first;
  pending_.erase(it);
  l.unlock();
  // Only its own callback: the caller may hold locks a commit's would take
  // (review s34 F3).
  done(absl::CancelledError("the held binlog tail up to seq " + std::to_string(seq) +
                            " is left to the new primary"));
}

void SemiSyncMaster::Wait(uint64_t seq, Registration registration, Clock::time_point deadline,
                          std::function<bool()> cancelled, Done done, Hold hold,
                          uint32_t credit, uint32_t credit_not_from) {
  const bool counted = hold == 0;
  std::unique_lock l(mu_);
  // Registered at seq assignment: the wait began then (see Register()).
  const std::optional<Clock::time_point> registered = TakeRegistration(seq, registration);
  auto now = [&](Result r) {
    l.unlock();
    done(std::move(r));
  };
  if (closed_) return now(absl::UnavailableError("server is shutting down"));
  // Before every other outcome: a revoked primary answers no commit OK,
  // async ones included.
  if (!revoked_.empty()) return now(RevokedError(seq, revoked_));
  if (!settings_.enabled && (!async_gate_ || async_gate_())) {
    // An OFF the async gate refused is carried out now that it is open:
    // the commits still waiting go async with this one, not after it
    // (review s31: this one made them readable, so an ACK later must not
    // count them as semi-sync).
    if (CompleteRefusedOff()) {
      RunReady(l);  // unlocks: what changed meanwhile still decides this one
      if (closed_) return now(absl::UnavailableError("server is shutting down"));
      if (!revoked_.empty()) return now(RevokedError(seq, revoked_));
    }
    // A commit that began waiting (registered) before semi-sync was turned
    // off is released by it, as if it had been waiting already: no_tx. One
    // that began after it is not counted at all.
    if (registered) ++counters_.no_tx;
    ReleasedAsync(seq);
    async_wanted_ = false;  // the OFF asked for is in effect
    return now(Outcome::kAsync);
  }
  if (status_on_ && !settings_.wait_no_slave && CountedReplicas() < settings_.wait_for_slave_count) {
    SwitchOff("fewer semi-sync replicas connected than rpl_semi_sync_master_wait_for_slave_count "
              "and rpl_semi_sync_master_wait_no_slave is OFF");
    RunReady(l);  // unlocks, as above
    if (closed_) return now(absl::UnavailableError("server is shutting down"));
    if (!revoked_.empty()) return now(RevokedError(seq, revoked_));
  }
  if (!status_on_) {
    if (counted) ++counters_.no_tx;
    ReleasedAsync(seq);
    return now(Outcome::kAsync);
  }
  if (quorum_seq_ >= seq || (credit > 0 && QuorumSeq(credit, credit_not_from) >= seq)) {
    if (registered) {  // it waited from its registration until the ACK
      ++counters_.tx_waits;
      counters_.tx_wait_time += static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - *registered).count());
    }  // else: the ACK was there before it ever waited — counted, not as a wait
    if (counted) ++counters_.yes_tx;
    return now(Outcome::kAcked);
  }
  if (counted) {
    if (!registered && !waiting_.empty() && seq < *waiting_.begin()) {
      ++counters_.wait_pos_backtraverse;
    }
    waiting_.insert(seq);
  }
  const Clock::time_point now_t = Clock::now();
  const Clock::time_point start = registered.value_or(now_t);
  Pending p{seq,      start, now_t + std::chrono::milliseconds(settings_.timeout_ms),
            deadline, std::move(cancelled), std::move(done), hold, credit, credit_not_from};
  Clock::time_point check = std::min(p.timeout_at, p.deadline);
  if (p.cancelled) check = std::min(check, Clock::now() + kPollPeriod);
  pending_.emplace(seq, std::move(p));
  if (check < timer_at_) {
    timer_at_ = check;
    timer_cv_.notify_one();
  }
}

SemiSyncMaster::Result SemiSyncMaster::WaitForAck(uint64_t seq, Registration registration,
                                                  Clock::time_point deadline,
                                                  std::function<bool()> cancelled) {
  std::binary_semaphore woken{0};
  Result result = absl::UnknownError("semi-sync wait never resolved");
  WaitAsync(seq, registration, deadline, std::move(cancelled), [&](Result r) {
    result = std::move(r);
    woken.release();  // last: `result` and `woken` may be gone right after
  });
  woken.acquire();
  return result;
}

Clock::time_point SemiSyncMaster::NextCheck() const {
  Clock::time_point next = Clock::time_point::max();
  bool poll = false;
  for (const auto& [seq, p] : pending_) {
    next = std::min({next, p.timeout_at, p.deadline});
    poll = poll || p.cancelled != nullptr;
  }
  if (poll) next = std::min(next, Clock::now() + kPollPeriod);
  return next;
}

void SemiSyncMaster::TimerLoop() {
  std::unique_lock l(mu_);
  auto last_busy = Clock::now();
  while (!stop_) {
    const auto now = Clock::now();
    if (!pending_.empty()) last_busy = now;
    // While commits come and go it ticks anyway, so a new wait need not wake it.
    timer_at_ = std::min(NextCheck(), now - last_busy < kIdleAfter ? now + kPollPeriod
                                                                    : Clock::time_point::max());
    if (timer_at_ == Clock::time_point::max()) {
      timer_cv_.wait(l);
    } else {
      timer_cv_.wait_until(l, timer_at_);
    }
    if (stop_) break;
    const auto t = Clock::now();
    // Waits an ACK has already reached (its thread is still applying): done,
    // so that none of them counts as timed out or keeps this loop spinning.
    ResolveUpTo(quorum_seq_);
    // Without a new commit to do it: waits end within a poll period of the
    // gate opening, not at their timeout.
    CompleteRefusedOff();
    // A timeout switches semi-sync OFF, which ends every wait.
    for (auto& [seq, p] : pending_) {
      if (t >= p.timeout_at && status_on_) {
        // Refused while the async gate is closed: the waits go on.
        if (SwitchOff("timeout waiting for replicas to ACK seq " + std::to_string(seq) + " after " +
                  std::to_string(settings_.timeout_ms) + " ms (ACKed up to seq " +
                  std::to_string(quorum_seq_) + "); commits continue asynchronously")) {
          ++counters_.timeouts;
        } else {
          // Not allowed yet (async gate): ask again later, not in a spin.
          p.timeout_at = t + kPollPeriod;
        }
        break;
      }
    }
    for (auto it = pending_.begin(); it != pending_.end();) {
      Pending& p = it->second;
      std::optional<absl::Status> end;
      if (p.cancelled && p.cancelled()) {
        end = absl::CancelledError("the client went away while its commit waited for replicas to ACK seq " +
                                   std::to_string(p.seq) +
                                   "; the write is in the binlog and will replicate");
      } else if (t >= p.deadline) {
        // The caller's deadline: never answered OK, not counted.
        end = absl::DeadlineExceededError("deadline passed while waiting for replicas to ACK seq " +
                                          std::to_string(p.seq) +
                                          "; the write is in the binlog and will replicate");
      }
      if (!end) {
        ++it;
        continue;
      }
      ready_.emplace_back(std::move(p.done), *end);
      Forget(p);
      it = pending_.erase(it);
    }
    RunReady(l);
  }
}

void SemiSyncMaster::ReplicaConnected(uint64_t connection_id, uint32_t server_id, bool semi_sync,
                                      uint64_t durable_seq) {
  std::unique_lock l(mu_);
  // A new stream of a replica replaces its old one, semi-sync or not; of two
  // registering at once the newer (higher id) wins, as in the service —
  // also over a newer one that is not semi-sync (review s48a N4).
  uint64_t& latest = latest_stream_[server_id];
  if (latest > connection_id) return;
  latest = connection_id;
  if (auto it = semi_acks_.find(server_id); it != semi_acks_.end()) {
    server_ids_.erase(it->second.connection_id);
    semi_acks_.erase(it);
    if (!semi_sync) {
      // Its old stream's ReplicaDisconnected will find nothing: this is
      // where it stopped counting (review s48a N5).
      Left(l);
      return;
    }
  }
  if (!semi_sync) return;
  WarnIfNotCounted(server_id);
  semi_acks_[server_id] = {connection_id, durable_seq};
  server_ids_[connection_id] = server_id;
  Advance(l);
}

void SemiSyncMaster::ReplicaDisconnected(uint64_t connection_id) {
  std::unique_lock l(mu_);
  // Bounded by the replicas connected now, whatever server_ids come and go.
  std::erase_if(latest_stream_, [&](const auto& e) { return e.second == connection_id; });
  auto it = server_ids_.find(connection_id);
  if (it == server_ids_.end()) return;
  semi_acks_.erase(it->second);
  server_ids_.erase(it);
  Left(l);
}

void SemiSyncMaster::Left(std::unique_lock<std::mutex>& l) {
  if (settings_.enabled && !settings_.wait_no_slave &&
      CountedReplicas() < settings_.wait_for_slave_count) {
    SwitchOff("a semi-sync replica left and rpl_semi_sync_master_wait_no_slave is OFF");
  }
  ResolveUpTo(quorum_seq_);
  RunReady(l);
}

void SemiSyncMaster::Ack(uint64_t connection_id, uint64_t seq, int64_t net_wait_us) {
  std::unique_lock l(mu_);
  auto id = server_ids_.find(connection_id);
  if (id == server_ids_.end()) return;  // not (or no longer) a counted semi-sync stream
  SemiReplica& r = semi_acks_.at(id->second);
  r.acked_seq = std::max(r.acked_seq, seq);
  ++counters_.net_waits;
  if (net_wait_us >= 0) counters_.net_wait_time += static_cast<uint64_t>(net_wait_us);
  Advance(l);
}

void SemiSyncMaster::Advance(std::unique_lock<std::mutex>& l) {
  // Closed: nothing is released any more, so nothing new runs outside the
  // lock once WaitIdle() has returned (review s34-close F3).
  if (closed_) return;
  // Revoked: ACKs from replicas that were not revoked release nothing (the
  // new primary decides what survives).
  if (!revoked_.empty()) return;
  const uint64_t q = QuorumSeq();
  MaybeSwitchOn();
  ResolveCreditedHolds();
  if (q <= quorum_seq_) {
    RunReady(l);
    return;
  }
  quorum_seq_ = q;
  // First what the new position allows (the applier, on this thread), then
  // the commits it releases: they find their write applied.
  if (on_acked_) Outside(l, [&] { on_acked_(q); });
  ResolveUpTo(q);
  RunReady(l);
}

void SemiSyncMaster::Configure(const SemiSyncSettings& s) {
  std::unique_lock l(mu_);
  // A SET's hook that read the variables before a later SET stored its
  // value, and comes here after that one's hook (review s49b M1).
  if (s.variables_version < settings_.variables_version) return;
  const bool was_enabled = settings_.enabled;
  settings_ = s;
  if (was_enabled && !s.enabled) {
    SwitchOff("rpl_semi_sync_master_enabled set to OFF");
  } else if (!was_enabled && s.enabled) {
    status_on_ = true;  // as MySQL: ON at once, even before a replica connects
    async_wanted_ = false;  // the OFF it asked for is over
  }
  // A lower wait count may release waits (a new timeout applies to new
  // ones) — and what it releases is applied, as an ACK's release is, even
  // with no commit waiting for it any more (review s31).
  Advance(l);
  RunReady(l);
}

void SemiSyncMaster::Close() {
  std::unique_lock l(mu_);
  closed_ = true;
  ResolveUpTo();
  RunReady(l);
}

void SemiSyncMaster::WaitIdle() {
  std::unique_lock l(mu_);
  // Not from inside one of ours: it would wait for itself.
  if (std::find(tl_outside.begin(), tl_outside.end(), this) != tl_outside.end()) return;
  outside_cv_.wait(l, [&] { return outside_ == 0; });
}

void SemiSyncMaster::Revoke(const std::string& why) {
  std::unique_lock l(mu_);
  if (!revoked_.empty()) return;
  revoked_ = why;
  spdlog::warn("semi-sync: {}; {} waiting commits end UNAVAILABLE (outcome unknown) and no commit "
               "is acknowledged any more",
               why, pending_.size());
  ResolveUpTo();  // Resolve() answers each with RevokedError
  RunReady(l);
}

void SemiSyncMaster::Unrevoke() {
  std::unique_lock l(mu_);
  if (revoked_.empty()) return;
  revoked_.clear();
  // ACKs that came while revoked were kept (Ack) but moved nothing: what
  // they reach now counts, as if they came now (review s31).
  Advance(l);
}

uint64_t SemiSyncMaster::timeouts() const {
  std::lock_guard l(mu_);
  return counters_.timeouts;
}

NameValues SemiSyncMaster::Status() const {
  std::lock_guard l(mu_);
  const Counters& c = counters_;
  auto n = [](uint64_t v) { return std::to_string(v); };
  const std::string p = "Rpl_semi_sync_master_";
  return {
      {p + "clients", n(CountedReplicas())},
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
