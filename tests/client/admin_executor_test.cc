// AdminExecutor against fake Admin and Kv services on an in-process
// channel: checks the request each statement sends and the result its
// reply becomes, without a relaykvd.
#include "client/admin_executor.h"

#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

namespace relaykv {
namespace {

using namespace std::chrono_literals;

v1::Gtid MakeGtid(uint64_t epoch, uint64_t seq) {
  v1::Gtid g;
  g.set_epoch(epoch);
  g.set_seq(seq);
  return g;
}

// Remembers the last request of each kind and answers with canned replies.
class FakeAdmin final : public v1::Admin::Service {
 public:
  grpc::Status ShowVariables(grpc::ServerContext*, const v1::ShowRequest* req, v1::ShowReply* reply) override {
    std::lock_guard l(mu);
    show_like = req->like();
    auto* row = reply->add_rows();
    row->set_name("rpl_semi_sync_master_enabled");
    row->set_value("ON");
    return grpc::Status::OK;
  }
  grpc::Status ShowStatus(grpc::ServerContext*, const v1::ShowRequest* req, v1::ShowReply* reply) override {
    std::lock_guard l(mu);
    show_like = req->like();
    auto* row = reply->add_rows();
    row->set_name("Rpl_semi_sync_slave_status");
    row->set_value("OFF");
    return grpc::Status::OK;
  }
  grpc::Status SetVariable(grpc::ServerContext*, const v1::SetVariableRequest* req, v1::SetVariableReply*) override {
    std::lock_guard l(mu);
    set = *req;
    if (req->name() == "nope") {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "Unknown system variable 'nope'");
    }
    return grpc::Status::OK;
  }
  grpc::Status ResetPersist(grpc::ServerContext*, const v1::ResetPersistRequest* req, v1::ResetPersistReply*) override {
    std::lock_guard l(mu);
    reset = *req;
    return grpc::Status::OK;
  }
  grpc::Status ReplicaThreads(grpc::ServerContext*, const v1::ReplicaThreadsRequest* req,
                              v1::ReplicaThreadsReply*) override {
    std::lock_guard l(mu);
    threads = *req;
    return grpc::Status::OK;
  }
  grpc::Status ChangeMaster(grpc::ServerContext*, const v1::ChangeMasterRequest* req, v1::ChangeMasterReply*) override {
    std::lock_guard l(mu);
    change = *req;
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "run STOP SLAVE first");
  }
  grpc::Status ReplicaStatus(grpc::ServerContext*, const v1::ReplicaStatusRequest*,
                             v1::ReplicaStatusReply* reply) override {
    std::lock_guard l(mu);
    for (const auto& [name, value] : replica_fields) {
      auto* f = reply->add_fields();
      f->set_name(name);
      f->set_value(value);
    }
    return grpc::Status::OK;
  }
  grpc::Status Replicas(grpc::ServerContext*, const v1::ReplicasRequest*, v1::ReplicasReply* reply) override {
    auto* r = reply->add_replicas();
    r->set_server_id(2);
    r->set_address("127.0.0.1:7401");
    *r->mutable_sent_gtid() = MakeGtid(1, 10);
    *r->mutable_acked_gtid() = MakeGtid(1, 9);
    r->set_semi_sync(true);
    *r->mutable_applied_gtid() = MakeGtid(1, 7);
    r->set_lag_seconds(4);
    auto* idle = reply->add_replicas();
    idle->set_server_id(3);
    idle->set_address("127.0.0.1:7402");
    return grpc::Status::OK;
  }
  grpc::Status Checksum(grpc::ServerContext*, const v1::ChecksumRequest*, v1::ChecksumReply* reply) override {
    *reply->mutable_gtid() = MakeGtid(1, 42);
    reply->set_hash("00ff");
    reply->set_keys(3);
    reply->set_versions_hash("0a0b");
    return grpc::Status::OK;
  }
  grpc::Status BinaryLogs(grpc::ServerContext*, const v1::BinaryLogsRequest*, v1::BinaryLogsReply* reply) override {
    auto* log = reply->add_logs();
    log->set_name("binlog.000001");
    log->set_size_bytes(4096);
    log->set_first_seq(1);
    return grpc::Status::OK;
  }
  grpc::Status MasterStatus(grpc::ServerContext*, const v1::MasterStatusRequest*,
                            v1::MasterStatusReply* reply) override {
    std::this_thread::sleep_for(master_status_delay);
    reply->set_file("binlog.000002");
    reply->set_position(128);
    return grpc::Status::OK;
  }
  grpc::Status PurgeBinaryLogs(grpc::ServerContext*, const v1::PurgeBinaryLogsRequest* req,
                               v1::PurgeBinaryLogsReply* reply) override {
    std::lock_guard l(mu);
    purge = *req;
    reply->set_purged(1);
    reply->set_note("binlog.000002 is still needed by replica 2");
    return grpc::Status::OK;
  }
  grpc::Status InstallPlugin(grpc::ServerContext*, const v1::InstallPluginRequest* req,
                             v1::InstallPluginReply*) override {
    std::lock_guard l(mu);
    install = *req;
    return grpc::Status::OK;
  }

