// The coordinator's admin work, run on its thread: SWITCHOVER TO (the
// leader hands over) and FAILOVER FORCE (an operator promotes this node
// when the rules refuse).
#include <algorithm>
#include <thread>

#include "server/coordinator.h"
#include "server/coordinator_internal.h"
#include "server/node_impl.h"
#include "spdlog/spdlog.h"

namespace relaykv {

using namespace coordinator_internal;

absl::Status Coordinator::RunOnOwnThread(const std::string& what, std::function<void()> work,
                                         std::chrono::seconds timeout) {
  auto job = std::make_shared<Job>();
  job->work = std::move(work);
  std::unique_lock l(mu_);
  if (job_) return absl::FailedPreconditionError("a SWITCHOVER or FAILOVER FORCE is already running");
  job_ = job;
  cv_.notify_all();
  cv_.wait_for(l, timeout, [&] { return job->done || stopping_; });
  if (job->done) return absl::OkStatus();
  if (!job->started) {
    // Never begun (the thread was busy, or stopping): withdrawn, so nothing
    // happens after the caller was told it did not (review-force F5, P6).
    job_.reset();
    return stopping_ ? absl::UnavailableError(what + ": the node is shutting down; nothing done")
                     : absl::DeadlineExceededError(what + ": not begun in time; nothing done");
  }
  return absl::DeadlineExceededError(what + ": still running; its outcome is in SHOW STATUS LIKE "
                                     "'Coordinator%' and the log");
}

absl::StatusOr<SwitchoverResult> Coordinator::Switchover(const std::string& target) {
  // Shared: a job that outlives a timed-out caller writes into it.
  auto result = std::make_shared<absl::StatusOr<SwitchoverResult>>(absl::UnknownError("not run"));
  auto s = RunOnOwnThread(
      "SWITCHOVER TO " + target,
      [this, target, result] {
        *result = lease_ && !restart_requested_
                      ? RunSwitchover(target)
                      : absl::FailedPreconditionError(
                            "SWITCHOVER runs on the cluster's primary; this node is not it" +
                            (leader_.empty() ? std::string() : " (the leader is " + leader_ + ")"));
      },
      kSwitchoverCatchUp + kSwitchoverAnswers + kSwitchoverElection + std::chrono::seconds(10));
  if (!s.ok()) return s;
  return *result;
}

absl::StatusOr<ForcedFailoverResult> Coordinator::ForceFailover() {
  auto result =
      std::make_shared<absl::StatusOr<ForcedFailoverResult>>(absl::UnknownError("not run"));
  // Revoke answers (kPeerRevokeTimeout each) and the claim.
  auto s = RunOnOwnThread(
      "FAILOVER FORCE", [this, result] { *result = RunForcedFailover(); },
      std::chrono::seconds(25));  // within the CLI's 30 s
  if (!s.ok()) return s;
  return *result;
}

absl::StatusOr<ForcedFailoverResult> Coordinator::RunForcedFailover() {
  Node::Impl& impl = *node_->impl_;
  const uint32_t me = options_.server_id;
  if (lease_) return absl::FailedPreconditionError("FAILOVER FORCE: this node is the primary already");
  if (restart_requested_) {
    return absl::UnavailableError("FAILOVER FORCE: this node is restarting to rejoin; try again");
  }
  if (!registered_) {
    // Unlisted, later elections would not revoke it (review-force F5).
    return absl::UnavailableError("FAILOVER FORCE: this node has not joined the cluster in etcd "
                                  "yet (see Coordinator_refusal); try again");
  }
  auto view = ReadClusterView(etcd_.get(), options_.cluster);
  if (!view.ok()) return view.status();
  if (view->leader || !view->leader_raw.empty()) {
    return absl::FailedPreconditionError(
        "FAILOVER FORCE is for a cluster without a primary; " + options_.cluster + " has one (" +
        (view->leader ? view->leader->address() : view->leader_raw) +
        "): use SWITCHOVER TO on it");
  }
  if (view->history.empty()) {
    return absl::FailedPreconditionError("FAILOVER FORCE: cluster " + options_.cluster +
                                         " has no history yet; start its first primary");
  }
  const Gtid last = impl.binlog_->LastVisible();
  // Forcing never forks: a node holding events the cluster's history says
  // were replaced cannot lead (it would hand them to everyone).
  if (auto lineage = failover::CheckLineage(last, view->history);
      lineage.lineage != failover::Lineage::kClean) {
    return absl::FailedPreconditionError("FAILOVER FORCE: this node cannot lead: " +
                                         lineage.reason);
  }
  const uint64_t current = failover::CurrentEpoch(view->history);
  const v1::EpochRecord& record = view->records.at(current);
  if (last < view->history.at(current).start_after) {
    // History stays one line: every epoch continues its predecessor's
    // start (review-force F4).
    return absl::FailedPreconditionError(
        "FAILOVER FORCE: this node (at " + last.ToString() + ") lacks the history epoch " +
        std::to_string(current) + " continued from (" +
        view->history.at(current).start_after.ToString() +
        "): it cannot lead; CLONE FROM a node that has it");
  }
  const uint64_t newest = std::max({current, impl.binlog_->epoch(), highest_promise_seen_});
  if (newest >= EpochPromise::kMaxEpoch) {
    return absl::FailedPreconditionError("FAILOVER FORCE: the newest epoch " +
                                         std::to_string(newest) + " is at or above " +
                                         std::to_string(EpochPromise::kMaxEpoch) +
                                         ", the largest there is");
  }
  const uint64_t epoch = newest + 1;
  // As an election: every reachable node promises the new epoch first, so
  // an old primary that still runs can get nothing acknowledged any more.
  const RevokeRound round = RevokeAll(*view, epoch, /*handover=*/false);
  if (round.higher_promise) {
    return absl::AbortedError("FAILOVER FORCE: " + round.higher_promise_reason +
                              "; run it again");
  }
  std::string warning;
  const auto warn = [&](const std::string& w) { warning += (warning.empty() ? "" : "; ") + w; };
  for (const failover::Responder& r : round.responders) {
    if (r.server_id == me || r.durable <= last) continue;
    const std::string who = "server_id " + std::to_string(r.server_id) + " (" +
                            view->nodes.at(r.server_id) + ")";
    const bool clean =
        failover::CheckLineage(r.durable, view->history).lineage == failover::Lineage::kClean;
    if (clean && !r.may_have_acked_unsynced) {
      // Nothing is gained by losing what a better candidate holds — the
      // previous primary's tail above all: writes answered OK without
      // ACKs may be there alone (review-force F2).
      return absl::FailedPreconditionError(
          "FAILOVER FORCE: " + who + " holds up to " + r.durable.ToString() +
          ", ahead of this node (" + last.ToString() + "): run FAILOVER FORCE there" +
          (r.previous_primary ? " (it is the previous primary; if it cannot reach etcd, fix that "
                                "or stop it first)"
                              : ""));
    }
    warn(who + " holds up to " + r.durable.ToString() + ", past this node's " + last.ToString() +
         ": those events are not in the new epoch (that node is refused until it is cloned)");
  }
  for (uint32_t id : round.unreachable) {
    warn("server_id " + std::to_string(id) + " (" + view->nodes.at(id) +
         ") did not answer: it may hold acknowledged writes this node lacks");
  }
  if (record.went_async()) {
    warn("epoch " + std::to_string(current) + " went async after seq " +
         std::to_string(record.went_async_after()) +
         ": writes acknowledged without ACKs after it may be lost");
  }
  failover::QuorumInput q;
  q.listed_ackers = round.listed;
  q.acks_per_commit = static_cast<int>(record.acks_per_commit());
  q.answered_ackers = round.answered;
  q.answered_ackers_acked_unsynced = round.answered_unsynced;
  q.new_primary_is_acker = me != view->history.at(current).primary;
  q.new_primary_is_previous = !q.new_primary_is_acker;
  const failover::Decision quorum = failover::CheckElectionQuorum(q);
  if (!quorum.ok) warn("the election rule refused: " + quorum.reason);
  // An election the rules allow is not recorded as forced: that would
  // refuse, for good, old tails a normal failover truncates (review-force F3).
  failover::ElectionInput in;
  in.history = view->history;
  in.cluster_async = record.went_async();
  in.responders = round.responders;
  in.revoke_quorum_met = quorum.ok;
  // Its own --failover-priority=0 is what the operator overrides here; it
  // does not make an otherwise ordinary election forced (review-force2 P2).
  // Any other priority counts as it is (review-last F3).
  for (failover::Responder& r : in.responders) {
    if (r.server_id == me && r.priority <= 0) r.priority = 1;
  }
  const bool rules_allow = quorum.ok && failover::PickWinner(in).winner == me;
  spdlog::warn("automatic failover: FAILOVER FORCE of epoch {} on this node at {}: {}{}", epoch,
               last.ToString(), warning.empty() ? "no known loss" : warning,
               rules_allow ? " (the election rules allow it: not recorded as forced)" : "");
  auto start = Claim(*view, epoch, quorum.ok, round.listed, /*forced=*/!rules_allow);
  if (!start.ok()) return start.status();
  return ForcedFailoverResult{*start, warning};
}

absl::StatusOr<SwitchoverResult> Coordinator::RunSwitchover(const std::string& target) {
  Node::Impl& impl = *node_->impl_;
  auto view = ReadClusterView(etcd_.get(), options_.cluster);
  if (!view.ok()) return view.status();
  uint32_t target_id = 0;
  std::string known;
  for (const auto& [id, address] : view->nodes) {
    if (address == target) target_id = id;
    known += (known.empty() ? "" : ", ") + address;
  }
  if (target_id == 0) {
    return absl::InvalidArgumentError("SWITCHOVER TO '" + target + "': not a node of cluster " +
                                      options_.cluster + " (its nodes: " + known + ")");
  }
  if (target_id == options_.server_id) {
    return absl::InvalidArgumentError("SWITCHOVER TO '" + target + "': that is this primary");
  }
  if (view->priorities.contains(target_id) && view->priorities.at(target_id) == 0) {
    return absl::FailedPreconditionError("SWITCHOVER TO '" + target +
                                         "': it runs with --failover-priority=0 (never promoted)");
  }
  const auto acked = [&]() -> std::optional<Gtid> {
    for (const ReplicaSummary& r : node_->Replicas()) {
      if (r.server_id == target_id && r.semi_sync) return r.acked;
    }
    return std::nullopt;
  };
  if (!acked()) {
    return absl::FailedPreconditionError("SWITCHOVER TO '" + target +
                                         "': it is not connected to this primary as a semi-sync "
                                         "replica (SHOW REPLICAS; one with sync_relay_log=0 is "
                                         "not)");
  }
  // Refused before anything changes if the target could not win the
  // election that follows (review-coord2 4).
  const uint64_t current = failover::CurrentEpoch(view->history);
  if (current != 0 && view->records.at(current).went_async()) {
    return absl::FailedPreconditionError(
        "SWITCHOVER: epoch " + std::to_string(current) +
        " went async (recorded in etcd): no replica may take over automatically");
  }
  failover::QuorumInput q;
  q.listed_ackers = static_cast<int>(view->nodes.size()) - (view->nodes.count(options_.server_id) ? 1 : 0);
  q.acks_per_commit =
      current != 0 ? static_cast<int>(view->records.at(current).acks_per_commit()) : 0;
  q.answered_ackers = q.listed_ackers;
  q.new_primary_is_acker = true;
  if (auto d = failover::CheckElectionQuorum(q); !d.ok) {
    return absl::FailedPreconditionError("SWITCHOVER TO '" + target +
                                         "': the election it needs could not succeed even with "
                                         "every node answering: " + d.reason);
  }
  // Writes refused from here (nothing written); those in flight finish.
  const auto refused_at = Clock::now();
  impl.draining_.store(true);
  const auto undrain = [&] { impl.draining_.store(false); };
  const auto caught_up_by = refused_at + kSwitchoverCatchUp;
  const auto give_up = [&](const std::string& what) {
    undrain();
    return absl::DeadlineExceededError("SWITCHOVER TO '" + target + "': " + what +
                                       " within 5 s; nothing changed");
  };
  // The lease window is renewed during the waits below: the loop that
  // renews it waits for this job (review s42b F1). A lost key or a Revoke
  // ends the switchover.
  const auto revoked = [&] {
    return impl.revoked_.load() || impl.promise_->value() > impl.binlog_->epoch();
  };
  auto renewed_at = Clock::now();
  const auto renew = [&]() -> bool {
    if (revoked()) return false;
    if (Clock::now() - renewed_at < kLoop) return true;
    renewed_at = Clock::now();
    bool key_lost = false;
    (void)RenewLeaseWindow(&key_lost);
    return !key_lost;
  };
  const auto no_longer_leads = [&] {
    // No OK from here; the next loop gives the role up as it does for a
    // lost key or a Revoke.
    impl.SetHeld(true);
    undrain();
    return absl::AbortedError(
        "SWITCHOVER: this node no longer holds the leader key, or a newer epoch was promised: "
        "it gives the primary role up (and restarts to rejoin) instead of handing it over");
  };
  // A write that passed the gate before the flag may still be on its way
  // into the binlog, or queued there and not yet visible: the target must
  // hold it too, or it would become visible after the check below — held
  // by another replica only (the election stalls until the handover
  // expires) or by none (an unacknowledged tail; its writer told "outcome
  // unknown") (review s41d 3). Once the gate drained, each is queued; the
  // sync queued after them returns once they are visible.
  while (!impl.DrainCommitGateFor(std::chrono::milliseconds(2))) {
    if (!renew()) return no_longer_leads();
    if (Clock::now() >= caught_up_by) return give_up("the writes in flight did not reach the binlog");
  }
  if (auto s = impl.binlog_->SyncVisible(); !s.ok()) {
    undrain();
    return absl::Status(s.code(), "SWITCHOVER TO '" + target + "': " + std::string(s.message()) +
                                      "; nothing changed");
  }
  for (;;) {
    const std::optional<Gtid> a = acked();
    if (a && *a >= impl.binlog_->LastVisible()) break;
    if (Clock::now() >= caught_up_by) {
      return give_up("it did not ACK this primary's binlog end " +
                     impl.binlog_->LastVisible().ToString());
    }
    if (!renew()) return no_longer_leads();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // Their answers, while this node still leads (review s42b F2): the
  // target's ACK is recorded before the commits it releases are answered.
  // Bounded: a write that waits for another replica's ACK too
  // (wait_for_slave_count 2) is not waited for — semi-sync cannot time out
  // while this job runs; the target holds it, its writer is told "outcome
  // unknown".
  const auto answered_by = Clock::now() + kSwitchoverAnswers;
  while (impl.committing_.load() > 0 && Clock::now() < answered_by) {
    if (!renew()) return no_longer_leads();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (revoked()) return no_longer_leads();
  // Name the target (on a short lease: a handover that never happens is
  // forgotten), then give up the key; no OK is answered from here on.
  const uint64_t epoch = impl.binlog_->epoch();
  v1::LeaderRecord next;
  next.set_server_id(target_id);
  next.set_epoch(epoch);
  next.set_address(target);
  auto short_lease = etcd_->LeaseGrant(30);
  if (!short_lease.ok()) {
    undrain();
    return short_lease.status();
  }
  // Only while this node still leads (the lease may have gone during the
  // catch-up): a node that no longer leads must not name anyone.
  auto put = etcd_->Txn({etcd::Compare::CreateRevision(LeaderLease::LeaderKey(options_.cluster),
                                                       etcd::Compare::Result::kEqual,
                                                       lease_->create_revision())},
                        {etcd::TxnOp::Put(ClusterPrefix(options_.cluster) + "switchover",
                                          ToJson(next), short_lease->id)});
  if (!put.ok()) {
    undrain();
    return put.status();
  }
  if (!put->succeeded) return no_longer_leads();
  impl.lease_until_ns_.store(0);
  impl.SetHeld(true);
  undrain();
  if (auto s = lease_->Release(); !s.ok()) {
    spdlog::warn("switchover: leader key not released ({}); it expires with the lease",
                 s.ToString());
  }
  lease_.reset();
  SetRole("unknown");
  spdlog::warn("switchover: handing the primary role to {} (server_id {}) at {}", target,
               target_id, impl.binlog_->LastVisible().ToString());
  const auto elected_by = Clock::now() + kSwitchoverElection;
  while (Clock::now() < elected_by) {
    auto now = ReadClusterView(etcd_.get(), options_.cluster);
    if (now.ok() && now->leader && now->leader->server_id() == target_id &&
        now->leader->epoch() > epoch) {
      SwitchoverResult r;
      const auto rec = now->history.find(now->leader->epoch());
      if (rec != now->history.end()) {
        r.epoch_start = Gtid{now->leader->epoch(), rec->second.start_after.seq + 1};
      }
      r.unavailable_ms = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - refused_at).count());
      return r;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError("SWITCHOVER TO '" + target +
                                     "': this node gave up the primary role, but the target did "
                                     "not claim it within 10 s; see its Coordinator_refusal");
}

}  // namespace relaykv
