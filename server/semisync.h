// SemiSyncMaster: the primary's side of lossless semi-synchronous commit.
// It tracks each connected semi-sync replica's ACKed position and lets a
// commit wait until `wait_for_slave_count` distinct semi-sync replicas hold
// its GTID (an ACK releases every waiter at or below it at once), or until
// `timeout_ms` switches semi-sync OFF (then commits stop waiting until a
// semi-sync replica has ACKed the binlog's end, which switches it back ON).
//
// Counters follow MySQL 8's semisync source (names and µs units); see
// Counters below for the exact event that moves each.
//
// Waits are callbacks, not parked threads: a commit's wait is a pending
// entry, resolved by the ACK that reaches it (on the ACK's thread), by a
// switch OFF or a settings change (on that caller's thread), or by the
// timer thread (timeout, the caller's deadline, the caller gone). So a
// gRPC commit holds no thread while its replicas work, and a blocking
// caller (WaitForAck) sleeps once. Callbacks run outside the lock, exactly
// once each: on the caller's thread when answered at once or ended by
// EndHold(), else through Outside() (counted for WaitIdle()). Close()
// resolves every pending wait with UNAVAILABLE, and WaitIdle() then returns
// once no callback or `on_acked` runs on another thread any more.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "relaykv/node.h"
#include "storage/thread_annotations.h"

namespace relaykv {

struct SemiSyncSettings {
  bool enabled = false;
  uint64_t timeout_ms = 10000;
  uint64_t wait_for_slave_count = 1;
  bool wait_no_slave = true;
  // Of the variables these were read from (Variables::GetAll): Configure
  // ignores settings older than the ones it has (0 is the oldest).
  uint64_t variables_version = 0;
};

class SemiSyncMaster {
 public:
  // `binlog_end` returns the last visible binlog GTID (for switching back
  // ON, and named in the ON/OFF log lines).
  // `on_acked` is called (outside the lock) with each new position that
  // enough replicas hold, before the commits waiting for it are woken, so
  // the applier can release (and apply) it.
  SemiSyncMaster(std::function<Gtid()> binlog_end, std::function<void(uint64_t)> on_acked);
  ~SemiSyncMaster();

  enum class Outcome {
    kAcked,       // enough replicas hold it (yes_tx)
    kAsync,       // semi-sync was or went OFF (no_tx), or is disabled
  };
  using Result = absl::StatusOr<Outcome>;
  using Done = std::function<void(Result)>;
  using Registration = uint64_t;
  static constexpr Registration kNotRegistered = 0;
  // Calls `done` once `seq` is ACKed, the timeout switches semi-sync OFF, or
  // it is disabled — at once (on this thread) if one of them holds already.
  // DEADLINE_EXCEEDED if the caller's deadline comes first, CANCELLED once
  // `cancelled()` says the client went away (asked every 20 ms, under this
  // object's lock: keep it cheap), UNAVAILABLE on Close(): such waits are
  // not counted as yes_tx. yes_tx counts ACKed commits, as MySQL's does: one
  // may still fail after its ACK (not applied by its deadline, or revoked
  // at reply time) and be answered with an error (review s47b L3).
  // `registration`: what Register() returned for this commit.
  void WaitAsync(uint64_t seq, Registration registration,
                 std::chrono::steady_clock::time_point deadline, std::function<bool()> cancelled,
                 Done done) EXCLUDES(mu_);
  // WaitAsync, blocking until `done`.
  Result WaitForAck(uint64_t seq, Registration registration,
                    std::chrono::steady_clock::time_point deadline,
                    std::function<bool()> cancelled = nullptr) EXCLUDES(mu_);

  // The commit of `seq` starts waiting now: called when its seq is
  // assigned, before any replica can have it, so an ACK can never "beat" a
  // registered commit to its wait (tx_waits and the wait time count from
  // here). Unregister() if the commit fails before WaitForAck. A failed
  // group's seqs go to the next group while its commits may not have
  // unregistered yet: the registration names the commit, so each removes
  // only its own (review s32-late F2). kNotRegistered while semi-sync is
  // off, revoked or closed.
  [[nodiscard]] Registration Register(uint64_t seq) EXCLUDES(mu_);
  void Unregister(uint64_t seq, Registration registration) EXCLUDES(mu_);

