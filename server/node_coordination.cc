// Node::Impl's side of automatic failover (server/coordinator.h): creating
// the coordinator at open, and the truncation a rejoin needs before replay.
#include "server/master_info.h"
#include "server/node_impl.h"
#include "spdlog/spdlog.h"

namespace relaykv {

absl::Status Node::Impl::OpenCoordinator(Node* node, const BinlogOptions& binlog_options) {
  CoordinatorOptions o;
  o.etcd_endpoints = etcd::EtcdClient::ParseEndpoints(options_.etcd_endpoints);
  o.cluster = options_.cluster;
  o.server_id = static_cast<uint32_t>(vars_.GetUint("server_id"));
  auto saved = LoadMasterInfo(options_.data_dir);
  if (!saved.ok()) return saved.status();
  o.started_as_primary =
      options_.replicate_from.empty() && options_.clone_from.empty() && saved->address.empty();
  o.lease_ttl = options_.lease_ttl;
  o.failover_min_interval = options_.failover_min_interval;
  o.priority = options_.failover_priority;
  o.peer_tls = options_.replicate_tls.enabled ? options_.replicate_tls : saved->tls;
  o.request_restart = options_.on_restart_needed;
  auto coordinator = Coordinator::Create(node, std::move(o));
  if (!coordinator.ok()) return coordinator.status();
  coordinator_ = *std::move(coordinator);
  // No silent async: a fallback waits until etcd knows.
  semisync_->set_async_gate([this] { return async_recorded_.load(); });
  // No ACK counts until the coordinator read which nodes joined.
  semisync_->set_ackers(std::set<uint32_t>{});

  const Gtid applied = state_->Applied();
  const auto decision = coordinator_->DecideAtOpen(binlog_->LastVisible(), applied);
  if (!decision || decision->action != failover::RejoinAction::kTruncate) return absl::OkStatus();
  // Never silent: the tail goes to a quarantine file the log names
  // (storage/binlog_truncate.h), and only with the proof DecideRejoin checked.
  spdlog::warn("automatic failover: rejoining by truncating this binlog after {}: {}",
               decision->truncate_after.ToString(), decision->reason);
  binlog_->Close();
  binlog_.reset();
  TruncateRequest request;
  request.binlog_dir = binlog_options.dir;
  request.end = decision->truncate_after;
  request.applied = applied;
  auto report = Binlog::TruncateAfter(request);
  if (!report.ok()) return report.status();
  if (report->truncated) {
    spdlog::warn("automatic failover: {} events ({} .. {}) moved to {}", report->events_removed,
                 report->first_removed.ToString(), report->last_removed.ToString(),
                 report->quarantine.string());
  }
  auto binlog = Binlog::Open(binlog_options);
  if (!binlog.ok()) return binlog.status();
  binlog_ = *std::move(binlog);
  return absl::OkStatus();
}

}  // namespace relaykv