  std::mutex mu;  // the handlers run on server threads
  std::string show_like;
  v1::SetVariableRequest set;
  v1::ResetPersistRequest reset;
  v1::ReplicaThreadsRequest threads;
  v1::ChangeMasterRequest change;
  v1::PurgeBinaryLogsRequest purge;
  v1::InstallPluginRequest install;
  std::vector<std::pair<std::string, std::string>> replica_fields;
  std::chrono::milliseconds master_status_delay{0};  // set before the call
};

class FakeKv final : public v1::Kv::Service {
 public:
  grpc::Status Put(grpc::ServerContext*, const v1::PutRequest* req, v1::WriteReply* reply) override {
    std::lock_guard l(mu);
    data[req->key()] = req->value();
    *reply->mutable_gtid() = MakeGtid(1, ++seq);
    return grpc::Status::OK;
  }
  grpc::Status Delete(grpc::ServerContext*, const v1::DeleteRequest* req, v1::WriteReply* reply) override {
    std::lock_guard l(mu);
    data.erase(req->key());
    *reply->mutable_gtid() = MakeGtid(1, ++seq);
    return grpc::Status::OK;
  }
  grpc::Status Get(grpc::ServerContext*, const v1::GetRequest* req, v1::GetReply* reply) override {
    std::lock_guard l(mu);
    auto it = data.find(req->key());
    reply->set_found(it != data.end());
    if (it != data.end()) reply->set_value(it->second);
    return grpc::Status::OK;
  }

  // A broken server: every SCAN page empty, saying more remain — or, with
  // `scan_one_key`, one key and the continuation it was given.
  grpc::Status Scan(grpc::ServerContext*, const v1::ScanRequest* req, v1::ScanReply* reply) override {
    if (scan_one_key) {
      reply->add_rows()->set_key("k");
      reply->set_count(1);
      reply->set_continuation(req->continuation().empty() ? "again" : req->continuation());
      return grpc::Status::OK;
    }
    reply->set_count(0);
    reply->set_continuation("again");
    return grpc::Status::OK;
  }
  bool scan_one_key = false;

  std::mutex mu;
  std::map<std::string, std::string> data;
  uint64_t seq = 0;
};

class AdminExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.RegisterService(&admin_);
    builder.RegisterService(&kv_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    executor_ = std::make_unique<AdminExecutor>(server_->InProcessChannel(grpc::ChannelArguments()), 5s);
  }
  void TearDown() override { server_->Shutdown(); }

  StatementResult Run(const std::string& text) {
    auto statement = ParseStatement(text);
    EXPECT_TRUE(statement.ok()) << statement.status();
    auto result = executor_->Execute(*statement);
    EXPECT_TRUE(result.ok()) << text << ": " << result.status();
    return result.ok() ? *result : StatementResult(OkResult{});
  }
  ResultSet Rows(const std::string& text) {
    auto r = Run(text);
    EXPECT_TRUE(std::holds_alternative<ResultSet>(r)) << text;
    return std::holds_alternative<ResultSet>(r) ? std::get<ResultSet>(r) : ResultSet{};
  }
  OkResult Ok(const std::string& text) {
    auto r = Run(text);
    EXPECT_TRUE(std::holds_alternative<OkResult>(r)) << text;
    return std::holds_alternative<OkResult>(r) ? std::get<OkResult>(r) : OkResult{};
  }

  FakeAdmin admin_;
  FakeKv kv_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<AdminExecutor> executor_;
};

