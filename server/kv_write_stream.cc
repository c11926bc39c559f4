// KvService's WriteStream: pipelined writes on one bidirectional stream
// (proto/kv.proto, StreamWrite). Each write goes through the node's one
// commit path, Node::Impl::CommitAsync, exactly as a unary Write does, and
// is answered from its commit callback: under AFTER_SYNC an answer leaves
// only once that write's unary call would have returned OK.
//
// One StreamCall per stream, on the service's completion queue. Events:
//   kRequest  the stream is accepted: register, arm the next, start reading
//   kRead     a message of writes arrived (or the client half-closed / went
//             away: not ok); each write is committed; the next read starts
//             while the stream is under its in-flight cap
//   kWrite    a message of answers is on the wire; the next queued batch
//             goes out, and reading resumes if it had stopped at the cap
//   kFinish   the status is sent
//   kDone     the call is over (or cancelled: commits still waiting are
//             cancelled through WriteOptions::cancelled, never answered OK)
// Commit callbacks run on the node's threads (binlog committer, ACK reader,
// semi-sync timer): they only queue the answer and, if no write is on the
// wire, start one — at most one outstanding write per stream, as gRPC
// requires, so answers are serialized through `pending_`.
//
// Lifetime: `refs_` counts what can still touch the call — outstanding
// operations (read, write, finish, done) and commits not yet answered.
// The last Unref() unregisters and deletes it.
#include <algorithm>
#include <cassert>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/grpc_status.h"
#include "server/kv_calls.h"
#include "server/kv_service.h"
#include "server/node_impl.h"
#include "storage/thread_annotations.h"

namespace relaykv {
namespace {

absl::StatusOr<std::vector<v1::Mutation>> StreamMutations(v1::StreamWrite& w) {
  switch (w.op_case()) {
    case v1::StreamWrite::kPut:
      return Mutations(*w.mutable_put());
    case v1::StreamWrite::kDel:
      return Mutations(*w.mutable_del());
    case v1::StreamWrite::kWrite:
      return Mutations(*w.mutable_write());
    case v1::StreamWrite::OP_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("stream write " + std::to_string(w.id()) +
                                    " carries no put, del or write");
}

}  // namespace

class KvService::StreamCall final : public KvService::Call {
 public:
  static void Arm(KvService* service) {
    auto* call = new StreamCall(service);
    call->ctx_.AsyncNotifyWhenDone(&call->done_tag_);
    service->RequestWriteStream(&call->ctx_, &call->stream_, service->cq_.get(),
                                service->cq_.get(), &call->request_tag_);
  }

  void On(Op op, bool ok) override {
    switch (op) {
      case Op::kRequest:
        return OnAccepted(ok);
      case Op::kRead:
        return OnRead(ok);
      case Op::kWrite:
        return OnWritten(ok);
      case Op::kFinish:
        return Unref();
      case Op::kDone: {
        const bool cancelled = ctx_.IsCancelled();
        {
          std::lock_guard l(mu_);
          if (cancelled) {
            // Waiting commits see it within the semi-sync poll period.
            gone_.store(true);
            broken_ = true;
            DropPending();
          }
        }
        return Unref();
      }
    }
  }

  // EndStreams(): send what is queued, then UNAVAILABLE.
  void End() EXCLUDES(mu_) {
    std::lock_guard l(mu_);
    if (refs_ == 0) return;  // being deleted (waiting for streams_mu_)
    ending_ = true;
    MaybeFinish();
  }

 private:
  explicit StreamCall(KvService* service) : service_(service) {}

  void OnAccepted(bool ok) {
    if (!ok) {
      delete this;  // never matched: shutting down
      return;
    }
    {
      std::shared_lock l(service_->stop_mu_);
      if (!service_->stopping_) Arm(service_);  // the next stream
    }
    deadline_ = SteadyDeadline(ctx_);
    // Every write on the stream needs the write role: checked once, before
    // anything is read (nothing of a refused stream reaches the binlog).
    grpc::Status denied = service_->node_->impl_->auth_->Check(&ctx_, Role::kWrite, "WriteStream");
    // A slot for the stream's life (max_connections), released when it is
    // deleted; a refused stream ends at once, like a denied one.
    if (denied.ok()) {
      absl::Status busy = service_->node_->impl_->connections_.Acquire("WriteStream");
      has_slot_ = busy.ok();
      denied = ToGrpcStatus(busy);
    }
    {
      std::lock_guard l(mu_);
      // kDone (which comes for every matched call), and this function: set
      // before the call is listed, so that an EndStreams() in between ends
      // it (End() skips a call at zero) and nothing can delete it before
      // it is listed.
      refs_ = 2;
      if (!denied.ok()) {
        refused_ = std::move(denied);
        read_closed_ = true;  // reads nothing: ends at once with the refusal
      }
    }
    const bool open = service_->RegisterStream(this);
    {
      std::lock_guard l(mu_);
      if (!open) ending_ = true;
      MaybeRead();
      MaybeFinish();
    }
    Unref();
  }

