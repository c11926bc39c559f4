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
#include "server/node_impl.h"
#include "spdlog/spdlog.h"

namespace relaykv {

absl::Status Node::Impl::CheckNotRevoked() const {
  if (!revoked_.load()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      "this primary is fenced: its epoch " + std::to_string(binlog_->epoch()) +
      " was revoked (promised epoch " + std::to_string(promise_->value()) +
      "), so it takes no writes; send them to the primary of the new epoch");
}

void Node::Impl::UpdatePrimaryFence() {
  bool primary;
  {
    std::lock_guard l(mu_);
    primary = primary_.empty() && !promoting_;
  }
  const uint64_t epoch = binlog_->epoch();
  const uint64_t promised = promise_->value();
  const bool revoke = primary && epoch < promised;
  if (revoke == revoked_.load()) return;
  if (revoke) {
    // Flag first: a commit answered from here on sees it (Finish checks).
    revoked_.store(true);
    semisync_->Revoke("this primary's epoch " + std::to_string(epoch) +
                      " was revoked (promised epoch " + std::to_string(promised) + ")");
    spdlog::warn("fencing: this primary's epoch {} is below its promised epoch {}: it acknowledges "
                 "no commit and takes no writes (read-only) until it follows the new primary "
                 "(CHANGE MASTER) or is promoted into a new epoch",
                 epoch, promised);
  } else {
    semisync_->Unrevoke();
    revoked_.store(false);
    spdlog::info("fencing: no longer a revoked primary (epoch {}, promised epoch {})", epoch,
                 promised);
  }
}

absl::StatusOr<RevokeResult> Node::Revoke(uint64_t epoch) {
  CallScope scope(impl_.get());
  if (!scope.ok()) return scope.status();
  Impl& impl = *impl_;
  const uint64_t before = impl.promise_->value();
  // Durable before anything else: the answer claims it.
  auto promised = impl.promise_->Raise(epoch);
  if (!promised.ok()) return promised.status();
  {
    std::lock_guard l(impl.mu_);
    if (impl.io_ != nullptr) impl.io_->CutIfOlder(*promised);
  }
  impl.UpdatePrimaryFence();
  // Read before the sync: what the sync makes durable includes it. No
  // older-epoch event can follow it (the IO thread checks under the
  // promise's lock); a newer primary's may, and the answer is a lower bound.
  RevokeResult r;
  r.durable_gtid = impl.binlog_->LastVisible();
  if (auto s = impl.binlog_->SyncVisible(); !s.ok()) return s;
  r.promised_epoch = *promised;
  r.applied_gtid = impl.state_->Applied();
  r.node_epoch = impl.binlog_->epoch();
  r.revoked_primary = impl.revoked_.load();
  if (*promised != before) {
    spdlog::warn("Revoke({}): promised epoch {} -> {}; durable {}, applied {}{}", epoch, before,
                 *promised, r.durable_gtid.ToString(), r.applied_gtid.ToString(),
                 r.revoked_primary ? "; this primary is now fenced" : "");
  }
  return r;
}

uint64_t Node::promised_epoch() const {
  CallScope scope(impl_.get());
  return scope.ok() ? impl_->promise_->value() : 0;
}

}  // namespace relaykv
