// ReplicationService: the primary side of binlog streaming
// (proto/replication.proto). One Subscribe stream per replica; its handler
// thread is that replica's sender: it reads the binlog from disk from the
// replica's next GTID (memory bounded by one batch however far behind the
// replica is), then tails new visible events, sends them in batches, and
// heartbeats when idle. gRPC flow control blocks only this sender, so a slow
// replica never slows commits or other replicas. A second thread per stream
// reads the replica's ACKs.
//
// A replica whose position is not in this binlog (purged: OUT_OF_RANGE; a
// different history or ahead of us: FAILED_PRECONDITION) is refused with a
// message naming both positions.
//
// Streams end when the replica goes, or when the binlog is closed (node
// shutdown).
#pragma once

#include <grpcpp/grpcpp.h>

#include "proto/replication.grpc.pb.h"
#include "server/replica_registry.h"
#include "server/semisync.h"
#include "storage/binlog.h"

namespace relaykv {

class ReplicationService final : public v1::Replication::Service {
 public:
  // Borrows all three; they must outlive the gRPC server.
  ReplicationService(Binlog* binlog, ReplicaRegistry* registry, SemiSyncMaster* semisync)
      : binlog_(binlog), registry_(registry), semisync_(semisync) {}

  grpc::Status Subscribe(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::PrimaryMessage, v1::ReplicaMessage>* stream) override;

 private:
  // OK if the replica at `durable` can continue from this binlog.
  absl::Status CheckPosition(const Gtid& durable);

  Binlog* const binlog_;
  ReplicaRegistry* const registry_;
  SemiSyncMaster* const semisync_;
};

}  // namespace relaykv
