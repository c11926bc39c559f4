// relaykv::Node — the embeddable storage node (public API).
//
// Node: one relaykv server — binlog, state machine, applier, replication
// (sender on a primary, IO thread on a replica) and, when a listen address is
// given, the gRPC services (Kv, Replication, Admin). relaykvd is a thin main
// over it; an application can embed one, or several: a Node holds no
// process-global state.
//
// Write path on a primary (Put/Delete/Write): validate (server/limits.h) ->
// binlog group commit (durable per sync_binlog) -> release to the applier ->
// wait until applied -> return the GTID. A write is visible to Get() once
// applied. A replica refuses writes (FAILED_PRECONDITION naming its primary)
// and serves reads from its applied state.
//
// Threads: all methods thread-safe. Close() stops accepting calls, lets
// in-flight commits finish (up to a grace period), stops the replica
// threads and the applier, closes the binlog and RocksDB; later calls fail
// with UNAVAILABLE. The destructor calls Close().
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "relaykv/admin_types.h"
#include "relaykv/checksum.h"
#include "relaykv/gtid.h"
#include "relaykv/mutation.h"
#include "relaykv/read_consistency.h"
#include "relaykv/scan.h"
#include "relaykv/tls.h"
#include "relaykv/watch.h"
#include "relaykv/txn.h"

namespace relaykv {

struct NodeOptions {
  std::filesystem::path data_dir;  // created if missing; locked while open
  // "HOST:PORT" to serve gRPC on (port 0: the OS picks; see bound_port());
  // empty: no network service (embedded use).
  std::string listen_address;
  // "HOST:PORT" of the primary: this node is a replica of it (and saves it
  // in the data dir, as CHANGE MASTER does). Empty: the saved one, if any.
  std::string replicate_from;
  // "HOST:PORT" of a running node to copy first (relaykvd --clone-from,
  // server/clone_receiver.h): into an empty data_dir only; then this node
  // replicates from that node, from the GTID of the copy. Takes precedence
  // over replicate_from. Uses replicate_tls to connect.
  std::string clone_from;
  // How to reach replicate_from (--master-ssl-*; saved with it, as CHANGE
  // MASTER TO ... MASTER_SSL=1 does). Used only with replicate_from; left
  // all empty, the TLS settings already saved (an earlier CHANGE MASTER)
  // are kept — to go back to plaintext, CHANGE MASTER TO MASTER_SSL=0.
  TlsOptions replicate_tls;
  // Roles file (server/auth.h): who may read, write, replicate, administer.
  // Empty: every caller may do everything (as before roles existed).
  std::filesystem::path roles_file;
  // Without TLS (ssl_cert), listen_address must be a loopback address
  // unless this is set (relaykvd --allow-insecure).
  bool allow_insecure = false;
  // Variables (server/variables.cc: server_id, sync_binlog, ...) in the
  // order given: config file first, then command line. relaykvd-auto.cnf
  // (SET PERSIST) is applied after them.
  std::vector<std::pair<std::string, std::string>> variables;
  // Automatic failover (README "Automatic failover"): etcd endpoints
  // ("host:port,host:port") and the cluster's name. Empty: manual failover.
  std::string etcd_endpoints;
  std::string cluster;
  std::chrono::seconds lease_ttl{10};              // the leader's etcd lease
  std::chrono::seconds failover_min_interval{60};  // anti-flap
  // Ties between equally advanced candidates go to the higher; 0: never
  // promoted automatically (SWITCHOVER TO refuses it too; FAILOVER FORCE,
  // an operator's choice, does not).
  uint32_t failover_priority = 1;
  // Called (once, from the coordinator's thread) when this node must be
  // closed and opened again to rejoin the cluster (a tail to truncate, a
  // lost lease). relaykvd re-executes itself. Unset: logged only.
  std::function<void(const std::string& why)> on_restart_needed;
};

using NameValues = std::vector<std::pair<std::string, std::string>>;

struct ReplicaSummary {
  uint32_t server_id = 0;
  std::string address;
  Gtid sent;
  Gtid acked;
  bool semi_sync = false;
  // What the replica last said of its SQL thread (ApplyProgress); lag_seconds
  // is now - timestamp of its oldest unapplied event, 0 when caught up;
  // nullopt when it has not said (an older relaykvd, or nothing heard yet).
  Gtid applied;
  std::optional<int64_t> lag_seconds;
};

// Whether a node does its job (GET /healthz, /primary).
struct NodeHealth {
  // A primary that takes writes; a replica whose IO and SQL threads run.
  bool serving = false;
  // A primary that takes writes (read_only OFF, state machine applying).
  bool writable_primary = false;
  std::string reason;  // why not serving; "" when serving
};

class CallScope;

// How long a write may wait, and a way to tell that its caller is gone
// (e.g. a cancelled RPC). A write that gives up waiting for replicas
// returns DEADLINE_EXCEEDED / CANCELLED, never OK: it is durable in the
// binlog and still replicates.
struct WriteOptions {
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::function<bool()> cancelled;  // may be empty
  // > 0: refuse (FAILED_PRECONDITION, nothing written) unless this node's
  // epoch is at least this: the caller has seen a newer primary.
  uint64_t min_epoch = 0;
};

// What a read waits for first (read-your-writes), how long, and a way to
// tell that its caller is gone.
struct GetOptions {
  // {0,0}: read at once. Else first wait until this node has applied
  // wait_for.seq; with an epoch, the GTID must also be this node's at that
  // seq (FAILED_PRECONDITION otherwise: that write is not in its history).
  Gtid wait_for;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::function<bool()> cancelled;  // may be empty; asked every 100 ms while waiting
  // relaykv/read_consistency.h. kPrimaryFresh on a replica first asks its
  // primary where it is (bounded by `deadline`, and by 10 s without one).
  // Last, so that brace-initialized GetOptions keep their meaning.
  ReadConsistency consistency = ReadConsistency::kLocal;
};

class Node {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Node>> Open(const NodeOptions& options);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  using Deadline = std::chrono::steady_clock::time_point;
  static Deadline NoDeadline() { return Deadline::max(); }