using Rows2 = std::vector<std::vector<std::string>>;

TEST_F(AdminExecutorTest, SetGlobalSendsNameValueAndPersistFlag) {
  EXPECT_EQ(Ok("set global rpl_semi_sync_master_enabled = 1;").affected_rows, 0u);
  EXPECT_EQ(admin_.set.name(), "rpl_semi_sync_master_enabled");
  EXPECT_EQ(admin_.set.value(), "1");
  EXPECT_FALSE(admin_.set.persist());
  Ok("SET PERSIST sync_binlog = 0");
  EXPECT_TRUE(admin_.set.persist());
}

TEST_F(AdminExecutorTest, ServerErrorsKeepTheirCodeAndMessage) {
  auto r = executor_->Execute(stmt::SetVariable{"nope", "1", false});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status(), absl::InvalidArgumentError("Unknown system variable 'nope'"));
  EXPECT_EQ(ToMysqlError(r.status()).code, 1193);

  r = executor_->Execute(stmt::ChangeMaster{"h", 7400});
  EXPECT_EQ(r.status(), absl::FailedPreconditionError("run STOP SLAVE first"));
  EXPECT_EQ(admin_.change.host(), "h");
  EXPECT_EQ(admin_.change.port(), 7400u);
}

TEST_F(AdminExecutorTest, ShowVariablesAndStatusPassTheLikePattern) {
  ResultSet rs = Rows("show variables like 'rpl_semi_sync%'");
  EXPECT_EQ(admin_.show_like, "rpl_semi_sync%");
  EXPECT_EQ(rs.columns, (std::vector<std::string>{"Variable_name", "Value"}));
  EXPECT_EQ(rs.rows, (Rows2{{"rpl_semi_sync_master_enabled", "ON"}}));
  rs = Rows("SHOW STATUS");
  EXPECT_EQ(admin_.show_like, "");
  EXPECT_EQ(rs.rows, (Rows2{{"Rpl_semi_sync_slave_status", "OFF"}}));
}

TEST_F(AdminExecutorTest, ReplicaStatusIsOneRowOrAnEmptySet) {
  EXPECT_TRUE(Rows("SHOW SLAVE STATUS").rows.empty());
  admin_.replica_fields = {{"Slave_IO_Running", "Yes"}, {"Master_Port", "7400"}};
  const ResultSet rs = Rows("SHOW REPLICA STATUS");
  EXPECT_EQ(rs.columns, (std::vector<std::string>{"Slave_IO_Running", "Master_Port"}));
  EXPECT_EQ(rs.rows, (Rows2{{"Yes", "7400"}}));
}

TEST_F(AdminExecutorTest, ReplicaThreadsMapActionAndThreads) {
  Ok("stop slave io_thread;");
  EXPECT_EQ(admin_.threads.action(), v1::ReplicaThreadsRequest::STOP);
  EXPECT_EQ(admin_.threads.threads(), v1::ReplicaThreadsRequest::IO);
  Ok("START REPLICA SQL_THREAD");
  EXPECT_EQ(admin_.threads.action(), v1::ReplicaThreadsRequest::START);
  EXPECT_EQ(admin_.threads.threads(), v1::ReplicaThreadsRequest::SQL);
  Ok("START SLAVE");
  EXPECT_EQ(admin_.threads.threads(), v1::ReplicaThreadsRequest::BOTH);
}

TEST_F(AdminExecutorTest, PluginResetAndPurge) {
  Ok("install plugin rpl_semi_sync_master soname 'semisync_master.so';");
  EXPECT_EQ(admin_.install.name(), "rpl_semi_sync_master");
  EXPECT_EQ(admin_.install.soname(), "semisync_master.so");
  Ok("RESET PERSIST");
  EXPECT_EQ(admin_.reset.name(), "");
  Ok("RESET PERSIST sync_binlog");
  EXPECT_EQ(admin_.reset.name(), "sync_binlog");
  const OkResult purge = Ok("PURGE BINARY LOGS TO 'binlog.000002'");
  EXPECT_EQ(admin_.purge.to_file(), "binlog.000002");
  EXPECT_EQ(purge.affected_rows, 0u);
  EXPECT_EQ(purge.info, "Purged files: 1");
  EXPECT_EQ(purge.warnings, (std::vector<std::string>{"binlog.000002 is still needed by replica 2"}));
}

