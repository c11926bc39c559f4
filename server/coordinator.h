// Coordinator: automatic failover through etcd (README "Automatic failover",
// ../shared/FAILOVER.md section 3). A node started with --etcd/--cluster
// owns one; it decides the node's role from etcd and acts on it with the
// node's own operations (Revoke, CHANGE MASTER, START SLAVE, RESET SLAVE ALL).
//
// Role unknown first: the node opens held (server/node_impl.h held_) — a
// primary applies no binlog tail past its state machine and takes or answers
// no write, a replica starts no IO thread (no ACK) — until this thread has
// read etcd. Then, every loop (kLoop):
//  - the leader key names another node: follow it. DecideRejoin
//    (server/failover_rules.h) on the history says replicate as is, truncate
//    a provably unacknowledged tail first (done by the next start, before
//    the binlog opens: the node asks its owner to restart it), or refuse
//    (held, the reason in SHOW STATUS).
//  - no leader key: elect. With no history yet (a new cluster), only a node
//    started as a primary (no --replicate-from) claims, like a DBA starting
//    the primary first. Else: Revoke(E+1) on every node that joined
//    (`nodes/`), CheckElectionQuorum, PickWinner; the winner stops its IO
//    thread and claims the key on its lease in one Txn with history/<E+1>,
//    and only then opens epoch E+1 (the marker) and takes writes.
//  - this node leads: its lease (server/leader_lease.h) bounds every OK
//    answer (Impl::lease_until_ns_); when the lease is lost the node fences
//    itself and asks to be restarted, to rejoin as a replica.
// Anti-flap: no election within failover_min_interval of the last one.
// No silent async: as the leader, it records in history/<E> that semi-sync
// wants to fall back before the fallback may happen (RecordAsync), and
// clears that once the replicas hold everything released without ACKs
// (RecordResync): automatic failover is armed again. Only the ACKs of
// nodes that joined the cluster (`nodes/`) count (set_ackers).
// SWITCHOVER TO: the leader names the target in etcd and gives up its key;
// the target then wins its election at once (RunSwitchover).
// FAILOVER FORCE (an operator, when the rules refuse: async epoch, lost
// quorum): this node revokes every reachable node and claims the next epoch
// with `forced` recorded (rejoining tails are then refused, never
// truncated); refused if a reachable clean node is ahead of it, or if this
// node's own history is errant.
//
// Threads: one thread, started by Start() once the node is open, stopped
// and joined by Stop() (before the node closes). Status() is thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "etcd_client/etcd_client.h"
#include "proto/coordination.pb.h"
#include "relaykv/admin_types.h"
#include "relaykv/gtid.h"
#include "relaykv/tls.h"
#include "server/failover_rules.h"
#include "server/leader_lease.h"
#include "storage/thread_annotations.h"

