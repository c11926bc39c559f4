// ReplicationService: the primary side of binlog streaming
// (proto/replication.proto). One Subscribe stream per replica; its handler
// thread is that replica's sender: it reads the binlog from disk from the
// replica's next GTID (memory bounded by one batch however far behind the
// replica is), then tails new visible events, sends them in batches, and
// heartbeats when idle. gRPC flow control blocks only this sender, so a slow
// replica never slows commits or other replicas. A second thread per stream
// reads the replica's ACKs.
//
// Direct send. A semi-sync stream that is caught up takes a new group from
// the binlog leader itself (OnGroup, on the committing thread): the commit
// that waits for this replica's ACK does not wait for the sender thread to
// wake up and read the group back. Only while what the replica has not
// ACKed stays far below gRPC's flow-control window, so that write cannot
// block a commit; otherwise (or when the sender is busy) the sender sends.
//
// ACKs are checked: one beyond what the stream sent, or of another GTID
// than the batch it names, ends the stream with an error. One stream per
// replica: a replica's new stream ends its old one; a replica with this
// node's own server_id is refused.
//
// Visibility on replicas. Under AFTER_SYNC nobody may read a write before
// wait_for_slave_count replicas hold it — on a replica either. A replica
// that completes the quorum alone (semi-sync, count 1) may apply what it
// holds at once; any other (an async replica, or count >= 2) is told in
// every message the last seq the primary has made visible, and applies no
// further. While such a replica has events it may not apply yet, its sender
// polls the primary's visible seq (every few ms) and heartbeats it when it
// moves, so the replica lags the primary by that much, never leads it.
//
// Fencing: every message states this node's epoch (primary_epoch); a
// hello whose promised epoch is above it is refused (FAILED_PRECONDITION):
// that replica has promised a newer primary.
//
// A replica whose position is not in this binlog (purged: OUT_OF_RANGE; a
// different history or ahead of us: FAILED_PRECONDITION) is refused with a
// message naming both positions.
//
// Streams end when the replica goes, or when the binlog is closed (node
// shutdown).
//
// Limits (README "Limits"). Every stream holds a max_connections slot.
// At most max_replicas replicas (distinct server_ids; a replica's reconnect
// replaces its old stream and needs no second place) stream at once; one
// more is refused with RESOURCE_EXHAUSTED after its hello. A stream whose
// hello does not come within net_read_timeout seconds, or whose send stays
// blocked (the replica does not read: flow control) for net_write_timeout
// seconds, is ended with a log line naming it. A peer that is gone without
// a word is noticed by gRPC keepalive (server/grpc_server_limits.h).
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "proto/replication.grpc.pb.h"
#include "relaykv/admin_types.h"
#include "relaykv/node.h"
#include "server/auth.h"
#include "server/connection_slots.h"
#include "server/primary_read_index.h"
#include "server/replica_registry.h"
#include "server/semisync.h"
#include "server/stall_watchdog.h"
#include "storage/binlog.h"
#include "storage/thread_annotations.h"

namespace relaykv {

class ReplicationService final : public v1::Replication::Service {
 public:
  // What the service asks the node.
  struct NodeView {
    std::function<uint32_t()> server_id;  // a replica with the same one is refused
    // Whether a replica (semi-sync or not) must hold back what the primary
    // has not made visible yet (see "Visibility on replicas" above).
    std::function<bool(bool replica_semi_sync)> gate_visibility;
    std::function<uint64_t()> visible_seq;  // the last seq readers here may see
    std::function<uint64_t()> epoch;        // this node's binlog epoch, stated in the stream
    // The epoch this node is opening as the new primary right now (claimed
    // in etcd, its marker not yet in the binlog); 0 if none.
    std::function<uint64_t()> opening_epoch;
    // The server_id stated as that epoch's owner: this node's own on a
    // primary; 0 (not said) on a replica serving its own replicas — its
    // epoch is its primary's, and its events name their writer.
    std::function<uint32_t()> epoch_owner;
    std::function<absl::StatusOr<RevokeResult>(uint64_t, uint32_t)> revoke;  // Node::Revoke
    // Limits (see above): borrowed slots, and the current variables.
    ConnectionSlots* connections = nullptr;
    std::function<uint64_t()> max_replicas;
    std::function<std::chrono::seconds()> hello_timeout;  // net_read_timeout
    std::function<std::chrono::seconds()> send_timeout;   // net_write_timeout
    // Node::ReadIndex, for the replicas that passed the read on.
    std::function<absl::StatusOr<Gtid>(const GetOptions&, const ReadIndexChain&)> read_index;
    // A max_connections slot for a ReadIndex call, held until its reply is
    // sent (ReplyGuards::Acquire).
    std::function<absl::Status(grpc::ServerContextBase*, std::string_view)> acquire_call_slot;
  };
  // Borrows binlog, registry, semisync and auth; they must outlive the
  // gRPC server. Subscribe needs the replication role (server/auth.h).
  ReplicationService(Binlog* binlog, ReplicaRegistry* registry, SemiSyncMaster* semisync,
                     NodeView node, const Authorizer* auth)
      : binlog_(binlog),
        registry_(registry),
        semisync_(semisync),
        node_(std::move(node)),
        auth_(auth) {}

