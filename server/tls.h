// The one place relaykvd's gRPC server credentials are made, from the
// ssl_ca / ssl_cert / ssl_key / require_secure_transport variables
// (server/variables.cc; MySQL's names). Called by Node::Impl::Open.
//
//   ssl_cert + ssl_key   the listener serves TLS only (no plaintext)
//   + ssl_ca             clients' certificates are requested and verified
//                        against it (mutual TLS); a client without one may
//                        still connect and identify with a bearer token
//   require_secure_transport=ON without ssl_cert/ssl_key: refused
//
// Errors: INVALID_ARGUMENT naming the variable and the file.
#pragma once

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace relaykv {

struct ServerTlsConfig {
  std::string ca;    // ssl_ca: path or PEM text
  std::string cert;  // ssl_cert
  std::string key;   // ssl_key
  bool require_secure_transport = false;
  bool enabled() const { return !cert.empty(); }
};

[[nodiscard]] absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerTlsConfig& config);

}  // namespace relaykv
