// The one place a gRPC client's channel credentials are made from
// TlsOptions (include/relaykv/tls.h): relaykv::Client, the relaykv CLI,
// relaykv-bench and a replica's IO thread (server/replica_io.cc) all call
// MakeChannelCredentials. Also the PEM reader the server side
// (server/tls.cc) shares.
//
// Threads: free functions, no state. Errors: INVALID_ARGUMENT naming the
// option and the file (unreadable, not PEM, cert without key).
#pragma once

#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "relaykv/tls.h"

namespace relaykv {

// `path_or_pem` as PEM text: itself if it starts with "-----BEGIN", else
// the file's contents. `option` names it in errors ("ssl_ca").
[[nodiscard]] absl::StatusOr<std::string> ReadPem(const std::string& path_or_pem,
                                                  const std::string& option);

// Insecure credentials when !tls.enabled; else SSL credentials with the CA
// (empty: the system roots) and, if given, the client certificate and key.
[[nodiscard]] absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsOptions& tls);

}  // namespace relaykv
