#include "server/kv_service.h"

#include <atomic>
#include <mutex>
#include <shared_mutex>

#include "server/grpc_status.h"
#include "server/kv_calls.h"
#include "server/node_impl.h"
#include "server/reply_guards.h"
#include "relaykv/node.h"
#include "storage/thread_name.h"

namespace relaykv {
namespace {

// Threads taking the write queue's events. It never waits on the disk or
// the replicas (the binlog's committer writes the groups), so one is
// enough, and fewer threads taking turns at gRPC's poller measured better:
// AFTER_SYNC at 64 clients 14.2k-17.0k commits/s with one thread vs
// 14.2k-15.8k with two in alternating runs, 1-client latency alike.
// (When the queue thread wrote an idle binlog's group itself, one thread
// stopped taking requests during every fdatasync: 3.3k commits/s.)
constexpr int kQueueThreads = 1;
// Requests of each write method accepted ahead (each is a small object).
constexpr int kArmedPerMethod = 8;
constexpr int kArmedStreams = 2;

// The method's name in refusals.
constexpr std::string_view OpName(const v1::PutRequest&) { return "Put"; }
constexpr std::string_view OpName(const v1::DeleteRequest&) { return "Delete"; }
constexpr std::string_view OpName(const v1::WriteRequest&) { return "Write"; }

// A read's consistency (proto/kv.proto ReadConsistency) into `read`, or
// INVALID_ARGUMENT naming what does not fit.
absl::Status ReadConsistencyFromProto(v1::ReadConsistency consistency, GetOptions* read) {
  switch (consistency) {
    case v1::READ_CONSISTENCY_UNSPECIFIED:
      read->consistency = ReadConsistency::kLocal;
      return absl::OkStatus();
    case v1::READ_LOCAL:
      if (read->wait_for.seq != 0) {
        return absl::InvalidArgumentError(
            "consistency READ_LOCAL reads at once but wait_for_gtid is set (use "
            "READ_WAIT_FOR_GTID)");
      }
      read->consistency = ReadConsistency::kLocal;
      return absl::OkStatus();
    case v1::READ_WAIT_FOR_GTID:
      read->consistency = ReadConsistency::kWaitForGtid;
      return absl::OkStatus();
    case v1::READ_PRIMARY_FRESH:
      read->consistency = ReadConsistency::kPrimaryFresh;
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError("unknown read consistency " +
                                        std::to_string(static_cast<int>(consistency)));
  }
}

}  // namespace

// One write RPC, from being armed to its last event. Three events come
// back for a matched request — kRequest, kFinish and kDone (the call is
// over, or the client cancelled it), the last two in either order; an
// unmatched one (server shutdown) returns only kRequest, not ok.
template <typename Request>
class KvService::WriteCall final : public KvService::Call {
 public:
  using RequestMethod = void (KvService::*)(grpc::ServerContext*, Request*,
                                            grpc::ServerAsyncResponseWriter<v1::WriteReply>*,
                                            grpc::CompletionQueue*, grpc::ServerCompletionQueue*,
                                            void*);

  static void Arm(KvService* service, RequestMethod method) {
    auto* call = new WriteCall(service, method);
    call->ctx_.AsyncNotifyWhenDone(&call->done_tag_);
    (service->*method)(&call->ctx_, &call->request_, &call->responder_, service->cq_.get(),
                       service->cq_.get(), &call->request_tag_);
  }

  void On(Op op, bool ok) override {
    switch (op) {
      case Op::kRequest: {
        if (!ok) {
          delete this;  // never matched: shutting down
          return;
        }
        // Stop() takes it whole, so no request is armed and no answer
        // started once the queue shuts down.
        std::shared_lock l(service_->stop_mu_);
        if (!service_->stopping_) {
          Arm(service_, method_);  // the next request of this method
          Commit();
          return;
        }
        // Too late to answer (the server has cancelled its calls): only
        // kDone will come.
        break;
      }
      case Op::kDone:
        // Only now may an async call ask IsCancelled().
        gone_.store(ctx_.IsCancelled());
        break;
      case Op::kFinish:
      case Op::kRead:
      case Op::kWrite:
        break;
    }
    if (pending_.fetch_sub(1) == 1) delete this;
  }

 private:
  WriteCall(KvService* service, RequestMethod method) : service_(service), method_(method) {}
  ~WriteCall() override {
    if (has_slot_) service_->node_->impl_->connections_.Release();
  }

  void Commit() {
    // Held until the call is deleted (its answer sent or abandoned).
    if (absl::Status busy = service_->node_->impl_->connections_.Acquire(OpName(request_));
        !busy.ok()) {
      responder_.Finish(reply_, ToGrpcStatus(busy), &finish_tag_);
      return;
    }
    has_slot_ = true;
    if (auto denied = service_->node_->impl_->auth_->Check(&ctx_, Role::kWrite, OpName(request_));
        !denied.ok()) {
      responder_.Finish(reply_, denied, &finish_tag_);
      return;
    }
    WriteOptions options{SteadyDeadline(ctx_), [this] { return gone_.load(); }, MinEpochOf(request_)};
    std::optional<Condition> condition = ConditionOf(request_);
    service_->node_->impl_->TxnAsync(
        Mutations(request_), std::move(condition), std::move(options),
        [this](absl::StatusOr<TxnResult> r) {
          if (r.ok()) {
            GtidToProto(r->gtid, reply_.mutable_gtid());
            reply_.set_succeeded(r->succeeded);
            reply_.set_replication(ReplicationOf(*r));
          }
          // Last touch of this call here: kFinish may delete it at once.
          responder_.Finish(reply_, ToGrpcStatus(r.status()), &finish_tag_);
        });
  }

