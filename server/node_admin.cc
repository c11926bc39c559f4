// Node's administration operations: variables, status, replica control,
// checksum and binlog listing/purge.
#include <ctime>

#include "server/clone_service.h"
#include "server/master_info.h"
#include "absl/strings/ascii.h"
#include "server/node_impl.h"
#include "server/reply_guards.h"
#include "server/test_pause.h"
#include "storage/binlog_segments.h"
#include "spdlog/spdlog.h"

namespace relaykv {
namespace {

std::string Timestamp(int64_t us) {
  if (us == 0) return "";
  std::time_t t = static_cast<std::time_t>(us / 1000000);
  std::tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%y%m%d %H:%M:%S", &tm);  // MySQL's format (UTC)
  return buf;
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

NameValues Filter(NameValues rows, std::string_view like) {
  std::erase_if(rows, [&](const auto& r) { return !like.empty() && !SqlLike(like, r.first); });
  std::sort(rows.begin(), rows.end());
  return rows;
}

absl::Status Promoting() {
  return absl::FailedPreconditionError("RESET SLAVE ALL is in progress on this node");
}

// " IO_THREAD" / " SQL_THREAD" / "" as the statement spells it, for the log.
const char* ThreadsSuffix(ReplicaThreads which) {
  return which == ReplicaThreads::kIo ? " IO_THREAD" : which == ReplicaThreads::kSql ? " SQL_THREAD" : "";
}

// Why the state machine stopped applying, and why it no longer flushes.
std::string StateMachineError(const absl::Status& applier, const absl::Status& flush) {
  std::string out = applier.ok() ? "" : applier.ToString();
  if (!flush.ok()) out += (out.empty() ? "" : "; ") + std::string(flush.message());
  return out;
}

absl::Status NotAReplica() {
  return absl::FailedPreconditionError(
      "this node is not a replica; use CHANGE MASTER TO MASTER_HOST=..., MASTER_PORT=... first");
}

}  // namespace

absl::Status Node::SetVariable(std::string_view name, std::string_view value, bool persist) {
  CallScope scope(impl_.get());
  if (!scope.ok()) return scope.status();
  // The election counts on the N recorded for the epoch (history/<E>): a
  // lower N at runtime would make its revoke quorum too small.
  const std::string lower = absl::AsciiStrToLower(std::string(name));
  if (impl_->coordinator_ && (lower == "rpl_semi_sync_master_wait_for_slave_count" ||
                              lower == "rpl_semi_sync_source_wait_for_replica_count")) {
    return absl::FailedPreconditionError(
        std::string(name) + " cannot change at runtime with automatic failover (etcd records it "
        "per epoch): set it in the config file and restart the nodes");
  }
  auto canonical = impl_->vars_.SetGlobal(name, value);
  if (!canonical.ok()) return canonical.status();
  if (persist) {
    return impl_->persisted_->Persist(*canonical, impl_->vars_);
  }
  return absl::OkStatus();
}

absl::Status Node::ResetPersist(std::string_view name) {
  CallScope scope(impl_.get());
  if (!scope.ok()) return scope.status();
  return impl_->persisted_->Forget(std::string(name));
}

NameValues Node::ShowVariables(std::string_view like) const {
  CallScope scope(impl_.get());
  if (!scope.ok()) return {};
  return impl_->vars_.List(like);
}

NameValues Node::ShowStatus(std::string_view like) const {
  CallScope scope(impl_.get());
  if (!scope.ok()) return {};
  const BinlogStats b = impl_->binlog_->stats();
  const WriteAdmission::Stats admission = impl_->admission_.stats();
  const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::steady_clock::now() - impl_->started_);
  NameValues rows = {
      {"Applied_gtid", impl_->state_->Applied().ToString()},
      // README "Limits": calls holding a max_connections slot now, and those
      // refused for it; writes admitted and waiting (max_inflight_writes).
      {"Threads_connected", std::to_string(impl_->connections_.active())},
      {"Connection_errors_max_connections", std::to_string(impl_->connections_.refused())},
      {"Reply_bytes_waiting",
       std::to_string(impl_->reply_guards_ ? impl_->reply_guards_->reply_bytes() : 0)},
      {"Write_admission_in_flight", std::to_string(admission.in_flight)},
      {"Write_admission_queued", std::to_string(admission.queued)},
      {"Write_admission_refused", std::to_string(admission.refused)},
      {"Write_admission_waits", std::to_string(admission.waits)},
      {"Binlog_events", std::to_string(b.events)},
      {"Binlog_fsyncs", std::to_string(b.syncs)},
      {"Binlog_gtid", impl_->binlog_->LastVisible().ToString()},
      {"Binlog_groups", std::to_string(b.groups)},
      // A full disk (README "A full disk"): groups refused, and rotations
      // put off (the active segment grows past max_binlog_size meanwhile).
      {"Binlog_write_failures", std::to_string(b.failed_groups)},
      {"Binlog_rotation_failures", std::to_string(b.failed_rotations)},
      // Empty unless the binlog (a replica's: its relay log) refuses every
      // write until restart, and why.
      {"Binlog_error", std::string(impl_->binlog_->WriteError().message())},
      {"Replicas_connected", std::to_string(impl_->registry_.List().size())},
      // Fencing (README "Failover"): the durable promised epoch, and ON
      // while this node is a primary whose epoch is below it (no writes, no
      // commit acknowledged).
      {"Rpl_promised_epoch", std::to_string(impl_->promise_->value())},
      // ON while this node may have ACKed relay-log events not on disk
      // (sync_relay_log=0; README "Durability").
      {"Rpl_acked_unsynced", impl_->acked_unsynced_->set() ? "ON" : "OFF"},
      {"Rpl_revoked_primary", impl_->revoked_.load() ? "ON" : "OFF"},
      // Empty while the state machine applies and flushes; else why it
      // stopped (on a primary writes are refused until it applies again) or
      // why it no longer flushes (it stops taking writes; restart).
      {"State_machine_error", StateMachineError(impl_->applier_->running() ? absl::OkStatus()
                                                                           : impl_->applier_->last_error(),
                                                  impl_->state_->FlushRefusal())},
      {"Uptime", std::to_string(uptime.count())},
  };
  for (auto& row : impl_->semisync_->Status()) rows.push_back(std::move(row));
  // Automatic failover (README "Automatic failover"): role, epoch, lease,
  // and why this node neither leads nor follows.
  if (impl_->coordinator_) {
    for (auto& row : impl_->coordinator_->Status()) rows.push_back(std::move(row));
  }
  bool slave_on = false;
  {
    std::lock_guard l(impl_->mu_);
    if (impl_->io_ != nullptr) {
      const ReplicaIoStatus io = impl_->io_->status();
      slave_on = io.semi_sync && io.state == ReplicaIoStatus::State::kYes;
    }
  }
  rows.emplace_back("Rpl_semi_sync_slave_status", slave_on ? "ON" : "OFF");
  // The receiving side: what --clone-from did at this start.
  const auto& clone = impl_->clone_result_;
  rows.emplace_back("Clone_state", !clone ? "NONE"
                                   : clone->already_cloned ? "ALREADY_CLONED"
                                                           : "COMPLETED");
  rows.emplace_back("Clone_source", clone ? clone->source : "");
  rows.emplace_back("Clone_gtid", clone && !clone->already_cloned ? clone->gtid.ToString() : "");
  rows.emplace_back("Clone_bytes_received", std::to_string(clone ? clone->bytes : 0));
  rows.emplace_back("Clone_chunks_refused", std::to_string(clone ? clone->chunks_refused : 0));
  rows.emplace_back("Clone_reconnects", std::to_string(clone ? clone->reconnects : 0));
  // The source side.
  if (impl_->clone_service_) {
    const CloneSourceStats cs = impl_->clone_service_->stats();
    rows.emplace_back("Clone_source_sessions", std::to_string(cs.sessions));
    rows.emplace_back("Clone_source_sessions_started", std::to_string(cs.started));
    rows.emplace_back("Clone_source_sessions_expired", std::to_string(cs.expired));
    rows.emplace_back("Clone_source_bytes_sent", std::to_string(cs.bytes_sent));
  }
  return Filter(std::move(rows), like);
}

absl::Status Node::StartReplica(ReplicaThreads which) {
  CallScope scope(impl_.get());
  if (!scope.ok()) return scope.status();
  // Before etcd said whom to follow, its IO thread would ACK too early.
  if (impl_->held_.load() && which != ReplicaThreads::kSql) {
    if (auto s = impl_->CheckRoleNotManaged("START SLAVE on a node whose role is not known yet");
        !s.ok()) {
      return s;
    }
  }
  std::lock_guard l(impl_->mu_);
  if (impl_->promoting_) return Promoting();
  if (impl_->io_ == nullptr) return NotAReplica();
  if (which != ReplicaThreads::kIo && !impl_->applier_->running()) {
    if (auto s = impl_->applier_->Start(); !s.ok()) return s;
  }
  if (which != ReplicaThreads::kSql) impl_->io_->Start();
  spdlog::info("START SLAVE{}: applied {}, relay log at {}", ThreadsSuffix(which),
               impl_->state_->Applied().ToString(), impl_->binlog_->LastVisible().ToString());
  return absl::OkStatus();
}

absl::Status Node::StopReplica(ReplicaThreads which) {
  CallScope scope(impl_.get());
  if (!scope.ok()) return scope.status();
  std::lock_guard l(impl_->mu_);
  // Stopping the SQL thread would fail the promotion halfway.
  if (impl_->promoting_) return Promoting();
  if (impl_->io_ == nullptr) return NotAReplica();
  if (which != ReplicaThreads::kSql) impl_->io_->Stop();
  if (which != ReplicaThreads::kIo) impl_->applier_->Stop();
  spdlog::info("STOP SLAVE{}: applied {}, relay log at {}", ThreadsSuffix(which),
               impl_->state_->Applied().ToString(), impl_->binlog_->LastVisible().ToString());
  return absl::OkStatus();
}

absl::Status Node::ChangePrimary(std::string host, uint32_t port, const ChangeMasterTls& tls) {
  CallScope scope(impl_.get());
  if (!scope.ok()) return scope.status();
  // Refused before anything changes, naming the bad value: a control
  // character would be saved in master.info and break the next start.
  if (auto s = ValidatePrimaryHost(host); !s.ok()) return s;
  if (auto s = ValidatePrimaryPort(port); !s.ok()) return s;
  const std::string address = host + ":" + std::to_string(port);
  if (auto s = ValidateHostPort(address); !s.ok()) return s;
  if (auto s = impl_->CheckRoleNotManaged("CHANGE MASTER"); !s.ok()) return s;
  absl::Status changed = ChangePrimaryLocked(address, tls);
  // A revoked primary that now follows another is fenced no more: it is a
  // replica, and replicas refuse writes anyway.
  if (changed.ok()) impl_->UpdatePrimaryFence();
  return changed;
}

absl::Status Node::ChangePrimaryLocked(const std::string& address, const ChangeMasterTls& tls) {
  std::lock_guard l(impl_->mu_);
  if (impl_->promoting_) return Promoting();
  if (impl_->io_ != nullptr && impl_->io_->running()) {
    return absl::FailedPreconditionError(
        "This operation cannot be performed with a running replica io thread; run STOP SLAVE "
        "IO_THREAD first");
  }
  // MASTER_SSL* not named keep their values (MySQL).
  auto current = LoadMasterInfo(impl_->options_.data_dir);
  if (!current.ok()) return current.status();
  current->address = address;
  const MasterInfo next = WithTls(*current, tls);
  if (auto s = SaveMasterInfo(impl_->options_.data_dir, next); !s.ok()) return s;
  impl_->MakeReplicaIo(next);
  spdlog::info("CHANGE MASTER: primary is now {}{} (START SLAVE to connect)", address,
               next.tls.enabled ? " over TLS" : "");
  return absl::OkStatus();
}

absl::Status Node::ReloadRoles() {
  if (impl_->auth_ == nullptr) return absl::OkStatus();  // no gRPC service
  return impl_->auth_->Reload();
}

absl::StatusOr<Gtid> Node::BecomePrimaryLocked() {
  CallScope scope(impl_.get());
  if (!scope.ok()) return scope.status();
  {
    std::lock_guard l(impl_->mu_);
    if (impl_->promoting_) return Promoting();
    if (impl_->io_ == nullptr) return NotAReplica();
    if (impl_->io_->running()) {
      return absl::FailedPreconditionError(
          "This operation cannot be performed with a running replica io thread; run STOP SLAVE "
          "first");
    }
    // Still a replica (writes refused) until the swap below; the waits run
    // without mu_, so reads, SHOW and shutdown go on meanwhile.
    impl_->promoting_ = true;
  }
  absl::StatusOr<Gtid> start = impl_->Promote();
  std::lock_guard l(impl_->mu_);
  impl_->promoting_ = false;
  if (!start.ok()) return start.status();
  const std::string old_primary = impl_->primary_;
  impl_->io_.reset();
  impl_->primary_.clear();
  impl_->acting_primary_.store(true);
  impl_->metrics_.set_replica_role(false);
  spdlog::warn("RESET SLAVE ALL: this node is now a primary (was a replica of {}); epoch {} "
               "starts at {}",
               old_primary, start->epoch, start->ToString());
  return start;
}

absl::StatusOr<Gtid> Node::BecomePrimary() {
  CallScope scope(impl_.get());  // keeps the node open for the fence update
  if (!scope.ok()) return scope.status();
  if (auto s = impl_->CheckRoleNotManaged("RESET SLAVE ALL"); !s.ok()) return s;
  absl::StatusOr<Gtid> start = BecomePrimaryLocked();
  // Its new epoch is at least the promise (Promote): not revoked.
  if (start.ok()) impl_->UpdatePrimaryFence();
  if (start.ok()) PauseHereForTesting("reset-slave-all:before-hold");
  // The relay log's tail its old primary had not shown waits for a quorum
  // from here (Promote). A coordinated node's coordinator arms it once
  // the node is no longer held.
  if (start.ok() && !impl_->coordinator_) impl_->HoldReplayedTail();
  return start;
}

absl::StatusOr<SwitchoverResult> Node::Switchover(const std::string& target) {
  CallScope scope(impl_.get());
  if (!scope.ok()) return scope.status();
  if (!impl_->coordinator_) {
    return absl::FailedPreconditionError(
        "SWITCHOVER needs automatic failover (relaykvd --etcd ... --cluster ...); without it, "
        "fail over by hand (README \"Failover\")");
  }
  return impl_->coordinator_->Switchover(target);
}

absl::StatusOr<ForcedFailoverResult> Node::ForceFailover() {
  CallScope scope(impl_.get());
  if (!scope.ok()) return scope.status();
  if (!impl_->coordinator_) {
    return absl::FailedPreconditionError(
        "FAILOVER FORCE needs automatic failover (relaykvd --etcd ... --cluster ...); without it, "
        "promote a replica by hand with RESET SLAVE ALL (README \"Failover\")");
  }
  return impl_->coordinator_->ForceFailover();
}

NameValues Node::ReplicaStatus() const {
  CallScope scope(impl_.get());
  if (!scope.ok()) return {};
  std::lock_guard l(impl_->mu_);
  if (impl_->io_ == nullptr) return {};
  const ReplicaIoStatus io = impl_->io_->status();
  const std::string& primary = impl_->primary_;
  const auto colon = primary.rfind(':');
  const bool sql_running = impl_->applier_->running();
  const Gtid applied = impl_->state_->Applied();
  const absl::Status sql_error = impl_->applier_->last_error();

  std::string io_state, io_running;
  switch (io.state) {
    case ReplicaIoStatus::State::kYes:
      io_state = "Waiting for source to send event";
      io_running = "Yes";
      break;
    case ReplicaIoStatus::State::kConnecting:
      io_state = "Connecting to source";
      io_running = "Connecting";
      break;
    case ReplicaIoStatus::State::kNo:
      io_running = "No";
      break;
  }
  // MySQL: NULL unless both threads run; 0 when the SQL thread has applied
  // all the relay log holds; else how old the oldest unapplied event is.
  std::string behind = "NULL";
  if (io.state == ReplicaIoStatus::State::kYes && sql_running) {
    const int64_t oldest_us = impl_->io_->OldestUnappliedTimestampUs();
    behind = std::to_string(oldest_us == 0 ? 0 : std::max<int64_t>(0, NowMicros() - oldest_us) / 1000000);
  }
  const bool sync_relay = impl_->vars_.GetUint("sync_relay_log") != 0;
  return {
      {"Slave_IO_State", io_state},
      {"Master_Host", primary.substr(0, colon)},
      {"Master_Port", primary.substr(colon + 1)},
      {"Connect_Retry", "5"},
      {"Slave_IO_Running", io_running},
      {"Slave_SQL_Running", sql_running ? "Yes" : "No"},
      {"Seconds_Behind_Master", behind},
      {"Last_IO_Error", io.last_error},
      {"Last_IO_Error_Timestamp", Timestamp(io.last_error_time_us)},
      {"Last_SQL_Error", sql_error.ok() ? "" : sql_error.ToString()},
      {"Last_SQL_Error_Timestamp", sql_error.ok() ? "" : Timestamp(impl_->applier_->last_error_time_us())},
      {"Retrieved_Gtid_Set", io.retrieved.ToString()},
      {"Executed_Gtid_Set", applied.ToString()},
      {"Source_Binlog_Gtid", io.primary_last.ToString()},
      {"Relay_Log_Sync", sync_relay ? "ON (an ACK means the events are on disk)"
                                    : "OFF (an ACK means written to the OS, not yet on disk)"},
      {"Server_Id", impl_->vars_.Get("server_id")},
  };
}

std::vector<ReplicaSummary> Node::Replicas() const {
  std::vector<ReplicaSummary> out;
  const int64_t now_us = NowMicros();
  for (const ConnectedReplica& r : impl_->registry_.List()) {
    std::optional<int64_t> lag;
    if (r.oldest_unapplied_us.has_value()) {
      lag = *r.oldest_unapplied_us == 0 ? 0
                                        : std::max<int64_t>(0, now_us - *r.oldest_unapplied_us) /
                                              1000000;
    }
    out.push_back({r.server_id, r.address, r.sent, r.acked, r.semi_sync, r.applied, lag});
  }
  return out;
}

absl::StatusOr<KeyspaceChecksum> Node::Checksum() const {
  CallScope scope(impl_.get());
  if (!scope.ok()) return scope.status();
  auto c = impl_->state_->ComputeChecksum();
  if (!c.ok()) return c.status();
  return KeyspaceChecksum{c->gtid, c->hash, c->keys, c->versions_hash};
}

std::vector<BinaryLogInfo> Node::BinaryLogs() const {
  CallScope scope(impl_.get());
  if (!scope.ok()) return {};
  std::vector<BinaryLogInfo> out;
  for (const SegmentInfo& s : impl_->binlog_->Segments()) {
    out.push_back({s.name, s.size_bytes, s.first_seq});
  }
  return out;
}

absl::StatusOr<int> Node::PurgeBinaryLogsTo(const std::string& file, std::string* note) {
  CallScope scope(impl_.get());
  if (!scope.ok()) return scope.status();
  auto floor = impl_->RetentionFloor(/*keep_for_replicas=*/true);
  if (!floor.ok()) return floor.status();
  auto purged = impl_->binlog_->PurgeTo(file, *floor);
  if (!purged.ok()) return purged.status();
  const auto segments = impl_->binlog_->Segments();
  if (note != nullptr && !segments.empty() && segments.front().name < file) {
    *note = "kept " + segments.front().name + " and later: seq " + std::to_string(*floor) +
            " is still needed by a connected replica or not yet flushed by the state machine";
  }
  return purged;
}

}  // namespace relaykv