namespace relaykv {

class Node;

struct CoordinatorOptions {
  std::vector<std::string> etcd_endpoints;
  std::string cluster;
  uint32_t server_id = 0;
  bool started_as_primary = false;  // may bootstrap a new cluster
  std::chrono::seconds lease_ttl{10};
  std::chrono::seconds failover_min_interval{0};
  uint32_t priority = 1;  // NodeRecord.priority (0: never promoted automatically)
  TlsOptions peer_tls;  // how to reach other nodes (Revoke): MASTER_SSL*
  // Asks the node's owner to close and reopen the node (relaykvd re-executes
  // itself): a truncation runs only before the binlog opens.
  std::function<void(const std::string& why)> request_restart;
};

// What etcd says, read in one go.
struct ClusterView {
  std::optional<v1::LeaderRecord> leader;  // nullopt: no key
  std::string leader_raw;                  // the key's value, for messages
  int64_t leader_mod_revision = 0;
  int64_t leader_lease = 0;
  failover::History history;
  std::map<uint64_t, v1::EpochRecord> records;  // the same, as stored
  std::map<uint32_t, std::string> nodes;        // server_id -> address
  std::map<uint32_t, int> priorities;           // server_id -> NodeRecord.priority
  // `switchover`: the primary of epoch `epoch` handed over to `server_id`.
  std::optional<v1::LeaderRecord> switchover;
  int64_t epoch_mod_revision = 0;  // of `epoch` (0: absent), a claim's guard
};

// Keys and record (de)serialization (protobuf JSON).
std::string ClusterPrefix(const std::string& cluster);
std::string HistoryKey(const std::string& cluster, uint64_t epoch);
std::string NodeKey(const std::string& cluster, uint32_t server_id);
absl::StatusOr<ClusterView> ReadClusterView(etcd::EtcdClient* etcd, const std::string& cluster);

class Coordinator {
 public:
  // Connects lazily; INVALID_ARGUMENT for empty endpoints or cluster.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(Node* node,
                                                             CoordinatorOptions options);
  ~Coordinator();  // Stop()
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // At open, before the binlog is opened for use: if etcd (read once,
  // within a few seconds) names another leader and the rejoin rule says
  // this binlog's tail is provably unacknowledged, the end to truncate
  // after. nullopt: nothing to truncate, or etcd unreachable (then the
  // running coordinator decides later).
  std::optional<failover::RejoinDecision> DecideAtOpen(const Gtid& last, const Gtid& applied);

  // `address`: where this node serves ("host:port"), for the records.
  void Start(std::string address);
  // True on the coordinator's thread: the admin statements that change the
  // role are refused elsewhere (the role is etcd's to decide).
  bool OnOwnThread() const;
  // Joins the thread; a held leader lease is released (no OK after it).
  void Stop();

  // Node::Switchover's work, run on the coordinator's thread; this call
  // waits for it (bounded).
  absl::StatusOr<SwitchoverResult> Switchover(const std::string& target);
  // Node::ForceFailover's work (FAILOVER FORCE), the same way.
  absl::StatusOr<ForcedFailoverResult> ForceFailover();

  // SHOW STATUS rows (Coordinator_*).
  std::vector<std::pair<std::string, std::string>> Status() const;