  KvService* const service_;
  const RequestMethod method_;
  grpc::ServerContext ctx_;
  Request request_;
  v1::WriteReply reply_;
  grpc::ServerAsyncResponseWriter<v1::WriteReply> responder_{&ctx_};
  std::atomic<bool> gone_{false};
  bool has_slot_ = false;  // holds a max_connections slot (set before any answer starts)
  std::atomic<int> pending_{2};  // kFinish and kDone still to come
  Tag request_tag_{this, Op::kRequest};
  Tag finish_tag_{this, Op::kFinish};
  Tag done_tag_{this, Op::kDone};
};

KvService::~KvService() { Stop(); }

void KvService::Start(std::unique_ptr<grpc::ServerCompletionQueue> cq) {
  cq_ = std::move(cq);
  for (int i = 0; i < kArmedPerMethod; ++i) {
    WriteCall<v1::PutRequest>::Arm(this, &KvService::RequestPut);
    WriteCall<v1::DeleteRequest>::Arm(this, &KvService::RequestDelete);
    WriteCall<v1::WriteRequest>::Arm(this, &KvService::RequestWrite);
  }
  for (int i = 0; i < kArmedStreams; ++i) ArmStream();
  for (int i = 0; i < kQueueThreads; ++i) {
    threads_.emplace_back([this] {
      NameThisThread("rkv-kv-writes");
      void* tag;
      bool ok;
      while (cq_->Next(&tag, &ok)) {
        auto* t = static_cast<Call::Tag*>(tag);
        t->call->On(t->op, ok);
      }
    });
  }
}

void KvService::Stop() {
  if (cq_ == nullptr) return;
  {
    std::unique_lock l(stop_mu_);
    stopping_ = true;
  }
  cq_->Shutdown();
  for (auto& t : threads_) t.join();
  threads_.clear();
  cq_.reset();
}

namespace {

// A built reply's bytes, held until it is sent (max_inflight_reply_bytes):
// the message in memory (a page of many small rows costs far more than its
// encoding) and its encoding live together while gRPC sends it. A refused
// reply is emptied: gRPC keeps the message until the status is sent, and a
// client that does not read holds that too (review s43e E1, E2).
template <typename Reply>
grpc::Status ReserveReply(ReplyGuards* guards, grpc::ServerContext* ctx, Reply* reply,
                          std::string_view what) {
  const uint64_t bytes = reply->SpaceUsedLong() + reply->ByteSizeLong();
  absl::Status reserved = guards->Reserve(ctx, bytes, what);
  if (!reserved.ok()) {
    Reply empty;
    empty.Swap(reply);  // its memory goes with `empty`, now
  }
  return ToGrpcStatus(reserved);
}

}  // namespace

grpc::Status KvService::Get(grpc::ServerContext* ctx, const v1::GetRequest* req,
                            v1::GetReply* reply) {
  if (auto denied = node_->impl_->auth_->Check(ctx, Role::kRead, "Get"); !denied.ok()) return denied;
  // Held until the reply is sent (server/reply_guards.h).
  if (auto busy = node_->impl_->reply_guards_->Acquire(ctx, "Get"); !busy.ok()) {
    return ToGrpcStatus(busy);
  }
  GetOptions options;
  options.wait_for = GtidFromProto(req->wait_for_gtid());
  if (auto bad = ReadConsistencyFromProto(req->consistency(), &options); !bad.ok()) {
    return ToGrpcStatus(bad);
  }
  options.deadline = SteadyDeadline(*ctx);
  options.cancelled = [ctx] { return ctx->IsCancelled(); };
  auto value = node_->GetVersioned(req->key(), options);
  // The applied position after the read: the value is at most as new as it.
  GtidToProto(node_->applied_gtid(), reply->mutable_applied_gtid());
  if (!value.ok()) return ToGrpcStatus(value.status());
  reply->set_found(value->has_value());
  if (value->has_value()) {
    reply->set_value(std::move((*value)->value));
    GtidToProto((*value)->version, reply->mutable_version());
  }
  return ReserveReply(node_->impl_->reply_guards_.get(), ctx, reply, "Get");
}

grpc::Status KvService::Scan(grpc::ServerContext* ctx, const v1::ScanRequest* req,
                             v1::ScanReply* reply) {
  if (auto denied = node_->impl_->auth_->Check(ctx, Role::kRead, "Scan"); !denied.ok()) return denied;
  // Held until the reply is sent (server/reply_guards.h).
  if (auto busy = node_->impl_->reply_guards_->Acquire(ctx, "Scan"); !busy.ok()) {
    return ToGrpcStatus(busy);
  }
  ScanRange range;
  range.start = req->start();
  range.end = req->end();
  range.prefix = req->prefix();
  range.limit = req->limit();
  range.reverse = req->reverse();
  range.keys_only = req->keys_only();
  range.count_only = req->count_only();
  range.continuation = req->continuation();
  GetOptions read;
  read.wait_for = GtidFromProto(req->wait_for_gtid());
  if (auto bad = ReadConsistencyFromProto(req->consistency(), &read); !bad.ok()) {
    return ToGrpcStatus(bad);
  }
  read.deadline = SteadyDeadline(*ctx);
  read.cancelled = [ctx] { return ctx->IsCancelled(); };
  auto page = node_->Scan(range, read);
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (KeyValue& kv : page->rows) {
    v1::KeyValue* row = reply->add_rows();
    row->set_key(std::move(kv.key));
    row->set_value(std::move(kv.value));
  }
  reply->set_count(page->count);
  reply->set_continuation(std::move(page->continuation));
  GtidToProto(page->applied, reply->mutable_applied_gtid());
  return ReserveReply(node_->impl_->reply_guards_.get(), ctx, reply, "Scan");
}

}  // namespace relaykv
