// server/node_metrics.cc: what Node::MetricsText() and Node::Health() say
// about embedded nodes, and that the values move with the work done.
#include <filesystem>
#include <optional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "relaykv/node.h"
#include "storage/fault_injection.h"
#include "tests/common/prometheus_text.h"
#include "tests/common/temp_dir.h"
#include "tests/server/node_harness.h"

namespace relaykv {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using testing::SampleValue;
using testing::TempDir;
using testing::WaitFor;

double Value(const Node& n, const std::string& series) {
  auto v = SampleValue(n.MetricsText(), series);
  EXPECT_TRUE(v.has_value()) << series << " missing from:\n" << n.MetricsText();
  return v.value_or(-1);
}

TEST(NodeMetricsTest, CommitsGroupsAndFsyncsAreCountedOnAPrimary) {
  TempDir dir;
  NodeOptions o;
  o.data_dir = dir.path();
  auto node = *Node::Open(o);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(node->Put("k" + std::to_string(i), "v").ok());
  ASSERT_FALSE(node->Put("", "v").ok());  // bad input: refused before it counts
  // Semi-sync is disabled: every write is answered without an ACK.
  EXPECT_EQ(Value(*node, "relaykv_commit_duration_seconds_count{wait_point=\"async\"}"), 5);
  EXPECT_EQ(Value(*node, "relaykv_commit_duration_seconds_count{wait_point=\"AFTER_SYNC\"}"), 0);
  EXPECT_EQ(Value(*node, "relaykv_commit_duration_seconds_bucket{wait_point=\"async\",le=\"+Inf\"}"), 5);
  EXPECT_GT(Value(*node, "relaykv_commit_duration_seconds_sum{wait_point=\"async\"}"), 0);
  EXPECT_EQ(Value(*node, "relaykv_binlog_events_total"), 5);
  EXPECT_EQ(Value(*node, "relaykv_binlog_write_failures_total"), 0);
  EXPECT_EQ(Value(*node, "relaykv_binlog_rotation_failures_total"), 0);
  EXPECT_EQ(Value(*node, "relaykv_binlog_group_events_sum"), 5);  // every event in one group
  EXPECT_GE(Value(*node, "relaykv_binlog_fsync_duration_seconds_count"), 5);  // sync_binlog=1
  EXPECT_EQ(Value(*node, "relaykv_relay_log_fsync_duration_seconds_count"), 0);
  EXPECT_EQ(Value(*node, "relaykv_binlog_last_seq"), 5);
  EXPECT_EQ(Value(*node, "relaykv_applied_seq"), 5);
  EXPECT_GT(Value(*node, "relaykv_binlog_bytes"), 0);
  EXPECT_EQ(Value(*node, "relaykv_binlog_segments"), 1);
  EXPECT_EQ(Value(*node, "relaykv_up"), 1);
  EXPECT_EQ(Value(*node, "relaykv_node_info{server_id=\"1\",role=\"primary\"}"), 1);
  EXPECT_GE(Value(*node, "relaykv_rocksdb_memtable_bytes"), 0);
  EXPECT_EQ(Value(*node, "relaykv_semisync_master_status"), 0);
}

TEST(NodeMetricsTest, ReadOnlyPrimaryIsNotServingAndSaysWhy) {
  TempDir dir;
  NodeOptions o;
  o.data_dir = dir.path();
  auto node = *Node::Open(o);
  NodeHealth h = node->Health();
  EXPECT_TRUE(h.serving);
  EXPECT_TRUE(h.writable_primary);
  ASSERT_TRUE(node->SetVariable("read_only", "ON", false).ok());
  EXPECT_FALSE(node->Put("k", "v").ok());
  h = node->Health();
  EXPECT_FALSE(h.serving);
  EXPECT_FALSE(h.writable_primary);
  EXPECT_THAT(h.reason, HasSubstr("read_only"));
  EXPECT_EQ(Value(*node, "relaykv_commit_errors_total"), 1);
  EXPECT_EQ(Value(*node, "relaykv_up"), 0);
}

// Review s32-late F3: after a failed fdatasync the binlog refuses every
// write until restart; the node stays up (frozen reads), so health and
// SHOW STATUS must say it cannot do its job.
TEST(NodeMetricsTest, BinlogRefusingWritesUntilRestartIsNotServingAndSaysWhy) {
  auto faults = FaultInjection::Install();
  ASSERT_TRUE(faults.ok()) << faults.status();
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "binlog");
  ASSERT_TRUE((*faults)->TrackDir(dir.path() / "binlog").ok());
  NodeOptions o;
  o.data_dir = dir.path();
  auto node = *Node::Open(o);
  ASSERT_TRUE(node->Put("a", "1").ok());
  EXPECT_TRUE(node->Health().serving);
  EXPECT_THAT(node->ShowStatus("Binlog_error"), ElementsAre(Pair("Binlog_error", "")));
  (*faults)->FailNextSyncs(1);
  EXPECT_FALSE(node->Put("b", "2").ok());
  const NodeHealth h = node->Health();
  EXPECT_FALSE(h.serving);
  EXPECT_FALSE(h.writable_primary);
  EXPECT_THAT(h.reason, HasSubstr("binlog refuses writes until restart"));
  EXPECT_THAT(node->ShowStatus("Binlog_error"),
              ElementsAre(Pair("Binlog_error", HasSubstr("refuses writes until restart"))));
  EXPECT_EQ(Value(*node, "relaykv_up"), 0);
  auto a = node->Get("a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->value_or(""), "1") << "reads are still served";
  node.reset();  // before the fault registry goes
}

TEST(NodeMetricsTest, SemiSyncTimeoutIsCountedAndTheCommitIsAsync) {
  TempDir dir;
  NodeOptions o;
  o.data_dir = dir.path();
  // No replica, and wait_no_slave ON (the default): the commit waits out the timeout.
  o.variables = {{"rpl_semi_sync_master_enabled", "ON"}, {"rpl_semi_sync_master_timeout", "100"}};
  auto node = *Node::Open(o);
  ASSERT_TRUE(node->Put("k", "v").ok());
  EXPECT_EQ(Value(*node, "relaykv_semisync_master_timeouts_total"), 1);
  EXPECT_EQ(Value(*node, "relaykv_semisync_master_off_switches_total"), 1);
  EXPECT_EQ(Value(*node, "relaykv_semisync_master_no_tx_total"), 1);
  EXPECT_EQ(Value(*node, "relaykv_semisync_master_status"), 0);
  EXPECT_EQ(Value(*node, "relaykv_commit_duration_seconds_count{wait_point=\"async\"}"), 1);
  // It waited the timeout: at least 0.1 s, in the bucket up to 0.25 s or above.
  EXPECT_GE(Value(*node, "relaykv_commit_duration_seconds_sum{wait_point=\"async\"}"), 0.1);
  EXPECT_EQ(Value(*node, "relaykv_commit_duration_seconds_bucket{wait_point=\"async\",le=\"0.1\"}"), 0);
}

TEST(NodeMetricsTest, SemiSyncPairShowsWaitPointsLagAndReplicaThreads) {
  TempDir dir;
  auto primary = testing::OpenServingNode(dir.path() / "p", {{"rpl_semi_sync_master_enabled", "ON"}});
  ASSERT_NE(primary, nullptr);
  auto replica = testing::OpenServingNode(
      dir.path() / "r", {{"server_id", "2"}, {"rpl_semi_sync_slave_enabled", "ON"}},
      testing::Address(*primary));
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(WaitFor([&] { return testing::Status(*primary, "Rpl_semi_sync_master_clients") == "1"; }));

  for (int i = 0; i < 3; ++i) ASSERT_TRUE(primary->Put("a" + std::to_string(i), "v").ok());
  ASSERT_TRUE(primary->SetVariable("rpl_semi_sync_master_wait_point", "AFTER_COMMIT", false).ok());
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(primary->Put("b" + std::to_string(i), "v").ok());

  EXPECT_EQ(Value(*primary, "relaykv_commit_duration_seconds_count{wait_point=\"AFTER_SYNC\"}"), 3);
  EXPECT_EQ(Value(*primary, "relaykv_commit_duration_seconds_count{wait_point=\"AFTER_COMMIT\"}"), 2);
  EXPECT_EQ(Value(*primary, "relaykv_semisync_master_yes_tx_total"), 5);
  EXPECT_EQ(Value(*primary, "relaykv_semisync_master_status"), 1);
  EXPECT_EQ(Value(*primary, "relaykv_semisync_master_clients"), 1);
  // Every write was ACKed before it was answered: no lag.
  EXPECT_EQ(Value(*primary, "relaykv_replica_lag_seqs{server_id=\"2\"}"), 0);
  // The replica reports its SQL thread (ApplyProgress): caught up, 0 s behind.
  EXPECT_TRUE(WaitFor([&] {
    return SampleValue(primary->MetricsText(), "relaykv_replica_lag_seconds{server_id=\"2\"}") == 0.0;
  })) << primary->MetricsText();
  EXPECT_TRUE(WaitFor([&] {
    auto r = primary->Replicas();
    return r.size() == 1 && r[0].lag_seconds == std::optional<int64_t>(0) && r[0].applied.seq == 5;
  }));

  EXPECT_EQ(Value(*replica, "relaykv_node_info{server_id=\"2\",role=\"replica\"}"), 1);
  EXPECT_EQ(Value(*replica, "relaykv_replica_io_running"), 1);
  EXPECT_EQ(Value(*replica, "relaykv_replica_sql_running"), 1);
  EXPECT_EQ(Value(*replica, "relaykv_semisync_slave_status"), 1);
  EXPECT_GE(Value(*replica, "relaykv_relay_log_fsync_duration_seconds_count"), 1);
  EXPECT_EQ(Value(*replica, "relaykv_binlog_fsync_duration_seconds_count"), 0);
  EXPECT_EQ(Value(*replica, "relaykv_relay_log_group_events_sum"), 5);
  EXPECT_TRUE(replica->Health().serving);
  EXPECT_FALSE(replica->Health().writable_primary);

  ASSERT_TRUE(replica->StopReplica(ReplicaThreads::kSql).ok());
  NodeHealth h = replica->Health();
  EXPECT_FALSE(h.serving);
  EXPECT_THAT(h.reason, HasSubstr("SQL thread"));
  EXPECT_EQ(Value(*replica, "relaykv_replica_sql_running"), 0);
  EXPECT_FALSE(SampleValue(replica->MetricsText(), "relaykv_replica_seconds_behind_source").has_value());
  ASSERT_TRUE(replica->StopReplica(ReplicaThreads::kIo).ok());
  EXPECT_THAT(replica->Health().reason, HasSubstr("IO thread"));
}

}  // namespace
}  // namespace relaykv
