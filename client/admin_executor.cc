#include "client/admin_executor.h"

#include <algorithm>
#include <utility>

#include "relaykv/scan.h"

namespace relaykv {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

// What mysql says for statements that change no table rows.
StatementResult NoRows() { return OkResult{}; }

v1::ReplicaThreadsRequest ToRequest(const stmt::ReplicaThreads& s) {
  v1::ReplicaThreadsRequest req;
  req.set_action(s.action == stmt::ReplicaThreads::Action::kStart ? v1::ReplicaThreadsRequest::START
                                                                   : v1::ReplicaThreadsRequest::STOP);
  switch (s.threads) {
    case stmt::ReplicaThreads::Threads::kBoth: req.set_threads(v1::ReplicaThreadsRequest::BOTH); break;
    case stmt::ReplicaThreads::Threads::kIo: req.set_threads(v1::ReplicaThreadsRequest::IO); break;
    case stmt::ReplicaThreads::Threads::kSql: req.set_threads(v1::ReplicaThreadsRequest::SQL); break;
  }
  return req;
}

}  // namespace

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  // gRPC and absl number their canonical codes alike.
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::string FormatGtid(const v1::Gtid& gtid) {
  return std::to_string(gtid.epoch()) + ":" + std::to_string(gtid.seq());
}

ResultSet VariablesResult(const v1::ShowReply& reply) {
  ResultSet rs{{"Variable_name", "Value"}, {}};
  for (const auto& row : reply.rows()) rs.rows.push_back({row.name(), row.value()});
  return rs;
}

ResultSet ReplicaStatusResult(const v1::ReplicaStatusReply& reply) {
  ResultSet rs;
  if (reply.fields().empty()) return rs;  // not a replica: Empty set, as MySQL
  rs.rows.emplace_back();
  for (const auto& f : reply.fields()) {
    rs.columns.push_back(f.name());
    rs.rows[0].push_back(f.value());
  }
  return rs;
}

ResultSet ReplicasResult(const v1::ReplicasReply& reply) {
  // Applied_Gtid and Seconds_Behind_Master (NULL: the replica has not said)
  // come from the replica's SQL thread, the others from the stream.
  ResultSet rs{{"Server_id", "Address", "Sent_Gtid", "Acked_Gtid", "Semi_sync", "Applied_Gtid",
                "Seconds_Behind_Master"},
               {}};
  for (const auto& r : reply.replicas()) {
    rs.rows.push_back({std::to_string(r.server_id()), r.address(), FormatGtid(r.sent_gtid()),
                       FormatGtid(r.acked_gtid()), r.semi_sync() ? "Yes" : "No",
                       FormatGtid(r.applied_gtid()),
                       r.has_lag_seconds() ? std::to_string(r.lag_seconds()) : "NULL"});
  }
  return rs;
}

ResultSet ChecksumResult(const v1::ChecksumReply& reply) {
  return {{"Gtid", "Checksum", "Keys", "Versions_checksum"},
          {{FormatGtid(reply.gtid()), reply.hash(), std::to_string(reply.keys()),
            reply.versions_hash()}}};
}

ResultSet SwitchoverResult(const v1::SwitchoverReply& reply) {
  return {{"Epoch_start", "Unavailable_ms"},
          {{FormatGtid(reply.epoch_start()), std::to_string(reply.unavailable_ms())}}};
}

ResultSet ForceFailoverResult(const v1::ForceFailoverReply& reply) {
  return {{"Epoch_start", "Warning"}, {{FormatGtid(reply.epoch_start()), reply.warning()}}};
}

ResultSet BinaryLogsResult(const v1::BinaryLogsReply& reply) {
  // First_seq stands where MySQL 8 has "Encrypted": which GTIDs a file
  // holds is what a DBA needs before PURGE BINARY LOGS TO.
  ResultSet rs{{"Log_name", "File_size", "First_seq"}, {}};
  for (const auto& log : reply.logs()) {
    rs.rows.push_back({log.name(), std::to_string(log.size_bytes()), std::to_string(log.first_seq())});
  }
  return rs;
}

ResultSet MasterStatusResult(const v1::MasterStatusReply& reply) {
  return {{"File", "Position", "Executed_Gtid_Set"},
          {{reply.file(), std::to_string(reply.position()), FormatGtid(reply.executed_gtid())}}};
}

ResultSet GetResult(const v1::GetReply& reply) {
  ResultSet rs{{"Value"}, {}};
  if (reply.found()) rs.rows.push_back({reply.value()});
  return rs;
}