TEST_F(AdminExecutorTest, ReplicasChecksumBinlogsAndMasterStatusBecomeRows) {
  ResultSet rs = Rows("SHOW SLAVE HOSTS");
  EXPECT_EQ(rs.columns, (std::vector<std::string>{"Server_id", "Address", "Sent_Gtid", "Acked_Gtid", "Semi_sync",
                                                  "Applied_Gtid", "Seconds_Behind_Master"}));
  // The second replica did not report its SQL thread: NULL, as MySQL shows an unknown lag.
  EXPECT_EQ(rs.rows, (Rows2{{"2", "127.0.0.1:7401", "1:10", "1:9", "Yes", "1:7", "4"},
                            {"3", "127.0.0.1:7402", "0:0", "0:0", "No", "0:0", "NULL"}}));
  rs = Rows("CHECKSUM");
  EXPECT_EQ(rs.columns, (std::vector<std::string>{"Gtid", "Checksum", "Keys", "Versions_checksum"}));
  EXPECT_EQ(rs.rows, (Rows2{{"1:42", "00ff", "3", "0a0b"}}));
  rs = Rows("SHOW BINARY LOGS");
  EXPECT_EQ(rs.columns, (std::vector<std::string>{"Log_name", "File_size", "First_seq"}));
  EXPECT_EQ(rs.rows, (Rows2{{"binlog.000001", "4096", "1"}}));
  rs = Rows("SHOW MASTER STATUS");
  EXPECT_EQ(rs.columns, (std::vector<std::string>{"File", "Position", "Executed_Gtid_Set"}));
  EXPECT_EQ(rs.rows, (Rows2{{"binlog.000002", "128", "0:0"}}));
}

TEST_F(AdminExecutorTest, PutGetDeleteGoToTheKvService) {
  OkResult put = Ok("PUT 'k' 'v\\n'");
  EXPECT_EQ(put.affected_rows, 1u);
  EXPECT_EQ(put.info, "Gtid: 1:1");
  EXPECT_EQ(Rows("GET k").rows, (Rows2{{"v\n"}}));
  EXPECT_EQ(Rows("GET k").columns, (std::vector<std::string>{"Value"}));
  EXPECT_EQ(Ok("DELETE 'k'").info, "Gtid: 1:2");
  EXPECT_TRUE(Rows("GET k").rows.empty());
}

TEST_F(AdminExecutorTest, DeadlineBoundsEachCall) {
  admin_.master_status_delay = 500ms;
  AdminExecutor quick(server_->InProcessChannel(grpc::ChannelArguments()), 50ms);
  auto r = quick.Execute(stmt::ShowMasterStatus{});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(AdminExecutorNoServerTest, UnreachableServerIsUnavailable) {
  // Port 1 on loopback: nothing listens there, so the connect is refused.
  AdminExecutor executor(grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()), 5s);
  auto r = executor.Execute(stmt::Checksum{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ToMysqlError(r.status()).code, 2003);
}

TEST(AdminMappingTest, GtidPrintsEpochColonSeq) {
  EXPECT_EQ(FormatGtid(MakeGtid(2, 7)), "2:7");
  EXPECT_EQ(FormatGtid(v1::Gtid()), "0:0");
}

TEST(AdminMappingTest, GrpcStatusKeepsCodeAndMessage) {
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc::StatusCode::NOT_FOUND, "no such file")),
            absl::NotFoundError("no such file"));
}


// Review s44e M4: a server whose SCAN pages say more remain and hold no
// key kept the CLI paging for ever, keeping every page.
TEST_F(AdminExecutorTest, ScanPagesThatMakeNoProgressAreRefused) {
  auto statement = ParseStatement("SCAN 'a' 'z'");
  ASSERT_TRUE(statement.ok()) << statement.status();
  auto r = executor_->Execute(*statement);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("saying more remain"), std::string::npos) << r.status();
  // Review s44f F6: pages of one key that hand back the same continuation.
  kv_.scan_one_key = true;
  r = executor_->Execute(*statement);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("would never end"), std::string::npos) << r.status();
}

}  // namespace
}  // namespace relaykv
