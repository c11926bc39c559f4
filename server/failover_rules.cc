#include "server/failover_rules.h"

#include <optional>

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"

namespace relaykv::failover {

uint64_t CurrentEpoch(const History& history) {
  return history.empty() ? 0 : history.rbegin()->first;
}

Decision CheckElectionQuorum(const QuorumInput& in) {
  const int a = in.listed_ackers;
  const int n = in.acks_per_commit;
  const int unsynced = in.answered_ackers_acked_unsynced;
  if (a < 0 || n < 0 || in.answered_ackers < 0 || in.answered_ackers > a || unsynced < 0 ||
      unsynced > in.answered_ackers) {
    return {false, absl::StrCat("inconsistent counts: A=", a, " listed ackers, N=", n,
                                " acks per commit, ", in.answered_ackers, " answered (",
                                unsynced, " of them may have ACKed unsynced)")};
  }
  if (n == 0) {
    // Async: a commit was acknowledged once it was in the primary's binlog,
    // so no set of replicas is known to hold every acknowledged write.
    if (in.new_primary_is_previous) return {true, ""};
    return {false, absl::StrCat("N=0 (async): commits were acknowledged without replica ACKs, so "
                                "no responder set holds every acknowledged write; only the "
                                "previous primary may take over, or an operator forces it")};
  }
  if (n > a) {
    return {false, absl::StrCat("N=", n, " > A=", a,
                                ": no commit could collect its ACKs from the listed ackers and "
                                "the new primary could not either (sync key inconsistent)")};
  }
  // Revoked: every N-subset of the A ackers meets the A-N+1 responders.
  const int need_revoked = a - n + 1;
  if (in.answered_ackers - unsynced < need_revoked) {
    return {false, absl::StrCat("revoke: ", in.answered_ackers, " of A=", a,
                                " listed ackers answered", unsynced > 0
                                    ? absl::StrCat(", ", unsynced,
                                                   " of them may have ACKed writes they lost "
                                                   "(sync_relay_log=0) and vouch for none")
                                    : std::string(),
                                "; need A-N+1=", need_revoked, " so that every ", n,
                                "-ACK quorum meets a responder holding what it ACKed")};
  }
  // Establish: the new primary needs N acks from others.
  const int usable = in.answered_ackers - (in.new_primary_is_acker ? 1 : 0);
  if (usable < n) {
    return {false, absl::StrCat("establish: only ", usable,
                                " reachable ackers besides the new primary, need N=", n,
                                " to acknowledge its commits")};
  }
  return {true, ""};
}

LineageResult CheckLineage(const Gtid& last, const History& history) {
  const uint64_t current = CurrentEpoch(history);
  if (last.epoch > current) {
    return {Lineage::kUnknownHistory,
            absl::StrCat("last GTID ", last.ToString(), " is of epoch ", last.epoch,
                         ", newer than the history's newest epoch ", current)};
  }
  if (last.epoch == current) return {Lineage::kClean, ""};
  // An empty log is a prefix of every history.
  if (last.seq == 0) return {Lineage::kClean, ""};
  // The first epoch after the node's (epochs may skip numbers): it began
  // right after `end`.
  auto next = history.upper_bound(last.epoch);
  const Gtid& end = next->second.start_after;
  if (end.seq != 0 && end.epoch > last.epoch) {
    // Epochs between are missing from the history: nothing can be proven.
    return {Lineage::kUnknownHistory,
            absl::StrCat("history has no entry for the epoch after ", last.epoch, " to judge ",
                         last.ToString(), " (epoch ", next->first, " began after ",
                         end.ToString(), ")")};
  }
  if (last.seq > end.seq) {
    return {Lineage::kErrant, absl::StrCat("last GTID ", last.ToString(), " is past ",
                                           end.ToString(), ", where epoch ", next->first,
                                           " began")};
  }
  if (end.seq != 0 && end.epoch < last.epoch) {
    // Its epoch-e events lie at or before `end`, where the history holds
    // events of an older epoch: not a prefix, and no tail to cut.
    return {Lineage::kUnknownHistory,
            absl::StrCat(last.ToString(), " is not in the history: epoch ", next->first,
                         " continued from ", end.ToString(), " of an older epoch")};
  }
  return {Lineage::kClean, ""};
}

namespace {

// The ranking: durable GTID (epoch, then seq), then not the previous
// primary (a replica holding as much takes over: the previous primary may
// be unable to claim, e.g. cut off from etcd — whatever its priority,
// review-force2 P1), then priority, then the lower server_id. True if `a`
// ranks above `b`.
bool RanksAbove(const Responder& a, const Responder& b) {
  return std::make_tuple(a.durable, !a.previous_primary, a.priority, b.server_id) >
         std::make_tuple(b.durable, !b.previous_primary, b.priority, a.server_id);
}

// ElectionInput::revoke_quorum_met: the previous primary ranked by what
// may have been acknowledged of its log, losing ties.
std::vector<Responder> CapPreviousPrimary(const ElectionInput& in) {
  std::vector<Responder> out = in.responders;
  if (!in.revoke_quorum_met || in.cluster_async) return out;
  std::optional<Gtid> cap;
  for (const Responder& r : out) {
    if (!r.listed_acker || r.previous_primary || r.may_have_acked_unsynced) continue;
    if (CheckLineage(r.durable, in.history).lineage != Lineage::kClean) continue;
    if (!cap || r.durable > *cap) cap = r.durable;
  }
  if (!cap) return out;
  // Never below where the current epoch continued: the previous primary may
  // be the only node holding that (review-coord2 1).
  if (!in.history.empty() && in.history.rbegin()->second.start_after > *cap) {
    cap = in.history.rbegin()->second.start_after;
  }
  for (Responder& r : out) {
    if (!r.previous_primary) continue;
    if (r.durable > *cap) r.durable = *cap;
  }
  return out;
}

}  // namespace

ElectionResult PickWinner(const ElectionInput& in) {
  ElectionResult out;
  const Responder* best = nullptr;
  // The most advanced responder whose log must not be lost (a listed acker
  // or the previous primary, not errant) but that may not win.
  const Responder* blocked = nullptr;
  const std::vector<Responder> responders = CapPreviousPrimary(in);
  for (const Responder& r : responders) {
    LineageResult lin = CheckLineage(r.durable, in.history);
    if (lin.lineage != Lineage::kClean) {
      out.excluded.emplace_back(r.server_id, lin.reason);
      continue;
    }
    const bool holds_acked = r.listed_acker || r.previous_primary;
    if (r.may_have_acked_unsynced) {
      // Neither a candidate nor a blocker (see Responder).
      out.excluded.emplace_back(r.server_id,
                                "may have ACKed writes it lost (sync_relay_log=0): vouches for none");
      continue;
    }
    std::string why;
    if (in.cluster_async && !r.previous_primary) {
      why = "cluster is async: only the previous primary may win";
    } else if (!holds_acked) {
      why = "neither a listed acker nor the previous primary";
    } else if (r.priority <= 0) {
      why = absl::StrCat("priority ", r.priority, " (never promoted)");
    }
    if (!why.empty()) {
      out.excluded.emplace_back(r.server_id, why);
      if (holds_acked && (blocked == nullptr || r.durable > blocked->durable)) blocked = &r;
      continue;
    }
    if (best == nullptr || RanksAbove(r, *best)) best = &r;
  }
  if (best == nullptr) {
    out.reason = in.cluster_async
                     ? "cluster is async and the previous primary did not answer or may not win"
                     : "no eligible responder (listed acker or previous primary, not errant, "
                       "priority > 0)";
    return out;
  }
  if (blocked != nullptr && blocked->durable > best->durable) {
    out.reason = absl::StrCat("server ", blocked->server_id, " holds up to ",
                              blocked->durable.ToString(), " but may not win; the best candidate, ",
                              best->server_id, ", holds only ", best->durable.ToString(),
                              ": promoting it could lose acknowledged writes");
    return out;
  }
  if (!in.history.empty()) {
    const auto& [epoch, current] = *in.history.rbegin();
    if (best->durable < current.start_after) {
      out.reason = absl::StrCat("epoch ", epoch, " continued after ", current.start_after.ToString(),
                                ", but the best candidate, ", best->server_id, ", holds only ",
                                best->durable.ToString(),
                                ": waiting for a node that holds it (its primary, or a replica "
                                "that caught up with it)");
      return out;
    }
  }
  out.winner = best->server_id;
  return out;
}

RejoinDecision DecideRejoin(const Gtid& last, const Gtid& applied, const History& history) {
  RejoinDecision out;
  LineageResult lin = CheckLineage(last, history);
  if (lin.lineage == Lineage::kUnknownHistory) {
    out.reason = lin.reason;
    return out;
  }
  if (lin.lineage == Lineage::kClean) {
    out.action = RejoinAction::kReplicate;
    return out;
  }
  const uint64_t e = last.epoch;
  // The epoch that began right after the tail's start (CheckLineage's).
  auto found = history.upper_bound(e);
  const uint64_t k = found->first;
  const EpochRecord& next = found->second;
  const Gtid end = next.start_after;
  const std::string tail = absl::StrCat("tail (", end.ToString(), ", ", last.ToString(), "]");
  if (next.forced) {
    out.reason = absl::StrCat(tail, ": epoch ", k,
                              " was forced, so the tail may hold acknowledged writes");
    return out;
  }
  if (!next.revoke_quorum_met) {
    out.reason = absl::StrCat(tail, ": the election of epoch ", k,
                              " did not meet the revoke quorum, so the tail may be acknowledged");
    return out;
  }
  auto own = history.find(e);
  if (own == history.end()) {
    out.reason = absl::StrCat(tail, ": history has no entry for epoch ", e,
                              ", so whether it ran async is unknown");
    return out;
  }
  if (own->second.went_async_after && *own->second.went_async_after < last.seq) {
    out.reason = absl::StrCat(tail, ": epoch ", e, " went async after seq ",
                              *own->second.went_async_after,
                              ", so part of the tail may have been acknowledged without ACKs");
    return out;
  }
  if (applied.seq > end.seq) {
    out.reason = absl::StrCat(tail, ": the state machine applied up to ", applied.ToString(),
                              ", past ", end.ToString(), "; it holds effects of the tail");
    return out;
  }
  out.action = RejoinAction::kTruncate;
  out.truncate_after = end;
  out.reason = absl::StrCat(tail, " is provably unacknowledged: epoch ", k,
                            " met the revoke quorum, was not forced, and epoch ", e,
                            " never went async within it");
  return out;
}

absl::Status ValidateLeaseTiming(const LeaseTiming& t) {
  auto positive = [](const char* name, int64_t v) -> absl::Status {
    if (v > 0) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(name, "=", v, " must be > 0"));
  };
  for (auto s : {positive("ttl_ms", t.ttl_ms), positive("loop_ms", t.loop_ms),
                 positive("retry_ms", t.retry_ms), positive("fence_margin_ms", t.fence_margin_ms)}) {
    if (!s.ok()) return s;
  }
  if (t.loop_ms + 2 * t.retry_ms > t.ttl_ms) {
    return absl::InvalidArgumentError(
        absl::StrCat("ttl_ms=", t.ttl_ms, " is too short for loop_ms=", t.loop_ms,
                     " and retry_ms=", t.retry_ms, ": need loop_ms + 2*retry_ms <= ttl_ms, so a "
                     "keepalive retried once still lands before the lease expires"));
  }
  if (t.fence_margin_ms >= t.ttl_ms) {
    return absl::InvalidArgumentError(absl::StrCat("fence_margin_ms=", t.fence_margin_ms,
                                                   " must be < ttl_ms=", t.ttl_ms));
  }
  if (t.ttl_ms - t.fence_margin_ms <= t.loop_ms + t.retry_ms) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fence_margin_ms=", t.fence_margin_ms, " is too large: ttl_ms - fence_margin_ms = ",
        t.ttl_ms - t.fence_margin_ms, " must exceed loop_ms + retry_ms = ",
        t.loop_ms + t.retry_ms, ", or a healthy primary fences itself between keepalives"));
  }
  return absl::OkStatus();
}

}  // namespace relaykv::failover
