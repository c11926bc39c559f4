// Read consistency levels (relaykv/read_consistency.h) across real
// relaykvd processes: a primary-fresh read on a replica sees what its
// semi-sync primary answered OK even while the replica's SQL thread lags;
// a primary that is gone is a clear UNAVAILABLE within the deadline; bad
// combinations are INVALID_ARGUMENT.
#include <chrono>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "proto/kv.grpc.pb.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

using Clock = std::chrono::steady_clock;

struct Pair {
  std::unique_ptr<Relaykvd> primary, replica;
};
Pair StartSemiSyncPair(const TempDir& dir) {
  Pair p;
  p.primary = Relaykvd::Start(dir.path() / "p", {"--rpl_semi_sync_master_enabled=ON",
                                                 "--rpl_semi_sync_master_timeout=60000"});
  if (!p.primary) return p;
  p.replica = StartSemiSyncReplica(dir.path() / "r", *p.primary);
  return p;
}

ReadOptions Fresh(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  ReadOptions o;
  o.consistency = ReadConsistency::kPrimaryFresh;
  o.timeout = timeout;
  return o;
}

TEST(ReadConsistencyProcessTest, PrimaryFreshReadOnAReplicaWaitsForItsStoppedSqlThread) {
  TempDir dir;
  Pair p = StartSemiSyncPair(dir);
  ASSERT_NE(p.replica, nullptr);
  ASSERT_TRUE(p.primary->Put("k", "v1").ok());
  ASSERT_TRUE(WaitFor([&] {
    auto v = p.replica->Get("k");
    return v.ok() && *v == std::optional<std::string>("v1");
  }));

  // The replica holds v2 in its relay log (it ACKed it) but does not apply it.
  ASSERT_TRUE(p.replica->client().StopReplica(ReplicaThreads::kSql).ok());
  auto v2 = p.primary->Put("k", "v2");
  ASSERT_TRUE(v2.ok()) << v2.status();
  auto local = p.replica->client().Read("k", {});
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_EQ(local->value, std::optional<std::string>("v1")) << "the SQL thread is stopped";

  // Within a short deadline: DEADLINE_EXCEEDED (the client's own deadline
  // may end it before the server's message arrives; read_wait_test checks
  // that message on an embedded replica).
  auto expired = p.replica->client().Read("k", Fresh(std::chrono::milliseconds(500)));
  ASSERT_EQ(expired.status().code(), absl::StatusCode::kDeadlineExceeded) << expired.status();

  // Started again a little later: the fresh read waits for it and sees v2.
  std::thread starter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    EXPECT_TRUE(p.replica->client().StartReplica(ReplicaThreads::kSql).ok());
  });
  const auto began = Clock::now();
  auto fresh = p.replica->client().Read("k", Fresh());
  const auto waited = Clock::now() - began;
  starter.join();
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(fresh->value, std::optional<std::string>("v2"));
  EXPECT_GE(fresh->applied.seq, v2->seq);
  EXPECT_GE(waited, std::chrono::milliseconds(500)) << "it read before the SQL thread started";

  // Scan the same way.
  ASSERT_TRUE(p.replica->client().StopReplica(ReplicaThreads::kSql).ok());
  ASSERT_TRUE(p.primary->Put("k", "v3").ok());
  ASSERT_TRUE(p.primary->Put("k2", "w").ok());
  std::thread starter2([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    EXPECT_TRUE(p.replica->client().StartReplica(ReplicaThreads::kSql).ok());
  });
  auto page = p.replica->client().Scan(ScanRange{}, Fresh());
  starter2.join();
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->rows, (std::vector<KeyValue>{{"k", "v3"}, {"k2", "w"}}));

  // On the primary: a local read of committed data.
  auto on_primary = p.primary->client().Read("k", Fresh());
  ASSERT_TRUE(on_primary.ok()) << on_primary.status();
  EXPECT_EQ(on_primary->value, std::optional<std::string>("v3"));

  // The CLI: GET ... WITH CONSISTENCY PRIMARY_FRESH on the replica.
  CliRun cli = RunCliOn(*p.replica, {}, "GET 'k' WITH CONSISTENCY PRIMARY_FRESH;\n");
  EXPECT_EQ(cli.status, 0) << cli.err;
  EXPECT_NE(cli.out.find("v3"), std::string::npos) << cli.out;
  cli = RunCliOn(*p.replica, {}, "SCAN 'k' LIMIT 5 WITH CONSISTENCY PRIMARY_FRESH;\n");
  EXPECT_EQ(cli.status, 0) << cli.err;
  EXPECT_NE(cli.out.find("k2"), std::string::npos) << cli.out;
}

TEST(ReadConsistencyProcessTest, PrimaryFreshReadWithThePrimaryDownIsUnavailable) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p");
  ASSERT_NE(primary, nullptr);
  auto replica = StartReplica(dir.path() / "r", *primary);
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(primary->Put("k", "v").ok());
  auto fresh = replica->client().Read("k", Fresh());
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(fresh->value, std::optional<std::string>("v"));

  const std::string primary_address = primary->address();
  primary->Kill();
  const auto began = Clock::now();
  auto down = replica->client().Read("k", Fresh(std::chrono::seconds(5)));
  EXPECT_LT(Clock::now() - began, std::chrono::seconds(6)) << "bounded by the read's deadline";
  ASSERT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();
  EXPECT_NE(down.status().message().find(primary_address), std::string::npos) << down.status();
  auto scan = replica->client().Scan(ScanRange{}, Fresh(std::chrono::seconds(5)));
  EXPECT_EQ(scan.status().code(), absl::StatusCode::kUnavailable) << scan.status();
  // A local read still answers.
  auto local = replica->client().Read("k", {});
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_EQ(local->value, std::optional<std::string>("v"));
}

TEST(ReadConsistencyProcessTest, BadConsistencyCombinationsAreInvalidArgument) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p");
  ASSERT_NE(primary, nullptr);
  auto gtid = primary->Put("k", "v");
  ASSERT_TRUE(gtid.ok());
  auto stub = v1::Kv::NewStub(
      grpc::CreateChannel(primary->address(), grpc::InsecureChannelCredentials()));
  auto get = [&](v1::ReadConsistency c, bool with_gtid) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::GetRequest req;
    req.set_key("k");
    req.set_consistency(c);
    if (with_gtid) {
      req.mutable_wait_for_gtid()->set_epoch(gtid->epoch);
      req.mutable_wait_for_gtid()->set_seq(gtid->seq);
    }
    v1::GetReply reply;
    return stub->Get(&ctx, req, &reply);
  };
  grpc::Status s = get(v1::READ_LOCAL, true);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("READ_LOCAL"), std::string::npos) << s.error_message();
  s = get(v1::READ_WAIT_FOR_GTID, false);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("wait_for_gtid"), std::string::npos) << s.error_message();
  s = get(static_cast<v1::ReadConsistency>(99), false);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("99"), std::string::npos) << s.error_message();
  // The good ones answer.
  EXPECT_TRUE(get(v1::READ_WAIT_FOR_GTID, true).ok());
  EXPECT_TRUE(get(v1::READ_PRIMARY_FRESH, true).ok());
  EXPECT_TRUE(get(v1::READ_LOCAL, false).ok());

  CliRun cli = RunCliOn(*primary, {}, "GET 'k' WITH CONSISTENCY SOMETIMES;\n");
  EXPECT_NE(cli.status, 0);
  EXPECT_NE(cli.err.find("expected LOCAL or PRIMARY_FRESH"), std::string::npos) << cli.err;
}

}  // namespace
}  // namespace relaykv::testing