  grpc::Status Subscribe(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::PrimaryMessage, v1::ReplicaMessage>* stream) override;

  // Fencing (proto/replication.proto "Revoke"). Needs the replication or
  // the admin role: in an election the caller is a peer relaykvd, which
  // holds the replication identity it subscribes with; giving peers the
  // admin role would let them SET GLOBAL too.
  grpc::Status Revoke(grpc::ServerContext* ctx, const v1::RevokeRequest* req,
                      v1::RevokeReply* reply) override;

  // Primary-fresh reads (proto/replication.proto "ReadIndex"). Needs the
  // replication role (a replica asks with its IO thread's identity) or read.
  grpc::Status ReadIndex(grpc::ServerContext* ctx, const v1::ReadIndexRequest* req,
                         v1::ReadIndexReply* reply) override;

  // Binlog::GroupListener: offers a just-visible group to every stream.
  void OnGroup(uint64_t first_seq, const Gtid& last, std::span<const std::string> payloads)
      EXCLUDES(mu_);

 private:
  struct Outbox;
  // Counts the stream (semi-sync, from `durable_seq`) and ends the same
  // replica's older stream.
  void Register(const std::shared_ptr<Outbox>& outbox, uint64_t durable_seq) EXCLUDES(mu_);
  void Unregister(const std::shared_ptr<Outbox>& outbox) EXCLUDES(mu_);
  // A semi-sync replica whose hello did not say relay_log_synced: once a
  // minute per server_id (it may reconnect often).
  void WarnUnsyncedAcks(const ConnectedReplica& info) EXCLUDES(mu_);
  // A semi-sync replica whose ACKs count (SemiSyncMaster::counts, asked
  // each time: membership can grow): only such a one may be told writes
  // before a quorum holds them.
  bool Counted(const ConnectedReplica& r) const { return r.semi_sync && semisync_->counts(r.server_id); }

  // max_replicas: takes a place for `server_id` (a second stream of the
  // same replica shares its place), or RESOURCE_EXHAUSTED naming the limit.
  absl::Status AcquireReplicaPlace(uint32_t server_id) EXCLUDES(mu_);
  void ReleaseReplicaPlace(uint32_t server_id) EXCLUDES(mu_);

  // OK if the replica at `durable` can continue from this binlog: the GTID
  // is ours and, if the replica names the event's writer (`durable_writer`,
  // 0: unknown), so is the event (review s4 finding 2).
  absl::Status CheckPosition(const Gtid& durable, uint32_t durable_writer);

  Binlog* const binlog_;
  ReplicaRegistry* const registry_;
  SemiSyncMaster* const semisync_;
  const NodeView node_;
  const Authorizer* const auth_;

  // Hello and send timeouts; declared before what its watches borrow.
  StallWatchdog watchdog_;

  std::mutex mu_;
  std::vector<std::shared_ptr<Outbox>> outboxes_ GUARDED_BY(mu_);
  // Streams per replica server_id (after the hello): max_replicas places.
  std::map<uint32_t, int> places_ GUARDED_BY(mu_);
  // When a server_id last got the "two replicas" warning (once a minute).
  std::map<uint32_t, std::chrono::steady_clock::time_point> shared_id_warned_ GUARDED_BY(mu_);
  // When a server_id last got the "ACKs not on disk" warning (once a minute).
  std::map<uint32_t, std::chrono::steady_clock::time_point> unsynced_warned_ GUARDED_BY(mu_);
};

}  // namespace relaykv
