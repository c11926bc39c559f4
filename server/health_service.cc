#include "server/health_service.h"

#include <chrono>
#include <optional>
#include <string_view>

#include "relaykv/node.h"

namespace relaykv {
namespace {

using grpc::health::v1::HealthCheckResponse;

bool KnownService(std::string_view name) {
  return name.empty() || name == "relaykv.v1.Kv" || name == "relaykv.v1.Admin" ||
         name == "relaykv.v1.Replication";
}

HealthCheckResponse::ServingStatus StatusOf(const Node& node) {
  return node.Health().serving ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
}

}  // namespace

grpc::Status HealthService::Check(grpc::ServerContext*,
                                  const grpc::health::v1::HealthCheckRequest* request,
                                  HealthCheckResponse* response) {
  if (!KnownService(request->service())) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "unknown service '" + request->service() + "'");
  }
  response->set_status(StatusOf(*node_));
  return grpc::Status::OK;
}

grpc::Status HealthService::Watch(grpc::ServerContext* ctx,
                                  const grpc::health::v1::HealthCheckRequest* request,
                                  grpc::ServerWriter<HealthCheckResponse>* writer) {
  const bool known = KnownService(request->service());
  std::optional<HealthCheckResponse::ServingStatus> last;
  std::unique_lock l(mu_);
  while (!shutdown_ && !ctx->IsCancelled()) {
    const auto status = known ? StatusOf(*node_) : HealthCheckResponse::SERVICE_UNKNOWN;
    if (status != last) {
      HealthCheckResponse r;
      r.set_status(status);
      l.unlock();
      const bool sent = writer->Write(r);
      l.lock();
      if (!sent) break;  // the client is gone
      last = status;
    }
    cv_.wait_for(l, std::chrono::milliseconds(kWatchPollMs), [&] { return shutdown_; });
  }
  return grpc::Status::OK;
}

void HealthService::Shutdown() {
  {
    std::lock_guard l(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
}

}  // namespace relaykv
