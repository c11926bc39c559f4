#include "server/replication_service.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <mutex>
#include <thread>

#include "server/grpc_status.h"
#include "server/replication_messages.h"
#include "spdlog/spdlog.h"
#include "storage/binlog_reader.h"
#include "storage/thread_name.h"

namespace relaykv {
namespace {

using Clock = std::chrono::steady_clock;

// "ipv4:127.0.0.1:5555" -> "ipv4:127.0.0.1": the host a stream comes from.
std::string PeerHost(const std::string& peer) { return peer.substr(0, peer.rfind(':')); }

constexpr std::chrono::seconds kSharedIdWarnEvery{60};
constexpr std::chrono::seconds kUnsyncedWarnEvery{60};

constexpr auto kHeartbeatPeriod = std::chrono::seconds(1);
// How often a sender looks at the primary's visible seq while its replica
// holds events it may not apply yet (see "Visibility on replicas").
constexpr auto kVisiblePoll = std::chrono::milliseconds(2);
// One batch carries at most this much; the next waits for flow control.
constexpr size_t kBatchBytes = 1u << 20;
constexpr size_t kBatchEvents = 1000;
// A leader sends a group itself only while the replica has ACKed all but
// this much: far below gRPC's 64 KiB initial flow-control window, so its
// write never waits for the replica to read.
constexpr uint64_t kDirectSendMaxUnacked = 16u << 10;

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

absl::Status ReplicationService::CheckPosition(const Gtid& durable, uint32_t durable_writer) {
  const Gtid last = binlog_->LastVisible();
  if (durable.seq > last.seq) {
    return absl::FailedPreconditionError(
        "replica has gtid " + durable.ToString() + " but this primary's binlog ends at " +
        last.ToString() + ": the replica is ahead of the primary (a different history?)");
  }
  // One snapshot of the purge boundary: the event before the oldest kept.
  // A purge between it and the read below moves it: taken once more then
  // (the replica may sit exactly at the new boundary, which is no reason
  // to stop it for good: review s45b L3).
  Gtid ours;
  uint32_t our_writer = 0;
  for (int attempt = 0;; ++attempt) {
    uint32_t boundary_writer = 0;
    const Gtid before_first = binlog_->BeforeFirstAvailable(&boundary_writer);
    if (durable.seq < before_first.seq) {
      return absl::OutOfRangeError("replica needs seq " + std::to_string(durable.seq + 1) +
                                   " but the primary's binlog starts at seq " +
                                   std::to_string(before_first.seq + 1) +
                                   " (purged): this replica cannot catch up from the binlog. "
                                   "Provision it with a clone of a node: stop it, move its data "
                                   "dir aside and start relaykvd --clone-from HOST:PORT (README "
                                   "\"Clone\")");
    }
    if (durable.seq == 0) return absl::OkStatus();  // an empty replica: nothing to compare
    // The replica's last event must be ours, not another history's — also
    // right at the purge boundary, where the GTID comes from the oldest
    // segment's header and the writer from binlog.purged (0: unknown).
    ours = before_first;
    our_writer = boundary_writer;
    if (durable.seq == before_first.seq) break;
    auto reader = binlog_->NewReader(durable.seq);
    if (!reader.ok() && absl::IsOutOfRange(reader.status()) && attempt == 0) continue;
    if (!reader.ok()) return reader.status();
    auto rec = (*reader)->Next();
    if (!rec.ok() && absl::IsOutOfRange(rec.status()) && attempt == 0) continue;
    if (!rec.ok()) return rec.status();
    if (!rec->has_value()) return absl::InternalError("binlog event vanished while checking");
    ours = GtidFromProto((*rec)->event.gtid());
    our_writer = (*rec)->event.server_id();
    break;
  }
  if (ours != durable) {
    return absl::FailedPreconditionError("replica's last gtid " + durable.ToString() +
                                         " is not in this primary's history (it has " +
                                         ours.ToString() + " at that seq)");
  }
  // Equal GTIDs from two nodes that opened the same epoch: the writers
  // tell the events apart, wherever the epochs since have gone (a newer
  // primary re-sending the other's history would mix both in one epoch).
  if (durable_writer != 0 && our_writer != 0 && durable_writer != our_writer) {
    return absl::FailedPreconditionError(
        "replica's last event " + durable.ToString() + " was written by server_id " +
        std::to_string(durable_writer) + ", but this primary's event " + ours.ToString() +
        " was written by server_id " + std::to_string(our_writer) +
        ": two nodes opened epoch " + std::to_string(durable.epoch) +
        " and the replica holds the other's history; one GTID names one event, so it cannot "
        "continue from here (CHANGE MASTER TO a primary of its history, or clone it)");
  }
  return absl::OkStatus();
}

// One stream's sending side, shared by its sender thread and the binlog
// leaders offering groups (OnGroup).
struct ReplicationService::Outbox {
  Outbox(grpc::ServerContext* c,
         grpc::ServerReaderWriter<v1::PrimaryMessage, v1::ReplicaMessage>* s, uint64_t connection,
         uint32_t server, std::string own, bool semi, const Gtid& durable)
      : ctx(c),
        stream(s),
        id(connection),
        server_id(server),
        own_address(std::move(own)),
        peer_host(PeerHost(c->peer())),
        semi_sync(semi),
        acks(semi, durable),
        next_seq(durable.seq + 1) {}

