// The relaykv client's admin statements (DESIGN.md, "Admin statements"):
// ParseStatement turns the text of one statement into a typed Statement
// that admin_executor.h maps onto one structured RPC. The server never sees
// SQL text.
//
// Grammar (keywords case-insensitive; SLAVE/REPLICA and MASTER/SOURCE
// interchangeable; an optional trailing ';', \g or \G):
//   SET GLOBAL name = value | SET PERSIST name = value
//   SET @@global.name = value | SET @@persist.name = value
//   RESET PERSIST [name]
//   RESET SLAVE ALL | RESET REPLICA ALL   (failover: this replica becomes a primary)
//   SWITCHOVER TO 'host:port'             (automatic failover: hand the primary role over)
//   FAILOVER FORCE                        (automatic failover: promote this node, recorded as forced)
//   SHOW [GLOBAL] VARIABLES [LIKE 'pattern'] | SHOW [GLOBAL] STATUS [LIKE 'pattern']
//   SHOW SLAVE STATUS | SHOW REPLICA STATUS | SHOW REPLICAS | SHOW SLAVE HOSTS
//   START|STOP SLAVE [IO_THREAD | SQL_THREAD [, ...]]
//   CHANGE MASTER TO MASTER_HOST='h', MASTER_PORT=n   (either order, both needed)
//       [, MASTER_SSL=0|1] [, MASTER_SSL_CA='path'] [, MASTER_SSL_CERT='path']
//       [, MASTER_SSL_KEY='path']
//   CHANGE REPLICATION SOURCE TO SOURCE_HOST='h', SOURCE_PORT=n
//   INSTALL PLUGIN name SONAME 'file.so'
//   PUT key value | GET key | DELETE key      (quoted strings or bare words; DEL = DELETE)
//   GET key [WITH VERSION] [WITH CONSISTENCY LOCAL|PRIMARY_FRESH]   (either order)
//   SCAN [start [end]] [options] | SCAN PREFIX p [options]   ([start, end); '' = unbounded)
//     options, in any order, each at most once:
//     LIMIT n | REVERSE | KEYS ONLY | COUNT | WITH CONSISTENCY LOCAL|PRIMARY_FRESH
//   CHECKSUM | SHOW BINARY LOGS | SHOW MASTER LOGS | SHOW MASTER|SOURCE STATUS
//   SHOW BINARY LOG STATUS | PURGE BINARY|MASTER LOGS TO 'binlog.000042'
// Values keep the text written (the server validates and normalizes);
// variable and plugin names are lower-cased.
//
// Pure functions, safe from any thread. Errors are INVALID_ARGUMENT with a
// MySQL-style message naming the token where parsing stopped.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "absl/status/statusor.h"
#include "client/statement_splitter.h"  // SplitStatements: input -> statement texts

