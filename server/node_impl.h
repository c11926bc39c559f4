// Node::Impl: the parts of a node and how they are wired. Private to
// server/: node.cc (open, commit path, close) and node_admin.cc (the admin
// operations) share it.
//
// Lock order: Impl::mu_ before any component's own lock.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "relaykv/node.h"
#include "relaykv/txn.h"
#include "server/acked_unsynced_marker.h"
#include "server/auth.h"
#include "server/epoch_promise.h"
#include "server/connection_slots.h"
#include "server/clone_receiver.h"
#include "server/conditional_write.h"
#include "server/coordinator.h"
#include "server/master_info.h"
#include "server/node_metrics.h"
#include "server/primary_read_index.h"
#include "server/replica_io.h"
#include "server/replica_registry.h"
#include "server/semisync.h"
#include "server/timer_loop.h"
#include "server/variables.h"
#include "server/watch_feed.h"
#include "server/write_admission.h"
#include "storage/applier.h"
#include "storage/binlog.h"
#include "storage/file.h"
#include "storage/state_machine.h"
#include "storage/thread_annotations.h"

namespace relaykv {

class AdminService;
class CloneService;
class ReplyGuards;
class HealthService;
class KvService;
class ReplicationService;
class WatchService;

// Node::Impl::WatchWire's consumer: gets each batch as the bytes of a
// WatchResponse, valid during the call only, which it may take (move
// from); false ends the watch.
using WatchWireDeliver = std::function<bool(std::string& response)>;

class Node::Impl {
 public:
  explicit Impl(NodeOptions options);
  ~Impl();

