// Read consistency levels (relaykv/read_consistency.h): what Get, GetVersioned
// and Scan wait for before they read (Node::Impl::PrepareRead), and the
// ReadIndex of primary-fresh reads. The wait itself is WaitForGtid's.
//
// Primary-fresh on a replica: ask the primary (server/primary_read_index.h,
// over the IO thread's address and TLS settings) for its applied GTID, then
// wait until this node applied it. A SQL thread stopped meanwhile (STOP
// SLAVE SQL_THREAD) does not end the wait: a START SLAVE may come before the
// deadline, as with MySQL's WAIT_FOR_EXECUTED_GTID_SET; one stopped on an
// error does (FAILED_PRECONDITION naming it).
#include <mutex>
#include <thread>

#include "relaykv/node.h"
#include "server/node_impl.h"

namespace relaykv {
namespace {

using Clock = std::chrono::steady_clock;

// Without a deadline of its own, a read asks its primary for at most this
// long (the wait for the GTID that follows is the read's).
constexpr auto kAskPrimaryTimeout = std::chrono::seconds(10);
constexpr auto kStoppedSqlPoll = std::chrono::milliseconds(100);

}  // namespace

absl::Status Node::Impl::PrepareRead(const GetOptions& options) {
  switch (options.consistency) {
    case ReadConsistency::kLocal:
      break;
    case ReadConsistency::kWaitForGtid:
      if (options.wait_for.seq == 0) {
        return absl::InvalidArgumentError(
            "read consistency wait_for_gtid needs a GTID to wait for (wait_for_gtid is unset)");
      }
      break;
    case ReadConsistency::kPrimaryFresh:
      if (options.wait_for.seq != 0) {
        if (auto s = WaitForGtid(options); !s.ok()) return s;
      }
      return ReadIndex(options).status();
    default:
      return absl::InvalidArgumentError("unknown read consistency " +
                                        std::to_string(static_cast<int>(options.consistency)));
  }
  if (options.wait_for.seq == 0) return absl::OkStatus();
  return WaitForGtid(options);
}

absl::StatusOr<Gtid> Node::Impl::ReadIndex(const GetOptions& options,
                                           const ReadIndexChain& chain) {
  PrimaryReadIndex::Target target;
  {
    std::lock_guard l(mu_);
    if (closing_) return absl::UnavailableError("relaykv node is shutting down");
    if (primary_.empty()) {
      // A primary: what it answered OK is applied. Unless a newer primary
      // may exist: then this node cannot know what is fresh.
      // With automatic failover, a valid lease (and no hold) also proves
      // no other node can have been elected (server/leader_lease.h).
      if (GateClosedForReads()) {
        return absl::UnavailableError(
            "primary-fresh read: this primary is fenced (epoch " +
            std::to_string(binlog_->epoch()) + ", promised epoch " +
            std::to_string(promise_->value()) +
            (held_.load() ? ", role not known" : "") +
            "; or its leader lease ran out): a newer primary may have taken writes");
      }
      const Gtid applied = state_->Applied();
      if (const uint64_t held = held_tail_end_.load(); applied.seq < held) {
        return absl::UnavailableError(
            "primary-fresh read: this primary (restarted or just promoted) applies its binlog "
            "up to seq " +
            std::to_string(held) + " once replicas ACK it or semi-sync times out; it is at " +
            applied.ToString() + " (writes answered OK may be past it): retry");
      }
      return applied;
    }
    if (!io_) {
      return absl::UnavailableError("primary-fresh read: this replica has no primary configured");
    }
    const ReplicaIoConfig& c = io_->config();
    target = {c.primary_address, c.tls, c.channel};
  }
  // A replica of itself, or a cycle, would ask itself again at every level
  // until the deadline (review s4 finding 6).
  const auto self = static_cast<uint32_t>(vars_.GetUint("server_id"));
  if (auto s = CheckPassOn(chain, self); !s.ok()) return s;
  const Deadline ask_until = std::min(options.deadline, Clock::now() + kAskPrimaryTimeout);
  auto index = read_index_.Ask(target, ask_until, chain, self);
  if (!index.ok()) return index.status();
  // A primary of an epoch this node has promised away may be deposed: a
  // newer one may have answered writes it never saw (review s4 finding 1).
  if (index->epoch < promise_->value()) {
    return absl::UnavailableError("primary-fresh read: primary " + target.address +
                                  " answered from epoch " + std::to_string(index->epoch) +
                                  ", but this replica has promised epoch " +
                                  std::to_string(promise_->value()) +
                                  " to a newer primary; read from that one");
  }

  GetOptions wait = options;
  wait.wait_for = *index;
  const auto annotate = [&](const absl::Status& s) {
    return absl::Status(s.code(), "primary-fresh read (primary " + target.address + " is at " +
                                      index->ToString() + "): " + std::string(s.message()));
  };
  for (;;) {
    absl::Status s = WaitForGtid(wait);
    if (s.ok()) return *index;
    // Only "the SQL thread is stopped" is waited out: not an applier
    // error, not a GTID outside this node's history (checked once applied).
    const bool sql_stopped = absl::IsFailedPrecondition(s) && !applier_->running() &&
                             applier_->last_error().ok() && state_->Applied().seq < index->seq;
    if (!sql_stopped) return annotate(s);
    if (Clock::now() >= wait.deadline) {
      return annotate(absl::DeadlineExceededError(
          "deadline passed waiting for it while the SQL thread is stopped (applied here: " +
          state_->Applied().ToString() + ")"));
    }
    if (wait.cancelled && wait.cancelled()) {
      return absl::CancelledError("the client went away while its read waited for gtid " +
                                  index->ToString());
    }
    std::this_thread::sleep_until(std::min(wait.deadline, Clock::now() + kStoppedSqlPoll));
    std::lock_guard l(mu_);
    if (closing_) return absl::UnavailableError("relaykv node is shutting down");
  }
}

absl::StatusOr<Gtid> Node::ReadIndex(const GetOptions& options) {
  CallScope scope(impl_.get());
  if (!scope.ok()) return scope.status();
  return impl_->ReadIndex(options);
}

}  // namespace relaykv