ResultSet GetWithVersionResult(const v1::GetReply& reply) {
  ResultSet rs{{"Value", "Version"}, {}};
  if (reply.found()) rs.rows.push_back({reply.value(), FormatGtid(reply.version())});
  return rs;
}

// PUT/DELETE ... IF: a transaction of one compare and one mutation.
v1::WriteRequest ConditionalWrite(v1::Mutation m, const stmt::Condition& when) {
  v1::WriteRequest req;
  v1::Compare* c = req.add_compares();
  c->set_key(m.key());
  switch (when.kind) {
    case stmt::Condition::Kind::kVersion:
      c->set_target(v1::Compare::VERSION);
      c->mutable_version()->set_epoch(when.epoch);
      c->mutable_version()->set_seq(when.seq);
      break;
    case stmt::Condition::Kind::kValue:
      c->set_target(v1::Compare::VALUE);
      c->set_value(when.value);
      break;
    case stmt::Condition::Kind::kAbsent: c->set_target(v1::Compare::ABSENT); break;
  }
  *req.add_mutations() = std::move(m);
  return req;
}

OkResult PurgeResult(const v1::PurgeBinaryLogsReply& reply) {
  // mysql says "0 rows affected" for PURGE; the count goes to the info
  // line and the server's reason for keeping files becomes a warning.
  OkResult ok;
  ok.info = "Purged files: " + std::to_string(reply.purged());
  if (!reply.note().empty()) ok.warnings.push_back(reply.note());
  return ok;
}

OkResult WriteResult(const v1::WriteReply& reply) {
  // One key written (or deleted) per statement: one binlog event. The
  // reply does not say whether a deleted key existed, so DELETE also
  // reports the write it made.
  OkResult ok;
  ok.affected_rows = 1;
  ok.info = "Gtid: " + FormatGtid(reply.gtid());
  return ok;
}

// As mysql's UPDATE ... WHERE matching nothing: 0 rows affected.
OkResult ConditionalWriteResult(const v1::WriteReply& reply) {
  OkResult ok;
  ok.affected_rows = reply.succeeded() ? 1 : 0;
  ok.info = "Gtid: " + FormatGtid(reply.gtid()) +
            (reply.succeeded() ? "  Compare: held" : "  Compare: failed, nothing changed");
  return ok;
}

ResultSet ScanResult(const stmt::Scan& scan, const std::vector<v1::ScanReply>& pages) {
  if (scan.count) {
    uint64_t count = 0;
    for (const auto& page : pages) count += page.count();
    return {{"Count"}, {{std::to_string(count)}}};
  }
  ResultSet rs;
  rs.columns = scan.keys_only ? std::vector<std::string>{"Key"}
                              : std::vector<std::string>{"Key", "Value"};
  for (const auto& page : pages) {
    for (const auto& row : page.rows()) {
      if (scan.keys_only) {
        rs.rows.push_back({row.key()});
      } else {
        rs.rows.push_back({row.key(), row.value()});
      }
    }
  }
  return rs;
}

absl::StatusOr<StatementResult> AdminExecutor::ExecuteScan(const stmt::Scan& s) const {
  v1::ScanRequest req;
  if (s.prefix) {
    req.set_prefix(*s.prefix);
  } else {
    req.set_start(s.start);
    req.set_end(s.end);
  }
  req.set_reverse(s.reverse);
  req.set_keys_only(s.keys_only);
  req.set_count_only(s.count);
  if (s.primary_fresh) req.set_consistency(v1::READ_PRIMARY_FRESH);
  // Pages as large as the server takes (its byte cap still bounds each).
  const uint64_t page_max = s.count ? kMaxScanCountLimit : kMaxScanLimit;
  std::vector<v1::ScanReply> pages;
  uint64_t taken = 0;
  for (;;) {
    const uint64_t left = s.limit ? *s.limit - taken : page_max;
    if (left == 0) break;  // LIMIT 0, or LIMIT reached exactly
    const uint64_t asked = std::min(left, page_max);
    req.set_limit(static_cast<uint32_t>(asked));
    auto page = Invoke<v1::ScanReply>([&](auto* ctx, auto* r) { return kv_->Scan(ctx, req, r); });
    if (!page.ok()) return page.status();
    const bool done = page->continuation().empty();
    // A page that says more remains holds at least one key, and none holds
    // more than asked: else the paging would never end, or pass the LIMIT
    // (review s44e M4).
    if (page->count() > asked || (!done && page->count() == 0)) {
      return absl::DataLossError("the server answered a SCAN page of " +
                                 std::to_string(page->count()) + " keys for a limit of " +
                                 std::to_string(asked) + (done ? "" : ", saying more remain"));
    }
    // A continuation must move on (review s44f F6).
    if (!done && page->continuation() == req.continuation()) {
      return absl::DataLossError("the server answered a SCAN page with the continuation it was "
                                 "given: the paging would never end");
    }
    taken += page->count();
    req.set_continuation(page->continuation());
    pages.push_back(*std::move(page));
    if (done) break;
  }
  return StatementResult(ScanResult(s, pages));
}

