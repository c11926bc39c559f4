// Monitoring over HTTP against real relaykvd processes (--http-listen): a
// semi-sync primary and replica answer /metrics (valid for `promtool check
// metrics`), /healthz and /primary as a load balancer and Prometheus need,
// and the values move with the writes done.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/etcd_process.h"
#include "tests/common/http_get.h"
#include "tests/common/prometheus_text.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// The HTTP address relaykvd wrote to its data dir ("" if none within 30 s).
std::string HttpAddress(const Relaykvd& d) {
  const fs::path file = d.data_dir() / "relaykvd.http.addr";
  if (!WaitFor([&] { return fs::exists(file); }, std::chrono::seconds(30))) return "";
  std::ifstream in(file);
  std::string addr;
  std::getline(in, addr);
  return addr;
}

// `promtool check metrics` over `exposition`: "" if it passes, else what it
// said. Not installed is a failure, not a skip: scripts/setup.sh installs it
// (Debian package prometheus) and fails loudly if it cannot.
std::string PromtoolProblems(const std::string& exposition, const fs::path& scratch) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    return "promtool is not installed: run scripts/setup.sh (Debian package 'prometheus')";
  }
  const fs::path in = scratch / "exposition.txt";
  const fs::path out = scratch / "promtool.out";
  std::ofstream(in) << exposition;
  const std::string cmd = "timeout -s KILL 60 promtool check metrics < " + in.string() + " > " + out.string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream said(out);
  std::string text((std::istreambuf_iterator<char>(said)), std::istreambuf_iterator<char>());
  return rc == 0 ? "" : "promtool check metrics failed (" + std::to_string(rc) + "):\n" + text;
}

double Sample(const std::string& exposition, const std::string& series) {
  auto v = SampleValue(exposition, series);
  EXPECT_TRUE(v.has_value()) << series << " missing from /metrics";
  return v.value_or(-1);
}

TEST(MetricsProcessTest, PrimaryAndReplicaServeMetricsHealthAndPrimaryEndpoints) {
  TempDir dir;
  const std::string http = "--http-listen=127.0.0.1:0";
  auto primary = Relaykvd::Start(dir.path() / "p", {"--rpl_semi_sync_master_enabled=ON",
                                                    "--rpl_semi_sync_master_timeout=60000", http});
  ASSERT_NE(primary, nullptr);
  auto replica = StartReplica(dir.path() / "r", *primary, {.semi_sync = true, .flags = {http}});
  ASSERT_NE(replica, nullptr);
  const std::string p_http = HttpAddress(*primary), r_http = HttpAddress(*replica);
  ASSERT_FALSE(p_http.empty());
  ASSERT_FALSE(r_http.empty());
  ASSERT_THAT(p_http, ::testing::StartsWith("127.0.0.1:"));

  constexpr int kWrites = 20;
  for (int i = 0; i < kWrites; ++i) ASSERT_TRUE(primary->Put("k" + std::to_string(i), "v").ok());

  // Primary.
  HttpReply m = HttpGet(p_http, "/metrics");
  ASSERT_EQ(m.status, 200) << m.body;
  EXPECT_THAT(m.headers, HasSubstr("text/plain; version=0.0.4"));
  EXPECT_EQ(PromtoolProblems(m.body, dir.path()), "");
  EXPECT_EQ(Sample(m.body, "relaykv_commit_duration_seconds_count{wait_point=\"AFTER_SYNC\"}"), kWrites);
  EXPECT_EQ(Sample(m.body, "relaykv_semisync_master_yes_tx_total"), kWrites);
  EXPECT_EQ(Sample(m.body, "relaykv_semisync_master_no_tx_total"), 0);
  EXPECT_EQ(Sample(m.body, "relaykv_semisync_master_status"), 1);
  EXPECT_EQ(Sample(m.body, "relaykv_semisync_master_clients"), 1);
  EXPECT_EQ(Sample(m.body, "relaykv_binlog_events_total"), kWrites);
  EXPECT_GE(Sample(m.body, "relaykv_binlog_fsync_duration_seconds_count"), 1);
  EXPECT_EQ(Sample(m.body, "relaykv_binlog_group_events_sum"), kWrites);
  EXPECT_EQ(Sample(m.body, "relaykv_replica_lag_seqs{server_id=\"2\"}"), 0);
  EXPECT_GT(Sample(m.body, "process_resident_memory_bytes"), 0);
  EXPECT_GT(Sample(m.body, "process_open_fds"), 0);
  EXPECT_GT(Sample(m.body, "process_threads"), 1);
  EXPECT_GT(Sample(m.body, "process_start_time_seconds"), 1.7e9);
  EXPECT_EQ(HttpGet(p_http, "/healthz").status, 200);
  HttpReply pp = HttpGet(p_http, "/primary");
  EXPECT_EQ(pp.status, 200) << pp.body;

  // Replica.
  m = HttpGet(r_http, "/metrics");
  ASSERT_EQ(m.status, 200) << m.body;
  EXPECT_EQ(PromtoolProblems(m.body, dir.path()), "");
  EXPECT_EQ(Sample(m.body, "relaykv_replica_io_running"), 1);
  EXPECT_EQ(Sample(m.body, "relaykv_replica_sql_running"), 1);
  EXPECT_EQ(Sample(m.body, "relaykv_semisync_slave_status"), 1);
  EXPECT_GE(Sample(m.body, "relaykv_relay_log_fsync_duration_seconds_count"), 1);
  EXPECT_EQ(Sample(m.body, "relaykv_binlog_events_total"), kWrites);
  EXPECT_GE(Sample(m.body, "relaykv_replica_seconds_behind_source"), 0);
  EXPECT_EQ(HttpGet(r_http, "/healthz").status, 200);
  HttpReply rp = HttpGet(r_http, "/primary");
  EXPECT_EQ(rp.status, 503);
  EXPECT_THAT(rp.body, HasSubstr("replica"));

  // Not a route, not a GET.
  EXPECT_EQ(HttpGet(p_http, "/nope").status, 404);
  EXPECT_EQ(HttpRequest(p_http, "POST", "/metrics").status, 405);

  // STOP SLAVE: the replica no longer serves its role.
  ASSERT_TRUE(replica->client().StopReplica(ReplicaThreads::kBoth).ok());
  HttpReply h = HttpGet(r_http, "/healthz");
  EXPECT_EQ(h.status, 503);
  EXPECT_THAT(h.body, HasSubstr("thread"));
  m = HttpGet(r_http, "/metrics");
  EXPECT_EQ(Sample(m.body, "relaykv_replica_io_running"), 0);
  EXPECT_EQ(Sample(m.body, "relaykv_up"), 0);
  EXPECT_EQ(PromtoolProblems(m.body, dir.path()), "");
  // And START SLAVE brings it back.
  ASSERT_TRUE(replica->client().StartReplica(ReplicaThreads::kBoth).ok());
  EXPECT_TRUE(WaitFor([&] { return HttpGet(r_http, "/healthz").status == 200; }));

  // A clean stop removes the address file.
  EXPECT_EQ(replica->Terminate(), 0);
  EXPECT_FALSE(fs::exists(dir.path() / "r" / "relaykvd.http.addr"));
}