  // A restarted primary's replayed binlog tail up to `seq` (Node::Open):
  // some of it may never have reached a replica, so it is held like a
  // commit's wait for `seq` — `done` gets kAcked once a quorum holds it,
  // kAsync if semi-sync is or goes OFF (its timeout switches OFF as a
  // commit's does), UNAVAILABLE on Close() or revocation. But it is no
  // client's transaction: no *_tx or tx_wait* counter moves and
  // wait_sessions does not count it (review s33c F7). EndHold() ends it at
  // once with CANCELLED, before anything else can resolve it: the node
  // follows another primary now, which decides what of that tail it shows
  // (review s33d D1, D2). Ending a hold already resolved does nothing.
  // `credit`: ACKs counted in advance — a promoted replica's own copy was
  // one of its old primary's quorum, so its tail shows once
  // wait_for_slave_count - credit replicas hold it, and never before one
  // does (so that in a cluster of wait_for_slave_count + 1 nodes that lost
  // its primary the tail is not held until the timeout: review s47d F4).
  using Hold = uint64_t;
  // `credit_not_from`: a server_id whose ACK does not count toward a
  // credited quorum — the old primary that wrote the tail: its copy is
  // not another one besides those the credit stands for (review s47e F4).
  [[nodiscard]] Hold HoldTail(uint64_t seq, Done done, uint32_t credit = 0,
                              uint32_t credit_not_from = 0) EXCLUDES(mu_);
  void EndHold(Hold hold) EXCLUDES(mu_);

  // Replication streams. ACKs count per replica (server_id), not per
  // stream: a replica's new stream replaces its old one (the caller ends
  // that one), whose later ACKs and disconnect are then ignored.
  // `durable_seq` is what the replica holds already (its hello, checked
  // against our history): its first ACK, so a commit it holds is released
  // even if the replica has nothing new to append.
  void ReplicaConnected(uint64_t connection_id, uint32_t server_id, bool semi_sync,
                        uint64_t durable_seq) EXCLUDES(mu_);
  // Idempotent; an unknown or replaced connection is ignored.
  void ReplicaDisconnected(uint64_t connection_id) EXCLUDES(mu_);
  // An ACK for `seq` (the caller has checked it was sent on this stream);
  // `net_wait_us` is the time since the batch it ACKs was sent (or -1).
  void Ack(uint64_t connection_id, uint64_t seq, int64_t net_wait_us) EXCLUDES(mu_);

  // Settings older than the ones in force (variables_version) change
  // nothing. Runs the callbacks of what it releases on this thread.
  void Configure(const SemiSyncSettings& s) EXCLUDES(mu_);
  // Every pending wait, and every later one, ends UNAVAILABLE; ACKs release
  // nothing any more (no `on_acked`).
  void Close() EXCLUDES(mu_);
  // After Close(): returns once no callback or `on_acked` runs outside the
  // lock on another thread (an ACK's release, a timeout's callbacks), so the
  // owner may tear down what they use (review s33c F5). A no-op from inside
  // one of them. Call it once what such a callback may wait for (the
  // applier) is stopped: it may wait for them.
  void WaitIdle() EXCLUDES(mu_);

  // Fencing (server/epoch_promise.h): this primary's epoch was revoked.
  // From now on no commit is released as ACKed or async: every pending
  // wait, and every later one, ends with UNAVAILABLE("<why>; outcome
  // unknown"), and ACKs move nothing (what they would release stays
  // unapplied). Unrevoke() (a promotion into a new epoch) ends that, and
  // what the ACKs kept meanwhile reach is released then.
  void Revoke(const std::string& why) EXCLUDES(mu_);
  void Unrevoke() EXCLUDES(mu_);

  // Automatic failover (no silent async, server/coordinator.h): semi-sync
  // switches OFF (timeout, too few replicas) only while `gate` says yes;
  // until then the commits keep waiting and async_wanted() is true, so the
  // coordinator records the fallback in etcd and then opens the gate. The
  // gate is called under this object's lock: it must only read a flag.
  // Unset: always allowed (MySQL's behaviour).
  void set_async_gate(std::function<bool()> gate) EXCLUDES(mu_);
  bool async_wanted() const EXCLUDES(mu_);
  // Whether a commit would wait for ACKs now: status ON and enabled, or
  // an OFF the async gate refused (status still ON: commits keep waiting).
  bool waits() const EXCLUDES(mu_);
  // The last seq wait_for_slave_count replicas have ACKed (0: none).
  uint64_t acked_seq() const EXCLUDES(mu_);
  // The last seq released: ACKed, or answered async (0: none).
  uint64_t released_seq() const EXCLUDES(mu_);
  // Back in sync after a fallback: semi-sync is ON and enabled, and the
  // replicas' quorum holds every commit ever released without ACKs (not
  // merely "status ON": enabling it again turns it ON at once, as MySQL
  // does, before any replica holds what went out async). The position that
  // proves it, or nullopt. Automatic failover re-arms on it.
  std::optional<uint64_t> resynced_at() const EXCLUDES(mu_);
  // resynced_at(), and if it holds, forgets a fallback wish no longer
  // acted on (async_wanted(): a later need asks again). For the
  // coordinator, with the async gate closed.
  std::optional<uint64_t> TakeResync() EXCLUDES(mu_);

