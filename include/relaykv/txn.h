// Conditional writes (Node::Txn, Client::Txn): compares checked atomically
// with the write, on the primary, in the commit path — etcd's Txn with
// equality compares. Every key carries a version: the GTID of the event
// that last changed it (Node::GetVersioned, Client::GetVersioned).
#pragma once

#include <string>
#include <vector>

#include "relaykv/gtid.h"
#include "relaykv/mutation.h"

namespace relaykv {

struct Compare {
  enum class Target { kVersion, kValue, kAbsent };
  Target target = Target::kAbsent;
  std::string key;
  Gtid version;       // kVersion: the key exists and was last changed by this GTID
  std::string value;  // kValue: the key exists with this value

  static Compare VersionIs(std::string key, Gtid version) {
    return {Target::kVersion, std::move(key), version, {}};
  }
  static Compare ValueIs(std::string key, std::string value) {
    return {Target::kValue, std::move(key), {}, std::move(value)};
  }
  static Compare Absent(std::string key) { return {Target::kAbsent, std::move(key), {}, {}}; }
};

// `then_ops` if every compare holds, else `else_ops`; either may be empty,
// but `else_ops` only with compares (with none it could never run:
// INVALID_ARGUMENT). A Compare sets only what its target reads (use the
// factories above); a version or value its target ignores is refused.
struct Txn {
  std::vector<Compare> compares;  // at most 128: INVALID_ARGUMENT beyond
  std::vector<Mutation> then_ops;
  std::vector<Mutation> else_ops;
};

// A committed transaction: its GTID (also when the branch taken was empty:
// the answer is then as durable and as visible as any write), whether
// every compare held, and whether semi-sync replicas held it durably
// before the answer (rpl_semi_sync_master_wait_for_slave_count of them, the
// count in force when their ACKs came: a failover then keeps it, DESIGN.md
// invariant 1). false: answered asynchronously (semi-sync disabled, OFF or
// timed out), or by a relaykvd too old to say.
struct TxnResult {
  Gtid gtid;
  bool succeeded = false;
  bool semi_sync = false;
};

// A key's value and version (the GTID of its last change; {0,0} for a key
// written before versions were kept).
struct VersionedValue {
  std::string value;
  Gtid version;
};

}  // namespace relaykv
