// Types of the administration calls shared by relaykv::Node (embedded) and
// relaykv::Client (over the network), so both speak the same vocabulary.
#pragma once

#include <cstdint>
#include <string>

#include "relaykv/gtid.h"

namespace relaykv {

// A row of SHOW BINARY LOGS.
struct BinaryLogInfo {
  std::string name;
  uint64_t size_bytes = 0;
  uint64_t first_seq = 0;
};

// What Revoke(epoch) answers (proto/replication.proto RevokeReply).
struct RevokeResult {
  uint64_t promised_epoch = 0;   // the node's promise now, >= the epoch asked
  Gtid durable_gtid;             // last binlog / relay-log GTID on disk
  Gtid applied_gtid;             // last GTID applied to the state machine
  uint64_t node_epoch = 0;       // the epoch of the node's binlog
  bool revoked_primary = false;  // a primary whose epoch is below its promise
  uint32_t promised_owner = 0;   // server_id the promised epoch is bound to (0: unknown)
  // sync_relay_log=0 was in effect since the last full sync: the node may
  // have ACKed events its relay log lost (a power cut); an election must
  // not count it as holding what it ACKed.
  bool may_have_acked_unsynced = false;
};

// What SWITCHOVER TO did (Node::Switchover).
struct SwitchoverResult {
  Gtid epoch_start;             // the new primary's first GTID of its epoch
  uint64_t unavailable_ms = 0;  // from refusing writes here to the new leader key
};

// What FAILOVER FORCE did (Node::ForceFailover).
struct ForcedFailoverResult {
  Gtid epoch_start;     // this node's first GTID of its new epoch
  std::string warning;  // what may be lost (nodes ahead, unreachable, async); "" if nothing known
};

// The threads STOP/START SLAVE [IO_THREAD | SQL_THREAD] acts on.
enum class ReplicaThreads { kBoth, kIo, kSql };

}  // namespace relaykv