AdminExecutor::AdminExecutor(std::shared_ptr<grpc::Channel> channel, std::chrono::milliseconds deadline,
                             std::string bearer_token)
    : admin_(v1::Admin::NewStub(channel)),
      kv_(v1::Kv::NewStub(channel)),
      deadline_(deadline),
      bearer_token_(std::move(bearer_token)) {}

template <typename Reply, typename Call>
absl::StatusOr<Reply> AdminExecutor::Invoke(Call call) const {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + deadline_);
  if (!bearer_token_.empty()) ctx.AddMetadata("authorization", "Bearer " + bearer_token_);
  Reply reply;
  grpc::Status status = call(&ctx, &reply);
  if (!status.ok()) return FromGrpcStatus(status);
  return reply;
}

absl::StatusOr<StatementResult> AdminExecutor::Execute(const Statement& statement) const {
  // Each branch: build the request, make the call, map the reply.
  auto then = [](auto reply, auto map) -> absl::StatusOr<StatementResult> {
    if (!reply.ok()) return reply.status();
    return StatementResult(map(*reply));
  };
  auto no_rows = [](const auto&) { return NoRows(); };
  return std::visit(
      Overloaded{
          [&](const stmt::SetVariable& s) {
            v1::SetVariableRequest req;
            req.set_name(s.name);
            req.set_value(s.value);
            req.set_persist(s.persist);
            return then(Invoke<v1::SetVariableReply>(
                            [&](auto* ctx, auto* r) { return admin_->SetVariable(ctx, req, r); }),
                        no_rows);
          },
          [&](const stmt::ResetPersist& s) {
            v1::ResetPersistRequest req;
            req.set_name(s.name.value_or(""));
            return then(Invoke<v1::ResetPersistReply>(
                            [&](auto* ctx, auto* r) { return admin_->ResetPersist(ctx, req, r); }),
                        no_rows);
          },
          [&](const stmt::ResetReplica&) {
            return then(Invoke<v1::ResetReplicaReply>([&](auto* ctx, auto* r) {
                          return admin_->ResetReplica(ctx, v1::ResetReplicaRequest(), r);
                        }),
                        no_rows);
          },
          [&](const stmt::Switchover& s) {
            v1::SwitchoverRequest req;
            req.set_target(s.target);
            return then(Invoke<v1::SwitchoverReply>(
                            [&](auto* ctx, auto* r) { return admin_->Switchover(ctx, req, r); }),
                        SwitchoverResult);
          },
          [&](const stmt::ForceFailover&) {
            return then(Invoke<v1::ForceFailoverReply>([&](auto* ctx, auto* r) {
                          return admin_->ForceFailover(ctx, v1::ForceFailoverRequest(), r);
                        }),
                        ForceFailoverResult);
          },
          [&](const stmt::ShowVariables& s) {
            v1::ShowRequest req;
            req.set_like(s.like);
            return then(Invoke<v1::ShowReply>(
                            [&](auto* ctx, auto* r) { return admin_->ShowVariables(ctx, req, r); }),
                        VariablesResult);
          },
          [&](const stmt::ShowStatus& s) {
            v1::ShowRequest req;
            req.set_like(s.like);
            return then(Invoke<v1::ShowReply>(
                            [&](auto* ctx, auto* r) { return admin_->ShowStatus(ctx, req, r); }),
                        VariablesResult);
          },
          [&](const stmt::ShowReplicaStatus&) {
            return then(Invoke<v1::ReplicaStatusReply>([&](auto* ctx, auto* r) {
                          return admin_->ReplicaStatus(ctx, v1::ReplicaStatusRequest(), r);
                        }),
                        ReplicaStatusResult);
          },
          [&](const stmt::ShowReplicas&) {
            return then(Invoke<v1::ReplicasReply>([&](auto* ctx, auto* r) {
                          return admin_->Replicas(ctx, v1::ReplicasRequest(), r);
                        }),
                        ReplicasResult);
          },
          [&](const stmt::ReplicaThreads& s) {
            const v1::ReplicaThreadsRequest req = ToRequest(s);
            return then(Invoke<v1::ReplicaThreadsReply>(
                            [&](auto* ctx, auto* r) { return admin_->ReplicaThreads(ctx, req, r); }),
                        no_rows);
          },
          [&](const stmt::ChangeMaster& s) {
            v1::ChangeMasterRequest req;
            req.set_host(s.host);
            req.set_port(s.port);
            if (s.ssl) req.set_ssl(*s.ssl);
            if (s.ssl_ca) req.set_ssl_ca(*s.ssl_ca);
            if (s.ssl_cert) req.set_ssl_cert(*s.ssl_cert);
            if (s.ssl_key) req.set_ssl_key(*s.ssl_key);
            return then(Invoke<v1::ChangeMasterReply>(
                            [&](auto* ctx, auto* r) { return admin_->ChangeMaster(ctx, req, r); }),
                        no_rows);
          },
          [&](const stmt::InstallPlugin& s) {
            v1::InstallPluginRequest req;
            req.set_name(s.name);
            req.set_soname(s.soname);
            return then(Invoke<v1::InstallPluginReply>(
                            [&](auto* ctx, auto* r) { return admin_->InstallPlugin(ctx, req, r); }),
                        no_rows);
          },
          [&](const stmt::Put& s) {
            if (s.when) {
              v1::Mutation m;
              m.set_op(v1::Mutation::PUT);
              m.set_key(s.key);
              m.set_value(s.value);
              const v1::WriteRequest req = ConditionalWrite(std::move(m), *s.when);
              return then(Invoke<v1::WriteReply>([&](auto* ctx, auto* r) { return kv_->Write(ctx, req, r); }),
                          ConditionalWriteResult);
            }
            v1::PutRequest req;
            req.set_key(s.key);
            req.set_value(s.value);
            return then(Invoke<v1::WriteReply>([&](auto* ctx, auto* r) { return kv_->Put(ctx, req, r); }),
                        WriteResult);
          },
          [&](const stmt::Get& s) {
            v1::GetRequest req;
            req.set_key(s.key);
            if (s.primary_fresh) req.set_consistency(v1::READ_PRIMARY_FRESH);
            return then(Invoke<v1::GetReply>([&](auto* ctx, auto* r) { return kv_->Get(ctx, req, r); }),
                        s.with_version ? GetWithVersionResult : GetResult);
          },
          [&](const stmt::Delete& s) {
            if (s.when) {
              v1::Mutation m;
              m.set_op(v1::Mutation::DELETE);
              m.set_key(s.key);
              const v1::WriteRequest req = ConditionalWrite(std::move(m), *s.when);
              return then(Invoke<v1::WriteReply>([&](auto* ctx, auto* r) { return kv_->Write(ctx, req, r); }),
                          ConditionalWriteResult);
            }
            v1::DeleteRequest req;
            req.set_key(s.key);
            return then(Invoke<v1::WriteReply>([&](auto* ctx, auto* r) { return kv_->Delete(ctx, req, r); }),
                        WriteResult);
          },
          [&](const stmt::Checksum&) {
            return then(Invoke<v1::ChecksumReply>([&](auto* ctx, auto* r) {
                          return admin_->Checksum(ctx, v1::ChecksumRequest(), r);
                        }),
                        ChecksumResult);
          },
          [&](const stmt::ShowBinaryLogs&) {
            return then(Invoke<v1::BinaryLogsReply>([&](auto* ctx, auto* r) {
                          return admin_->BinaryLogs(ctx, v1::BinaryLogsRequest(), r);
                        }),
                        BinaryLogsResult);
          },
          [&](const stmt::ShowMasterStatus&) {
            return then(Invoke<v1::MasterStatusReply>([&](auto* ctx, auto* r) {
                          return admin_->MasterStatus(ctx, v1::MasterStatusRequest(), r);
                        }),
                        MasterStatusResult);
          },
          [&](const stmt::Scan& s) { return ExecuteScan(s); },
          [&](const stmt::PurgeBinaryLogs& s) {
            v1::PurgeBinaryLogsRequest req;
            req.set_to_file(s.to_file);
            return then(Invoke<v1::PurgeBinaryLogsReply>(
                            [&](auto* ctx, auto* r) { return admin_->PurgeBinaryLogs(ctx, req, r); }),
                        PurgeResult);
          },
      },
      statement);
}

}  // namespace relaykv
