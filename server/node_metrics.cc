// Node's monitoring side: Health() and MetricsText(). Apart from the
// histograms of NodeMetrics (recorded on the hot paths), every value here is
// read at scrape time from what SHOW STATUS, SHOW SLAVE STATUS, SHOW BINARY
// LOGS and the replica registry already give: nothing is counted twice.
#include <charconv>
#include <map>

#include "server/node_impl.h"

namespace relaykv {
namespace {

using Type = Exposition::Type;

uint64_t ToUint(const std::string& s) {
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// The SHOW STATUS counters as Prometheus metrics: (status row suffix,
// metric name, type, help, divisor to the metric's unit).
struct SemiSyncRow {
  std::string_view row;
  std::string_view metric;
  Type type;
  std::string_view help;
  double divisor = 1;  // µs counters: 1e6 (seconds)
};
constexpr SemiSyncRow kSemiSyncRows[] = {
    {"clients", "relaykv_semisync_master_clients", Type::kGauge,
     "Semi-sync replicas connected now (Rpl_semi_sync_master_clients)."},
    {"wait_sessions", "relaykv_semisync_master_wait_sessions", Type::kGauge,
     "Commits waiting for replica ACKs now (Rpl_semi_sync_master_wait_sessions)."},
    {"yes_tx", "relaykv_semisync_master_yes_tx_total", Type::kCounter,
     "Commits ACKed by enough replicas (Rpl_semi_sync_master_yes_tx)."},
    {"no_tx", "relaykv_semisync_master_no_tx_total", Type::kCounter,
     "Commits answered asynchronously while semi-sync was enabled: OFF on entry or timed out "
     "(Rpl_semi_sync_master_no_tx)."},
    {"no_times", "relaykv_semisync_master_off_switches_total", Type::kCounter,
     "Switches of semi-sync to OFF: a timeout, a replica leaving with wait_no_slave OFF, or "
     "SET GLOBAL (Rpl_semi_sync_master_no_times)."},
    {"tx_waits", "relaykv_semisync_master_tx_waits_total", Type::kCounter,
     "Commit waits ended by an ACK (Rpl_semi_sync_master_tx_waits)."},
    {"tx_wait_time", "relaykv_semisync_master_tx_wait_seconds_total", Type::kCounter,
     "Time commits waited for ACKs, waits ended by an ACK (Rpl_semi_sync_master_tx_wait_time).",
     1e6},
    {"net_waits", "relaykv_semisync_master_net_waits_total", Type::kCounter,
     "ACKs received (Rpl_semi_sync_master_net_waits)."},
    {"net_wait_time", "relaykv_semisync_master_net_wait_seconds_total", Type::kCounter,
     "Time from sending an event batch to its ACK (Rpl_semi_sync_master_net_wait_time).", 1e6},
    {"wait_pos_backtraverse", "relaykv_semisync_master_wait_pos_backtraverse_total",
     Type::kCounter,
     "Waiters that arrived below the lowest position already waited for "
     "(Rpl_semi_sync_master_wait_pos_backtraverse)."},
    {"timefunc_failures", "relaykv_semisync_master_timefunc_failures_total", Type::kCounter,
     "Times the clock went backwards (Rpl_semi_sync_master_timefunc_failures)."},
};

// RocksDB integer properties worth a graph (summed over column families).
struct RocksRow {
  std::string_view property;
  std::string_view metric;
  std::string_view help;
};
constexpr RocksRow kRocksRows[] = {
    {"rocksdb.estimate-live-data-size", "relaykv_rocksdb_live_data_bytes",
     "RocksDB's estimate of the live data size in bytes."},
    {"rocksdb.total-sst-files-size", "relaykv_rocksdb_sst_files_bytes",
     "Size of all RocksDB SST files in bytes (live data plus what compaction has not dropped)."},
    {"rocksdb.cur-size-all-mem-tables", "relaykv_rocksdb_memtable_bytes",
     "Bytes in RocksDB memtables (active and unflushed immutable)."},
    {"rocksdb.estimate-num-keys", "relaykv_rocksdb_estimated_keys",
     "RocksDB's estimate of the number of keys."},
};

void CommitHistograms(const NodeMetrics& m, Exposition* out) {
  constexpr std::string_view kName = "relaykv_commit_duration_seconds";
  out->Family(kName, Type::kHistogram,
              "Latency of writes answered OK, from arrival to answer, by what decided the answer: "
              "replica ACKs under AFTER_SYNC or AFTER_COMMIT, or none (async: semi-sync "
              "disabled, OFF or timed out).");
  out->HistogramSamples(kName, {{"wait_point", "AFTER_SYNC"}}, m.commit_after_sync.TakeSnapshot(),
                        1e9);
  out->HistogramSamples(kName, {{"wait_point", "AFTER_COMMIT"}},
                        m.commit_after_commit.TakeSnapshot(), 1e9);
  out->HistogramSamples(kName, {{"wait_point", "async"}}, m.commit_async.TakeSnapshot(), 1e9);
  out->Counter("relaykv_commit_errors_total",
               "Writes answered with an error after being accepted (refused by role, read_only "
               "or a stopped state machine; failed; cancelled; deadline).",
               m.failed_commits.load(std::memory_order_relaxed));
}

void LogHistograms(const NodeMetrics& m, Exposition* out) {
  auto one = [&](std::string_view name, std::string_view help, const Histogram& h, double divisor) {
    out->Family(name, Type::kHistogram, help);
    out->HistogramSamples(name, {}, h.TakeSnapshot(), divisor);
  };
  one("relaykv_binlog_fsync_duration_seconds",
      "Latency of the binlog's fdatasync calls (group commit, rotation) while a primary.",
      m.binlog_fsync, 1e9);
  one("relaykv_relay_log_fsync_duration_seconds",
      "Latency of the relay log's fdatasync calls (before an ACK under sync_relay_log=1) while a "
      "replica.",
      m.relay_log_fsync, 1e9);
  one("relaykv_binlog_group_events", "Events per binlog group commit (one write, one fsync).",
      m.binlog_group, 1);
  one("relaykv_relay_log_group_events", "Events per relay log group (one write, one fsync).",
      m.relay_log_group, 1);
  one("relaykv_write_stream_message_writes",
      "Writes per WriteStream message taken (pipelined clients combine concurrent writes).",
      m.write_stream_message, 1);
}

}  // namespace

NodeHealth Node::Health() const {
  CallScope scope(impl_.get());
  if (!scope.ok()) return {false, false, "the node is shutting down"};
  // Sticky until a restart (review s32-late F3): the node stays up and
  // serves frozen reads, but neither takes writes nor follows its primary.
  // Read before mu_, which every call's Enter() takes.
  const absl::Status log_error = impl_->binlog_->WriteError();
  const absl::Status flush_refusal = impl_->state_->FlushRefusal();
  std::lock_guard l(impl_->mu_);
  if (impl_->promoting_) return {false, false, "RESET SLAVE ALL is in progress"};
  if (!log_error.ok()) {
    return {false, false,
            std::string(impl_->primary_.empty() ? "binlog: " : "relay log: ") +
                std::string(log_error.message())};
  }
  if (!flush_refusal.ok()) {
    return {false, false, "state machine: " + std::string(flush_refusal.message())};
  }
  if (impl_->primary_.empty()) {
    if (!impl_->applier_->running()) {
      return {false, false,
              "primary refuses writes: the state machine stopped applying: " +
                  impl_->applier_->last_error().ToString()};
    }
    if (impl_->vars_.GetBool("read_only")) return {false, false, "primary has read_only=ON"};
    // GET /primary must not send writes to a fenced old primary.
    if (auto s = impl_->CheckNotRevoked(); !s.ok()) return {false, false, std::string(s.message())};
    return {true, true, ""};
  }
  if (impl_->io_ == nullptr) return {false, false, "replica has no IO thread"};
  const ReplicaIoStatus io = impl_->io_->status();
  if (io.state != ReplicaIoStatus::State::kYes) {
    std::string why = "replica IO thread is ";
    why += io.state == ReplicaIoStatus::State::kConnecting ? "connecting to " + impl_->primary_
                                                            : std::string("not running");
    if (!io.last_error.empty()) why += " (last error: " + io.last_error + ")";
    return {false, false, why};
  }
  if (!impl_->applier_->running()) {
    const absl::Status e = impl_->applier_->last_error();
    return {false, false,
            "replica SQL thread is not running" + (e.ok() ? "" : " (last error: " + e.ToString() + ")")};
  }
  return {true, false, ""};
}

std::string Node::MetricsText() const {
  CallScope scope(impl_.get());
  if (!scope.ok()) return "";
  Exposition out;
  const bool replica = is_replica();
  out.Family("relaykv_node_info", Type::kGauge,
             "Always 1; labels: this node's server_id and role (primary or replica).");
  out.Sample("relaykv_node_info",
             {{"server_id", impl_->vars_.Get("server_id")}, {"role", replica ? "replica" : "primary"}},
             uint64_t{1});
  const NodeHealth health = Health();
  out.Gauge("relaykv_up", "1 when the node serves its role (what GET /healthz answers 200 for).",
            health.serving ? 1 : 0);

  CommitHistograms(impl_->metrics_, &out);
  LogHistograms(impl_->metrics_, &out);

  // SHOW STATUS, by name.
  std::map<std::string, std::string> status;
  for (auto& [name, value] : ShowStatus("")) status.emplace(name, value);
  out.Counter("relaykv_binlog_events_total",
              "Events appended to this node's binlog (a replica's: its relay log) since start "
              "(Binlog_events).",
              ToUint(status["Binlog_events"]));
  out.Counter("relaykv_binlog_write_failures_total",
              "Binlog (relay log) group writes that failed since start, nothing of them written: "
              "a full disk (Binlog_write_failures).",
              ToUint(status["Binlog_write_failures"]));
  out.Counter("relaykv_binlog_rotation_failures_total",
              "Binlog (relay log) rotations that failed since start and were tried again later; "
              "the active segment grows past max_binlog_size meanwhile (Binlog_rotation_failures).",
              ToUint(status["Binlog_rotation_failures"]));
  const Gtid last = impl_->binlog_->LastVisible();
  out.Gauge("relaykv_binlog_last_seq", "Seq of the last visible (durable) binlog event.",
            static_cast<double>(last.seq));
  out.Gauge("relaykv_applied_seq", "Seq of the last event applied to the state machine.",
            static_cast<double>(impl_->state_->Applied().seq));
  out.Gauge("relaykv_promised_epoch",
            "Durable promised epoch (Rpl_promised_epoch): no primary of an older epoch is followed.",
            static_cast<double>(impl_->promise_->value()));
  out.Gauge("relaykv_revoked_primary",
            "1 while this node is a primary whose epoch was revoked (Rpl_revoked_primary).",
            impl_->revoked_.load() ? 1.0 : 0.0);
  // Automatic failover (README "Automatic failover"): only with --etcd.
  if (const auto role = status.find("Coordinator_role"); role != status.end()) {
    out.Family("relaykv_coordinator_role", Type::kGauge,
               "Automatic failover: 1 for the role etcd gave this node (primary, replica, or "
               "unknown: not read yet, lease lost, or refusing; Coordinator_role).");
    for (const char* r : {"primary", "replica", "unknown"}) {
      out.Sample("relaykv_coordinator_role", {{"role", r}}, uint64_t{role->second == r ? 1u : 0u});
    }
    out.Gauge("relaykv_coordinator_epoch", "Newest epoch in etcd's history (Coordinator_epoch).",
              static_cast<double>(ToUint(status["Coordinator_epoch"])));
    out.Gauge("relaykv_coordinator_lease_valid_seconds",
              "How long this primary may still answer a commit OK by its leader lease; 0 when it "
              "does not lead (Coordinator_lease_valid_ms).",
              static_cast<double>(ToUint(status["Coordinator_lease_valid_ms"])) / 1000.0);
    out.Counter("relaykv_coordinator_elections_won_total",
                "Epochs this node claimed since it started (Coordinator_elections_won).",
                ToUint(status["Coordinator_elections_won"]));
    out.Gauge("relaykv_coordinator_refusing",
              "1 while this node neither leads nor follows; why: SHOW STATUS "
              "Coordinator_refusal.",
              status["Coordinator_refusal"].empty() ? 0.0 : 1.0);
  }
  uint64_t bytes = 0, segments = 0;
  for (const BinaryLogInfo& b : BinaryLogs()) {
    bytes += b.size_bytes;
    ++segments;
  }
  out.Gauge("relaykv_binlog_bytes", "Bytes in the binlog's segment files (SHOW BINARY LOGS).",
            static_cast<double>(bytes));
  out.Gauge("relaykv_binlog_segments", "Binlog segment files (SHOW BINARY LOGS).",
            static_cast<double>(segments));

  const std::string p = "Rpl_semi_sync_master_";
  out.Gauge("relaykv_semisync_master_status",
            "1 while semi-sync is ON on this primary, 0 when OFF (Rpl_semi_sync_master_status).",
            status[p + "status"] == "ON" ? 1 : 0);
  for (const SemiSyncRow& r : kSemiSyncRows) {
    const uint64_t v = ToUint(status[p + std::string(r.row)]);
    out.Family(r.metric, r.type, r.help);
    if (r.divisor == 1) {
      out.Sample(r.metric, {}, v);
    } else {
      out.Sample(r.metric, {}, static_cast<double>(v) / r.divisor);
    }
  }
  out.Counter("relaykv_semisync_master_timeouts_total",
              "Switches of semi-sync to OFF because a commit waited rpl_semi_sync_master_timeout "
              "ms for ACKs (part of the off switches).",
              impl_->semisync_->timeouts());
  out.Gauge("relaykv_semisync_slave_status",
            "1 while this replica's IO thread runs connected as a semi-sync replica "
            "(Rpl_semi_sync_slave_status).",
            status["Rpl_semi_sync_slave_status"] == "ON" ? 1 : 0);

  // Primary side: each connected replica's lag.
  out.Gauge("relaykv_replicas_connected", "Replication streams connected to this node.",
            static_cast<double>(ToUint(status["Replicas_connected"])));
  out.Family("relaykv_replica_lag_seqs", Type::kGauge,
             "Per connected replica (server_id): binlog events this node has that the replica "
             "has not ACKed as held in its relay log.");
  const std::vector<ReplicaSummary> replicas = Replicas();
  for (const ReplicaSummary& r : replicas) {
    const uint64_t lag = last.seq > r.acked.seq ? last.seq - r.acked.seq : 0;
    out.Sample("relaykv_replica_lag_seqs", {{"server_id", std::to_string(r.server_id)}}, lag);
  }
  out.Family("relaykv_replica_lag_seconds", Type::kGauge,
             "Per connected replica (server_id): how far its SQL thread is behind, as it "
             "reports: now minus the timestamp of the oldest event it holds unapplied, 0 when "
             "caught up (its Seconds_Behind_Master, also while its SQL thread is stopped); "
             "absent until the replica reports.");
  for (const ReplicaSummary& r : replicas) {
    if (!r.lag_seconds.has_value()) continue;
    out.Sample("relaykv_replica_lag_seconds", {{"server_id", std::to_string(r.server_id)}},
               static_cast<uint64_t>(*r.lag_seconds));
  }

  // Replica side: SHOW SLAVE STATUS.
  if (replica) {
    std::map<std::string, std::string> rs;
    for (auto& [name, value] : ReplicaStatus()) rs.emplace(name, value);
    out.Gauge("relaykv_replica_io_running",
              "1 while the replica's IO thread is connected to its primary (Slave_IO_Running "
              "Yes).",
              rs["Slave_IO_Running"] == "Yes" ? 1 : 0);
    out.Gauge("relaykv_replica_sql_running",
              "1 while the replica's SQL thread applies (Slave_SQL_Running).",
              rs["Slave_SQL_Running"] == "Yes" ? 1 : 0);
    out.Family("relaykv_replica_seconds_behind_source", Type::kGauge,
               "Seconds_Behind_Master: age of the oldest received event not yet applied, 0 when "
               "caught up; absent while a replica thread is stopped (NULL).");
    if (const std::string& behind = rs["Seconds_Behind_Master"]; behind != "NULL") {
      out.Sample("relaykv_replica_seconds_behind_source", {}, ToUint(behind));
    }
  }

  for (const RocksRow& r : kRocksRows) {
    if (auto v = impl_->state_->IntProperty(std::string(r.property)); v.has_value()) {
      out.Gauge(r.metric, r.help, static_cast<double>(*v));
    }
  }
  return out.text();
}

}  // namespace relaykv
