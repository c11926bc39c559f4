// Who may do what on a relaykvd: roles in the spirit of MySQL's privileges,
// checked by one function (Authorizer::Check) that every gRPC method of
// KvService, ReplicationService and AdminService calls first.
//
// Roles:   read         Get, SHOW VARIABLES/STATUS, SHOW SLAVE STATUS, SHOW
//                       REPLICAS, SHOW BINARY LOGS, SHOW MASTER STATUS
//          write        Put, Delete, Write
//          replication  Subscribe (MySQL's REPLICATION SLAVE); Revoke (which
//                       the admin role may call too: fencing, README "Failover")
//                       and Clone (clone_service.h; admin may clone too);
//                       ReadIndex (primary-fresh reads; read may call it too)
//          admin        SET, RESET PERSIST, START/STOP SLAVE, CHANGE MASTER,
//                       RESET SLAVE ALL, SWITCHOVER, FAILOVER FORCE, CHECKSUM, PURGE, INSTALL PLUGIN
//
// Identity of a call, in this order:
//   1. "authorization: Bearer <token>" metadata: the token's SHA-256 must be
//      in the roles file (an unknown token is UNAUTHENTICATED, even with a
//      certificate: a caller that sends one means it);
//   2. the TLS client certificate (verified against ssl_ca by the transport):
//      its subject CN if the roles file names it, else the first SAN that
//      the file names, else the CN (which then has no roles);
//   3. none: UNAUTHENTICATED.
//
// Roles file (--roles-file), read at start and by Reload() (SIGHUP):
//   # comment
//   admin: read, write, replication, admin      <- a certificate identity
//   reader: read
//   token app1 <sha256 hex of the token>: read, write
// A line that does not parse is an error naming the file and the line; a
// reload that fails keeps the table in force.
//
// Why one check function and not a gRPC server interceptor: a C++ server
// interceptor cannot end a call with a status of its choice (it can only
// cancel it, which the client sees as CANCELLED), and the async write path
// (KvService's completion queue) answers through its own responder anyway.
// Each method names its role next to its code, so a reader sees it; the
// table above is the contract. Without a roles file Check allows every call
// (and logs admin statements) at the cost of one branch: the commit path is
// not slowed when security is off.
//
// Refusals: PERMISSION_DENIED naming the operation, the missing role, the
// identity and what it has; UNAUTHENTICATED when the call has no identity.
// Admin operations are logged (allowed or not) with identity and address:
// one "audit:" line each via spdlog.
//
// Threads: Check and Reload may run concurrently; Check takes a snapshot of
// the table (a shared_ptr copy under a mutex).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/thread_annotations.h"

namespace relaykv {

enum class Role : uint8_t { kRead = 1, kWrite = 2, kReplication = 4, kAdmin = 8 };
using RoleSet = uint8_t;  // a bit per Role

std::string_view RoleName(Role role);
// "read,write" in the order of the enum; "none" when empty.
std::string RoleSetText(RoleSet roles);

struct RoleTable {
  std::map<std::string, RoleSet> identities;  // certificate CN or SAN -> roles
  struct Token {
    std::string identity;
    RoleSet roles = 0;
  };
  std::map<std::string, Token> tokens;  // lower-case hex SHA-256 of the token -> who
};

// Parses a roles file's text; `filename` names it in errors
// ("roles.txt:3: unknown role 'wirte' ...").
[[nodiscard]] absl::StatusOr<RoleTable> ParseRoles(std::string_view text,
                                                  const std::string& filename);
// Lower-case hex SHA-256 (OpenSSL libcrypto).
std::string Sha256Hex(std::string_view data);

class Authorizer {
 public:
  // Empty path: authorization off (every call allowed). Else the file must
  // parse (INVALID_ARGUMENT naming file and line, NOT_FOUND if missing).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Authorizer>> Create(
      std::filesystem::path roles_file);
  Authorizer(const Authorizer&) = delete;
  Authorizer& operator=(const Authorizer&) = delete;

  // Re-reads the roles file (SIGHUP). On error the old table stays.
  [[nodiscard]] absl::Status Reload() EXCLUDES(mu_);
  bool enabled() const { return !path_.empty(); }

  // OK if the caller of `ctx` has `needed`. `operation` names the call in
  // refusals and audit lines ("Put", "SET GLOBAL read_only = ON").
  grpc::Status Check(const grpc::ServerContext* ctx, Role needed, std::string_view operation) const
      EXCLUDES(mu_);

 private:
  explicit Authorizer(std::filesystem::path path) : path_(std::move(path)) {}
  std::shared_ptr<const RoleTable> table() const EXCLUDES(mu_);

  const std::filesystem::path path_;  // empty: off
  mutable std::mutex mu_;             // guards table_ (swapped whole by Reload)
  std::shared_ptr<const RoleTable> table_ GUARDED_BY(mu_);
};

}  // namespace relaykv