  // Automatic failover: only the ACKs of these server_ids count (the nodes
  // that joined the cluster in etcd, which an election revokes and asks);
  // an ACK from any other replica could make a write acknowledged that no
  // election would look for. nullopt (the default): every semi-sync
  // replica counts, as in MySQL.
  void set_ackers(std::optional<std::set<uint32_t>> ackers) EXCLUDES(mu_);
  // Whether `server_id`'s ACKs count (set_ackers). One that does not is
  // sent what it may apply like an async replica: it cannot complete a
  // quorum by holding a write (invariant 2).
  bool counts(uint32_t server_id) const EXCLUDES(mu_);

  // SHOW STATUS rows: the 14 Rpl_semi_sync_master_* counters.
  NameValues Status() const EXCLUDES(mu_);
  // Switches OFF caused by a commit's timeout (a subset of no_times; not a
  // SHOW STATUS row, MySQL has none: for /metrics).
  uint64_t timeouts() const EXCLUDES(mu_);

 private:
  struct Pending {
    uint64_t seq;
    std::chrono::steady_clock::time_point start;       // registration, or the wait's start
    // From when the event was durable here (the wait's start), not from
    // registration: the binlog's own write and sync do not eat into the
    // replicas' time (MySQL times the wait from the same point).
    std::chrono::steady_clock::time_point timeout_at;
    std::chrono::steady_clock::time_point deadline;    // the caller's
    std::function<bool()> cancelled;
    Done done;
    Hold hold = 0;  // a held tail (HoldTail), or 0: a commit's wait
    uint32_t credit = 0;  // a held tail's ACKs counted in advance
    uint32_t credit_not_from = 0;  // a server_id not counted with the credit
  };
  using Ready = std::vector<std::pair<Done, Result>>;

  // WaitAsync, or a held tail (`hold` != 0: not a transaction, nothing
  // counted for it).
  void Wait(uint64_t seq, Registration registration, std::chrono::steady_clock::time_point deadline,
            std::function<bool()> cancelled, Done done, Hold hold, uint32_t credit = 0,
            uint32_t credit_not_from = 0) EXCLUDES(mu_);
  // Removes `seq`'s registration if it is `registration` (not a later
  // commit's) and returns when it began.
  std::optional<std::chrono::steady_clock::time_point> TakeRegistration(
      uint64_t seq, Registration registration) REQUIRES(mu_);

  // Position that wait_for_slave_count semi-sync replicas have ACKed, among
  // those connected now whose ACKs count (ackers_).
  // `credit`: that many fewer replicas needed, but at least one, and none
  // of them `not_from`.
  uint64_t QuorumSeq(uint32_t credit = 0, uint32_t not_from = 0) const REQUIRES(mu_);
  // Resolves the held tails whose credited quorum holds them, into ready_.
  void ResolveCreditedHolds() REQUIRES(mu_);
  bool Resynced() const REQUIRES(mu_);  // see resynced_at()
  bool Counts(uint32_t server_id) const REQUIRES(mu_) {
    return !ackers_ || ackers_->contains(server_id);
  }
  void WarnIfNotCounted(uint32_t server_id) const REQUIRES(mu_);
  // Connected semi-sync replicas whose ACKs count.
  size_t CountedReplicas() const REQUIRES(mu_);
  // Every commit answered kAsync passes here: `seq` went out without ACKs.
  void ReleasedAsync(uint64_t seq) REQUIRES(mu_) { async_max_ = std::max(async_max_, seq); }
  // Raises quorum_seq_ to QuorumSeq(): applies (on_acked_) and releases
  // what it reaches, switches status back ON if it reaches the binlog end.
  void Advance(std::unique_lock<std::mutex>& l) REQUIRES(mu_);
  // False (nothing changes) while the async gate is closed.
  bool SwitchOff(const std::string& why) REQUIRES(mu_);
  // rpl_semi_sync_master_enabled=OFF that SwitchOff refused (gate closed)
  // and status still ON: tries it again. True if it switched OFF now.
  bool CompleteRefusedOff() REQUIRES(mu_);
  void MaybeSwitchOn() REQUIRES(mu_);
  // A counted semi-sync replica stopped counting: OFF if too few are left
  // and rpl_semi_sync_master_wait_no_slave is OFF; runs what that resolves.
  void Left(std::unique_lock<std::mutex>& l) REQUIRES(mu_);
  // Ends `p`'s wait: its outcome and counters, as of now.
  Result Resolve(const Pending& p) REQUIRES(mu_);
  // Resolves the pending waits up to `seq` (all by default) into ready_.
  void ResolveUpTo(uint64_t seq = UINT64_MAX) REQUIRES(mu_);
  // Drops a resolved `p` (out of pending_ by the caller) from waiting_.
  void Forget(const Pending& p) REQUIRES(mu_);
  // Runs the resolved callbacks, after dropping the lock.
  void RunReady(std::unique_lock<std::mutex>& l) REQUIRES(mu_);
  // Runs `f` with the lock dropped, counted (outside_) for Close().
  void Outside(std::unique_lock<std::mutex>& l, const std::function<void()>& f) REQUIRES(mu_);
  // The timer thread: timeouts, deadlines, callers gone.
  void TimerLoop() EXCLUDES(mu_);
  std::chrono::steady_clock::time_point NextCheck() const REQUIRES(mu_);

