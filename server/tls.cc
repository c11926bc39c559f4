#include "server/tls.h"

#include <grpcpp/security/server_credentials.h>

#include "client/channel_credentials.h"

namespace relaykv {

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerTlsConfig& config) {
  if (config.cert.empty() != config.key.empty()) {
    return absl::InvalidArgumentError("ssl_cert and ssl_key go together: give both, or neither");
  }
  if (!config.enabled()) {
    if (config.require_secure_transport) {
      return absl::InvalidArgumentError(
          "require_secure_transport is ON but ssl_cert/ssl_key are not set: give the server a "
          "certificate, or turn require_secure_transport OFF");
    }
    if (!config.ca.empty()) {
      return absl::InvalidArgumentError("ssl_ca is set without ssl_cert/ssl_key: TLS needs both");
    }
    return grpc::InsecureServerCredentials();
  }
  auto cert = ReadPem(config.cert, "ssl_cert");
  if (!cert.ok()) return cert.status();
  auto key = ReadPem(config.key, "ssl_key");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions o(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  o.pem_key_cert_pairs.push_back({*key, *cert});
  if (!config.ca.empty()) {
    auto ca = ReadPem(config.ca, "ssl_ca");
    if (!ca.ok()) return ca.status();
    o.pem_root_certs = *ca;
    // Requested and verified when presented; not required, so that a
    // client without a certificate can identify with a bearer token. With
    // a roles file, a call with neither is UNAUTHENTICATED (server/auth.h).
    o.client_certificate_request = GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(o);
}

}  // namespace relaykv
