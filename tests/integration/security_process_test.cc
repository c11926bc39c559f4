// TLS, mutual TLS and roles (README "Security") between real relaykvd
// processes on 127.0.0.1, with certificates made by
// scripts/make-test-certs.sh: plaintext refused under
// require_secure_transport, a client of another CA refused, a read-only
// identity that can neither write nor subscribe, a replica without the
// replication role, replication over mTLS with semi-sync, bearer tokens,
// SIGHUP reloading the roles file, the non-loopback rule, and file modes.
#include <sys/stat.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "client/channel_credentials.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/replication.grpc.pb.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// One set of certificates for the whole binary (openssl takes a moment).
class SecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new TempDir();
    const std::string cmd = std::string(RELAYKV_SOURCE_DIR) + "/scripts/make-test-certs.sh " +
                            certs_->path().string() + " > /dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }

  static std::string Cert(const std::string& file) { return (certs_->path() / file).string(); }

  // A client presenting `identity`'s certificate (signed by the test CA).
  static ClientOptions As(const std::string& identity) {
    ClientOptions o;
    o.timeout = std::chrono::seconds(10);
    o.tls = {true, Cert("ca.pem"), Cert(identity + ".pem"), Cert(identity + ".key")};
    return o;
  }

  // TLS on the listener, client certificates verified, roles from `roles`.
  static std::vector<std::string> SecureFlags(const fs::path& roles) {
    return {"--ssl-ca=" + Cert("ca.pem"), "--ssl-cert=" + Cert("node.pem"),
            "--ssl-key=" + Cert("node.key"), "--roles-file=" + roles.string()};
  }

  // A copy of the generated roles file that a test may edit.
  fs::path RolesCopy() {
    const fs::path p = dir_.path() / "roles.txt";
    fs::copy_file(Cert("roles.txt"), p, fs::copy_options::overwrite_existing);
    return p;
  }

  static std::string Token() {
    std::ifstream in(Cert("token.txt"));
    std::string t;
    std::getline(in, t);
    return t;
  }

  static std::unique_ptr<Client> Connect(const Relaykvd& node, const ClientOptions& o) {
    auto c = Client::Connect({node.address()}, o);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  // Opens a Subscribe stream as `tls` and returns how the primary ended it.
  static grpc::Status Subscribe(const Relaykvd& primary, const TlsOptions& tls) {
    auto creds = MakeChannelCredentials(tls);
    EXPECT_TRUE(creds.ok()) << creds.status();
    auto stub = v1::Replication::NewStub(grpc::CreateChannel(primary.address(), *creds));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto stream = stub->Subscribe(&ctx);
    v1::ReplicaMessage hello;
    hello.mutable_hello()->set_server_id(99);
    stream->Write(hello);
    v1::PrimaryMessage m;
    while (stream->Read(&m)) {
    }
    return stream->Finish();
  }

  static inline TempDir* certs_ = nullptr;
  TempDir dir_;
};

TEST_F(SecurityTest, PlaintextIsRefusedUnderRequireSecureTransport) {
  auto flags = SecureFlags(RolesCopy());
  flags.push_back("--require_secure_transport=ON");
  auto p = Relaykvd::Start(dir_.path() / "p", flags, 0, As("admin"));
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(p->Put("k", "v").ok());

  ClientOptions plain;
  plain.timeout = std::chrono::seconds(5);
  auto c = Connect(*p, plain);
  auto r = c->Put("k", "plain");
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_TRUE(absl::IsUnavailable(c->Get("k").status()));
}

TEST_F(SecurityTest, RequireSecureTransportWithoutCertificateRefusesToStart) {
  auto r = StartExpectingRefusal(dir_.path() / "p", {"--require_secure_transport=ON"});
  EXPECT_TRUE(r.exited) << r.log;
  EXPECT_NE(r.exit_status, 0);
  EXPECT_THAT(r.log, HasSubstr("require_secure_transport"));
}

TEST_F(SecurityTest, ClientOfAnotherCaIsRefused) {
  auto p = Relaykvd::Start(dir_.path() / "p", SecureFlags(RolesCopy()), 0, As("admin"));
  ASSERT_NE(p, nullptr);
  // "other" claims CN=admin but another CA signed it: the handshake fails.
  auto c = Connect(*p, As("other"));
  EXPECT_TRUE(absl::IsUnavailable(c->Put("k", "v").status()));
  EXPECT_TRUE(absl::IsUnavailable(c->Get("k").status()));
  // A client that does not trust the server's CA refuses it too.
  ClientOptions wrong_trust = As("admin");
  wrong_trust.tls.ca = Cert("other-ca.pem");
  EXPECT_TRUE(absl::IsUnavailable(Connect(*p, wrong_trust)->Get("k").status()));
  EXPECT_TRUE(p->Put("k", "v").ok());
}

