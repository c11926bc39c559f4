// Failover decision rules (issue 16, ../shared/FAILOVER.md section 3): pure
// functions over plain structs, no etcd, no gRPC, no clock, no I/O. The
// coordinator that talks to etcd and to the replicas gathers the facts into
// these structs and acts on the answer; keeping the arithmetic here lets it be
// tested exhaustively. Thread-safe (no state). Not wired into the node yet.
//
// Terms. E is the current epoch (the newest history entry); an election
// creates E+1. A = the number of listed ackers (`sync.ackers`), N = the acks
// each commit waits for (`wait_for_slave_count`). GTIDs compare by epoch,
// then seq (Gtid's operator<=>): that is the ranking order, since epochs never
// decrease along a history and a newer epoch supersedes any older tail.
//
// Every "no" comes with a reason string naming the rule and the numbers, so
// the caller can log it and an operator can see why failover did not happen.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "relaykv/gtid.h"

namespace relaykv::failover {

// One history entry, `history/<E>`: how epoch E began and what is known
// about how it was run.
struct EpochRecord {
  // The last GTID of the previous epochs that E continues from (the
  // promoted node's durable GTID). Events of older epochs past it are errant.
  Gtid start_after;
  uint32_t primary = 0;  // server_id of E's primary
  // The election that started E heard from >= A-N+1 ackers (see
  // CheckElectionQuorum), so no write acknowledged in E-1 is missing from
  // start_after. Without it a tail past start_after may have been acked.
  bool revoke_quorum_met = false;
  // An operator forced E's promotion (async cluster, or quorum not met):
  // acknowledged writes of E-1 may be missing, nothing is provable.
  bool forced = false;
  // Set while E is marked async in etcd (its primary may release commits
  // without acks): commits with seq > went_async_after may have been
  // acknowledged with no replica holding them. Unset once the primary
  // recorded a resync (every such commit held by a quorum of joined nodes,
  // EpochRecord.resynced_after): the epoch is as if it never went async.
  std::optional<uint64_t> went_async_after;
};
using History = std::map<uint64_t, EpochRecord>;  // epoch -> record

// The newest epoch in `history` (0 if empty).
uint64_t CurrentEpoch(const History& history);

// ---- Revoke / establish arithmetic (Vitess haveRevoked / canEstablish) ----

struct QuorumInput {
  int listed_ackers = 0;     // A
  int acks_per_commit = 0;   // N (0: the cluster is async)
  int answered_ackers = 0;   // listed ackers that answered Revoke(E+1)
  // Of those, the ones whose answer said may_have_acked_unsynced
  // (sync_relay_log=0 since their last full sync): they may lack writes
  // they ACKed, so they cannot vouch that every acknowledged write is on a
  // responder. Their promise still holds, so they count for "establish".
  int answered_ackers_acked_unsynced = 0;
  // The node that would become primary is itself a listed acker (it cannot
  // ack its own commits, so it does not count towards its own quorum).
  bool new_primary_is_acker = false;
  // The node that would become primary is the previous primary (the only one
  // that may take over an async cluster: it alone holds every acked write).
  bool new_primary_is_previous = false;
};

struct Decision {
  bool ok = false;
  std::string reason;  // why not (empty when ok)
};

// May the election proceed? Both must hold:
//  - revoked: answered_ackers - answered_ackers_acked_unsynced >= A-N+1.
//    Any N of the A ackers and any A-N+1 of them share a member
//    (N + A-N+1 > A), so every write acknowledged by N ackers sits on some
//    responder — one that holds on disk what it ACKed, hence the
//    subtraction — and those responders have promised never to ack epoch E
//    again, so no further write can be acknowledged.
//  - establish: answered_ackers (minus the new primary, if an acker) >= N,
//    so the new primary can get its own commits acknowledged.
// Edge cases: N=0 (async) — any commit may be acknowledged with no replica
// holding it, so only the previous primary may take over; N>A — no commit
// could ever have collected its acks and none can now (misconfiguration:
// refused); A=0 is N>A for N>=1 and async for N=0. Counts out of range
// (negative, answered > A) are refused.
Decision CheckElectionQuorum(const QuorumInput& in);

// ---- Errant detection ----

enum class Lineage {
  kClean,           // the node's history is a prefix of the cluster's
  kErrant,          // it holds events past the point the next epoch began at
  kUnknownHistory,  // history lacks the entry needed to decide (refuse)
};
struct LineageResult {
  Lineage lineage = Lineage::kClean;
  std::string reason;  // for kErrant / kUnknownHistory
};
// A node whose last GTID is (e, s): with E = CurrentEpoch(history), it is
// errant iff e < E, s > 0 and s > end.seq, where end is the start_after of
// the first history entry after e (history[e+1] when every epoch is
// recorded). A node with e > E, or whose e is not end's epoch while
// end.seq > 0 (entries missing), cannot be judged: kUnknownHistory. s == 0 (an empty log) is
// always clean.
LineageResult CheckLineage(const Gtid& last, const History& history);

// ---- Winner ----

struct Responder {
  uint32_t server_id = 0;
  Gtid durable;  // last fsynced GTID of its binlog / relay log
  Gtid applied;  // last GTID its state machine applied
  // Higher wins a tie on `durable`; <= 0 never becomes primary (Patroni's
  // nofailover).
  int priority = 1;
  bool listed_acker = false;      // in sync.ackers
  bool previous_primary = false;  // history[E].primary
  // RevokeReply.may_have_acked_unsynced: it may have lost writes it ACKed
  // (sync_relay_log=0, a power cut). It never wins, and being ahead of the
  // best candidate blocks nothing: like a node that did not answer, it
  // vouches for no write (CheckElectionQuorum does not count it, so every
  // acknowledged write is on a responder without the flag).
  bool may_have_acked_unsynced = false;
};

struct ElectionInput {
  History history;
  bool cluster_async = false;  // `sync.async`: only the previous primary may win
  std::vector<Responder> responders;
  // CheckElectionQuorum passed for these responders: every acknowledged
  // write of the current epoch is on an answering acker, so the previous
  // primary's events past the highest such acker's durable GTID were never
  // acknowledged. It is then ranked as if it ended there (never below the
  // current epoch's start_after): a replica that holds as much takes over
  // (the previous primary loses ties) rather than a node that may not be
  // able to claim (cut off from etcd) and would keep a tail only it holds.
  bool revoke_quorum_met = false;
};

struct ElectionResult {
  std::optional<uint32_t> winner;  // server_id
  std::string reason;              // why no one may win (empty when a winner)
  // Responders that could not win, each with why (errant, not eligible,
  // priority, ...), for the log.
  std::vector<std::pair<uint32_t, std::string>> excluded;
};

// The winner must also hold the current epoch's start_after (the history
// its primary continued): without it, writes acknowledged before that epoch
// may be missing (no winner then).
// The winner: among responders that are eligible (listed ackers and the
// previous primary; only the previous primary when cluster_async), not errant,
// not may_have_acked_unsynced and with priority > 0, the one with the highest
// durable GTID; ties: a replica over the previous primary, then higher priority, then lower
// server_id. No winner when there is no such
// responder, or when a non-errant listed acker (or the previous primary) that
// may not win holds a higher durable GTID than the best candidate: it may
// hold an acknowledged write the winner lacks (an unlisted responder ahead is
// fine: its tail was never acknowledged by a quorum; so is one that may have
// ACKed unsynced, see Responder).
ElectionResult PickWinner(const ElectionInput& in);

// ---- Rejoin ----

enum class RejoinAction {
  kReplicate,  // its history is a prefix of the cluster's: replicate as is
  kTruncate,   // truncate the binlog after `truncate_after`, then replicate
  kRefuse,     // keep refusing (reason says why); a rebuild is needed
};
struct RejoinDecision {
  RejoinAction action = RejoinAction::kRefuse;
  Gtid truncate_after;  // kTruncate only: history[e+1].start_after
  std::string reason;   // kTruncate: what is proven; kRefuse: why not
};
// A node with last binlog GTID `last` = (e, s) and state-machine position
// `applied` rejoins the cluster described by `history` (it is not the
// current epoch's primary: the caller handles a node `leader` still names,
// which never truncates). With end = history[e+1].start_after:
//  - e == E, or s <= end.seq: kReplicate.
//  - s > end.seq: kTruncate only when the tail (end, s] is provably never
//    acknowledged: history[e+1].revoke_quorum_met, !history[e+1].forced, and
//    history[e] exists with no went_async_after < s (no seq in the tail was
//    committed while epoch e ran async); and the state machine holds none
//    of it (applied.seq <= end.seq). Otherwise kRefuse.
//  - Missing history entries: kRefuse.
RejoinDecision DecideRejoin(const Gtid& last, const Gtid& applied, const History& history);

// ---- Lease timing ----

struct LeaseTiming {
  int64_t ttl_ms = 10000;           // etcd lease TTL
  int64_t loop_ms = 2000;           // keepalive / member refresh interval
  int64_t retry_ms = 3000;          // how long one etcd call may retry
  int64_t fence_margin_ms = 2000;   // valid_until = t + ttl - margin
};
// OK, or INVALID_ARGUMENT naming the setting and the rule it breaks:
// every value > 0; loop + 2*retry <= ttl (a keepalive that fails once and is
// retried still lands before etcd expires the lease); fence_margin < ttl;
// ttl - fence_margin > loop + retry (the primary's own validity outlasts one
// keepalive round and its retry, or it fences itself while healthy).
absl::Status ValidateLeaseTiming(const LeaseTiming& t);

}  // namespace relaykv::failover