  absl::Status Open(Node* node);
  // The commit path: validates, appends to the binlog (group commit),
  // waits for replicas per the semi-sync wait point, applies, then calls
  // `done` once — possibly on this thread before returning, else on the
  // thread that completed it (binlog committer, ACK reader, semi-sync
  // timer). `done` must not block.
  using CommitDone = std::function<void(absl::StatusOr<Gtid>)>;
  void CommitAsync(std::vector<v1::Mutation> mutations, WriteOptions options, CommitDone done);
  // CommitAsync, blocking until done.
  absl::StatusOr<Gtid> Commit(std::vector<v1::Mutation> mutations, const WriteOptions& options);
  // Any write; with a condition (server/conditional_write.h) the branch is
  // picked at GTID assignment against PendingKeys. Validates first.
  using TxnDone = std::function<void(absl::StatusOr<TxnResult>)>;
  void TxnAsync(std::vector<v1::Mutation> then_mutations, std::optional<Condition> condition,
                WriteOptions options, TxnDone done);
  absl::StatusOr<TxnResult> Txn(std::vector<v1::Mutation> then_mutations,
                                std::optional<Condition> condition, const WriteOptions& options);
  // Get() with the key's version.
  absl::StatusOr<std::optional<VersionedValue>> GetVersioned(const std::string& key,
                                                             const GetOptions& options);
  // RESET SLAVE ALL's work (the caller checked and swaps the role): applies
  // the relay log, writes the new epoch's marker event (fsynced), waits for
  // it to apply and forgets the primary. Returns the marker's GTID.
  absl::StatusOr<Gtid> Promote();
  // Writes a marker event opening a new epoch after the binlog's end
  // (fsynced) and waits until it is applied; returns its GTID. The epoch
  // is the binlog's plus one, or `min_epoch` if that is higher.
  absl::StatusOr<Gtid> StartEpoch(uint64_t min_epoch = 0);
  // A restarted primary's replayed tail waits for the semi-sync ACKs its
  // commits waited for (StartEpoch leaves its marker to be applied with
  // it): set during Open, or by PromoteHeldPrimary (coordinator thread),
  // until HoldReplayedTail() arms the hold.
  // (Atomic: a CHANGE MASTER right after a RESET SLAVE ALL clears it.)
  std::atomic<bool> hold_replayed_tail_{false};
  // Set with it by a promoted replica (Promote): its own copy of the tail
  // counts as one ACK (SemiSyncMaster::HoldTail's credit), and the old
  // primary that wrote the tail (0: unknown), should it follow this node,
  // is not another (review s47e F4).
  std::atomic<bool> held_tail_credited_{false};
  std::atomic<uint32_t> held_tail_writer_{0};
  // The server_id of the newest event of the relay log's (shown, end]
  // past this node's own epoch markers; 0 if it is this node's own write,
  // of an unknown writer, or cannot be read (then no credit is given).
  uint32_t TailWriter(uint64_t shown, uint64_t end);
  // Whether a primary whose binlog ends at `last` and whose state machine
  // is at `applied` must hold (applied, last] back: under AFTER_SYNC
  // semi-sync nothing says a replica holds it (review s31 F4, s35-watch F1).
  bool MustHoldReplayedTail(uint64_t applied, uint64_t last) const;
  // If hold_replayed_tail_: holds the binlog up to held_tail_end_ (the new
  // epoch's marker), or its end at Open, until replicas ACK it (one fewer
  // for a promoted replica: held_tail_credited_) or semi-sync times out,
  // then applies it (SemiSyncMaster::HoldTail). Call once this primary is
  // not revoked, or the hold would end at once, leaving the tail unapplied.
  void HoldReplayedTail();
  // The held tail ends at `end` (its epoch's marker).
  void HeldTailEndsAt(uint64_t end);
  // The end of that held tail (0: none): until it is applied this primary
  // cannot answer a primary-fresh read (what it answered OK may be in it).
  // Set by Promote, PromoteHeldPrimary and HoldReplayedTail (HeldTailEndsAt,
  // which also raises the AFTER_SYNC watermark); cleared on demotion
  // (MakeReplicaIo) and when a claim fails, so a later promotion in this
  // process never waits for a stale end.
  std::atomic<uint64_t> held_tail_end_{0};
  // Its semi-sync hold (0: none), ended by CHANGE MASTER (MakeReplicaIo).
  SemiSyncMaster::Hold held_tail_hold_ GUARDED_BY(mu_) = 0;
  // StartEpoch() for this node's own new epoch (promotion, or a restart
  // that must not reuse GTIDs), under the promise's lock: at least the
  // promised epoch — above it if that epoch is promised to another node,
  // which may open it — and then promised, bound to this node (durably):
  // from then on it refuses older primaries whatever its role.
  absl::StatusOr<Gtid> OpenOwnEpoch();
  absl::StatusOr<std::optional<std::string>> Get(const std::string& key, const GetOptions& options);
  // Node::Scan (server/node_scan.cc).
  absl::StatusOr<ScanPage> Scan(const ScanRange& range, const GetOptions& read);
  // Node::Watch (server/node_watch.cc).
  absl::Status Watch(const WatchOptions& options, const WatchDeliver& deliver);
  // The same watch, each batch delivered as the bytes of a WatchResponse
  // (server/watch_wire.h): for the gRPC service, which sends them as they
  // are.
  absl::Status WatchWire(const WatchOptions& options, const WatchWireDeliver& deliver);
  // The loop of both, building its batches into `out` (server/node_watch.cc).
  template <class Out>
  absl::Status WatchInto(const WatchOptions& options, Out& out);
  std::atomic<int> watchers_{0};  // Watch calls running (max_watchers)
  // Get()'s wait: until `options.wait_for` is applied here and in our history.
  absl::Status WaitForGtid(const GetOptions& options);
  // What a read waits for per options.consistency (server/node_read.cc);
  // Get, GetVersioned and Scan call it inside their CallScope.
  absl::Status PrepareRead(const GetOptions& options);
  // Node::ReadIndex: a primary's applied GTID; on a replica, its primary's,
  // once applied here. `chain`: the replicas that passed the read on to
  // this node (ReplicationService's ReadIndex); a replica refuses to ask
  // on through a cycle or too long a chain (server/primary_read_index.h).
  absl::StatusOr<Gtid> ReadIndex(const GetOptions& options, const ReadIndexChain& chain = {});
  PrimaryReadIndex read_index_;  // a replica's channel to ask its primary
  void Close();

  // Counts a call in, or refuses it once the node is closing. Every public
  // entry point brackets its work with Enter()/Leave() (CallScope).
  absl::Status Enter() EXCLUDES(mu_);
  void Leave() EXCLUDES(mu_);

