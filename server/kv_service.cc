#include "server/kv_service.h"

#include "server/grpc_status.h"
#include "server/node_impl.h"
#include "relaykv/node.h"

namespace relaykv {
namespace {

grpc::Status Reply(const absl::StatusOr<Gtid>& gtid, v1::WriteReply* reply) {
  if (!gtid.ok()) return ToGrpcStatus(gtid.status());
  GtidToProto(*gtid, reply->mutable_gtid());
  return grpc::Status::OK;
}

// The client's deadline bounds the commit; a cancelled call (client gone)
// stops waiting for replicas.
WriteOptions Options(grpc::ServerContext* ctx) {
  return {SteadyDeadline(*ctx), [ctx] { return ctx->IsCancelled(); }};
}

}  // namespace

grpc::Status KvService::Put(grpc::ServerContext* ctx, const v1::PutRequest* req,
                            v1::WriteReply* reply) {
  return Reply(node_->Put(req->key(), req->value(), Options(ctx)), reply);
}

grpc::Status KvService::Delete(grpc::ServerContext* ctx, const v1::DeleteRequest* req,
                               v1::WriteReply* reply) {
  return Reply(node_->Delete(req->key(), Options(ctx)), reply);
}

grpc::Status KvService::Write(grpc::ServerContext* ctx, const v1::WriteRequest* req,
                              v1::WriteReply* reply) {
  std::vector<v1::Mutation> mutations(req->mutations().begin(), req->mutations().end());
  return Reply(node_->impl_->Commit(std::move(mutations), Options(ctx)), reply);
}

grpc::Status KvService::Get(grpc::ServerContext* ctx, const v1::GetRequest* req,
                            v1::GetReply* reply) {
  auto value = node_->Get(req->key(), req->wait_for_gtid().seq(), SteadyDeadline(*ctx));
  // The applied position after the read: the value is at most as new as it.
  GtidToProto(node_->applied_gtid(), reply->mutable_applied_gtid());
  if (!value.ok()) return ToGrpcStatus(value.status());
  reply->set_found(value->has_value());
  if (value->has_value()) reply->set_value(std::move(**value));
  return grpc::Status::OK;
}

}  // namespace relaykv
