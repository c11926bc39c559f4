// What etcd holds for a cluster (keys, ReadClusterView) and a primary's
// changes to its own epoch's record (the async mark and its clearing).
#include <google/protobuf/util/json_util.h>

#include <cstdio>

#include "absl/strings/numbers.h"
#include "server/coordinator.h"
#include "server/coordinator_internal.h"
#include "server/node_impl.h"
#include "spdlog/spdlog.h"

namespace relaykv {

namespace coordinator_internal {
std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(m, &out, o).ok()) return "{}";
  return out;
}
}  // namespace coordinator_internal

using namespace coordinator_internal;

std::string ClusterPrefix(const std::string& cluster) { return "/relaykv/" + cluster + "/"; }

std::string HistoryKey(const std::string& cluster, uint64_t epoch) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%020llu", static_cast<unsigned long long>(epoch));
  return ClusterPrefix(cluster) + "history/" + digits;
}

std::string NodeKey(const std::string& cluster, uint32_t server_id) {
  return ClusterPrefix(cluster) + "nodes/" + std::to_string(server_id);
}

absl::StatusOr<ClusterView> ReadClusterView(etcd::EtcdClient* etcd, const std::string& cluster) {
  // One Range over the whole prefix: leader, history and nodes as of one
  // revision.
  auto all = etcd->GetPrefix(ClusterPrefix(cluster));
  if (!all.ok()) return all.status();
  ClusterView view;
  const std::string leader_key = LeaderLease::LeaderKey(cluster);
  const std::string history_prefix = ClusterPrefix(cluster) + "history/";
  const std::string nodes_prefix = ClusterPrefix(cluster) + "nodes/";
  const std::string switchover_key = ClusterPrefix(cluster) + "switchover";
  const std::string epoch_key = ClusterPrefix(cluster) + "epoch";
  for (const etcd::KeyValue& kv : all->kvs) {
    if (kv.key == leader_key) {
      view.leader_raw = kv.value;
      view.leader_mod_revision = kv.mod_revision;
      view.leader_lease = kv.lease;
      auto leader = FromJson<v1::LeaderRecord>(kv.value, kv.key);
      // A record that does not parse names no usable leader: as if absent
      // for following, but it still blocks a claim (create_revision != 0).
      if (leader.ok()) view.leader = *leader;
    } else if (kv.key.rfind(history_prefix, 0) == 0) {
      auto rec = FromJson<v1::EpochRecord>(kv.value, kv.key);
      if (!rec.ok()) return rec.status();  // history decides truncations: never guess
      // Keyed by the record's epoch, which must be the key's: a record
      // under another epoch's key would replace that epoch's record (review
      // s44e L2).
      if (kv.key != HistoryKey(cluster, rec->epoch())) {
        return absl::DataLossError("etcd key " + kv.key + " holds the record of epoch " +
                                   std::to_string(rec->epoch()) + "; history decides "
                                   "truncations, so nothing is decided on it");
      }
      failover::EpochRecord r;
      r.start_after = FromProto(rec->start_after());
      r.primary = rec->primary();
      r.revoke_quorum_met = rec->revoke_quorum_met();
      r.forced = rec->forced();
      if (rec->went_async()) r.went_async_after = rec->went_async_after();
      view.history[rec->epoch()] = r;
      view.records[rec->epoch()] = *rec;
    } else if (kv.key == epoch_key) {
      view.epoch_mod_revision = kv.mod_revision;
    } else if (kv.key == switchover_key) {
      auto rec = FromJson<v1::LeaderRecord>(kv.value, kv.key);
      if (rec.ok()) view.switchover = *rec;
    } else if (kv.key.rfind(nodes_prefix, 0) == 0) {
      auto rec = FromJson<v1::NodeRecord>(kv.value, kv.key);
      // Keyed by the key's id; a record naming another id is ignored.
      uint32_t id = 0;
      if (rec.ok() && absl::SimpleAtoi(kv.key.substr(nodes_prefix.size()), &id) && id != 0 &&
          rec->server_id() == id) {
        view.nodes[id] = rec->address();
        view.priorities[id] = rec->has_priority() ? static_cast<int>(rec->priority()) : 1;
      }
    }
  }
  return view;
}