  // "host:port" this node serves on ("" without a gRPC server).
  std::string OwnAddress() const;
  // Creates coordinator_ and, if etcd proves this binlog's tail was never
  // acknowledged by the cluster that moved on, truncates it (reopening the
  // binlog). Open() calls it before replay.
  absl::Status OpenCoordinator(Node* node, const BinlogOptions& binlog_options);
  // The primary's address, or "" on a primary.
  std::string primary_address() const EXCLUDES(mu_);
  // The error the IO thread stopped on by itself (ReplicaIo::stopped_on_error),
  // or nullopt: running, stopped by STOP SLAVE, or not a replica.
  std::optional<std::string> IoStoppedOnError() const EXCLUDES(mu_);
  // START SLAVE IO_THREAD, only if it is still stopped on that error (a
  // STOP SLAVE meanwhile wins); true if started.
  bool RestartIoStoppedOnError() EXCLUDES(mu_);
  // Builds (not starts) the IO thread for `primary`.
  void MakeReplicaIo(const MasterInfo& primary) REQUIRES(mu_);
  // OK while the applier runs; else UNAVAILABLE naming why it stopped: no
  // write goes into the binlog that cannot be applied.
  absl::Status CheckApplier() EXCLUDES(mu_);
  // On a primary whose applier stopped on an error (RocksDB: ENOSPC, EIO):
  // resumes RocksDB, restarts the applier from its applied GTID (nothing is
  // lost or applied twice) and logs once what was released is applied.
  // The housekeeper calls it once a second.
  void RetryApplier() EXCLUDES(mu_);
  // binlog_expire_logs_seconds and max_binlog_total_size, every 10 s; they
  // win over a lagging replica (a warning names it).
  void ApplyRetention() EXCLUDES(mu_);
  // Whether a replica must apply only what this primary made visible
  // (ReplicationService::NodeView::gate_visibility).
  bool GateReplicaVisibility(bool replica_semi_sync) const;
  // The last seq a gated replica may show: what reached a quorum (an ACK),
  // was committed async (timeout, semi-sync off), or this node had applied
  // when it opened. On a replica: what it may apply itself.
  uint64_t ReplicaVisibleSeq() const;
  void AdvanceReplicaVisible(uint64_t seq);
  // As a primary (or becoming one): up to `seq` shows here, and so may it
  // on gated replicas.
  void ShowAsPrimary(uint64_t seq);
  std::atomic<uint64_t> replica_visible_{0};
  // Whether the commit at `seq` (durable here) waits for its ACKs before
  // it shows: under AFTER_SYNC, and under AFTER_COMMIT while a commit made
  // under AFTER_SYNC is not released yet (Durable). `*made_after_sync`:
  // whether it was made under AFTER_SYNC (its metric's label). Called on
  // the binlog's committer only, in seq order (Binlog::CommitAsync).
  bool WaitsAfterSync(uint64_t seq, bool* made_after_sync);
  // A commit made under AFTER_SYNC, or a held tail, up to `seq`.
  void RaiseAfterSyncUpto(uint64_t seq);
  // The highest seq of a commit made under AFTER_SYNC not known released
  // (0: none).
  std::atomic<uint64_t> after_sync_upto_{0};
  // Lowest binlog seq still needed: by the state machine (not yet flushed)
  // and, if `keep_for_replicas`, by connected replicas (not yet ACKed).
  absl::StatusOr<uint64_t> RetentionFloor(bool keep_for_replicas);
  // One housekeeping round, every second on timers_: RetryApplier, and
  // ApplyRetention when *retention_at has passed (then moved on).
  void Housekeeping(std::chrono::steady_clock::time_point* retention_at) EXCLUDES(mu_);
  // Fencing (server/node_fence.cc). A primary whose binlog epoch is below
  // the promised epoch is revoked: semi-sync releases nothing, no commit is
  // answered OK, writes are refused. Re-evaluated when the promise, the
  // role or the epoch changes (Open, Revoke, CHANGE MASTER, RESET SLAVE ALL).
  void UpdatePrimaryFence() EXCLUDES(mu_);
  // FAILED_PRECONDITION for a write while revoked (or while the binlog's
  // epoch is below the promise); OK otherwise.
  absl::Status CheckNotRevoked() const;

  const NodeOptions options_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  // Hot-path histograms (lock-free); before binlog_, which borrows it.
  NodeMetrics metrics_;

