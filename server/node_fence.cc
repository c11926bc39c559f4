// Fencing by a durable promised epoch (server/epoch_promise.h): Revoke, and
// what a revoked primary does. README "Failover" and proto/replication.proto
// ("Revoke") state the contract.
//
// Why the old primary cannot collect an ACK for a new commit from a node
// once that node's Revoke(E+1) has returned: Revoke raises the promise
// under EpochPromise's lock, which the IO thread holds from checking the
// primary's epoch until its ACK is written; so every later batch of the
// epoch-E stream fails the check and is neither appended nor ACKed. A new
// stream to it is refused too: the replica's hello carries the promise (a
// new primary refuses it), and its first message's epoch fails the same
// check. The hello's own position, which a primary counts as an ACK, is
// what the relay log held when Revoke answered (durable_gtid) — nothing
// the election does not see.
#include <chrono>
#include <utility>

#include "server/node_impl.h"
#include "server/test_pause.h"
#include "spdlog/spdlog.h"

namespace relaykv {

namespace {
// How long Revoke waits for the promise's lock (held by an IO thread from
// its epoch check until its ACK is written, or by a Raise on a slow disk)
// before answering UNAVAILABLE: a stuck relay-log disk must not pile up
// RPC threads. The candidate retries or counts this node as unreachable.
constexpr std::chrono::seconds kRevokeLockWait{10};
}  // namespace

namespace {
bool LeaseExpired(const std::atomic<int64_t>& until_ns) {
  return LeaseClock::now().time_since_epoch().count() >= until_ns.load();
}
}  // namespace

absl::Status Node::Impl::CheckNotRevoked() const {
  if (held_.load()) {
    return absl::UnavailableError(
        "this node's role is not known yet (automatic failover: it has not read etcd, or it lost "
        "its leader lease): it takes no writes; retry, or send them to the cluster's primary");
  }
  if (draining_.load()) {
    return absl::UnavailableError(
        "this primary is handing its role over (SWITCHOVER): it takes no writes; retry on the new "
        "primary in a moment");
  }
  if (LeaseExpired(lease_until_ns_)) {
    return absl::UnavailableError(
        "this primary's leader lease in etcd may have expired: it takes no writes (another node "
        "may be elected); retry");
  }
  if (!revoked_.load() && binlog_->epoch() >= promise_->value()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      "this primary is fenced: its epoch " + std::to_string(binlog_->epoch()) +
      " was revoked (promised epoch " + std::to_string(promise_->value()) +
      "), so it takes no writes; send them to the primary of the new epoch");
}

bool Node::Impl::GateClosed() const {
  return revoked_.load() || held_.load() || binlog_->epoch() < promise_->value() ||
         LeaseExpired(lease_until_ns_);
}

absl::Status Node::Impl::CheckRoleNotManaged(const char* what) const {
  if (!coordinator_ || coordinator_->OnOwnThread()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      std::string(what) + " is refused: this node's role is managed by etcd (--etcd, cluster " +
      options_.cluster + "); use SWITCHOVER TO, or stop the coordinated nodes first");
}

bool Node::Impl::GateClosedForReads() const {
  std::lock_guard l(gate_mu_);
  return GateClosed();
}

void Node::Impl::SetHeld(bool held) {
  held_.store(held);
  UpdatePrimaryFence();
  if (held) DrainCommitGateIfClosed();
}

absl::StatusOr<Gtid> Node::Impl::PromoteHeldPrimary() {
  const Gtid last = binlog_->LastVisible();
  // Elected again (alone, after a crash, needs no revoke quorum): its tail
  // past what it had applied may be on no replica, so it is held as at a
  // restart without etcd — not applied here, where readers and
  // committed_only watchers would see writes nobody ACKed, and no async
  // was recorded in etcd (review s35-watch F1). The coordinator arms the
  // hold once the node is no longer held (HoldReplayedTail).
  held_tail_credited_ = false;  // its own binlog: the primary's copy, no replica's
  held_tail_writer_ = 0;
  hold_replayed_tail_ = MustHoldReplayedTail(state_->Applied().seq, last.seq);
  if (hold_replayed_tail_) {
    // Nothing is applied before the node leads, so a stopped applier would
    // show only once the hold resolves, with this node holding the leader
    // key and refusing writes: it fails the claim (and the node restarts)
    // here, as WaitApplied does without a hold (review s35-hold F3).
    if (auto s = CheckApplier(); !s.ok()) {
      hold_replayed_tail_ = false;
      return s;
    }
    spdlog::warn("automatic failover: binlog tail up to {} is applied once a replica ACKs it or "
                 "semi-sync times out (after a crash nothing says a replica holds it)",
                 last.ToString());
  } else {
    ShowAsPrimary(last.seq);
    if (auto s = applier_->WaitApplied(last.seq, std::chrono::steady_clock::time_point::max());
        !s.ok()) {
      return s;
    }
  }
  auto start = OpenOwnEpoch();
  if (!start.ok()) {
    hold_replayed_tail_ = false;
    return start;
  }
  // Before the coordinator un-holds the node (reads allowed again): a
  // primary-fresh read must refuse from then on, not answer from the state
  // before the tail (review s35-hold F1).
  if (hold_replayed_tail_) HeldTailEndsAt(start->seq);
  // The new epoch makes an unsynced tail's GTIDs unreusable (Open()).
  if (auto s = binlog_->ForgetUnsyncedTail(); !s.ok()) return s;
  return start;
}

bool Node::Impl::MustHoldReplayedTail(uint64_t applied, uint64_t last) const {
  // Enabled, or still waiting because automatic failover refused the OFF
  // a SET asked for (its commits wait, so its tail must too: review s47c
  // F3). Enabled with status OFF holds as well: the hold then resolves at
  // once as async, and counts as released without ACKs.
  return last > applied &&
         (vars_.GetBool("rpl_semi_sync_master_enabled") || semisync_->waits()) &&
         vars_.Get("rpl_semi_sync_master_wait_point") == "AFTER_SYNC";
}

void Node::Impl::HeldTailEndsAt(uint64_t end) {
  // From here a primary-fresh read refuses until the tail shows (what the
  // old primary answered OK may be in it), and a commit made under
  // AFTER_COMMIT does not show it either (review s47d F2).
  held_tail_end_.store(end);
  RaiseAfterSyncUpto(end);
}

void Node::Impl::HoldReplayedTail() {
  uint64_t end;
  uint32_t credit;
  uint32_t writer;
  {
    // Under mu_, as a primary: once a CHANGE MASTER came in between, the
    // flag, end and credit may be a later RESET SLAVE ALL's, not ours
    // (s47g G1, s48b S4).
    std::lock_guard l(mu_);
    if (!primary_.empty() || promoting_) return;
    end = held_tail_end_.load();
    if (!hold_replayed_tail_.exchange(false)) return;
    credit = held_tail_credited_.exchange(false) ? 1 : 0;
    writer = held_tail_writer_.exchange(0);
  }
  // The marker of the epoch a promotion opened, not the binlog's end: the
  // node may take writes before this runs, and they wait for their own
  // quorum, uncredited (review s47e F1). At Open nothing was written yet.
  if (end == 0) {
    end = binlog_->LastVisible().seq;
    HeldTailEndsAt(end);
  }
  // CHANGE MASTER ends the hold (MakeReplicaIo): the new primary's
  // visible position governs the tail from then on (review s33c F3).
  SemiSyncMaster::Hold hold = semisync_->HoldTail(end, [this, end](SemiSyncMaster::Result r) {
    // Revoked, closing, or no longer the primary: stays held, as the ACK
    // path would leave it.
    if (!r.ok() || !acting_primary_.load() || revoked_.load()) return;
    AdvanceReplicaVisible(end);
    // Applied before whatever resolved the wait returns (an ACK, SET
    // GLOBAL ... OFF), as a commit's is.
    applier_->ReleaseAndApply(end);
    // Released: AFTER_COMMIT is back for later commits, even if a credit
    // released it before the full quorum (review s47e F3).
    uint64_t raised = end;
    after_sync_upto_.compare_exchange_strong(raised, 0);
  }, credit, writer);
  std::lock_guard l(mu_);
  if (!primary_.empty()) {
    // A CHANGE MASTER came in between (RESET SLAVE ALL arms the hold
    // after its role changed): the new primary's visibility governs the
    // tail, as for a hold CHANGE MASTER ends (review s47c F2).
    semisync_->EndHold(hold);
    uint64_t ours = end;  // not a later promotion's
    held_tail_end_.compare_exchange_strong(ours, 0);
    return;
  }
  held_tail_hold_ = hold;
}

bool Node::Impl::EnterCommitGate(uint64_t commit_epoch) {
  std::lock_guard l(gate_mu_);
  if (GateClosed() || (commit_epoch != 0 && commit_epoch < promise_->value())) return false;
  // A switchover refuses new writes (commit_epoch 0: before the binlog),
  // while those in flight are still answered.
  if (commit_epoch == 0 && draining_.load()) return false;
  ++gate_holders_;
  return true;
}

void Node::Impl::DrainCommitGateIfClosed() {
  std::unique_lock l(gate_mu_);
  if (!GateClosed()) return;
  gate_cv_.wait(l, [&] { return gate_holders_ == 0; });
}

bool Node::Impl::DrainCommitGateFor(std::chrono::milliseconds wait) {
  std::unique_lock l(gate_mu_);
  return gate_cv_.wait_for(l, wait, [&] { return gate_holders_ == 0; });
}

void Node::Impl::LeaveCommitGate() {
  std::lock_guard l(gate_mu_);
  if (--gate_holders_ == 0) gate_cv_.notify_all();
}

void Node::Impl::UpdatePrimaryFence() {
  // One evaluation at a time, each reading the role, epoch and promise
  // afresh: the last to run decides, and it sees every promise raised
  // before it was called.
  std::lock_guard fence(fence_mu_);
  bool primary;
  {
    std::lock_guard l(mu_);
    primary = primary_.empty() && !promoting_;
  }
  const uint64_t epoch = binlog_->epoch();
  const uint64_t promised = promise_->value();
  const bool revoke = primary && (epoch < promised || held_.load());
  if (primary && !revoke) PauseHereForTesting("fence:evaluated-writable");
  if (revoke == revoked_.load()) return;
  if (revoke) {
    {
      // Flag first, then wait out every commit between its check and its
      // enqueue, and every OK being answered: after this nothing more is
      // appended and no OK answered (Revoke reads durable_gtid after).
      std::unique_lock l(gate_mu_);
      revoked_.store(true);
      gate_cv_.wait(l, [&] { return gate_holders_ == 0; });
    }
    semisync_->Revoke(held_.load() ? std::string("this primary's role is not known (automatic "
                                                 "failover: lease lost or etcd not read)")
                                   : "this primary's epoch " + std::to_string(epoch) +
                                         " was revoked (promised epoch " +
                                         std::to_string(promised) + ")");
    if (held_.load()) {
      spdlog::warn("automatic failover: this primary is held (role unknown): it acknowledges no "
                   "commit and takes no writes until etcd says what it is");
    } else {
      spdlog::warn("fencing: this primary's epoch {} is below its promised epoch {}: it "
                   "acknowledges no commit and takes no writes (read-only) until it follows the "
                   "new primary (CHANGE MASTER) or is promoted into a new epoch",
                   epoch, promised);
    }
  } else {
    // Semi-sync first, then the commit gate: a write let in by the gate
    // finds semi-sync counting (not an "outcome unknown" for a write that
    // commits). What ACKs reached meanwhile — kept while revoked, or taken
    // by an ACK while the flag still closed on_acked_ — is applied after.
    semisync_->Unrevoke();
    {
      std::lock_guard l(gate_mu_);
      revoked_.store(false);
    }
    if (acting_primary_.load()) {
      const uint64_t acked = semisync_->acked_seq();
      AdvanceReplicaVisible(acked);
      if (applier_) applier_->ReleaseAndApply(acked);
    }
    spdlog::info("fencing: no longer a revoked primary (epoch {}, promised epoch {})", epoch,
                 promised);
  }
}

absl::StatusOr<RevokeResult> Node::Revoke(uint64_t epoch, uint32_t candidate) {
  CallScope scope(impl_.get());
  if (!scope.ok()) return scope.status();
  Impl& impl = *impl_;
  if (auto s = impl.promise_->CheckBound(epoch, impl.binlog_->epoch()); !s.ok()) return s;
  const uint64_t before = impl.promise_->value();
  // Durable before anything else: the answer claims it. Bounded wait.
  absl::StatusOr<uint64_t> promised = absl::UnknownError("not raised");
  {
    auto hold = impl.promise_->TryLockFor(kRevokeLockWait);
    if (!hold) {
      return absl::UnavailableError(
          "Revoke(" + std::to_string(epoch) + "): the promised epoch is busy for over " +
          std::to_string(kRevokeLockWait.count()) +
          " s (the relay log's disk is slow or stuck); nothing was promised, retry");
    }
    promised = hold->Raise(epoch, candidate, impl.binlog_->epoch());
  }
  if (!promised.ok()) return promised.status();
  {
    std::lock_guard l(impl.mu_);
    if (impl.io_ != nullptr) impl.io_->CutIfNotFollowing(*promised, impl.promise_->owner());
  }
  impl.UpdatePrimaryFence();
  // Also when no flag flipped (a node in RESET SLAVE ALL, a replica with
  // a late commit from its primary days): the gate is closed by the epochs.
  impl.DrainCommitGateIfClosed();
  // A revoked primary's commits that passed their check before the flag
  // are queued in the binlog by now (UpdatePrimaryFence waited for them):
  // this sync writes them, so durable_gtid, read after it, covers them.
  // The second sync makes what was read durable. No older-epoch event can
  // follow (the IO thread checks under the promise's lock); a newer
  // primary's may, and the answer is a lower bound.
  if (auto s = impl.binlog_->SyncVisible(); !s.ok()) return s;
  RevokeResult r;
  r.durable_gtid = impl.binlog_->LastVisible();
  if (auto s = impl.binlog_->SyncVisible(); !s.ok()) return s;
  r.promised_epoch = *promised;
  r.applied_gtid = impl.state_->Applied();
  r.node_epoch = impl.binlog_->epoch();
  r.revoked_primary = impl.revoked_.load();
  r.promised_owner = impl.promise_->owner();
  // Only a marker found at open can still mean "ACKed, then lost": what
  // this run ACKed is on disk after the syncs above, and no older-epoch
  // event can be ACKed any more; a power cut from here on leaves the
  // marker to the next run, which then reports it. Reporting this run's
  // marker made every election fail while one acker ran with
  // sync_relay_log=0 (review s4 finding 4). Events of the promised epoch
  // itself ACKed after this answer are its primary's business, as with
  // sync_relay_log=1 (durable_gtid is a lower bound).
  r.may_have_acked_unsynced = impl.acked_unsynced_->inherited();
  if (*promised != before) {
    spdlog::warn("Revoke({}): promised epoch {} -> {}; durable {}, applied {}{}", epoch, before,
                 *promised, r.durable_gtid.ToString(), r.applied_gtid.ToString(),
                 r.revoked_primary ? "; this primary is now fenced" : "");
  }
  return r;
}

absl::StatusOr<Gtid> Node::Impl::OpenOwnEpoch() {
  const auto self = static_cast<uint32_t>(vars_.GetUint("server_id"));
  auto hold = promise_->Lock();
  const bool promised_to_another = hold.owner() != 0 && hold.owner() != self;
  if (const uint64_t claimed = claim_epoch_.load();
      claimed != 0 && (hold.value() != claimed || promised_to_another)) {
    return absl::FailedPreconditionError(
        "epoch " + std::to_string(claimed) + " was claimed in etcd, but this node has promised " +
        std::to_string(hold.value()) +
        (promised_to_another ? " to server_id " + std::to_string(hold.owner()) : std::string()) +
        " since: not opened");
  }
  auto start = StartEpoch(hold.value() + (promised_to_another ? 1 : 0));
  if (!start.ok()) return start.status();
  if (auto p = hold.Raise(start->epoch, self); !p.ok()) return p.status();
  // A primary now: what it ACKed unsynced as a replica is judged by the
  // new epoch's history, not by its Revoke answers (the marker's write
  // synced the log).
  if (auto s = binlog_->SyncVisible(); !s.ok()) return s;
  if (auto s = acked_unsynced_->Clear(); !s.ok()) return s;
  return start;
}

uint64_t Node::promised_epoch() const {
  CallScope scope(impl_.get());
  return scope.ok() ? impl_->promise_->value() : 0;
}

}  // namespace relaykv