absl::Status Coordinator::UpdateOwnRecord(const std::function<bool(v1::EpochRecord*)>& change) {
  const uint64_t epoch = node_->impl_->binlog_->epoch();
  const std::string key = HistoryKey(options_.cluster, epoch);
  auto got = etcd_->Get(key);
  if (!got.ok()) return got.status();
  if (got->kvs.empty()) return absl::NotFoundError(key + " is absent");
  auto rec = FromJson<v1::EpochRecord>(got->kvs[0].value, key);
  if (!rec.ok()) return rec.status();
  if (!change(&*rec)) return absl::OkStatus();
  // Only while this node still holds the leader key it created.
  auto txn = etcd_->Txn(
      {etcd::Compare::CreateRevision(LeaderLease::LeaderKey(options_.cluster),
                                     etcd::Compare::Result::kEqual, lease_->create_revision()),
       etcd::Compare::ModRevision(key, etcd::Compare::Result::kEqual, got->kvs[0].mod_revision)},
      {etcd::TxnOp::Put(key, ToJson(*rec))});
  if (!txn.ok()) return txn.status();
  if (!txn->succeeded) return absl::AbortedError("the leader key or " + key + " changed");
  return absl::OkStatus();
}

void Coordinator::RecordAsync() {
  Node::Impl& impl = *node_->impl_;
  // Everything after what a quorum holds now may be acknowledged without
  // ACKs once the gate opens (the quorum only moves up meanwhile).
  const uint64_t after = impl.semisync_->acked_seq();
  uint64_t recorded_after = after;
  const absl::Status s = UpdateOwnRecord([&](v1::EpochRecord* rec) {
    if (rec->went_async()) {
      recorded_after = rec->went_async_after();  // already: an earlier point
      return false;
    }
    rec->set_went_async(true);
    rec->set_went_async_after(after);
    return true;
  });
  if (!s.ok()) {
    Refuse("semi-sync wants to fall back to async, but etcd did not record it (" + s.ToString() +
           "): commits keep waiting");
    return;
  }
  impl.async_recorded_.store(true);
  resync_pending_ = false;  // async again: the gate's flag says it
  SetRole("primary");  // clears an earlier refusal
  spdlog::warn("automatic failover: epoch {} went async after seq {} (recorded in etcd): no "
               "replica is promoted automatically while it may lack acknowledged writes; only this "
               "node may take over again",
               impl.binlog_->epoch(), recorded_after);
}

void Coordinator::RecordResync() {
  Node::Impl& impl = *node_->impl_;
  // The gate closes first: from here semi-sync cannot fall back without a
  // new record, so whatever TakeResync() proves now stays true.
  const bool was_open = impl.async_recorded_.exchange(false);
  const std::optional<uint64_t> at = impl.semisync_->TakeResync();
  if (!at) {
    // Fell back again before the gate closed (etcd still says async).
    impl.async_recorded_.store(was_open);
    return;
  }
  const absl::Status s = UpdateOwnRecord([&](v1::EpochRecord* rec) {
    if (!rec->went_async()) return false;
    rec->set_went_async(false);
    rec->set_resynced_after(*at);
    return true;
  });
  if (!s.ok()) {
    // Still marked async in etcd (safe: no replica is promoted); the gate
    // stays closed, a new fallback re-records (RecordAsync finds the mark),
    // and the next loop tries again.
    resync_pending_ = true;
    Refuse("semi-sync is back in sync at seq " + std::to_string(*at) +
           ", but etcd did not record it (" + s.ToString() + "): automatic failover stays off");
    return;
  }
  resync_pending_ = false;
  SetRole("primary");
  spdlog::warn("automatic failover: epoch {} is semi-synchronous again: every commit released "
               "without ACKs is held by enough replicas (seq {}, recorded in etcd); automatic "
               "failover is re-armed",
               impl.binlog_->epoch(), *at);
}

}  // namespace relaykv