  // Constant after Open().
  File lock_;
  Variables vars_;
  std::unique_ptr<PersistedSettings> persisted_;
  std::unique_ptr<Binlog> binlog_;
  std::unique_ptr<EpochPromise> promise_;  // the durable promised epoch
  // Whether this node, as a replica, may have ACKed relay-log events not
  // on disk (sync_relay_log=0); Revoke reports it when found at open.
  std::unique_ptr<AckedUnsyncedMarker> acked_unsynced_;
  std::unique_ptr<StateMachine> state_;
  std::unique_ptr<Applier> applier_;  // the SQL thread on a replica
  // The binlog's newest events, decoded once for all watchers (Watch).
  std::unique_ptr<WatchFeed> watch_feed_;
  ReplicaRegistry registry_;
  std::unique_ptr<SemiSyncMaster> semisync_;
  // Reads the rpl_semi_sync_master_* variables into semisync_.
  void ConfigureSemiSync();
  // The resource caps read on hot paths (README "Limits"), kept equal to
  // their variables by vars_'s on_change; relaxed atomics: a cap that
  // changes takes effect at the next call.
  struct Caps {
    std::atomic<uint64_t> max_connections{0};
    std::atomic<uint64_t> max_inflight_writes{0};
    std::atomic<uint64_t> max_inflight_write_bytes{0};
    std::atomic<uint64_t> max_inflight_reply_bytes{0};
    std::atomic<uint64_t> write_queue_timeout_ms{0};
    std::atomic<uint64_t> max_write_stream_inflight{0};
    std::atomic<uint64_t> max_replicas{0};
    std::atomic<uint64_t> net_read_timeout_s{0};
    std::atomic<uint64_t> net_write_timeout_s{0};
    // Stores `name`'s new value if it is a cap (all of them when empty).
    void Load(const Variables& vars, const std::string& name = "");
  };
  Caps caps_;
  // max_connections: KV calls, WriteStreams and replication streams.
  ConnectionSlots connections_{&caps_.max_connections};
  // max_inflight_writes / _bytes: every commit is admitted first.
  WriteAdmission admission_{[this] {
    return WriteAdmission::Limits{caps_.max_inflight_writes.load(std::memory_order_relaxed),
                                  caps_.max_inflight_write_bytes.load(std::memory_order_relaxed),
                                  caps_.write_queue_timeout_ms.load(std::memory_order_relaxed)};
  }};
  // TxnAsync's work once admitted (`bytes` to release when answered).
  void CommitAdmitted(std::vector<v1::Mutation> then_mutations, std::optional<Condition> condition,
                      WriteOptions options, TxnDone done, size_t bytes);
  std::unique_ptr<PendingKeys> pending_keys_;
  struct PendingCommit;
  // At GTID assignment, for every write of this primary: a conditional
  // write's branch is picked, PendingKeys learns it, and semi-sync counts
  // it as waiting from then on.
  void Assigned(PendingCommit* c, v1::Event& event);
  // CommitAsync's continuation once the binlog has the event (or failed).
  void Durable(const std::shared_ptr<PendingCommit>& c, const absl::Status& written);
  // Who may call what (server/auth.h); every service method asks it.
  std::unique_ptr<Authorizer> auth_;
  // Get, Scan and ReadIndex hold their max_connections slot until their
  // reply is sent, and a reply the client does not read is cut off.
  std::unique_ptr<ReplyGuards> reply_guards_;
  std::unique_ptr<KvService> kv_service_;
  std::unique_ptr<ReplicationService> replication_service_;
  std::unique_ptr<WatchService> watch_service_;  // ChangeStream.Watch over Watch()
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<CloneService> clone_service_;  // the source side of CLONE
  // What --clone-from did at this start (Clone_* in SHOW STATUS); unset if
  // no clone was asked for.
  std::optional<CloneResult> clone_result_;
  std::unique_ptr<HealthService> health_service_;  // grpc.health.v1 over Health()
  std::unique_ptr<grpc::Server> server_;
  int bound_port_ = 0;
  // gRPC's thread quota for synchronous handlers (server/grpc_server_limits.h).
  grpc::ResourceQuota handler_threads_{"relaykvd"};
  // Orders the change hooks of the variables other than semi-sync's (Open).
  std::mutex apply_vars_mu_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // in_flight_ reached 0, or closing_ set
  int in_flight_ GUARDED_BY(mu_) = 0;
  bool closing_ GUARDED_BY(mu_) = false;
  // RESET SLAVE ALL is running (it waits without mu_): START/STOP SLAVE,
  // CHANGE MASTER and another RESET SLAVE ALL are refused meanwhile.
  bool promoting_ GUARDED_BY(mu_) = false;
  // primary_.empty() && !promoting_, written with them under mu_ and read
  // without it: the binlog's group leader (a relaying replica's IO thread)
  // asks for the role, and STOP SLAVE joins that thread holding mu_.
  std::atomic<bool> acting_primary_{false};
  // Set while this node is a revoked primary (UpdatePrimaryFence); read
  // without locks by metrics. Written under fence_mu_ and gate_mu_.
  std::atomic<bool> revoked_{false};
  // Serializes UpdatePrimaryFence's whole evaluation (role, epoch, promise
  // -> revoked_), so two of them cannot interleave and leave a stale
  // answer. Lock order: fence_mu_ before mu_ and gate_mu_.
  std::mutex fence_mu_;
  // The commit gate (server/node_fence.cc): a commit holds it from its
  // revoked check until it is enqueued in the binlog, and again from its
  // reply-time check until the caller is answered. Setting revoked_ waits
  // until nobody holds it, so once Revoke returned nothing more is
  // appended and no OK is answered. Counted, not a shared_mutex: a commit
  // failing inside the enqueue is answered on the same thread.
  mutable std::mutex gate_mu_;
  std::condition_variable gate_cv_;
  int gate_holders_ GUARDED_BY(gate_mu_) = 0;
  // False (nothing held) if this primary is fenced: revoked, or its binlog
  // epoch — or `commit_epoch`, the epoch of the write being answered — is
  // below the promise. The epoch tests hold whatever the role does next
  // (the promise never goes down): a write of a revoked epoch is not
  // appended or answered OK after CHANGE MASTER cleared the flag, nor in
  // RESET SLAVE ALL's window before the fence is re-evaluated.
  [[nodiscard]] bool EnterCommitGate(uint64_t commit_epoch = 0) EXCLUDES(gate_mu_);
  void LeaveCommitGate() EXCLUDES(gate_mu_);
  // Automatic failover (server/coordinator.h); null without --etcd.
  std::unique_ptr<Coordinator> coordinator_;
  // Role unknown (coordinated nodes from open until etcd was read, and a
  // leader that lost its lease): a primary is fenced as if revoked — no
  // write taken or answered OK — and a replica runs no IO thread.
  std::atomic<bool> held_{false};
  // A coordinated leader answers no commit OK at or past this LeaseClock
  // time (ns since its epoch): its lease's safe_until. INT64_MAX: no lease.
  std::atomic<int64_t> lease_until_ns_{INT64_MAX};
  // The coordinator recorded in etcd that this primary's epoch went async:
  // semi-sync may switch OFF (SemiSyncMaster::set_async_gate).
  std::atomic<bool> async_recorded_{false};
  // A switchover is handing the role over: new writes are refused
  // (UNAVAILABLE, nothing written); those in flight finish.
  std::atomic<bool> draining_{false};
  // Commits that passed the commit gate on their way in and are not
  // answered yet: once draining_ refused new ones and the gate drained,
  // SWITCHOVER waits for this to reach 0 — every write in flight answered
  // while this node still leads.
  std::atomic<int64_t> committing_{0};
  // Set by the coordinator while it promotes into the epoch it claimed:
  // OpenOwnEpoch opens exactly this one or nothing.
  std::atomic<uint64_t> claim_epoch_{0};
  // FAILED_PRECONDITION for an admin statement that changes the role of a
  // coordinated node (outside the coordinator's own thread).
  absl::Status CheckRoleNotManaged(const char* what) const;
  // Holds or releases the role (then re-evaluates the fence).
  void SetHeld(bool held) EXCLUDES(mu_);
  // A held primary that won an election: applies the binlog tail it kept
  // back at open, then opens its own epoch (at least the promise).
  absl::StatusOr<Gtid> PromoteHeldPrimary() EXCLUDES(mu_);
  // Waits until nobody holds the gate, if it is closed (new entrants are
  // refused then, so this ends): after it, nothing that passed the gate
  // before the promise was raised is still to be appended or answered.
  void DrainCommitGateIfClosed() EXCLUDES(gate_mu_);
  // The same wait whatever the gate's state, for at most `wait`: true if
  // nobody held it. For SWITCHOVER, whose draining_ refuses new commits
  // without closing the gate.
  bool DrainCommitGateFor(std::chrono::milliseconds wait) EXCLUDES(gate_mu_);
  bool GateClosed() const REQUIRES(gate_mu_);
  // GateClosed() for a primary-fresh read on this primary.
  bool GateClosedForReads() const EXCLUDES(gate_mu_);
  std::string primary_ GUARDED_BY(mu_);           // "" on a primary
  std::unique_ptr<ReplicaIo> io_ GUARDED_BY(mu_);  // set on a replica
  // Periodic chores (Housekeeping, and the watch watchdog and clone reaper
  // of the services above, which cancel theirs when destroyed); last but
  // one, so stopped before the members above are destroyed. Close() stops
  // it where it joined the housekeeper thread before.
  TimerLoop timers_;
  TimerLoop::PeriodicTask housekeeping_;  // Housekeeping on timers_, from Open()
};

// Enter()/Leave() as a scope; ok() false once the node is closing.
class CallScope {
 public:
  explicit CallScope(Node::Impl* impl) : impl_(impl), status_(impl->Enter()) {}
  ~CallScope() {
    if (status_.ok()) impl_->Leave();
  }
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;
  const absl::Status& status() const { return status_; }
  bool ok() const { return status_.ok(); }

 private:
  Node::Impl* const impl_;
  const absl::Status status_;
};

}  // namespace relaykv
