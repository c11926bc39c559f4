#include "client/channel_credentials.h"

#include <fstream>
#include <sstream>

namespace relaykv {

absl::StatusOr<std::string> ReadPem(const std::string& path_or_pem, const std::string& option) {
  if (path_or_pem.rfind("-----BEGIN", 0) == 0) return path_or_pem;
  std::ifstream in(path_or_pem, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(option + ": cannot read '" + path_or_pem +
                                      "' (expected a PEM file)");
  }
  std::ostringstream text;
  text << in.rdbuf();
  std::string pem = text.str();
  if (pem.find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(option + ": '" + path_or_pem + "' is not a PEM file");
  }
  return pem;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsOptions& tls) {
  if (!tls.enabled) return grpc::InsecureChannelCredentials();
  if (tls.cert.empty() != tls.key.empty()) {
    return absl::InvalidArgumentError(
        "ssl_cert and ssl_key go together: give both for mutual TLS, or neither");
  }
  grpc::SslCredentialsOptions o;
  if (!tls.ca.empty()) {
    auto ca = ReadPem(tls.ca, "ssl_ca");
    if (!ca.ok()) return ca.status();
    o.pem_root_certs = *ca;
  }
  if (!tls.cert.empty()) {
    auto cert = ReadPem(tls.cert, "ssl_cert");
    if (!cert.ok()) return cert.status();
    auto key = ReadPem(tls.key, "ssl_key");
    if (!key.ok()) return key.status();
    o.pem_cert_chain = *cert;
    o.pem_private_key = *key;
  }
  return grpc::SslCredentials(o);
}

}  // namespace relaykv
