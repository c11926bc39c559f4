// TLS settings of one gRPC connection, client side (public API): what
// relaykv::Client, the relaykv CLI, relaykv-bench and a replica's IO thread
// (CHANGE MASTER TO ... MASTER_SSL=1, MASTER_SSL_CA=...) connect with.
//
// Each of ca/cert/key is either a path to a PEM file or the PEM text itself
// (anything starting with "-----BEGIN"). MySQL's meaning:
//   ca    the CA that signs the server's certificate (verified, with its
//         host name or IP in the certificate's SAN); empty: the system roots
//   cert  this client's certificate, for mutual TLS (the server maps its
//   key   subject CN or SAN to roles); both or neither
#pragma once

#include <optional>
#include <string>

namespace relaykv {

struct TlsOptions {
  bool enabled = false;  // false: plaintext (the rest is ignored)
  std::string ca;
  std::string cert;
  std::string key;
};

// What CHANGE MASTER TO's MASTER_SSL* options set on a replica. Unset
// (nullopt): the replica keeps what it had, as in MySQL. Paths are read on
// the replica.
struct ChangeMasterTls {
  std::optional<bool> ssl;  // MASTER_SSL
  std::optional<std::string> ca;
  std::optional<std::string> cert;
  std::optional<std::string> key;
};

}  // namespace relaykv
