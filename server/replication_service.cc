#include "server/replication_service.h"

#include <deque>
#include <mutex>
#include <thread>

#include "server/grpc_status.h"
#include "spdlog/spdlog.h"
#include "storage/binlog_reader.h"

namespace relaykv {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kHeartbeatPeriod = std::chrono::seconds(1);
// One batch carries at most this much; the next waits for flow control.
constexpr size_t kBatchBytes = 1u << 20;
constexpr size_t kBatchEvents = 1000;

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

  // When each batch was sent, so an ACK tells the replica + network time.
  std::mutex sent_mu;
  std::deque<std::pair<uint64_t, Clock::time_point>> sent_at;  // (last seq, when); guarded by sent_mu
  spdlog::info("replication: replica server_id {} ({}) subscribed from {}", info.server_id,
               info.address, durable.ToString());

  // ACK reader: ends when the stream ends (or TryCancel below).
  std::thread acks([&] {
    v1::ReplicaMessage m;
    while (stream->Read(&m)) {
      if (!m.has_ack()) continue;
      const Gtid acked = GtidFromProto(m.ack().durable_gtid());
      registry_->UpdateAcked(id, acked);
      int64_t net_wait_us = -1;
      {
        std::lock_guard l(sent_mu);
        while (!sent_at.empty() && sent_at.front().first <= acked.seq) {
          if (sent_at.front().first == acked.seq) {
            net_wait_us = std::chrono::duration_cast<std::chrono::microseconds>(
                              Clock::now() - sent_at.front().second)
                              .count();
          }
          sent_at.pop_front();
        }
      }
      semisync_->Ack(id, acked.seq, net_wait_us);
    }
  });

  absl::Status status;
  v1::PrimaryMessage msg;
  // An immediate heartbeat tells the replica it was accepted.
  GtidToProto(binlog_->LastVisible(), msg.mutable_heartbeat()->mutable_primary_last_gtid());
  msg.mutable_heartbeat()->set_primary_time_us(NowMicros());
  bool alive = stream->Write(msg);
  while (alive && !ctx->IsCancelled()) {
    auto rec = (*reader)->NextWait(Clock::now() + kHeartbeatPeriod);
    if (!rec.ok()) {
      status = absl::IsCancelled(rec.status()) ? absl::UnavailableError("primary is shutting down")
                                               : rec.status();
      break;
    }
    msg.Clear();
    const Gtid primary_last = binlog_->LastVisible();
    if (!rec->has_value()) {
      GtidToProto(primary_last, msg.mutable_heartbeat()->mutable_primary_last_gtid());
      msg.mutable_heartbeat()->set_primary_time_us(NowMicros());
      if (!stream->Write(msg)) break;
      continue;
    }
    v1::EventBatch* batch = msg.mutable_batch();
    size_t bytes = (*rec)->payload.size();
    Gtid last = GtidFromProto((*rec)->event.gtid());
    batch->add_events(std::move((*rec)->payload));
    // Whatever else is already visible, up to one batch; never waits.
    while (bytes < kBatchBytes && static_cast<size_t>(batch->events_size()) < kBatchEvents) {
      auto more = (*reader)->Next();
      if (!more.ok()) {
        status = more.status();
        break;
      }
      if (!more->has_value()) break;
      bytes += (*more)->payload.size();
      last = GtidFromProto((*more)->event.gtid());
      batch->add_events(std::move((*more)->payload));
    }
    if (!status.ok()) break;
    GtidToProto(binlog_->LastVisible(), batch->mutable_primary_last_gtid());
    batch->set_primary_time_us(NowMicros());
    batch->set_wants_ack(info.semi_sync);
    if (info.semi_sync) {
      std::lock_guard l(sent_mu);
      if (sent_at.size() < 10000) sent_at.emplace_back(last.seq, Clock::now());
    }
    if (!stream->Write(msg)) break;  // replica gone (or cancelled)
    registry_->UpdateSent(id, last);
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
