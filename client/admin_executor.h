// Runs a parsed Statement (statement.h) against one relaykv node: each
// statement is exactly one structured RPC on relaykv.v1.Admin or
// relaykv.v1.Kv, and the reply becomes what the mysql client would show.
//
//   statement                       RPC                    result
//   SET GLOBAL/PERSIST n = v        Admin.SetVariable      OK, 0 rows
//   RESET PERSIST [n]               Admin.ResetPersist     OK, 0 rows
//   SHOW VARIABLES [LIKE p]         Admin.ShowVariables    Variable_name, Value
//   SHOW STATUS [LIKE p]            Admin.ShowStatus       Variable_name, Value
//   SHOW SLAVE|REPLICA STATUS       Admin.ReplicaStatus    one row, a column per field
//   SHOW REPLICAS | SLAVE HOSTS     Admin.Replicas         Server_id, Address, Sent_Gtid,
//                                                          Acked_Gtid, Semi_sync,
//                                                          Applied_Gtid, Seconds_Behind_Master
//   START/STOP SLAVE [thread]       Admin.ReplicaThreads   OK, 0 rows
//   CHANGE MASTER TO ...            Admin.ChangeMaster     OK, 0 rows
//   INSTALL PLUGIN n SONAME s       Admin.InstallPlugin    OK, 0 rows
//   CHECKSUM                        Admin.Checksum         Gtid, Checksum, Keys
//   SHOW BINARY LOGS                Admin.BinaryLogs       Log_name, File_size, First_seq
//   SHOW MASTER STATUS              Admin.MasterStatus     File, Position, Executed_Gtid_Set
//   PURGE BINARY LOGS TO f          Admin.PurgeBinaryLogs  OK, 0 rows (+ note as warning)
//   PUT k v | DELETE k              Kv.Put | Kv.Delete     OK, 1 row, "Gtid: e:s"
//   GET k                           Kv.Get                 Value (empty set if absent)
//   SCAN ...                        Kv.Scan, page by page  Key, Value | Key (KEYS ONLY) |
//                                   until LIMIT or the end Count (COUNT)
// SCAN is the one statement that may take several RPCs: it follows the
// continuation token, each page a snapshot of its own (relaykv/scan.h).
// GTIDs print as "epoch:seq" ("0:0": nothing yet), as SHOW STATUS and the
// server's logs write them, so that outputs compare as text.
//
// Errors: the RPC's gRPC status as an absl::Status with the same code and
// message (result_printer.h turns it into a MySQL error line).
// Threads: an AdminExecutor may be used from several threads at once.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/result_printer.h"
#include "client/statement.h"
#include "proto/admin.grpc.pb.h"
#include "proto/kv.grpc.pb.h"

namespace relaykv {

using StatementResult = std::variant<ResultSet, OkResult>;

class AdminExecutor {
 public:
  static constexpr std::chrono::milliseconds kDefaultDeadline{30'000};

  // `deadline` bounds each RPC, measured from the moment it is sent.
  // `bearer_token`, if not empty, goes with every RPC ("authorization:
  // Bearer ..."): the identity of a client without a certificate.
  explicit AdminExecutor(std::shared_ptr<grpc::Channel> channel,
                         std::chrono::milliseconds deadline = kDefaultDeadline,
                         std::string bearer_token = "");

  AdminExecutor(const AdminExecutor&) = delete;
  AdminExecutor& operator=(const AdminExecutor&) = delete;

  // One RPC; blocks until it answers or the deadline passes.
  [[nodiscard]] absl::StatusOr<StatementResult> Execute(const Statement& statement) const;

 private:
  template <typename Reply, typename Call>
  absl::StatusOr<Reply> Invoke(Call call) const;
  absl::StatusOr<StatementResult> ExecuteScan(const stmt::Scan& scan) const;

  const std::unique_ptr<v1::Admin::Stub> admin_;
  const std::unique_ptr<v1::Kv::Stub> kv_;
  const std::chrono::milliseconds deadline_;
  const std::string bearer_token_;
};

// The pure halves of the mapping above, exposed for tests.
absl::Status FromGrpcStatus(const grpc::Status& status);
std::string FormatGtid(const v1::Gtid& gtid);
ResultSet VariablesResult(const v1::ShowReply& reply);  // SHOW VARIABLES and SHOW STATUS
ResultSet ReplicaStatusResult(const v1::ReplicaStatusReply& reply);
ResultSet ReplicasResult(const v1::ReplicasReply& reply);
ResultSet ChecksumResult(const v1::ChecksumReply& reply);
ResultSet BinaryLogsResult(const v1::BinaryLogsReply& reply);
ResultSet MasterStatusResult(const v1::MasterStatusReply& reply);
ResultSet GetResult(const v1::GetReply& reply);
OkResult PurgeResult(const v1::PurgeBinaryLogsReply& reply);
OkResult WriteResult(const v1::WriteReply& reply);  // PUT and DELETE
// The result set a SCAN statement's pages add up to.
ResultSet ScanResult(const stmt::Scan& scan, const std::vector<v1::ScanReply>& pages);

}  // namespace relaykv
