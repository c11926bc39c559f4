#include "server/replication_service.h"

#include <atomic>
#include <deque>
#include <mutex>
#include <thread>

#include "server/grpc_status.h"
#include "spdlog/spdlog.h"
#include "storage/binlog_reader.h"
#include "storage/thread_name.h"

namespace relaykv {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kHeartbeatPeriod = std::chrono::seconds(1);
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
  if (durable.seq + 1 < binlog_->FirstAvailableSeq()) {
    return absl::OutOfRangeError("replica needs seq " + std::to_string(durable.seq + 1) +
                                 " but the primary's binlog starts at seq " +
                                 std::to_string(binlog_->FirstAvailableSeq()) +
                                 " (purged); rebuild the replica from a copy");
  }
  // The replica's last event must be ours, not another history's.
  if (durable.seq >= binlog_->FirstAvailableSeq()) {
    auto reader = binlog_->NewReader(durable.seq);
    if (!reader.ok()) return reader.status();
    auto rec = (*reader)->Next();
    if (!rec.ok()) return rec.status();
    if (!rec->has_value()) return absl::InternalError("binlog event vanished while checking");
    const Gtid ours = GtidFromProto((*rec)->event.gtid());
    if (ours != durable) {
      return absl::FailedPreconditionError("replica's last gtid " + durable.ToString() +
                                           " is not in this primary's history (it has " +
                                           ours.ToString() + " at that seq)");
    }
  }
  return absl::OkStatus();
}

// One stream's sending side, shared by its sender thread and the binlog
// leaders offering groups (OnGroup).
struct ReplicationService::Outbox {
  Outbox(grpc::ServerReaderWriter<v1::PrimaryMessage, v1::ReplicaMessage>* s, uint64_t connection,
         bool semi, uint64_t next)
      : stream(s), id(connection), semi_sync(semi), next_seq(next) {}

  // A batch is about to go out (semi-sync streams only: others never ACK).
  void Sent(uint64_t last_seq, size_t bytes) EXCLUDES(sent_mu) {
    std::lock_guard l(sent_mu);
    if (sent.size() >= kMaxTracked) {
      untracked_up_to = last_seq;  // Unacked() says "too much" until it is ACKed
      return;
    }
    sent.push_back({last_seq, Clock::now(), bytes});
    unacked_bytes += bytes;
  }
  // The replica holds everything up to `seq`: returns the µs since the batch
  // ending exactly there was sent, or -1.
  int64_t Acked(uint64_t seq) EXCLUDES(sent_mu) {
    std::lock_guard l(sent_mu);
    int64_t net_wait_us = -1;
    while (!sent.empty() && sent.front().last_seq <= seq) {
      if (sent.front().last_seq == seq) {
        net_wait_us =
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent.front().at).count();
      }
      unacked_bytes -= sent.front().bytes;
      sent.pop_front();
    }
    if (seq >= untracked_up_to) untracked_up_to = 0;
    return net_wait_us;
  }
  uint64_t Unacked() EXCLUDES(sent_mu) {
    std::lock_guard l(sent_mu);
    return untracked_up_to != 0 ? kDirectSendMaxUnacked : unacked_bytes;
  }

  // Batches tracked at most (a replica that stopped ACKing).
  static constexpr size_t kMaxTracked = 10000;
  grpc::ServerReaderWriter<v1::PrimaryMessage, v1::ReplicaMessage>* const stream;
  const uint64_t id;
  const bool semi_sync;

  // Held for every write on the stream: one at a time, in seq order.
  std::mutex mu;
  bool open GUARDED_BY(mu) = true;  // false once broken or the handler leaves
  // The first seq not sent yet. Written under `mu`; read without it by the
  // binlog, so the sender sleeps through groups a leader sent itself.
  std::atomic<uint64_t> next_seq;

  struct Batch {
    uint64_t last_seq;
    Clock::time_point at;
    size_t bytes;
  };
  std::mutex sent_mu;
  std::deque<Batch> sent GUARDED_BY(sent_mu);  // not ACKed yet, oldest first
  uint64_t unacked_bytes GUARDED_BY(sent_mu) = 0;  // of the batches in `sent`
  uint64_t untracked_up_to GUARDED_BY(sent_mu) = 0;  // last seq sent while `sent` was full
};

