// absl::Status -> grpc::Status. The canonical codes are numbered alike.
#pragma once

#include <chrono>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"

namespace relaykv {

inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

// The call's deadline on the steady clock (max() when the client set none).
inline std::chrono::steady_clock::time_point SteadyDeadline(const grpc::ServerContext& ctx) {
  auto remaining = ctx.deadline() - std::chrono::system_clock::now();
  if (remaining > std::chrono::hours(24 * 365)) return std::chrono::steady_clock::time_point::max();
  return std::chrono::steady_clock::now() +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(remaining);
}

}  // namespace relaykv