  // --- Data -------------------------------------------------------------
  [[nodiscard]] absl::StatusOr<Gtid> Put(std::string key, std::string value,
                                         const WriteOptions& options = {});
  [[nodiscard]] absl::StatusOr<Gtid> Delete(std::string key, const WriteOptions& options = {});
  // An atomic batch: all mutations or none.
  [[nodiscard]] absl::StatusOr<Gtid> Write(std::vector<Mutation> mutations,
                                           const WriteOptions& options = {});
  // Write() without blocking the caller, for applications with their own
  // event loop: `done` is called exactly once with what Write() would have
  // returned, with the same guarantees (under AFTER_SYNC: once enough
  // replicas hold it and it is visible). It runs on this thread before
  // WriteAsync returns if the answer is immediate (bad input, a closed node
  // or a replica), else on one of the node's threads (binlog committer, ACK
  // reader, semi-sync timer) or on the thread of a SetVariable that released
  // it: keep it short, and never wait inside it for another write of this
  // node, nor for another thread's SetVariable, nor call Close() (which
  // waits for it).
  using WriteDone = std::function<void(absl::StatusOr<Gtid>)>;
  void WriteAsync(std::vector<Mutation> mutations, WriteOptions options, WriteDone done);
  // A conditional write (relaykv/txn.h): the compares are checked on this
  // primary at the write's place in the binlog, against the state every
  // earlier write leaves (also those still waiting for ACKs), and the branch
  // taken is what the binlog holds and replicas apply. Answered like
  // Write(): under AFTER_SYNC only once enough replicas hold it — also when
  // the branch taken was empty. UNAVAILABLE ("still applying its binlog")
  // right after a restart or promotion, until RocksDB caught up; nothing
  // is written then.
  [[nodiscard]] absl::StatusOr<TxnResult> Txn(relaykv::Txn txn, const WriteOptions& options = {});
  using TxnDone = std::function<void(absl::StatusOr<TxnResult>)>;
  void TxnAsync(relaykv::Txn txn, WriteOptions options, TxnDone done);
  // Get() with the key's version (the GTID of its last change).
  [[nodiscard]] absl::StatusOr<std::optional<VersionedValue>> GetVersioned(
      const std::string& key, const GetOptions& options = {});
  // nullopt: the key is absent. With `min_seq`, first waits (until
  // `deadline`: DEADLINE_EXCEEDED) for this node to have applied that seq —
  // read-your-writes on a replica, like MySQL's WAIT_FOR_EXECUTED_GTID_SET.
  [[nodiscard]] absl::StatusOr<std::optional<std::string>> Get(
      const std::string& key, uint64_t min_seq = 0, Deadline deadline = NoDeadline());
  // Get() with GetOptions: the wait also ends when the caller is gone
  // (CANCELLED) or the node shuts down (UNAVAILABLE).
  [[nodiscard]] absl::StatusOr<std::optional<std::string>> Get(const std::string& key,
                                                               const GetOptions& options);