void ReplicationService::Register(const std::shared_ptr<Outbox>& outbox) {
  std::lock_guard l(mu_);
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
    if (o->Unacked() + bytes > kDirectSendMaxUnacked) continue;
    if (msg.batch().events_size() == 0) {
      v1::EventBatch* batch = msg.mutable_batch();
      for (const std::string& p : payloads) batch->add_events(p);
      GtidToProto(last, batch->mutable_primary_last_gtid());
      batch->set_primary_time_us(NowMicros());
      batch->set_wants_ack(true);
    }
    o->Sent(last.seq, bytes);
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
  v1::ReplicaMessage first;
  if (!stream->Read(&first)) return grpc::Status(grpc::StatusCode::CANCELLED, "replica went away");
  if (!first.has_hello()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the first message on a replication stream must be a hello");
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
  semisync_->ReplicaConnected(id, info.semi_sync);
  auto outbox = std::make_shared<Outbox>(stream, id, info.semi_sync, durable.seq + 1);
  Outbox& out = *outbox;
  spdlog::info("replication: replica server_id {} ({}) subscribed from {}", info.server_id,
               info.address, durable.ToString());

  // ACK reader: ends when the stream ends (or TryCancel below).
  std::thread acks([&] {
    NameThisThread("rkv-acks");
    v1::ReplicaMessage m;
    while (stream->Read(&m)) {
      if (!m.has_ack()) continue;
      const Gtid acked = GtidFromProto(m.ack().durable_gtid());
      registry_->UpdateAcked(id, acked);
      semisync_->Ack(id, acked.seq, out.Acked(acked.seq));
    }
  });

  absl::Status status;
  v1::PrimaryMessage msg;
  bool alive;
  {
    // An immediate heartbeat tells the replica it was accepted.
    std::lock_guard l(out.mu);
    GtidToProto(binlog_->LastVisible(), msg.mutable_heartbeat()->mutable_primary_last_gtid());
    msg.mutable_heartbeat()->set_primary_time_us(NowMicros());
    alive = stream->Write(msg);
  }
  Register(outbox);
  while (alive && !ctx->IsCancelled()) {
    // Asleep until something visible was not sent by a leader, or a
    // heartbeat is due.
    auto visible = binlog_->WaitUntilVisible(out.next_seq, Clock::now() + kHeartbeatPeriod);
    if (!visible.ok()) {
      status = absl::UnavailableError("primary is shutting down");
      break;
    }
    std::lock_guard l(out.mu);
    if (!out.open) break;
    msg.Clear();
    const Gtid primary_last = binlog_->LastVisible();
    if (primary_last.seq < out.next_seq.load()) {
      // A second without anything to send: the replica hears from us.
      GtidToProto(primary_last, msg.mutable_heartbeat()->mutable_primary_last_gtid());
      msg.mutable_heartbeat()->set_primary_time_us(NowMicros());
      alive = stream->Write(msg);
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
    if (info.semi_sync) out.Sent(last.seq, bytes);
    alive = stream->Write(msg);  // false: replica gone (or cancelled)
    if (!alive) break;
    out.next_seq.store(last.seq + 1);
    registry_->UpdateSent(id, last);
  }
  Unregister(outbox);
  {
    std::lock_guard l(out.mu);  // a leader's write in progress ends first
    out.open = false;
  }
  ctx->TryCancel();  // unblocks the ACK reader
  acks.join();
  semisync_->ReplicaDisconnected(id);
  registry_->Remove(id);
  spdlog::info("replication: replica server_id {} ({}) disconnected{}", info.server_id,
               info.address, status.ok() ? "" : ": " + status.ToString());
  return ToGrpcStatus(status);
}

}  // namespace relaykv