  void OnRead(bool ok) {
    std::vector<v1::StreamWrite> writes;
    {
      std::lock_guard l(mu_);
      reading_ = false;
      const uint64_t cap =
          service_->node_->impl_->caps_.max_write_stream_inflight.load(std::memory_order_relaxed);
      if (!ok) {
        read_closed_ = true;  // half-closed, or gone
        MaybeFinish();
      } else if (static_cast<uint64_t>(in_.writes_size()) > std::max(cap, kStreamMessageWritesAlwaysTaken)) {
        // The cap holds per message too: one message of millions of tiny
        // writes would otherwise queue millions of answers at once.
        refused_ = grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            "one WriteStream message carries " + std::to_string(in_.writes_size()) +
                " writes, more than max_write_stream_inflight=" + std::to_string(cap) +
                " (and than the " + std::to_string(kStreamMessageWritesAlwaysTaken) +
                " always taken); nothing of it was written (writes answered earlier on this "
                "stream stand)");
        in_.Clear();
        read_closed_ = true;
        MaybeFinish();
      } else {
        writes.reserve(static_cast<size_t>(in_.writes_size()));
        service_->node_->impl_->metrics_.ObserveStreamMessage(static_cast<uint64_t>(in_.writes_size()));
        for (auto& w : *in_.mutable_writes()) writes.push_back(std::move(w));
        in_.Clear();
        in_flight_ += static_cast<int>(writes.size());
        refs_ += static_cast<int>(writes.size());  // each answered once
        // The next message is read while these commit, unless at the cap.
        for (const auto& w : writes) in_flight_bytes_ += w.ByteSizeLong();
        MaybeRead();
      }
    }
    for (auto& w : writes) Commit(w);
    Unref();  // the read
  }

  void Commit(v1::StreamWrite& w) {
    const uint64_t id = w.id();
    const size_t bytes = w.ByteSizeLong();
    std::optional<Condition> condition =
        w.has_write() ? ConditionOf(*w.mutable_write()) : std::nullopt;
    auto mutations = StreamMutations(w);
    if (!mutations.ok()) return Answer(id, bytes, mutations.status());
    WriteOptions options;
    options.deadline = deadline_;
    if (w.timeout_ms() > 0) {
      options.deadline = std::min(options.deadline, std::chrono::steady_clock::now() +
                                                        std::chrono::milliseconds(w.timeout_ms()));
    }
    options.cancelled = [this] { return gone_.load(); };
    if (w.has_write()) options.min_epoch = w.write().min_epoch();
    // Validation (ValidateMutations), the refusals of a replica or a
    // closing node and the whole wait are CommitAsync's, as for Write.
    service_->node_->impl_->TxnAsync(std::move(*mutations), std::move(condition),
                                     std::move(options),
                                     [this, id, bytes](absl::StatusOr<TxnResult> r) {
                                       Answer(id, bytes, r);
                                     });
  }

  // A commit's answer (any thread; must not block: a cheap lock).
  void Answer(uint64_t id, size_t bytes, const absl::StatusOr<TxnResult>& result) EXCLUDES(mu_) {
    {
      std::lock_guard l(mu_);
      in_flight_bytes_ -= bytes;  // the request itself is gone
      v1::StreamAnswer* a = pending_.add_answers();
      a->set_id(id);
      if (result.ok()) {
        GtidToProto(result->gtid, a->mutable_gtid());
        a->set_succeeded(result->succeeded);
        a->set_replication(ReplicationOf(*result));
      } else {
        a->set_code(static_cast<int32_t>(result.status().code()));
        a->set_message(std::string(result.status().message()));
      }
      MaybeWrite();
      MaybeFinish();
    }
    Unref();  // the commit
  }

  void OnWritten(bool ok) {
    {
      std::lock_guard l(mu_);
      writing_ = false;
      in_flight_ -= out_.answers_size();
      out_.Clear();
      if (!ok) {
        // The client cannot hear any more answers: stop its waits too.
        broken_ = true;
        gone_.store(true);
        DropPending();
      }
      MaybeWrite();
      MaybeRead();
      MaybeFinish();
    }
    Unref();  // the write
  }

  // Starts `start` unless the queue is shutting down (then the operation
  // never happens and no event comes for it). Under stop_mu_ shared, like
  // every operation started on the queue.
  template <typename Start>
  bool StartOp(Start start) REQUIRES(mu_) {
    std::shared_lock l(service_->stop_mu_);
    if (service_->stopping_) return false;
    start();
    ++refs_;
    return true;
  }