  // Range read: one page of `range` (relaykv/scan.h: [start, end) or a
  // prefix, forward or reverse, keys-only or count-only, paged by a
  // continuation token), read from one snapshot; `applied` names it. With
  // read.wait_for, first waits exactly as Get(key, read) does. A long walk
  // also ends at read.deadline (DEADLINE_EXCEEDED), when the caller is gone
  // (CANCELLED) or the node closes (UNAVAILABLE). Bad input:
  // INVALID_ARGUMENT naming it.
  [[nodiscard]] absl::StatusOr<ScanPage> Scan(const ScanRange& range, const GetOptions& read = {});

  // Change stream (relaykv/watch.h): every committed change of
  // options.range after options.after, in GTID order. Blocks, calling
  // `deliver` on this thread with each batch, until `deliver` returns false
  // (OK), options.cancelled() (CANCELLED), the node closes (UNAVAILABLE) or
  // an error ends it (OUT_OF_RANGE purged, FAILED_PRECONDITION not in this
  // node's history, RESOURCE_EXHAUSTED: max_watchers or
  // watch_max_lag_seconds, INVALID_ARGUMENT: bad range). The node is not
  // held up while `deliver` runs (Close() does not wait for it; Watch then
  // returns UNAVAILABLE).
  [[nodiscard]] absl::Status Watch(const WatchOptions& options, const WatchDeliver& deliver);

  // Primary-fresh reads (relaykv/read_consistency.h): the GTID a read here
  // must have applied to see every write answered OK before this call. On
  // a primary: its applied GTID (UNAVAILABLE if its epoch is revoked). On
  // a replica: its primary's answer, once this node has applied it too.
  // UNAVAILABLE when the primary cannot be asked, DEADLINE_EXCEEDED past
  // options.deadline. options.wait_for and consistency are not used.
  [[nodiscard]] absl::StatusOr<Gtid> ReadIndex(const GetOptions& options = {});