// The last column of replica `server_id`'s row of SHOW REPLICAS on `primary`
// (Seconds_Behind_Master), as the CLI prints it in batch mode ("" if absent).
std::string ShowReplicasLag(const Relaykvd& primary, const std::string& server_id) {
  const CliRun run = RunCliOn(primary, {}, "SHOW REPLICAS;\n");
  EXPECT_EQ(run.status, 0) << run.err;
  std::istringstream lines(run.out);
  std::string header, line;
  std::getline(lines, header);
  EXPECT_THAT(header, ::testing::EndsWith("Applied_Gtid\tSeconds_Behind_Master")) << run.out;
  while (std::getline(lines, line)) {
    if (line.rfind(server_id + "\t", 0) == 0) return line.substr(line.rfind('\t') + 1);
  }
  return "";
}

// Per-replica lag in seconds: a replica whose SQL thread is stopped while
// writes flow falls behind by the age of its oldest unapplied event — on the
// primary's /metrics and SHOW REPLICAS — and is back at 0 after START SLAVE.
// Its own Seconds_Behind_Master is NULL meanwhile (MySQL: a thread stopped).
TEST(MetricsProcessTest, ReplicaLagSecondsGrowsWhileItsSqlThreadIsStoppedAndReturnsToZero) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p", {"--http-listen=127.0.0.1:0"});
  ASSERT_NE(primary, nullptr);
  auto replica = StartReplica(dir.path() / "r", *primary, {});
  ASSERT_NE(replica, nullptr);
  const std::string p_http = HttpAddress(*primary);
  ASSERT_FALSE(p_http.empty());
  const std::string series = "relaykv_replica_lag_seconds{server_id=\"2\"}";
  auto lag = [&] { return SampleValue(HttpGet(p_http, "/metrics").body, series); };

  ASSERT_TRUE(primary->Put("first", "v").ok());
  ASSERT_TRUE(WaitFor([&] { return lag() == 0.0; })) << HttpGet(p_http, "/metrics").body;
  EXPECT_EQ(ShowReplicasLag(*primary, "2"), "0");

  ASSERT_TRUE(replica->client().StopReplica(ReplicaThreads::kSql).ok());
  // Writes flow for a bounded while (at most 400 writes, 30 s) until the
  // oldest unapplied one is at least 2 s old as the primary sees it.
  int writes = 0;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (lag().value_or(0) < 2 && writes < 400 && std::chrono::steady_clock::now() < give_up) {
    ASSERT_TRUE(primary->Put("k" + std::to_string(writes++), "v").ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const double behind = lag().value_or(-1);
  EXPECT_GE(behind, 2) << "after " << writes << " writes";
  EXPECT_EQ(replica->ReplicaStatus()["Seconds_Behind_Master"], "NULL");
  // It keeps growing while nothing is applied (same oldest event).
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_TRUE(primary->Put("more", "v").ok());  // a batch, so a fresh report
  EXPECT_TRUE(WaitFor([&] { return lag().value_or(0) >= behind + 1; })) << lag().value_or(-1);
  const std::string shown = ShowReplicasLag(*primary, "2");
  EXPECT_GE(std::atoi(shown.c_str()), 2) << shown;
  HttpReply m = HttpGet(p_http, "/metrics");
  EXPECT_EQ(PromtoolProblems(m.body, dir.path()), "");

  ASSERT_TRUE(replica->client().StartReplica(ReplicaThreads::kSql).ok());
  EXPECT_TRUE(WaitFor([&] { return lag() == 0.0; })) << lag().value_or(-1);
  EXPECT_EQ(ShowReplicasLag(*primary, "2"), "0");
  EXPECT_TRUE(WaitFor([&] { return replica->ReplicaStatus()["Seconds_Behind_Master"] == "0"; }))
      << replica->ReplicaStatus()["Seconds_Behind_Master"];
  EXPECT_TRUE(SameChecksum(*primary, *replica));
}

// Automatic failover's status in /metrics (issue 16 item 9): a node that
// founded a cluster in etcd shows its role, epoch and lease, still valid
// for promtool.
TEST(MetricsProcessTest, CoordinatedPrimaryShowsRoleEpochAndLease) {
  RELAYKV_SKIP_WITHOUT_ETCD();
  TempDir dir;
  auto etcd = EtcdCluster::Start(dir.path() / "etcd", 1);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  auto primary = Relaykvd::Start(
      dir.path() / "p", {"--http-listen=127.0.0.1:0", "--server-id=1",
                         "--etcd=" + (*etcd)->client_endpoints()[0], "--cluster=m"});
  ASSERT_NE(primary, nullptr);
  const std::string http = HttpAddress(*primary);
  ASSERT_FALSE(http.empty());
  std::string body;
  ASSERT_TRUE(WaitFor([&] {
    body = HttpGet(http, "/metrics").body;
    return SampleValue(body, "relaykv_coordinator_role{role=\"primary\"}") == 1.0;
  }, std::chrono::seconds(30))) << body;
  EXPECT_EQ(PromtoolProblems(body, dir.path()), "");
  EXPECT_GE(Sample(body, "relaykv_coordinator_epoch"), 1.0);
  EXPECT_GT(Sample(body, "relaykv_coordinator_lease_valid_seconds"), 0.0);
  EXPECT_EQ(Sample(body, "relaykv_coordinator_elections_won_total"), 1.0);
  EXPECT_EQ(Sample(body, "relaykv_coordinator_refusing"), 0.0);
}

TEST(MetricsProcessTest, NonLoopbackHttpAddressIsRefusedAtStartup) {
  TempDir dir;
  StartupRefusal r = StartExpectingRefusal(dir.path() / "p", {"--http-listen=0.0.0.0:0"});
  EXPECT_TRUE(r.exited) << r.log;
  EXPECT_NE(r.exit_status, 0);
  EXPECT_THAT(r.log, HasSubstr("not a loopback address"));
}

TEST(MetricsProcessTest, HttpPortInUseStopsStartupWithAClearError) {
  TempDir dir;
  // A port held by someone else.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  const std::string held = "127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
  StartupRefusal r = StartExpectingRefusal(dir.path() / "p", {"--http-listen=" + held});
  ::close(fd);
  EXPECT_TRUE(r.exited) << r.log;
  EXPECT_NE(r.exit_status, 0);
  EXPECT_THAT(r.log, HasSubstr("cannot listen for HTTP on " + held));
}

}  // namespace
}  // namespace relaykv::testing