namespace relaykv {

// One struct per statement kind; kept in their own namespace so that
// names such as Put or Checksum never collide with server types.
namespace stmt {

struct SetVariable {
  std::string name;   // lower case, either spelling (master/source, ...)
  std::string value;  // as written: "1", "ON", "AFTER_SYNC", "-5", ...
  bool persist = false;
  friend bool operator==(const SetVariable&, const SetVariable&) = default;
};

struct ResetPersist {
  std::optional<std::string> name;  // lower case; nullopt: forget all
  friend bool operator==(const ResetPersist&, const ResetPersist&) = default;
};

// RESET SLAVE ALL. (Without ALL, MySQL deletes the relay log, which is this
// node's binlog: refused by the parser.)
struct ResetReplica {
  friend bool operator==(const ResetReplica&, const ResetReplica&) = default;
};

// SWITCHOVER TO 'host:port': the primary hands its role to that replica.
struct Switchover {
  std::string target;
  friend bool operator==(const Switchover&, const Switchover&) = default;
};

// FAILOVER FORCE: with no primary, this node takes the role although the
// election rules refuse (recorded as forced in etcd).
struct ForceFailover {
  friend bool operator==(const ForceFailover&, const ForceFailover&) = default;
};

struct ShowVariables {
  std::string like;  // SQL LIKE pattern; empty: every variable
  friend bool operator==(const ShowVariables&, const ShowVariables&) = default;
};

struct ShowStatus {
  std::string like;
  friend bool operator==(const ShowStatus&, const ShowStatus&) = default;
};

struct ShowReplicaStatus {
  friend bool operator==(const ShowReplicaStatus&, const ShowReplicaStatus&) = default;
};

struct ShowReplicas {
  friend bool operator==(const ShowReplicas&, const ShowReplicas&) = default;
};

struct ReplicaThreads {
  enum class Action { kStop, kStart };
  enum class Threads { kBoth, kIo, kSql };
  Action action = Action::kStop;
  Threads threads = Threads::kBoth;
  friend bool operator==(const ReplicaThreads&, const ReplicaThreads&) = default;
};

struct ChangeMaster {
  std::string host;
  uint32_t port = 0;  // 1..65535
  // MASTER_SSL = 0|1, MASTER_SSL_CA/CERT/KEY = 'path' (on the replica);
  // nullopt: not given (the replica keeps its value).
  std::optional<bool> ssl;
  std::optional<std::string> ssl_ca;
  std::optional<std::string> ssl_cert;
  std::optional<std::string> ssl_key;
  friend bool operator==(const ChangeMaster&, const ChangeMaster&) = default;
};

struct InstallPlugin {
  std::string name;    // lower case
  std::string soname;  // as written
  friend bool operator==(const InstallPlugin&, const InstallPlugin&) = default;
};

// `IF VERSION = 'E:S'`, `IF VALUE = 'v'`, `IF ABSENT` after PUT/DELETE: a
// conditional write (README "Conditional writes") on the statement's key.
struct Condition {
  enum class Kind { kVersion, kValue, kAbsent };
  Kind kind = Kind::kAbsent;
  uint64_t epoch = 0, seq = 0;  // kVersion
  std::string value;            // kValue
  friend bool operator==(const Condition&, const Condition&) = default;
};

struct Put {
  std::string key;  // bytes; quoted strings may hold any byte via escapes
  std::string value;
  std::optional<Condition> when;
  friend bool operator==(const Put&, const Put&) = default;
};

struct Get {
  std::string key;
  bool with_version = false;  // GET 'k' WITH VERSION: a Version column too
  // WITH CONSISTENCY PRIMARY_FRESH (relaykv/read_consistency.h): on a
  // replica, first catch up with what its primary has applied.
  bool primary_fresh = false;
  friend bool operator==(const Get&, const Get&) = default;
};

struct Delete {
  std::string key;
  std::optional<Condition> when;
  friend bool operator==(const Delete&, const Delete&) = default;
};

// A range read (relaykv/scan.h). Keys that spell an option (LIMIT,
// REVERSE, KEYS, COUNT, WITH, PREFIX) must be quoted.
struct Scan {
  std::string start;                 // "" : from the first key
  std::string end;                   // "" : to the end of the keyspace
  std::optional<std::string> prefix; // set: SCAN PREFIX (start and end empty)
  std::optional<uint64_t> limit;     // nullopt: every key in the range
  bool reverse = false;
  bool keys_only = false;
  bool count = false;  // one row, the number of keys
  bool primary_fresh = false;  // WITH CONSISTENCY PRIMARY_FRESH, as Get's (each page)
  friend bool operator==(const Scan&, const Scan&) = default;
};

struct Checksum {
  friend bool operator==(const Checksum&, const Checksum&) = default;
};

struct ShowBinaryLogs {
  friend bool operator==(const ShowBinaryLogs&, const ShowBinaryLogs&) = default;
};

struct ShowMasterStatus {
  friend bool operator==(const ShowMasterStatus&, const ShowMasterStatus&) = default;
};

struct PurgeBinaryLogs {
  std::string to_file;
  friend bool operator==(const PurgeBinaryLogs&, const PurgeBinaryLogs&) = default;
};

}  // namespace stmt

using Statement =
    std::variant<stmt::SetVariable, stmt::ResetPersist, stmt::ResetReplica, stmt::ShowVariables,
                 stmt::ShowStatus, stmt::ShowReplicaStatus, stmt::ShowReplicas, stmt::ReplicaThreads,
                 stmt::ChangeMaster, stmt::InstallPlugin, stmt::Put, stmt::Get, stmt::Delete,
                 stmt::Checksum, stmt::ShowBinaryLogs, stmt::ShowMasterStatus,
                 stmt::PurgeBinaryLogs, stmt::Scan, stmt::Switchover, stmt::ForceFailover>;

// Parses the text of exactly one statement (as SplitStatements returns it).
// Empty text is INVALID_ARGUMENT "No query specified".
[[nodiscard]] absl::StatusOr<Statement> ParseStatement(std::string_view text);

// True if `text` ends with mysql's \G terminator (outside quotes and
// comments): the caller should print the result vertically.
bool RequestsVerticalOutput(std::string_view text);

// The canonical text of `s` (upper-case keywords, values quoted), which
// ParseStatement reads back to an equal Statement. For logs and tests.
std::string FormatStatement(const Statement& s);

}  // namespace relaykv
