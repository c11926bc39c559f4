// AdminService: the gRPC face of a Node's administration (proto/admin.proto).
// Each call maps onto one Node method; no SQL text is parsed here. Each
// first asks the Authorizer (server/auth.h): SHOW ... needs the read role,
// everything that changes the node (and CHECKSUM) the admin role, and is
// logged as an audit line with the caller's identity and address.
#pragma once

#include "proto/admin.grpc.pb.h"
#include "server/auth.h"

namespace relaykv {

class Node;

class AdminService final : public v1::Admin::Service {
 public:
  // Borrows `node` and `auth`, which must outlive the gRPC server.
  AdminService(Node* node, const Authorizer* auth) : node_(node), auth_(auth) {}

  using Ctx = grpc::ServerContext;
  grpc::Status ShowVariables(Ctx*, const v1::ShowRequest*, v1::ShowReply*) override;
  grpc::Status ShowStatus(Ctx*, const v1::ShowRequest*, v1::ShowReply*) override;
  grpc::Status SetVariable(Ctx*, const v1::SetVariableRequest*, v1::SetVariableReply*) override;
  grpc::Status ResetPersist(Ctx*, const v1::ResetPersistRequest*, v1::ResetPersistReply*) override;
  grpc::Status ReplicaThreads(Ctx*, const v1::ReplicaThreadsRequest*,
                              v1::ReplicaThreadsReply*) override;
  grpc::Status ChangeMaster(Ctx*, const v1::ChangeMasterRequest*, v1::ChangeMasterReply*) override;
  grpc::Status ResetReplica(Ctx*, const v1::ResetReplicaRequest*, v1::ResetReplicaReply*) override;
  grpc::Status Switchover(Ctx*, const v1::SwitchoverRequest*, v1::SwitchoverReply*) override;
  grpc::Status ForceFailover(Ctx*, const v1::ForceFailoverRequest*,
                             v1::ForceFailoverReply*) override;
  grpc::Status ReplicaStatus(Ctx*, const v1::ReplicaStatusRequest*,
                             v1::ReplicaStatusReply*) override;
  grpc::Status Replicas(Ctx*, const v1::ReplicasRequest*, v1::ReplicasReply*) override;
  grpc::Status Checksum(Ctx*, const v1::ChecksumRequest*, v1::ChecksumReply*) override;
  grpc::Status BinaryLogs(Ctx*, const v1::BinaryLogsRequest*, v1::BinaryLogsReply*) override;
  grpc::Status MasterStatus(Ctx*, const v1::MasterStatusRequest*, v1::MasterStatusReply*) override;
  grpc::Status PurgeBinaryLogs(Ctx*, const v1::PurgeBinaryLogsRequest*,
                               v1::PurgeBinaryLogsReply*) override;
  grpc::Status InstallPlugin(Ctx*, const v1::InstallPluginRequest*, v1::InstallPluginReply*) override;

 private:
  Node* const node_;
  const Authorizer* const auth_;
};

}  // namespace relaykv