TEST_F(SecurityTest, ReadOnlyIdentityCanNeitherWriteNorSubscribe) {
  auto p = Relaykvd::Start(dir_.path() / "p", SecureFlags(RolesCopy()), 0, As("admin"));
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(p->Put("k", "v").ok());
  auto reader = Connect(*p, As("reader"));
  auto got = reader->Get("k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(**got, "v");
  auto scan = reader->Scan({});
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_EQ(scan->rows.size(), 1u);
  auto nobody = Connect(*p, As("nobody"))->Scan({});
  EXPECT_TRUE(absl::IsPermissionDenied(nobody.status())) << nobody.status();
  EXPECT_THAT(nobody.status().message(), HasSubstr("read role"));

  auto put = reader->Put("k", "w");
  EXPECT_TRUE(absl::IsPermissionDenied(put.status())) << put.status();
  EXPECT_THAT(put.status().message(), HasSubstr("write role"));
  EXPECT_THAT(put.status().message(), HasSubstr("'reader'"));
  EXPECT_TRUE(absl::IsPermissionDenied(reader->Delete("k").status()));
  ClientOptions pipelined = As("reader");
  pipelined.pipelined = true;  // the WriteStream checks the role too
  auto streamed = Connect(*p, pipelined)->Put("k", "w");
  EXPECT_TRUE(absl::IsPermissionDenied(streamed.status())) << streamed.status();
  EXPECT_THAT(streamed.status().message(), HasSubstr("write role"));
  auto set = reader->SetVariable("read_only", "ON");
  EXPECT_TRUE(absl::IsPermissionDenied(set)) << set;
  EXPECT_THAT(set.message(), HasSubstr("admin role"));

  const grpc::Status sub = Subscribe(*p, As("reader").tls);
  EXPECT_EQ(sub.error_code(), grpc::StatusCode::PERMISSION_DENIED) << sub.error_message();
  EXPECT_THAT(sub.error_message(), HasSubstr("replication role"));
  // A watch of what readers see is a read; one of the binlog's uncommitted
  // changes is replication (review s47a L1).
  ClientWatchOptions from_start;
  from_start.after = Gtid{0, 0};
  int delivered = 0;
  auto first_batch = [&](const WatchBatch& b) {
    delivered += static_cast<int>(b.events.size());
    return delivered == 0;
  };
  absl::Status watched = reader->Watch({}, from_start, first_batch);
  EXPECT_TRUE(watched.ok()) << watched;
  EXPECT_EQ(delivered, 1);
  from_start.committed_only = false;
  watched = reader->Watch({}, from_start, first_batch);
  EXPECT_TRUE(absl::IsPermissionDenied(watched)) << watched;
  EXPECT_THAT(watched.message(), HasSubstr("replication role"));
  EXPECT_EQ(**p->Get("k"), "v");
}

TEST_F(SecurityTest, RevokeNeedsTheReplicationOrTheAdminRole) {
  auto p = Relaykvd::Start(dir_.path() / "p", SecureFlags(RolesCopy()), 0, As("admin"));
  ASSERT_NE(p, nullptr);
  auto denied = Connect(*p, As("writer"))->Revoke(7);
  EXPECT_TRUE(absl::IsPermissionDenied(denied.status())) << denied.status();
  EXPECT_THAT(denied.status().message(), HasSubstr("replication role would do too"));
  EXPECT_EQ(p->Status()["Rpl_promised_epoch"], "0") << "a refused Revoke promises nothing";
  auto by_peer = Connect(*p, As("repl"))->Revoke(2);
  ASSERT_TRUE(by_peer.ok()) << by_peer.status();
  EXPECT_EQ(by_peer->promised_epoch, 2u);
  auto by_admin = Connect(*p, As("admin"))->Revoke(3);
  ASSERT_TRUE(by_admin.ok()) << by_admin.status();
  EXPECT_EQ(by_admin->promised_epoch, 3u);
}

TEST_F(SecurityTest, CallWithoutIdentityIsUnauthenticated) {
  auto p = Relaykvd::Start(dir_.path() / "p", SecureFlags(RolesCopy()), 0, As("admin"));
  ASSERT_NE(p, nullptr);
  ClientOptions anonymous;
  anonymous.tls = {true, Cert("ca.pem"), "", ""};
  auto r = Connect(*p, anonymous)->Get("k");
  EXPECT_TRUE(absl::IsUnauthenticated(r.status())) << r.status();
}

TEST_F(SecurityTest, ReplicaWithoutReplicationRoleCannotSubscribe) {
  const fs::path roles = RolesCopy();
  auto p = Relaykvd::Start(dir_.path() / "p", SecureFlags(roles), 0, As("admin"));
  ASSERT_NE(p, nullptr);
  auto flags = SecureFlags(roles);
  flags.insert(flags.end(), {"--master-ssl-ca=" + Cert("ca.pem"), "--master-ssl-cert=" + Cert("reader.pem"),
                             "--master-ssl-key=" + Cert("reader.key")});
  auto r = StartReplica(dir_.path() / "r", *p, {.flags = flags, .client = As("admin")});
  ASSERT_NE(r, nullptr);
  std::string error;
  for (int i = 0; i < 200 && error.empty(); ++i) {
    error = r->ReplicaStatus()["Last_IO_Error"];
    if (error.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_THAT(error, HasSubstr("replication role"));
  EXPECT_THAT(error, HasSubstr("'reader'"));
  EXPECT_NE(r->ReplicaStatus()["Slave_IO_Running"], "Yes");
}

TEST_F(SecurityTest, ReplicationOverMutualTlsWithSemiSync) {
  const fs::path roles = RolesCopy();
  auto flags = SecureFlags(roles);
  flags.insert(flags.end(), {"--require_secure_transport=ON", "--rpl_semi_sync_master_enabled=ON",
                             "--rpl_semi_sync_master_timeout=60000"});
  auto p = Relaykvd::Start(dir_.path() / "p", flags, 0, As("admin"));
  ASSERT_NE(p, nullptr);
  auto rflags = SecureFlags(roles);
  rflags.insert(rflags.end(), {"--require_secure_transport=ON", "--master-ssl-ca=" + Cert("ca.pem"),
                               "--master-ssl-cert=" + Cert("repl.pem"),
                               "--master-ssl-key=" + Cert("repl.key")});
  auto r = StartReplica(dir_.path() / "r", *p,
                        {.semi_sync = true, .flags = rflags, .client = As("admin")});
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->ReplicaStatus()["Slave_IO_Running"], "Yes");

  RunMixedLoad(*p, 300, "tls");
  auto status = p->Status("Rpl_semi_sync_master_%");
  EXPECT_EQ(status["Rpl_semi_sync_master_status"], "ON");
  EXPECT_EQ(status["Rpl_semi_sync_master_no_tx"], "0");
  EXPECT_GE(std::stoi(status["Rpl_semi_sync_master_yes_tx"]), 300);
  bool same = false;
  for (int i = 0; i < 200 && !same; ++i) {
    same = SameChecksum(*p, *r);
    if (!same) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(same);
  // A primary-fresh read asks the primary over the IO thread's TLS settings
  // and identity: with the SQL thread stopped it gets the primary's position
  // and waits (DEADLINE_EXCEEDED, not UNAVAILABLE), and once started it sees
  // the newest write.
  ASSERT_TRUE(r->client().StopReplica(ReplicaThreads::kSql).ok());
  ASSERT_TRUE(p->Put("fresh", "tls").ok());
  ReadOptions fresh;
  fresh.consistency = ReadConsistency::kPrimaryFresh;
  fresh.timeout = std::chrono::milliseconds(500);
  auto waited = r->client().Read("fresh", fresh);
  EXPECT_EQ(waited.status().code(), absl::StatusCode::kDeadlineExceeded) << waited.status();
  ASSERT_TRUE(r->client().StartReplica(ReplicaThreads::kSql).ok());
  fresh.timeout = std::chrono::seconds(30);
  auto read = r->client().Read("fresh", fresh);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->value, std::optional<std::string>("tls"));
  // master.info keeps how to reach the primary.
  std::ifstream in(dir_.path() / "r" / "master.info");
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_THAT(text.str(), HasSubstr("ssl = ON"));
  EXPECT_THAT(text.str(), HasSubstr("repl.pem"));
}

TEST_F(SecurityTest, ChangeMasterToWithMasterSslConnectsOverMutualTls) {
  const fs::path roles = RolesCopy();
  auto p = Relaykvd::Start(dir_.path() / "p", SecureFlags(roles), 0, As("admin"));
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(p->Put("k", "v").ok());
  // A replica pointed at the primary in plaintext: the handshake fails.
  auto r = StartReplica(dir_.path() / "r", *p, {.flags = SecureFlags(roles), .client = As("admin")});
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(r->client().StopReplica().ok());
  ChangeMasterTls tls;
  tls.ssl = true;
  tls.ca = Cert("ca.pem");
  tls.cert = Cert("repl.pem");
  tls.key = Cert("repl.key");
  ASSERT_TRUE(r->client().ChangeMaster("127.0.0.1", static_cast<uint32_t>(p->port()), "", tls).ok());
  ASSERT_TRUE(r->client().StartReplica().ok());
  bool same = false;
  for (int i = 0; i < 200 && !same; ++i) {
    same = SameChecksum(*p, *r);
    if (!same) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(same);
  EXPECT_EQ(r->ReplicaStatus()["Slave_IO_Running"], "Yes");
  // A later CHANGE MASTER that names no MASTER_SSL* keeps them (MySQL).
  ASSERT_TRUE(r->client().StopReplica().ok());
  ASSERT_TRUE(r->client().ChangeMaster("127.0.0.1", static_cast<uint32_t>(p->port())).ok());
  ASSERT_TRUE(r->client().StartReplica().ok());
  ASSERT_TRUE(p->Put("k2", "v2").ok());
  same = false;
  for (int i = 0; i < 200 && !same; ++i) {
    same = SameChecksum(*p, *r);
    if (!same) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(same);
  // A restart with --replicate-from and no --master-ssl* keeps them too (it
  // used to save master.info anew, plaintext).
  EXPECT_EQ(r->Terminate(), 0);
  r = StartReplica(dir_.path() / "r", *p, {.flags = SecureFlags(roles), .client = As("admin")});
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(p->Put("k3", "v3").ok());
  EXPECT_TRUE(WaitFor([&] { return SameChecksum(*p, *r); })) << r->ReplicaStatus()["Last_IO_Error"];
}

TEST_F(SecurityTest, BearerTokenIdentifiesAClientWithoutCertificate) {
  // Plaintext on loopback with a roles file: tokens still work.
  auto p = Relaykvd::Start(dir_.path() / "p", {"--roles-file=" + RolesCopy().string()}, 0);
  ASSERT_NE(p, nullptr);
  ClientOptions app;
  app.bearer_token = Token();
  auto c = Connect(*p, app);
  auto put = c->Put("k", "v");
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_TRUE(absl::IsPermissionDenied(c->Checksum().status()));  // app: read, write
  // The token rides on the write stream too: pipelined writes, async writes.
  app.pipelined = true;
  std::promise<absl::StatusOr<Gtid>> answered;  // before the client: its callback may outlive it
  auto pipelined = Connect(*p, app);
  auto streamed = pipelined->Put("k", "v2");
  ASSERT_TRUE(streamed.ok()) << streamed.status();
  pipelined->PutAsync("k", "v3", [&](absl::StatusOr<Gtid> g) { answered.set_value(std::move(g)); });
  auto answer = answered.get_future();
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  auto async_put = answer.get();
  ASSERT_TRUE(async_put.ok()) << async_put.status();
  EXPECT_GT(async_put->seq, streamed->seq);

  ClientOptions wrong;
  wrong.bearer_token = Token() + "x";
  auto bad = Connect(*p, wrong)->Put("k", "w");
  EXPECT_TRUE(absl::IsUnauthenticated(bad.status())) << bad.status();
  EXPECT_THAT(bad.status().message(), HasSubstr("token is not known"));
  // The server was given no token text, only its hash.
  std::ifstream in(dir_.path() / "roles.txt");
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_THAT(text.str(), ::testing::Not(HasSubstr(Token())));
}

TEST_F(SecurityTest, SighupReloadsTheRolesFile) {
  const fs::path roles = RolesCopy();
  auto p = Relaykvd::Start(dir_.path() / "p", SecureFlags(roles), 0, As("admin"));
  ASSERT_NE(p, nullptr);
  auto reader = Connect(*p, As("reader"));
  ASSERT_TRUE(absl::IsPermissionDenied(reader->Put("k", "v").status()));

  // A bad file is refused and the old roles stay.
  std::ofstream(roles, std::ios::app) << "reader: read, wirte\n";
  p->Signal(SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(absl::IsPermissionDenied(reader->Put("k", "v").status()));
  EXPECT_TRUE(reader->Get("k").ok());

  std::ofstream(roles, std::ios::trunc) << "admin: read, write, replication, admin\nreader: read, write\n";
  p->Signal(SIGHUP);
  absl::Status s = absl::UnknownError("not tried");
  for (int i = 0; i < 100 && !s.ok(); ++i) {
    s = reader->Put("k", "v").status();
    if (!s.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(s.ok()) << s;
  std::ifstream log(dir_.path().string() + "/p.log");
  std::stringstream text;
  text << log.rdbuf();
  EXPECT_THAT(text.str(), HasSubstr("roles.txt:"));  // the bad reload named file and line
}

TEST_F(SecurityTest, CliSpeaksMutualTlsWithMysqlFlagsAndShowsRefusals) {
  auto p = Relaykvd::Start(dir_.path() / "p", SecureFlags(RolesCopy()), 0, As("admin"));
  ASSERT_NE(p, nullptr);
  auto as = [&](const std::string& who, std::vector<std::string> args) {
    std::vector<std::string> all = {"-H", p->address(), "--ssl-ca", Cert("ca.pem"), "--ssl-cert",
                                    Cert(who + ".pem"), "--ssl-key", Cert(who + ".key")};
    all.insert(all.end(), args.begin(), args.end());
    return RunCli(all);
  };
  CliRun put = as("admin", {"put", "k", "v"});
  EXPECT_EQ(put.status, 0) << put.err;
  CliRun change = as("admin", {"-e", "STOP SLAVE"});  // a primary: refused by the node, not the roles
  EXPECT_THAT(change.err, ::testing::Not(HasSubstr("access denied")));
  CliRun denied = as("reader", {"-e", "SET GLOBAL read_only = ON"});
  EXPECT_EQ(denied.status, 1);
  EXPECT_THAT(denied.err, HasSubstr("ERROR 1227 (42000) at line 1: access denied for 'reader'"));
  CliRun plain = RunCli({"-H", p->address(), "--timeout", "5", "get", "k"});
  EXPECT_EQ(plain.status, 1);
  EXPECT_THAT(plain.err, HasSubstr("if the server requires TLS"));
}

TEST_F(SecurityTest, NonLoopbackListenIsRefusedWithoutTls) {
  auto r = StartExpectingRefusal(dir_.path() / "p", {"--listen", "0.0.0.0:0"});
  EXPECT_TRUE(r.exited) << r.log;
  EXPECT_NE(r.exit_status, 0);
  EXPECT_THAT(r.log, HasSubstr("not a loopback address"));
  EXPECT_THAT(r.log, HasSubstr("--allow-insecure"));
  // TLS without roles: anyone who connects could subscribe as a semi-sync
  // replica and ACK what it never stored.
  auto no_roles = StartExpectingRefusal(
      dir_.path() / "q", {"--listen", "0.0.0.0:0", "--ssl-ca=" + Cert("ca.pem"),
                          "--ssl-cert=" + Cert("node.pem"), "--ssl-key=" + Cert("node.key")});
  EXPECT_TRUE(no_roles.exited) << no_roles.log;
  EXPECT_THAT(no_roles.log, HasSubstr("without --roles-file"));
}

TEST_F(SecurityTest, DataDirIsOwnerOnlyAndItsFilesToo) {
  // A fresh data dir made by relaykvd itself, as a replica (master.info).
  const fs::path fresh = dir_.path() / "fresh";
  auto run = StartExpectingRefusal(fresh, {"--replicate-from=127.0.0.1:1", "--server-id=2"},
                                   std::chrono::seconds(30));
  EXPECT_FALSE(run.exited) << run.log;  // it started (and was stopped)
  auto mode = [](const fs::path& p) { return fs::status(p).permissions() & fs::perms::all; };
  const auto dir_mode = fs::perms::owner_all;
  const auto file_mode = fs::perms::owner_read | fs::perms::owner_write;
  EXPECT_EQ(mode(fresh), dir_mode);
  EXPECT_EQ(mode(fresh / "binlog"), dir_mode);
  EXPECT_EQ(mode(fresh / "db"), dir_mode);
  EXPECT_EQ(mode(fresh / "master.info"), file_mode);
  int binlog_files = 0;
  for (const auto& e : fs::directory_iterator(fresh / "binlog")) {
    EXPECT_EQ(mode(e.path()), file_mode) << e.path();
    ++binlog_files;
  }
  EXPECT_GT(binlog_files, 0);

  auto p = Relaykvd::Start(dir_.path() / "p");
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(p->client().SetVariable("sync_binlog", "1", /*persist=*/true).ok());
  EXPECT_EQ(mode(dir_.path() / "p" / "relaykvd-auto.cnf"), file_mode);
}

}  // namespace
}  // namespace relaykv::testing