  void MaybeRead() REQUIRES(mu_) {
    if (reading_ || read_closed_ || broken_ || ending_ || finished_) return;
    // The cap: stop reading (backpressure) until answers are on the wire.
    const uint64_t cap =
        service_->node_->impl_->caps_.max_write_stream_inflight.load(std::memory_order_relaxed);
    if (static_cast<uint64_t>(in_flight_) >= cap || in_flight_bytes_ >= kStreamMaxInFlightBytes) {
      return;
    }
    reading_ = StartOp([&] { stream_.Read(&in_, &read_tag_); });
  }

  void MaybeWrite() REQUIRES(mu_) {
    if (writing_ || pending_.answers_size() == 0) return;
    if (broken_ || finished_) return DropPending();
    out_.Swap(&pending_);
    writing_ = StartOp([&] { stream_.Write(out_, &write_tag_); });
    if (!writing_) {
      in_flight_ -= out_.answers_size();
      out_.Clear();
    }
  }

  // Answers nobody can receive count as sent.
  void DropPending() REQUIRES(mu_) {
    in_flight_ -= pending_.answers_size();
    pending_.Clear();
  }

  // Ends the stream once every write read so far is answered on the wire,
  // and the client has half-closed, or went away, or the node is closing.
  // (Finish may be started with a read outstanding: it then fails.)
  void MaybeFinish() REQUIRES(mu_) {
    if (finished_ || writing_ || in_flight_ > 0) return;
    if (!read_closed_ && !ending_ && !broken_) return;
    const grpc::Status status =
        !refused_.ok() ? refused_
        : ending_      ? grpc::Status(grpc::StatusCode::UNAVAILABLE,
                               "relaykv node is shutting down; every write answered on this "
                               "stream stands")
                : grpc::Status::OK;
    finished_ = StartOp([&] { stream_.Finish(status, &finish_tag_); });
  }

  void Unref() EXCLUDES(mu_) {
    {
      std::lock_guard l(mu_);
      // Invariant: never below zero; zero only once, after which nothing
      // can reach the call.
      assert(refs_ > 0);
      if (--refs_ > 0) return;
    }
    service_->UnregisterStream(this);
    if (has_slot_) service_->node_->impl_->connections_.Release();
    delete this;
  }

  KvService* const service_;
  grpc::ServerContext ctx_;
  grpc::ServerAsyncReaderWriter<v1::WriteStreamReply, v1::WriteStreamRequest> stream_{&ctx_};
  // The stream's own deadline (set when accepted, constant after).
  std::chrono::steady_clock::time_point deadline_;
  // The client went away or cannot hear answers: commits stop waiting.
  std::atomic<bool> gone_{false};
  // Holds a max_connections slot (set once when accepted, before any
  // operation is started).
  bool has_slot_ = false;

  std::mutex mu_;
  int refs_ GUARDED_BY(mu_) = 0;
  // Writes read and not yet answered on the wire (committing, queued in
  // pending_, or in out_), and the bytes of those still committing.
  int in_flight_ GUARDED_BY(mu_) = 0;
  size_t in_flight_bytes_ GUARDED_BY(mu_) = 0;
  bool reading_ GUARDED_BY(mu_) = false;      // a read is outstanding (into in_)
  bool writing_ GUARDED_BY(mu_) = false;      // a write is outstanding (of out_)
  bool read_closed_ GUARDED_BY(mu_) = false;  // no more messages will come
  bool broken_ GUARDED_BY(mu_) = false;       // answers can no longer be sent
  bool ending_ GUARDED_BY(mu_) = false;       // the node is closing
  grpc::Status refused_ GUARDED_BY(mu_);      // not OK: the stream's end (no write role, bad message)
  bool finished_ GUARDED_BY(mu_) = false;     // Finish started
  v1::WriteStreamRequest in_ GUARDED_BY(mu_);
  v1::WriteStreamReply pending_ GUARDED_BY(mu_);  // answers waiting for the wire
  v1::WriteStreamReply out_ GUARDED_BY(mu_);      // the answers on the wire
  Tag request_tag_{this, Op::kRequest};
  Tag read_tag_{this, Op::kRead};
  Tag write_tag_{this, Op::kWrite};
  Tag finish_tag_{this, Op::kFinish};
  Tag done_tag_{this, Op::kDone};
};

void KvService::ArmStream() { StreamCall::Arm(this); }

bool KvService::RegisterStream(StreamCall* call) {
  std::lock_guard l(streams_mu_);
  if (streams_ended_) return false;
  streams_.insert(call);
  return true;
}

void KvService::UnregisterStream(StreamCall* call) {
  std::lock_guard l(streams_mu_);
  streams_.erase(call);
}

void KvService::EndStreams() {
  std::lock_guard l(streams_mu_);
  streams_ended_ = true;
  // A call's last Unref() unregisters under streams_mu_ before deleting
  // itself, so every call listed here is alive; End() holds no reference.
  for (StreamCall* call : streams_) call->End();
}

}  // namespace relaykv
