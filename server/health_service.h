// HealthService: gRPC's standard health service (grpc.health.v1.Health,
// proto/health.proto) over Node::Health(), so that grpc_health_probe,
// Kubernetes' gRPC probes and load balancers can ask a node whether it does
// its job: SERVING on a primary that takes writes and on a replica whose IO
// and SQL threads run; NOT_SERVING otherwise (read_only=ON, a stopped state
// machine, STOP SLAVE, a replica still connecting, shutting down). The same
// answer as GET /healthz.
//
// Services: "" (the server) and relaykv.v1.Kv, relaykv.v1.Admin,
// relaykv.v1.Replication all answer with the node's health; any other name
// is NOT_FOUND (Check) or SERVICE_UNKNOWN (Watch), as the protocol says.
//
// Check asks the node on every call (nothing cached: the answer follows
// START/STOP SLAVE, SET GLOBAL read_only, promotion at once). Watch polls
// every kWatchPollMs and sends each change; it ends when the client cancels
// or Shutdown() is called.
//
// Threads: gRPC's sync server threads. Shutdown() from the node's Close(),
// before the gRPC server shuts down (a Watch would hold that up).
#pragma once

#include <condition_variable>
#include <mutex>

#include "proto/health.grpc.pb.h"

namespace relaykv {

class Node;

class HealthService final : public grpc::health::v1::Health::Service {
 public:
  static constexpr int kWatchPollMs = 200;

  // Borrows `node`, which must outlive the gRPC server.
  explicit HealthService(const Node* node) : node_(node) {}

  grpc::Status Check(grpc::ServerContext* ctx, const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override;
  grpc::Status Watch(grpc::ServerContext* ctx, const grpc::health::v1::HealthCheckRequest* request,
                     grpc::ServerWriter<grpc::health::v1::HealthCheckResponse>* writer) override;

  // Ends every Watch (they return OK) and refuses new ones.
  void Shutdown();

 private:
  const Node* const node_;
  std::mutex mu_;
  std::condition_variable cv_;  // signalled by Shutdown()
  bool shutdown_ = false;       // GUARDED_BY(mu_)
};

}  // namespace relaykv