  // --- Administration (what relaykv's statements map to) ----------------
  // SET GLOBAL (persist=false) / SET PERSIST (persist=true).
  [[nodiscard]] absl::Status SetVariable(std::string_view name, std::string_view value,
                                         bool persist);
  // RESET PERSIST [name]; empty name: all.
  [[nodiscard]] absl::Status ResetPersist(std::string_view name);
  NameValues ShowVariables(std::string_view like) const;
  NameValues ShowStatus(std::string_view like) const;
  // START/STOP SLAVE [IO_THREAD|SQL_THREAD]; FAILED_PRECONDITION on a primary.
  [[nodiscard]] absl::Status StartReplica(ReplicaThreads which);
  [[nodiscard]] absl::Status StopReplica(ReplicaThreads which);
  // CHANGE MASTER TO: the replica threads must be stopped. Saved in the
  // data dir with the MASTER_SSL* settings (unset ones are kept).
  [[nodiscard]] absl::Status ChangePrimary(std::string host, uint32_t port,
                                           const ChangeMasterTls& tls = {});
  // Re-reads the roles file (relaykvd: SIGHUP). On error the old roles stay.
  [[nodiscard]] absl::Status ReloadRoles();
  // RESET SLAVE ALL: failover. This replica, its IO thread stopped, becomes
  // a primary: it applies everything its relay log holds, starts a new
  // epoch with a marker event fsynced before anything else changes
  // (returned: the new epoch's first GTID), forgets its primary and takes
  // writes. On failure it stays a replica. Other replicas can then CHANGE
  // MASTER to it; one holding events this node lacks is refused.
  [[nodiscard]] absl::StatusOr<Gtid> BecomePrimary();
  // SWITCHOVER TO (automatic failover only, README "Switchover"): this
  // primary stops taking writes (UNAVAILABLE, nothing written), waits until
  // `target` ("host:port" of a node of the cluster, connected as a semi-sync
  // replica) has ACKed its binlog's end, names it in etcd and gives up its
  // leader key; the target is elected and this node follows it. Returns
  // once etcd names the target. FAILED_PRECONDITION without --etcd or on a
  // node that is not the primary; INVALID_ARGUMENT for an unknown target;
  // DEADLINE_EXCEEDED if it did not catch up in 5 s (then nothing changed).
  [[nodiscard]] absl::StatusOr<SwitchoverResult> Switchover(const std::string& target);
  // FAILOVER FORCE (automatic failover only, README "Forced failover"):
  // with no primary in the cluster, makes this node the primary of the
  // next epoch although the election rules refuse (async epoch, lost
  // quorum), recorded as forced in etcd. What may be lost is in the result.
  // FAILED_PRECONDITION when the cluster has a primary, when this node's
  // history is errant, or when a reachable clean node is ahead of it.
  [[nodiscard]] absl::StatusOr<ForcedFailoverResult> ForceFailover();
  // Fencing (README "Failover"): raises this node's durable promised epoch
  // to max(promise, epoch) before returning. A replica then appends and
  // ACKs nothing more from a primary of an older epoch (its IO thread ends
  // that stream with an error naming both epochs); a primary of an older
  // epoch answers no commit OK any more (waiting ones: UNAVAILABLE, outcome
  // unknown) and refuses writes. Idempotent; a lower epoch changes nothing.
  // `candidate` (a server_id; 0: not said) binds the promise to the node
  // that will open `epoch`: the same epoch for another candidate is then
  // FAILED_PRECONDITION, and a primary of that epoch that is not the
  // candidate is not followed (server/epoch_promise.h, "Owner").
  [[nodiscard]] absl::StatusOr<RevokeResult> Revoke(uint64_t epoch, uint32_t candidate = 0);
  uint64_t promised_epoch() const;
  // SHOW SLAVE STATUS fields in MySQL's order; empty on a primary.
  NameValues ReplicaStatus() const;
  std::vector<ReplicaSummary> Replicas() const;
  [[nodiscard]] absl::StatusOr<KeyspaceChecksum> Checksum() const;
  std::vector<BinaryLogInfo> BinaryLogs() const;
  // PURGE BINARY LOGS TO `file`: never what a connected replica or the
  // state machine still needs; *note says when that held some back.
  [[nodiscard]] absl::StatusOr<int> PurgeBinaryLogsTo(const std::string& file, std::string* note);

  // --- Monitoring (server/node_metrics.cc) -------------------------------
  NodeHealth Health() const;
  // This node's metrics in the Prometheus text exposition format 0.0.4
  // (README "Monitoring"): commit and fsync latency histograms, group
  // commit sizes, semi-sync counters, replication lag, binlog and RocksDB
  // sizes. Empty once the node is closed. Process metrics are not included
  // (several nodes may share a process; relaykvd adds them).
  std::string MetricsText() const;

  Gtid applied_gtid() const;
  Gtid binlog_gtid() const;
  bool is_replica() const;
  // The port the gRPC server listens on (0 if none).
  int bound_port() const;
  const NodeOptions& options() const;

  void Close();

 private:
  class Impl;
  friend class CallScope;
  friend class KvService;  // commits the request's mutations without a copy
  friend class WatchService;  // sends each batch as encoded bytes (Impl::WatchWire)
  friend class Coordinator;  // acts on the role etcd decides
  explicit Node(std::unique_ptr<Impl> impl);
  // ChangePrimary / BecomePrimary under the node's lock (the callers then
  // re-evaluate fencing, which takes it too).
  absl::Status ChangePrimaryLocked(const std::string& address, const ChangeMasterTls& tls);
  absl::StatusOr<Gtid> BecomePrimaryLocked();
  std::unique_ptr<Impl> impl_;
};

}  // namespace relaykv
