#include "server/admin_service.h"

#include <cstdio>
#include <string>

#include "server/grpc_status.h"
#include "storage/gtid.h"
#include "relaykv/node.h"

namespace relaykv {
namespace {

void AddRows(const NameValues& rows, google::protobuf::RepeatedPtrField<v1::NameValue>* out) {
  for (const auto& [n, v] : rows) {
    v1::NameValue* nv = out->Add();
    nv->set_name(n);
    nv->set_value(v);
  }
}

// The semi-sync plugins are built in; INSTALL PLUGIN accepts their names.
bool IsBuiltInPlugin(const std::string& name, const std::string& soname) {
  return (name == "rpl_semi_sync_master" && soname == "semisync_master.so") ||
         (name == "rpl_semi_sync_slave" && soname == "semisync_slave.so") ||
         (name == "rpl_semi_sync_source" && soname == "semisync_source.so") ||
         (name == "rpl_semi_sync_replica" && soname == "semisync_replica.so");
}

// The message for an enum field left at its _UNSPECIFIED zero value (unset)
// or set to a number this build does not know.
std::string UnsetOrUnknown(const std::string& field, int value, const std::string& zero_name,
                           const std::string& choices) {
  if (value == 0) return field + " is " + zero_name + " (unset); set " + choices;
  return field + " " + std::to_string(value) + " is not known; set " + choices;
}

}  // namespace

grpc::Status AdminService::ShowVariables(Ctx* ctx, const v1::ShowRequest* req,
                                         v1::ShowReply* reply) {
  if (auto denied = auth_->Check(ctx, Role::kRead, "SHOW VARIABLES"); !denied.ok()) return denied;
  AddRows(node_->ShowVariables(req->like()), reply->mutable_rows());
  return grpc::Status::OK;
}

grpc::Status AdminService::ShowStatus(Ctx* ctx, const v1::ShowRequest* req, v1::ShowReply* reply) {
  if (auto denied = auth_->Check(ctx, Role::kRead, "SHOW STATUS"); !denied.ok()) return denied;
  AddRows(node_->ShowStatus(req->like()), reply->mutable_rows());
  return grpc::Status::OK;
}

grpc::Status AdminService::SetVariable(Ctx* ctx, const v1::SetVariableRequest* req,
                                       v1::SetVariableReply*) {
  const std::string what = std::string(req->persist() ? "SET PERSIST " : "SET GLOBAL ") +
                           req->name() + " = " + req->value();
  if (auto denied = auth_->Check(ctx, Role::kAdmin, what); !denied.ok()) {
    return denied;
  }
  return ToGrpcStatus(node_->SetVariable(req->name(), req->value(), req->persist()));
}

grpc::Status AdminService::ResetPersist(Ctx* ctx, const v1::ResetPersistRequest* req,
                                        v1::ResetPersistReply*) {
  if (auto denied = auth_->Check(ctx, Role::kAdmin,
                                 "RESET PERSIST " + req->name());
      !denied.ok()) {
    return denied;
  }
  return ToGrpcStatus(node_->ResetPersist(req->name()));
}

grpc::Status AdminService::ReplicaThreads(Ctx* ctx, const v1::ReplicaThreadsRequest* req,
                                          v1::ReplicaThreadsReply*) {
  const std::string what =
      std::string(req->action() == v1::ReplicaThreadsRequest::START ? "START" : "STOP") +
      " SLAVE " + v1::ReplicaThreadsRequest::Threads_Name(req->threads());
  if (auto denied = auth_->Check(ctx, Role::kAdmin, what); !denied.ok()) {
    return denied;
  }
  // Both fields must be set: an empty request once meant STOP of both threads.
  const auto action = req->action();
  if (action != v1::ReplicaThreadsRequest::START && action != v1::ReplicaThreadsRequest::STOP) {
    return ToGrpcStatus(absl::InvalidArgumentError(UnsetOrUnknown(
        "ReplicaThreadsRequest.action", action, "ACTION_UNSPECIFIED", "STOP or START")));
  }
  relaykv::ReplicaThreads which;
  switch (req->threads()) {
    case v1::ReplicaThreadsRequest::BOTH: which = relaykv::ReplicaThreads::kBoth; break;
    case v1::ReplicaThreadsRequest::IO: which = relaykv::ReplicaThreads::kIo; break;
    case v1::ReplicaThreadsRequest::SQL: which = relaykv::ReplicaThreads::kSql; break;
    default:
      return ToGrpcStatus(absl::InvalidArgumentError(
          UnsetOrUnknown("ReplicaThreadsRequest.threads", req->threads(), "THREADS_UNSPECIFIED",
                         "BOTH, IO or SQL")));
  }
  return ToGrpcStatus(action == v1::ReplicaThreadsRequest::START ? node_->StartReplica(which)
                                                                 : node_->StopReplica(which));
}

grpc::Status AdminService::ChangeMaster(Ctx* ctx, const v1::ChangeMasterRequest* req,
                                        v1::ChangeMasterReply*) {
  std::string what = "CHANGE MASTER TO MASTER_HOST='" + req->host() +
                     "', MASTER_PORT=" + std::to_string(req->port());
  if (req->has_ssl()) what += std::string(", MASTER_SSL=") + (req->ssl() ? "1" : "0");
  if (auto denied = auth_->Check(ctx, Role::kAdmin, what); !denied.ok()) {
    return denied;
  }
  ChangeMasterTls tls;
  if (req->has_ssl()) tls.ssl = req->ssl();
  if (req->has_ssl_ca()) tls.ca = req->ssl_ca();
  if (req->has_ssl_cert()) tls.cert = req->ssl_cert();
  if (req->has_ssl_key()) tls.key = req->ssl_key();
  return ToGrpcStatus(node_->ChangePrimary(req->host(), req->port(), tls));
}

grpc::Status AdminService::ResetReplica(Ctx* ctx, const v1::ResetReplicaRequest*,
                                        v1::ResetReplicaReply* reply) {
  if (auto denied = auth_->Check(ctx, Role::kAdmin, "RESET SLAVE ALL"); !denied.ok()) return denied;
  auto start = node_->BecomePrimary();
  if (!start.ok()) return ToGrpcStatus(start.status());
  GtidToProto(*start, reply->mutable_epoch_start());
  return grpc::Status::OK;
}

grpc::Status AdminService::Switchover(Ctx* ctx, const v1::SwitchoverRequest* req,
                                      v1::SwitchoverReply* reply) {
  if (auto denied = auth_->Check(ctx, Role::kAdmin, "SWITCHOVER"); !denied.ok()) return denied;
  auto done = node_->Switchover(req->target());
  if (!done.ok()) return ToGrpcStatus(done.status());
  GtidToProto(done->epoch_start, reply->mutable_epoch_start());
  reply->set_unavailable_ms(done->unavailable_ms);
  return grpc::Status::OK;
}

grpc::Status AdminService::ForceFailover(Ctx* ctx, const v1::ForceFailoverRequest*,
                                         v1::ForceFailoverReply* reply) {
  if (auto denied = auth_->Check(ctx, Role::kAdmin, "FAILOVER FORCE"); !denied.ok()) return denied;
  auto done = node_->ForceFailover();
  if (!done.ok()) return ToGrpcStatus(done.status());
  GtidToProto(done->epoch_start, reply->mutable_epoch_start());
  reply->set_warning(done->warning);
  return grpc::Status::OK;
}

grpc::Status AdminService::ReplicaStatus(Ctx* ctx, const v1::ReplicaStatusRequest*,
                                         v1::ReplicaStatusReply* reply) {
  if (auto denied = auth_->Check(ctx, Role::kRead,
                                 "SHOW SLAVE STATUS");
      !denied.ok()) {
    return denied;
  }
  AddRows(node_->ReplicaStatus(), reply->mutable_fields());
  return grpc::Status::OK;
}

grpc::Status AdminService::Replicas(Ctx* ctx, const v1::ReplicasRequest*,
                                    v1::ReplicasReply* reply) {
  if (auto denied = auth_->Check(ctx, Role::kRead, "SHOW REPLICAS"); !denied.ok()) return denied;
  for (const ReplicaSummary& r : node_->Replicas()) {
    v1::ReplicaInfo* info = reply->add_replicas();
    info->set_server_id(r.server_id);
    info->set_address(r.address);
    GtidToProto(r.sent, info->mutable_sent_gtid());
    GtidToProto(r.acked, info->mutable_acked_gtid());
    info->set_semi_sync(r.semi_sync);
    GtidToProto(r.applied, info->mutable_applied_gtid());
    if (r.lag_seconds.has_value()) info->set_lag_seconds(*r.lag_seconds);
  }
  return grpc::Status::OK;
}

grpc::Status AdminService::Checksum(Ctx* ctx, const v1::ChecksumRequest*,
                                    v1::ChecksumReply* reply) {
  if (auto denied = auth_->Check(ctx, Role::kAdmin, "CHECKSUM"); !denied.ok()) return denied;
  auto c = node_->Checksum();
  if (!c.ok()) return ToGrpcStatus(c.status());
  GtidToProto(c->gtid, reply->mutable_gtid());
  auto hex = [](uint64_t v) {
    char out[17];
    std::snprintf(out, sizeof(out), "%016llx", static_cast<unsigned long long>(v));
    return std::string(out);
  };
  reply->set_hash(hex(c->hash));
  reply->set_keys(c->keys);
  reply->set_versions_hash(hex(c->versions_hash));
  return grpc::Status::OK;
}

grpc::Status AdminService::BinaryLogs(Ctx* ctx, const v1::BinaryLogsRequest*,
                                      v1::BinaryLogsReply* reply) {
  if (auto denied = auth_->Check(ctx, Role::kRead, "SHOW BINARY LOGS"); !denied.ok()) return denied;
  for (const BinaryLogInfo& b : node_->BinaryLogs()) {
    v1::BinaryLog* log = reply->add_logs();
    log->set_name(b.name);
    log->set_size_bytes(b.size_bytes);
    log->set_first_seq(b.first_seq);
  }
  return grpc::Status::OK;
}

grpc::Status AdminService::MasterStatus(Ctx* ctx, const v1::MasterStatusRequest*,
                                        v1::MasterStatusReply* reply) {
  if (auto denied = auth_->Check(ctx, Role::kRead,
                                 "SHOW MASTER STATUS");
      !denied.ok()) {
    return denied;
  }
  auto logs = node_->BinaryLogs();
  if (logs.empty()) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "node is shutting down");
  reply->set_file(logs.back().name);
  reply->set_position(logs.back().size_bytes);
  GtidToProto(node_->binlog_gtid(), reply->mutable_executed_gtid());
  return grpc::Status::OK;
}

grpc::Status AdminService::PurgeBinaryLogs(Ctx* ctx, const v1::PurgeBinaryLogsRequest* req,
                                           v1::PurgeBinaryLogsReply* reply) {
  if (auto denied = auth_->Check(ctx, Role::kAdmin,
                                 "PURGE BINARY LOGS TO '" + req->to_file() + "'");
      !denied.ok()) {
    return denied;
  }
  std::string note;
  auto n = node_->PurgeBinaryLogsTo(req->to_file(), &note);
  if (!n.ok()) return ToGrpcStatus(n.status());
  reply->set_purged(*n);
  reply->set_note(note);
  return grpc::Status::OK;
}

grpc::Status AdminService::InstallPlugin(Ctx* ctx, const v1::InstallPluginRequest* req,
                                         v1::InstallPluginReply*) {
  if (auto denied = auth_->Check(ctx, Role::kAdmin,
                                 "INSTALL PLUGIN " + req->name());
      !denied.ok()) {
    return denied;
  }
  if (IsBuiltInPlugin(req->name(), req->soname())) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::NOT_FOUND,
                      "Can't open shared library '" + req->soname() +
                          "': relaykv has no plugins besides the built-in semi-sync ones");
}

}  // namespace relaykv