  grpc::ServerContext* const ctx;  // the stream's; TryCancel() ends it
  grpc::ServerReaderWriter<v1::PrimaryMessage, v1::ReplicaMessage>* const stream;
  const uint64_t id;
  const uint32_t server_id;
  // Which node this is, as far as a stream tells: the listen address its
  // hello states ("" from a node without one) and the host it connects
  // from (its port changes with every connection). Two nodes cloned from
  // one config state the same address from different hosts.
  const std::string own_address;
  const std::string peer_host;
  const bool semi_sync;
  // The log line if a send to this replica stalls (net_write_timeout).
  std::string stalled;
  // What this stream sent and its replica has not ACKed (checks every ACK).
  SentBatches acks;

  // Held for every write on the stream: one at a time, in seq order.
  std::mutex mu;
  bool open GUARDED_BY(mu) = true;  // false once broken or the handler leaves
  // The first seq not sent yet. Written under `mu`; read without it by the
  // binlog, so the sender sleeps through groups a leader sent itself.
  std::atomic<uint64_t> next_seq;
};

void ReplicationService::Register(const std::shared_ptr<Outbox>& outbox, uint64_t durable_seq) {
  // Counted first (outside mu_: a first ACK may apply and answer commits,
  // and leaders offering groups take mu_). Of two streams of one replica
  // the newer (higher id) wins, here and in the semi-sync count.
  semisync_->ReplicaConnected(outbox->id, outbox->server_id, outbox->semi_sync, durable_seq);
  std::lock_guard l(mu_);
  // One stream per replica, as MySQL ends a reconnecting replica's old dump
  // thread: a lingering or half-open old stream must not count its ACKs.
  for (const auto& o : outboxes_) {
    if (o->server_id != outbox->server_id) continue;
    const bool newer = o->id > outbox->id;
    const bool same_node = o->own_address == outbox->own_address && o->peer_host == outbox->peer_host;
    const auto now = Clock::now();
    // Bounded by the server_ids warned of in the last minute (s48b S3).
    std::erase_if(shared_id_warned_, [&](const auto& e) { return now - e.second >= kSharedIdWarnEvery; });
    auto warned = shared_id_warned_.find(o->server_id);
    if (!same_node && (warned == shared_id_warned_.end() || now - warned->second >= kSharedIdWarnEvery)) {
      // Two nodes given one server_id (a cloned machine's config): each
      // reconnect ends the other's stream. Said where the operator looks,
      // naming both, once a minute (they replace each other every few s).
      shared_id_warned_[o->server_id] = now;
      spdlog::warn("replication: two replicas with server_id {} ({} from {}, {} from {}) replace each "
                   "other's stream; ending the older. Give each replica its own --server-id",
                   o->server_id, o->own_address, o->peer_host, outbox->own_address, outbox->peer_host);
    } else {
      spdlog::info("replication: replica server_id {} has two streams; ending the older", o->server_id);
    }
    (newer ? outbox : o)->ctx->TryCancel();
  }
  outboxes_.push_back(outbox);
}

absl::Status ReplicationService::AcquireReplicaPlace(uint32_t server_id) {
  const uint64_t limit = node_.max_replicas();
  std::lock_guard l(mu_);
  if (!places_.contains(server_id) && places_.size() >= limit) {
    return absl::ResourceExhaustedError(
        "too many replicas: " + std::to_string(places_.size()) +
        " are streaming from this primary; the limit is max_replicas=" + std::to_string(limit));
  }
  ++places_[server_id];
  return absl::OkStatus();
}

void ReplicationService::ReleaseReplicaPlace(uint32_t server_id) {
  std::lock_guard l(mu_);
  if (auto it = places_.find(server_id); it != places_.end() && --it->second == 0) {
    places_.erase(it);
  }
}

void ReplicationService::Unregister(const std::shared_ptr<Outbox>& outbox) {
  std::lock_guard l(mu_);
  std::erase(outboxes_, outbox);
}

void ReplicationService::OnGroup(uint64_t first_seq, const Gtid& last,
                                 std::span<const std::string> payloads) {
  std::vector<std::shared_ptr<Outbox>> outboxes;
  {
    std::lock_guard l(mu_);
    for (const auto& o : outboxes_) {
      if (o->semi_sync) outboxes.push_back(o);
    }
  }
  // Sent ungated (see gate_visibility(true) below): only to replicas whose
  // ACKs count; the others' sender threads gate theirs.
  std::erase_if(outboxes, [&](const auto& o) { return !semisync_->counts(o->server_id); });
  if (outboxes.empty()) return;
  size_t bytes = 0;
  for (const std::string& p : payloads) bytes += p.size();
  v1::PrimaryMessage msg;
  for (const auto& o : outboxes) {
    // Busy (its sender is writing), behind, or too much un-ACKed: the
    // sender thread sends it.
    std::unique_lock l(o->mu, std::try_to_lock);
    if (!l.owns_lock() || !o->open || o->next_seq.load() != first_seq) continue;
    if (o->acks.Unacked(kDirectSendMaxUnacked) + bytes > kDirectSendMaxUnacked) continue;
    if (msg.batch().events_size() == 0) {
      v1::EventBatch* batch = msg.mutable_batch();
      for (const std::string& p : payloads) batch->add_events(p);
      GtidToProto(last, batch->mutable_primary_last_gtid());
      batch->set_primary_time_us(NowMicros());
      batch->set_wants_ack(true);
      batch->set_primary_epoch(node_.epoch());
      batch->set_primary_server_id(node_.epoch_owner());
      if (node_.gate_visibility(true)) batch->set_visible_seq(node_.visible_seq());
    }
    o->acks.Sent(last, bytes);
    bool written;
    {
      // Not expected to block (see kDirectSendMaxUnacked), but a commit
      // must never wait on a replica that stopped reading.
      StallWatchdog::Watch w(&watchdog_, o->ctx, node_.send_timeout(), o->stalled);
      written = o->stream->Write(msg);
    }
    if (!written) {
      o->open = false;  // broken: the sender finds out on its next write
      continue;
    }
    o->next_seq.store(last.seq + 1);
    registry_->UpdateSent(o->id, last);
  }
}

grpc::Status ReplicationService::Revoke(grpc::ServerContext* ctx, const v1::RevokeRequest* req,
                                        v1::RevokeReply* reply) {
  const std::string what = "Revoke(" + std::to_string(req->epoch()) + ")";
  // Either role: the replication one is checked first, quietly; the admin
  // one is audited.
  if (!auth_->Check(ctx, Role::kReplication, what).ok()) {
    if (auto denied = auth_->Check(ctx, Role::kAdmin, what); !denied.ok()) {
      return grpc::Status(denied.error_code(),
                          denied.error_message() + " (the replication role would do too)");
    }
  }
  auto r = node_.revoke(req->epoch(), req->candidate_server_id());
  if (!r.ok()) return ToGrpcStatus(r.status());
  reply->set_promised_epoch(r->promised_epoch);
  GtidToProto(r->durable_gtid, reply->mutable_durable_gtid());
  GtidToProto(r->applied_gtid, reply->mutable_applied_gtid());
  reply->set_node_epoch(r->node_epoch);
  reply->set_revoked_primary(r->revoked_primary);
  reply->set_promised_owner(r->promised_owner);
  reply->set_may_have_acked_unsynced(r->may_have_acked_unsynced);
  reply->set_server_id(node_.server_id());
  return grpc::Status::OK;
}

grpc::Status ReplicationService::ReadIndex(grpc::ServerContext* ctx,
                                           const v1::ReadIndexRequest* req,
                                           v1::ReadIndexReply* reply) {
  // Either role, checked quietly: a replica's identity has the replication
  // one, an application reading here the read one.
  if (!auth_->Check(ctx, Role::kReplication, "ReadIndex").ok()) {
    if (auto denied = auth_->Check(ctx, Role::kRead, "ReadIndex"); !denied.ok()) {
      return grpc::Status(denied.error_code(),
                          denied.error_message() + " (the replication role would do too)");
    }
  }
  if (auto busy = node_.acquire_call_slot(ctx, "ReadIndex"); !busy.ok()) return ToGrpcStatus(busy);
  GetOptions options;
  options.deadline = SteadyDeadline(*ctx);
  options.cancelled = [ctx] { return ctx->IsCancelled(); };
  ReadIndexChain chain;
  chain.hops = req->hops();
  chain.asked_by.assign(req->asked_by().begin(), req->asked_by().end());
  auto index = node_.read_index(options, chain);
  if (!index.ok()) {
    // The asker passes a refused chain back as such, not as UNAVAILABLE.
    if (IsReadIndexChainError(index.status())) {
      ctx->AddTrailingMetadata(kReadIndexChainTrailer, "1");
    }
    return ToGrpcStatus(index.status());
  }
  GtidToProto(*index, reply->mutable_applied_gtid());
  return grpc::Status::OK;
}

void ReplicationService::WarnUnsyncedAcks(const ConnectedReplica& info) {
  {
    std::lock_guard l(mu_);
    const auto now = Clock::now();
    // Bounded by the server_ids seen in the last minute (s48b S3).
    std::erase_if(unsynced_warned_, [&](const auto& e) { return now - e.second >= kUnsyncedWarnEvery; });
    if (unsynced_warned_.contains(info.server_id)) return;
    unsynced_warned_[info.server_id] = now;
  }
  spdlog::warn("replication: replica server_id {} ({}) does not say its ACKs are on disk "
               "(sync_relay_log=0 there, or an older relaykvd): not counted as a semi-sync "
               "replica; it replicates asynchronously until it reconnects with sync_relay_log=1",
               info.server_id, info.address);
}

grpc::Status ReplicationService::Subscribe(
    grpc::ServerContext* ctx, grpc::ServerReaderWriter<v1::PrimaryMessage, v1::ReplicaMessage>* stream) {
  // Before anything is read: a caller without the role learns nothing.
  if (auto denied = auth_->Check(ctx, Role::kReplication, "Subscribe (REPLICATION SLAVE)");
      !denied.ok()) {
    return denied;
  }
  // max_connections: a replica's stream is a connection, as in MySQL.
  ConnectionSlot slot(node_.connections, "Subscribe");
  if (!slot.status().ok()) {
    spdlog::warn("replication: refusing a stream from {}: {}", ctx->peer(),
                 std::string(slot.status().message()));
    return ToGrpcStatus(slot.status());
  }
  v1::ReplicaMessage first;
  bool got_first;
  {
    const auto timeout = node_.hello_timeout();
    StallWatchdog::Watch w(&watchdog_, ctx, timeout,
                           "replication: ending the stream from " + ctx->peer() +
                               ": no hello within " + std::to_string(timeout.count()) +
                               " s (net_read_timeout)");
    got_first = stream->Read(&first);
  }
  if (!got_first) {
    return grpc::Status(grpc::StatusCode::CANCELLED,
                        "replica went away, or sent no hello within net_read_timeout");
  }
  if (auto s = CheckReplicaHello(first, node_.server_id()); !s.ok()) {
    if (first.has_hello()) {
      spdlog::warn("replication: refusing replica at {}: {}", ctx->peer(), std::string(s.message()));
    }
    return ToGrpcStatus(s);
  }
  const v1::ReplicaHello hello = first.hello();
  const Gtid durable = GtidFromProto(hello.durable_gtid());
  // Read before the epoch: a claim that finishes in between then shows as
  // an opened epoch, not as none (review s41e).
  const uint64_t opening = node_.opening_epoch();
  if (const uint64_t epoch = node_.epoch(); hello.promised_epoch() > epoch) {
    if (opening >= hello.promised_epoch() ||
        (hello.promised_owner() != 0 && hello.promised_owner() == node_.server_id())) {
      // Claimed in etcd (the replica promised that epoch to this node) and
      // being opened here: a replica that saw the claim can be faster than
      // the marker's fsync. Retried, not stopped for good (it would never
      // follow this primary: CI, review s41d).
      const std::string why = "this node is opening epoch " + std::to_string(hello.promised_epoch()) +
                              " as the new primary (its binlog is at epoch " + std::to_string(epoch) +
                              "): try again in a moment";
      spdlog::info("replication: replica server_id {} at {} came early: {}", hello.server_id(),
                   ctx->peer(), why);
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, why);
    }
    const std::string why = "replica has promised epoch " +
                            std::to_string(hello.promised_epoch()) + ", newer than this primary's epoch " +
                            std::to_string(epoch) +
                            ": it follows a newer primary (CHANGE MASTER TO that one)";
    spdlog::warn("replication: refusing replica server_id {} at {}: {}", hello.server_id(),
                 ctx->peer(), why);
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, why);
  }
  if (const uint64_t epoch = node_.epoch(), owner = node_.epoch_owner();
      hello.promised_epoch() == epoch && hello.promised_owner() != 0 && owner != 0 &&
      hello.promised_owner() != owner) {
    // Its position would count as an ACK of our events at the same GTIDs.
    const std::string why = "replica has promised epoch " + std::to_string(epoch) +
                            " to server_id " + std::to_string(hello.promised_owner()) +
                            ", not to this primary (server_id " +
                            std::to_string(node_.server_id()) +
                            "): two nodes opened that epoch and it follows the other";
    spdlog::warn("replication: refusing replica server_id {} at {}: {}", hello.server_id(),
                 ctx->peer(), why);
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, why);
  }
  // max_replicas: one place per replica server_id, held to the end.
  if (auto s = AcquireReplicaPlace(hello.server_id()); !s.ok()) {
    spdlog::warn("replication: refusing replica server_id {} at {}: {}", hello.server_id(),
                 ctx->peer(), std::string(s.message()));
    return ToGrpcStatus(s);
  }
  struct Place {
    ReplicationService* self;
    uint32_t server_id;
    ~Place() { self->ReleaseReplicaPlace(server_id); }
  } place{this, hello.server_id()};
  if (auto s = CheckPosition(durable, hello.durable_writer()); !s.ok()) {
    spdlog::warn("replication: refusing replica server_id {} at {}: {}", hello.server_id(),
                 durable.ToString(), s.ToString());
    return ToGrpcStatus(s);
  }
  auto reader = binlog_->NewReader(durable.seq + 1);
  if (!reader.ok()) return ToGrpcStatus(reader.status());

  ConnectedReplica info;
  info.server_id = hello.server_id();
  info.address = hello.address().empty() ? ctx->peer() : hello.address();
  // A replica whose ACKs may be only written (sync_relay_log=0, or too old
  // to say) replicates asynchronously: counting them would answer OK for a
  // write a power cut of two machines loses (DESIGN.md invariant 1; review
  // s47b M1).
  info.semi_sync = hello.semi_sync() && hello.relay_log_synced();
  if (hello.semi_sync() && !hello.relay_log_synced()) WarnUnsyncedAcks(info);
  info.sent = durable;
  info.acked = durable;
  const uint64_t id = registry_->Add(info);
  auto outbox = std::make_shared<Outbox>(ctx, stream, id, info.server_id, hello.address(),
                                         info.semi_sync, durable);
  Outbox& out = *outbox;
  out.stalled = "replication: ending the stream of replica server_id " +
                std::to_string(info.server_id) + " (" + info.address +
                "): a send to it has been blocked longer than net_write_timeout (it does not "
                "read: stopped, or its network path is stuck)";
  // Every blocking send on this stream is watched (net_write_timeout).
  auto send = [&](const v1::PrimaryMessage& m) {
    StallWatchdog::Watch w(&watchdog_, ctx, node_.send_timeout(), out.stalled);
    return stream->Write(m);
  };
  Register(outbox, durable.seq);
  spdlog::info("replication: replica server_id {} ({}) subscribed from {}", info.server_id,
               info.address, durable.ToString());

  // ACK reader: ends when the stream ends (or TryCancel below), or at an
  // ACK this stream cannot have earned (ack_error).
  std::mutex ack_mu;
  absl::Status ack_error;  // GUARDED_BY(ack_mu)
  std::atomic<bool> ack_failed{false};
  std::thread acks([&] {
    NameThisThread("rkv-acks");
    v1::ReplicaMessage m;
    while (stream->Read(&m)) {
      if (m.has_progress()) {
        registry_->UpdateApplied(id, GtidFromProto(m.progress().applied_gtid()),
                                 std::max<int64_t>(0, m.progress().oldest_unapplied_timestamp_us()));
        continue;
      }
      if (!m.has_ack()) continue;
      const Gtid acked = GtidFromProto(m.ack().durable_gtid());
      auto net_wait_us = out.acks.Acked(acked);
      if (!net_wait_us.ok()) {
        spdlog::error("replication: replica server_id {} ({}): {}; ending its stream",
                      info.server_id, info.address, std::string(net_wait_us.status().message()));
        std::lock_guard l(ack_mu);
        ack_error = net_wait_us.status();
        ack_failed = true;  // the sender ends the stream with it (within a heartbeat)
        break;
      }
      registry_->UpdateAcked(id, acked);
      semisync_->Ack(id, acked.seq, *net_wait_us);
    }
    // The replica is gone (STOP SLAVE, a dead connection): it stops
    // counting now, not when the sender next wakes up.
    semisync_->ReplicaDisconnected(id);
  });

  absl::Status status;
  v1::PrimaryMessage msg;
  bool alive;
  {
    // An immediate heartbeat tells the replica it was accepted, and what of
    // its relay log it may apply (a restarted replica holds back what it
    // had not been told was visible).
    std::lock_guard l(out.mu);
    const Gtid primary_last = binlog_->LastVisible();
    GtidToProto(primary_last, msg.mutable_heartbeat()->mutable_primary_last_gtid());
    msg.mutable_heartbeat()->set_primary_time_us(NowMicros());
    msg.mutable_heartbeat()->set_primary_epoch(node_.epoch());
    msg.mutable_heartbeat()->set_primary_server_id(node_.epoch_owner());
    msg.mutable_heartbeat()->set_visible_seq(
        node_.gate_visibility(Counted(info)) ? node_.visible_seq() : primary_last.seq);
    alive = send(msg);
  }
  uint64_t told_visible = 0;  // the visible seq this (gated) replica was last told
  auto last_message_at = Clock::now();
  while (alive && !ctx->IsCancelled() && !ack_failed) {
    // Events sent that the replica may not apply yet: watch for them.
    const bool held_back =
        node_.gate_visibility(Counted(info)) && told_visible + 1 < out.next_seq.load();
    // Asleep until something visible was not sent by a leader, or a
    // heartbeat is due (or, while held back, the next look at visibility).
    auto visible = binlog_->WaitUntilVisible(
        out.next_seq, Clock::now() + (held_back ? kVisiblePoll : kHeartbeatPeriod));
    if (!visible.ok()) {
      status = absl::UnavailableError("primary is shutting down");
      break;
    }
    std::lock_guard l(out.mu);
    if (!out.open) break;
    msg.Clear();
    const Gtid primary_last = binlog_->LastVisible();
    if (primary_last.seq < out.next_seq.load()) {
      // Decided after primary_last was read: a SET GLOBAL during the wait
      // above must not let an ungated message out.
      const bool gated = node_.gate_visibility(Counted(info));
      const uint64_t visible_seq = gated ? node_.visible_seq() : 0;
      // Nothing to send: the replica hears from us once a second, and at
      // once when it may apply more.
      const bool moved = gated && visible_seq > told_visible;
      if (!moved && Clock::now() - last_message_at < kHeartbeatPeriod) continue;
      GtidToProto(primary_last, msg.mutable_heartbeat()->mutable_primary_last_gtid());
      msg.mutable_heartbeat()->set_primary_time_us(NowMicros());
      msg.mutable_heartbeat()->set_primary_epoch(node_.epoch());
      msg.mutable_heartbeat()->set_primary_server_id(node_.epoch_owner());
      // Ungated, all it holds is visible (a replica restarted since it was
      // told so applies it).
      msg.mutable_heartbeat()->set_visible_seq(gated ? visible_seq : primary_last.seq);
      if (gated) told_visible = visible_seq;
      alive = send(msg);
      last_message_at = Clock::now();
      continue;
    }
    // Past what leaders already sent on this stream (OnGroup).
    while (status.ok() && (*reader)->next_seq() < out.next_seq.load()) {
      auto rec = (*reader)->Next();
      if (!rec.ok()) {
        status = rec.status();
      } else if (!rec->has_value()) {  // sent, so visible: never expected
        status = absl::InternalError("binlog seq " + std::to_string((*reader)->next_seq()) +
                                     " was sent but its reader cannot see it");
      }
    }
    if (!status.ok()) break;
    v1::EventBatch* batch = msg.mutable_batch();
    size_t bytes = 0;
    Gtid last;
    // Whatever is visible from there, up to one batch; never waits.
    while (bytes < kBatchBytes && static_cast<size_t>(batch->events_size()) < kBatchEvents) {
      auto rec = (*reader)->Next();
      if (!rec.ok()) {
        status = rec.status();
        break;
      }
      if (!rec->has_value()) break;
      bytes += (*rec)->payload.size();
      last = GtidFromProto((*rec)->event.gtid());
      batch->add_events(std::move((*rec)->payload));
    }
    if (!status.ok()) break;
    if (batch->events_size() == 0) {  // it was visible: never expected
      status = absl::InternalError("binlog seq " + std::to_string(out.next_seq.load()) +
                                   " is visible but its reader found nothing");
      break;
    }
    // Decided once the events are read: a commit that a SET GLOBAL made
    // wait for more replicas (wait_for_slave_count 1 -> 2) while they were
    // read must not leave ungated (review s47a M2).
    const bool gated = node_.gate_visibility(Counted(info));
    const uint64_t visible_seq = gated ? node_.visible_seq() : 0;
    GtidToProto(primary_last, batch->mutable_primary_last_gtid());
    batch->set_primary_time_us(NowMicros());
    batch->set_wants_ack(info.semi_sync);
    batch->set_primary_epoch(node_.epoch());
    batch->set_primary_server_id(node_.epoch_owner());
    if (gated) {
      batch->set_visible_seq(visible_seq);
      told_visible = visible_seq;
    }
    out.acks.Sent(last, bytes);
    alive = send(msg);  // false: replica gone, cancelled, or stalled past net_write_timeout
    last_message_at = Clock::now();
    if (!alive) break;
    out.next_seq.store(last.seq + 1);
    registry_->UpdateSent(id, last);
  }
  Unregister(outbox);
  {
    std::lock_guard l(out.mu);  // a leader's write in progress ends first
    out.open = false;
  }
  {
    std::lock_guard l(ack_mu);
    if (ack_error.ok()) {
      ctx->TryCancel();  // unblocks the ACK reader
    } else {
      status = ack_error;  // the reader has stopped; the replica gets this status
    }
  }
  acks.join();
  ConnectedReplica last = info;
  for (const ConnectedReplica& r : registry_->List()) {
    if (r.connection_id == id) last = r;
  }
  registry_->Remove(id);
  spdlog::info("replication: replica server_id {} ({}) disconnected at sent {} acked {}{}",
               info.server_id, info.address, last.sent.ToString(), last.acked.ToString(),
               status.ok() ? "" : ": " + status.ToString());
  return ToGrpcStatus(status);
}

}  // namespace relaykv
