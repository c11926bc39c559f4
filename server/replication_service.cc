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

absl::Status ReplicationService::CheckPosition(const Gtid& durable) {
  const Gtid last = binlog_->LastVisible();
  if (durable.seq > last.seq) {
    return absl::FailedPreconditionError(
        "replica has gtid " + durable.ToString() + " but this primary's binlog ends at " +
        last.ToString() + ": the replica is ahead of the primary (a different history?)");
  }
  // One snapshot of the purge boundary: the event before the oldest kept.
  const Gtid before_first = binlog_->BeforeFirstAvailable();
  if (durable.seq < before_first.seq) {
    return absl::OutOfRangeError("replica needs seq " + std::to_string(durable.seq + 1) +
                                 " but the primary's binlog starts at seq " +
                                 std::to_string(before_first.seq + 1) +
                                 " (purged); rebuild the replica from a copy");
  }
  if (durable.seq == 0) return absl::OkStatus();  // an empty replica: nothing to compare
  // The replica's last event must be ours, not another history's — also
  // right at the purge boundary, where the GTID comes from the oldest
  // segment's header.
  Gtid ours = before_first;
  if (durable.seq > before_first.seq) {
    auto reader = binlog_->NewReader(durable.seq);
    if (!reader.ok()) return reader.status();  // purged meanwhile: OUT_OF_RANGE
    auto rec = (*reader)->Next();
    if (!rec.ok()) return rec.status();
    if (!rec->has_value()) return absl::InternalError("binlog event vanished while checking");
    ours = GtidFromProto((*rec)->event.gtid());
  }
  if (ours != durable) {
    return absl::FailedPreconditionError("replica's last gtid " + durable.ToString() +
                                         " is not in this primary's history (it has " +
                                         ours.ToString() + " at that seq)");
  }
  return absl::OkStatus();
}

// One stream's sending side, shared by its sender thread and the binlog
// leaders offering groups (OnGroup).
struct ReplicationService::Outbox {
  Outbox(grpc::ServerContext* c,
         grpc::ServerReaderWriter<v1::PrimaryMessage, v1::ReplicaMessage>* s, uint64_t connection,
         uint32_t server, bool semi, const Gtid& durable)
      : ctx(c),
        stream(s),
        id(connection),
        server_id(server),
        semi_sync(semi),
        acks(semi, durable),
        next_seq(durable.seq + 1) {}

  grpc::ServerContext* const ctx;  // the stream's; TryCancel() ends it
  grpc::ServerReaderWriter<v1::PrimaryMessage, v1::ReplicaMessage>* const stream;
  const uint64_t id;
  const uint32_t server_id;
  const bool semi_sync;
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
    spdlog::info("replication: replica server_id {} has two streams; ending the older", o->server_id);
    (newer ? outbox : o)->ctx->TryCancel();
  }
  outboxes_.push_back(outbox);
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
      if (node_.gate_visibility(true)) batch->set_visible_seq(node_.visible_seq());
    }
    o->acks.Sent(last, bytes);
    if (!o->stream->Write(msg)) {
      o->open = false;  // broken: the sender finds out on its next write
      continue;
    }
    o->next_seq.store(last.seq + 1);
    registry_->UpdateSent(o->id, last);
  }
}

grpc::Status ReplicationService::Subscribe(
    grpc::ServerContext* ctx, grpc::ServerReaderWriter<v1::PrimaryMessage, v1::ReplicaMessage>* stream) {
  // Before anything is read: a caller without the role learns nothing.
  if (auto denied = auth_->Check(ctx, Role::kReplication, "Subscribe (REPLICATION SLAVE)");
      !denied.ok()) {
    return denied;
  }
  v1::ReplicaMessage first;
  if (!stream->Read(&first)) return grpc::Status(grpc::StatusCode::CANCELLED, "replica went away");
  if (auto s = CheckReplicaHello(first, node_.server_id()); !s.ok()) {
    if (first.has_hello()) {
      spdlog::warn("replication: refusing replica at {}: {}", ctx->peer(), std::string(s.message()));
    }
    return ToGrpcStatus(s);
  }
  const v1::ReplicaHello hello = first.hello();
  const Gtid durable = GtidFromProto(hello.durable_gtid());
  if (auto s = CheckPosition(durable); !s.ok()) {
    spdlog::warn("replication: refusing replica server_id {} at {}: {}", hello.server_id(),
                 durable.ToString(), s.ToString());
    return ToGrpcStatus(s);
  }
  auto reader = binlog_->NewReader(durable.seq + 1);
  if (!reader.ok()) return ToGrpcStatus(reader.status());

  ConnectedReplica info;
  info.server_id = hello.server_id();
  info.address = hello.address().empty() ? ctx->peer() : hello.address();
  info.semi_sync = hello.semi_sync();
  info.sent = durable;
  info.acked = durable;
  const uint64_t id = registry_->Add(info);
  auto outbox = std::make_shared<Outbox>(ctx, stream, id, info.server_id, info.semi_sync, durable);
  Outbox& out = *outbox;
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
    msg.mutable_heartbeat()->set_visible_seq(
        node_.gate_visibility(info.semi_sync) ? node_.visible_seq() : primary_last.seq);
    alive = stream->Write(msg);
  }
  uint64_t told_visible = 0;  // the visible seq this (gated) replica was last told
  auto last_message_at = Clock::now();
  while (alive && !ctx->IsCancelled() && !ack_failed) {
    // Events sent that the replica may not apply yet: watch for them.
    const bool held_back =
        node_.gate_visibility(info.semi_sync) && told_visible + 1 < out.next_seq.load();
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
    // Decided now, right before the message is built: a SET GLOBAL during
    // the wait above must not let an ungated message out.
    const bool gated = node_.gate_visibility(info.semi_sync);
    const uint64_t visible_seq = gated ? node_.visible_seq() : 0;
    if (primary_last.seq < out.next_seq.load()) {
      // Nothing to send: the replica hears from us once a second, and at
      // once when it may apply more.
      const bool moved = gated && visible_seq > told_visible;
      if (!moved && Clock::now() - last_message_at < kHeartbeatPeriod) continue;
      GtidToProto(primary_last, msg.mutable_heartbeat()->mutable_primary_last_gtid());
      msg.mutable_heartbeat()->set_primary_time_us(NowMicros());
      // Ungated, all it holds is visible (a replica restarted since it was
      // told so applies it).
      msg.mutable_heartbeat()->set_visible_seq(gated ? visible_seq : primary_last.seq);
      if (gated) told_visible = visible_seq;
      alive = stream->Write(msg);
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
    GtidToProto(primary_last, batch->mutable_primary_last_gtid());
    batch->set_primary_time_us(NowMicros());
    batch->set_wants_ack(info.semi_sync);
    if (gated) {
      batch->set_visible_seq(visible_seq);
      told_visible = visible_seq;
    }
    out.acks.Sent(last, bytes);
    alive = stream->Write(msg);  // false: replica gone (or cancelled)
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
