#include "server/watch_service.h"

#include <algorithm>

#include "grpcpp/support/method_handler.h"
#include "proto/watch.grpc.pb.h"  // the request's serialization traits
#include "relaykv/node.h"
#include "server/grpc_status.h"
#include "server/node_impl.h"
#include "spdlog/spdlog.h"
#include "storage/gtid.h"

namespace relaykv {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kWatchdogPeriod = std::chrono::seconds(1);
constexpr auto kWatchdogGrace = std::chrono::seconds(10);
// The shortest progress_interval_ms a peer gets (shorter ones are raised).
constexpr auto kMinProgressInterval = std::chrono::milliseconds(100);
// Responses up to this size are copied into their gRPC slice (ToSlice).
constexpr size_t kCopyAtMost = 64 * 1024;
// proto/watch.proto's ChangeStream.Watch, as gRPC names it on the wire.
constexpr char kWatchMethod[] = "/relaykv.v1.ChangeStream/Watch";

// The response as gRPC sends it later: small ones copied (the batch
// buffer is reused), larger ones taken without a copy — a watcher blocked
// in a send held its batch twice, up to ~64 MiB with a 32 MiB event
// (review s43b F8).
grpc::Slice ToSlice(std::string& response) {
  if (response.size() <= kCopyAtMost) return grpc::Slice(response.data(), response.size());
  auto* owned = new std::string(std::move(response));
  return grpc::Slice(owned->data(), owned->size(),
                     [](void* s) { delete static_cast<std::string*>(s); }, owned);
}

}  // namespace

// One Watch call as the watchdog sees it.
struct WatchService::Call {
  grpc::ServerContext* const ctx;
  // Steady-clock ns since epoch when the Write in progress began; 0: none.
  std::atomic<int64_t> writing_since_ns{0};
  std::atomic<bool> cut_off{false};  // cancelled by the watchdog
};

WatchService::WatchService(Node* node, const Authorizer* auth, ReplyGuards* budget,
                           TimerLoop* timers, std::function<std::chrono::seconds()> max_lag,
                           std::function<std::chrono::seconds()> send_timeout)
    : node_(node),
      auth_(auth),
      budget_(budget),
      max_lag_(std::move(max_lag)),
      send_timeout_(std::move(send_timeout)) {
  // What the generated ChangeStream::Service registers, with raw bytes out.
  AddMethod(new grpc::internal::RpcServiceMethod(
      kWatchMethod, grpc::internal::RpcMethod::SERVER_STREAMING,
      new grpc::internal::ServerStreamingHandler<WatchService, v1::WatchRequest, grpc::ByteBuffer>(
          [](WatchService* service, grpc::ServerContext* ctx, const v1::WatchRequest* req,
             grpc::ServerWriter<grpc::ByteBuffer>* writer) { return service->Watch(ctx, req, writer); },
          this)));
  watchdog_ = timers->Every(kWatchdogPeriod, [this] { Watchdog(); });
}

// Returns once no watchdog round runs: none touches the service after it.
WatchService::~WatchService() { watchdog_.Cancel(); }

void WatchService::Watchdog() {
  // Well past the lag limit: Node::Watch ends a slow reader itself, with
  // a status it sees, as soon as its Write returns; this is for readers
  // that stopped reading altogether.
  const auto max_lag = max_lag_();
  const auto send_timeout = send_timeout_();
  const int64_t limit_ns = std::chrono::nanoseconds(
      std::min(std::max<std::chrono::seconds>(2 * max_lag, max_lag + kWatchdogGrace), send_timeout))
                               .count();
  const int64_t now_ns = Clock::now().time_since_epoch().count();
  std::lock_guard l(mu_);
  for (Call* c : calls_) {
    const int64_t since = c->writing_since_ns.load();
    if (since == 0 || now_ns - since <= limit_ns || c->cut_off.exchange(true)) continue;
    spdlog::warn("watch: {} stopped reading (a write blocked for {} s, past "
                 "watch_max_lag_seconds = {} s or net_write_timeout = {} s); ending its stream",
                 c->ctx->peer(), (now_ns - since) / 1000000000, max_lag.count(),
                 send_timeout.count());
    c->ctx->TryCancel();
  }
}

grpc::Status WatchService::Watch(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                                 grpc::ServerWriter<grpc::ByteBuffer>* writer) {
  const bool committed_only = !req->has_committed_only() || req->committed_only();
  // Changes not yet committed are the binlog itself, which readers may not
  // see (invariant 2) and replicas stream: the replication role's
  // (review s47a L1).
  if (auto denied = committed_only
                        ? auth_->Check(ctx, Role::kRead, "Watch")
                        : auth_->Check(ctx, Role::kReplication, "Watch with committed_only=false");
      !denied.ok()) {
    return denied;
  }
  WatchOptions o;
  o.range.start = req->start();
  o.range.end = req->end();
  o.range.prefix = req->prefix();
  if (req->has_after()) o.after = GtidFromProto(req->after());
  o.committed_only = committed_only;
  if (req->progress_interval_ms() != 0) {
    // A floor for peers (review s43b F7): at 1 ms every watcher woke and
    // sent ~1000 messages a second, which starves commits on a small box.
    o.progress_interval =
        std::max(std::chrono::milliseconds(req->progress_interval_ms()), kMinProgressInterval);
  }
  o.cancelled = [ctx] { return ctx->IsCancelled(); };

  Call call{ctx};
  {
    std::lock_guard l(mu_);
    calls_.push_back(&call);
  }
  absl::Status refused;  // by the reply budget
  absl::Status s = node_->impl_->WatchWire(o, [&](std::string& response) {
    const uint64_t bytes = response.size();
    // Half the lag limit, so that a batch let through late is not then
    // ended as a slow watcher's (review s44d L1).
    refused = budget_->ReserveBytes(bytes, "Watch batch", Clock::now() + max_lag_() / 2,
                                    [ctx] { return ctx->IsCancelled(); });
    if (!refused.ok()) return false;
    grpc::Slice slice = ToSlice(response);
    grpc::ByteBuffer buffer(&slice, 1);
    call.writing_since_ns.store(Clock::now().time_since_epoch().count());
    const bool written = writer->Write(buffer);
    call.writing_since_ns.store(0);
    budget_->ReleaseBytes(bytes);
    return written;
  });
  {
    std::lock_guard l(mu_);
    std::erase(calls_, &call);
  }
  if (call.cut_off.load()) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "watcher stopped reading for more than watch_max_lag_seconds (" +
                            std::to_string(max_lag_().count()) + " s)");
  }
  if (!refused.ok()) {
    // Resumable (relaykv::Client resumes on UNAVAILABLE): the budget frees
    // as the replies holding it are sent or cut off.
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        std::string(refused.message()) +
                            " (resume after the last GTID received)");
  }
  if (s.ok() && ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "watcher went away");
  return ToGrpcStatus(s);
}

}  // namespace relaykv