  const std::function<Gtid()> binlog_end_;
  const std::function<void(uint64_t)> on_acked_;

  mutable std::mutex mu_;
  std::multimap<uint64_t, Pending> pending_ GUARDED_BY(mu_);  // by seq
  Ready ready_ GUARDED_BY(mu_);                                // resolved, to call back
  SemiSyncSettings settings_ GUARDED_BY(mu_);
  bool status_on_ GUARDED_BY(mu_) = false;
  bool closed_ GUARDED_BY(mu_) = false;
  int outside_ GUARDED_BY(mu_) = 0;  // Outside() calls running
  std::condition_variable outside_cv_;  // outside_ went to 0
  std::function<bool()> async_gate_ GUARDED_BY(mu_);
  bool async_wanted_ GUARDED_BY(mu_) = false;
  std::optional<std::set<uint32_t>> ackers_ GUARDED_BY(mu_);
  uint64_t async_max_ GUARDED_BY(mu_) = 0;  // highest seq released without ACKs
  std::string revoked_ GUARDED_BY(mu_);  // why, while revoked; "" otherwise
  struct SemiReplica {
    uint64_t connection_id;  // its current stream
    uint64_t acked_seq;
  };
  std::map<uint32_t, SemiReplica> semi_acks_ GUARDED_BY(mu_);  // by server_id
  std::map<uint64_t, uint32_t> server_ids_ GUARDED_BY(mu_);    // semi-sync stream -> server_id
  // Each replica's newest stream, semi-sync or not: an older one that
  // registers late is not counted.
  std::map<uint32_t, uint64_t> latest_stream_ GUARDED_BY(mu_);
  // Highest position ever reached by a quorum (waits at or below it are
  // released); QuorumSeq() is the position of the replicas connected now.
  uint64_t quorum_seq_ GUARDED_BY(mu_) = 0;
  std::multiset<uint64_t> waiting_ GUARDED_BY(mu_);  // seqs being waited for
  struct Registered {
    Registration registration;
    std::chrono::steady_clock::time_point start;
  };
  // By seq: the commit that registered it last (a later one of the same
  // seq takes the place of a failed one's).
  std::map<uint64_t, Registered> registered_ GUARDED_BY(mu_);
  Registration last_registration_ GUARDED_BY(mu_) = kNotRegistered;
  Hold last_hold_ GUARDED_BY(mu_) = 0;

  // The timer sleeps until timer_at_; a wait that needs it earlier wakes it.
  std::condition_variable timer_cv_;
  std::chrono::steady_clock::time_point timer_at_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread timer_;

  struct Counters {
    uint64_t net_waits = 0, net_wait_time = 0;     // ACKs; µs batch sent -> ACK
    uint64_t no_times = 0, no_tx = 0, yes_tx = 0;  // switches OFF; async / semi-sync commits
    uint64_t timeouts = 0;                         // switches OFF by a timeout
    uint64_t tx_waits = 0, tx_wait_time = 0;       // waits ended by an ACK; their µs
    uint64_t wait_pos_backtraverse = 0;            // waiter below the lowest already waiting
    uint64_t timefunc_failures = 0;                // steady clock: never moves
  } counters_ GUARDED_BY(mu_);
};

}  // namespace relaykv