 private:
  Coordinator(Node* node, CoordinatorOptions options, std::unique_ptr<etcd::EtcdClient> etcd);
  void Run();
  void Step();
  // The leader's lease window (Node::Impl::lease_until_ns_, which bounds
  // every OK answer) moved up to what the lease proves now, read before
  // etcd's leader key is; closed instead, with *key_lost, if the key is
  // no longer this lease's. Every loop, and during a SWITCHOVER's waits
  // (the loop is not running then; a frozen window would refuse the
  // answers of the writes in flight). Returns the view read.
  absl::StatusOr<ClusterView> RenewLeaseWindow(bool* key_lost);
  void Follow(const ClusterView& view);
  // While following: an IO thread that stopped by itself on an error it
  // does not retry (a refusal, a bad PEM file, a protocol error) is started
  // again after kIoRestartFirst, doubling to kIoRestartMost while it keeps
  // stopping — a cause fixed meanwhile (a rotated certificate, a primary
  // that was not ready) no longer leaves a 'replica' that never follows.
  // STOP SLAVE stays: only a thread that stopped itself is restarted.
  void RestartStoppedIo();
  void Elect(const ClusterView& view);
  // Claims the leader key for `epoch` (with history/<epoch> in the same
  // Txn) and then becomes its primary: the new epoch's first GTID.
  absl::StatusOr<Gtid> Claim(const ClusterView& view, uint64_t epoch, bool quorum_met, int ackers,
                             bool forced);
  // Revoke(epoch) on every node that joined (this one too).
  struct RevokeRound {
    std::vector<failover::Responder> responders;
    std::vector<uint32_t> unreachable;
    int listed = 0, answered = 0, answered_unsynced = 0;  // ackers: not the previous primary
    bool higher_promise = false;  // a node promised above `epoch`: stop
    std::string higher_promise_reason;
  };
  RevokeRound RevokeAll(const ClusterView& view, uint64_t epoch, bool handover);
  // Revoke on `server_id` at `address`; an answer from another server_id
  // is an error.
  absl::StatusOr<RevokeResult> PeerRevoke(const std::string& address, uint64_t epoch,
                                          uint32_t server_id);
  void RequestRestart(const std::string& why);
  // No silent async: marks history/<E> went_async (guarded by our leader
  // key), then lets semi-sync switch OFF.
  void RecordAsync();
  // Re-arm: once SemiSyncMaster::resynced_at() proves the replicas hold
  // every commit released without ACKs, clears went_async (records
  // resynced_after) with the async gate closed again.
  void RecordResync();
  // Reads history/<E> of this node's epoch, lets `change` edit it (false:
  // nothing to write) and writes it back only while this node holds the
  // leader key it created and nobody wrote the record meanwhile.
  absl::Status UpdateOwnRecord(const std::function<bool(v1::EpochRecord*)>& change);
  // The server_ids whose semi-sync ACKs count: every joined node but this.
  std::set<uint32_t> Ackers(const ClusterView& view) const;
  // Work an admin call hands to the coordinator's thread (one at a time).
  struct Job {
    std::function<void()> work;
    bool started = false;  // taken by the coordinator's thread (under mu_)
    bool done = false;
  };
  absl::Status RunOnOwnThread(const std::string& what, std::function<void()> work,
                              std::chrono::seconds timeout);
  // As the leader: hands over to `target` (Node::Switchover).
  absl::StatusOr<SwitchoverResult> RunSwitchover(const std::string& target);
  // With no leader: claims the next epoch on this node, recorded `forced`.
  absl::StatusOr<ForcedFailoverResult> RunForcedFailover();
  // Bootstrap or election refused / waiting: why, for SHOW STATUS and the log (once).
  void Refuse(const std::string& why);
  void SetRole(const std::string& role);

  Node* const node_;
  const CoordinatorOptions options_;
  const std::unique_ptr<etcd::EtcdClient> etcd_;

  std::string address_;  // set by Start()
  // The coordinator thread's own (Stop() uses lease_ after joining it).
  std::unique_ptr<LeaderLease> lease_;
  std::string following_;  // the leader address followed
  uint64_t following_epoch_ = 0;
  // RestartStoppedIo's state: when it saw the thread stopped, how long it
  // waits before the next start, and when it last started it.
  std::optional<std::chrono::steady_clock::time_point> io_stopped_seen_;
  std::chrono::seconds io_restart_wait_{0};
  std::chrono::steady_clock::time_point io_restarted_at_;
  uint64_t highest_promise_seen_ = 0;  // a peer promised above our election
  // Anti-flap on this node's clock: when it first saw the newest epoch.
  uint64_t newest_seen_epoch_ = 0;
  std::chrono::steady_clock::time_point newest_seen_at_;
  bool registered_ = false;
  bool restart_requested_ = false;
  // A resync whose etcd write failed (the gate is closed, etcd still says
  // async): tried again every loop.
  bool resync_pending_ = false;
  std::atomic<bool> lease_lost_{false};  // set by the lease's thread

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::string role_ GUARDED_BY(mu_) = "unknown";
  uint64_t epoch_ GUARDED_BY(mu_) = 0;
  std::string refusal_ GUARDED_BY(mu_);
  std::string leader_ GUARDED_BY(mu_);
  std::string last_failover_ GUARDED_BY(mu_);
  std::shared_ptr<Job> job_ GUARDED_BY(mu_);
  uint64_t failovers_ GUARDED_BY(mu_) = 0;
  std::atomic<std::thread::id> own_id_{};  // set by the thread itself
  std::thread thread_;
};

}  // namespace relaykv
