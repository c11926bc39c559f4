// Node::Impl's binlog retention (README "Durability", Retention): the
// floor below which segments may go, and the housekeeper's age and size
// limits, which win over a lagging replica with a warning naming it.
#include <algorithm>
#include <chrono>
#include <filesystem>

#include "server/clone_service.h"
#include "server/node_impl.h"
#include "spdlog/spdlog.h"

namespace relaykv {

namespace fs = std::filesystem;

absl::StatusOr<uint64_t> Node::Impl::RetentionFloor(bool keep_for_replicas) {
  // RocksDB runs without a WAL: only what it has flushed may leave the
  // binlog. The flush persists what was applied before it began; events
  // applied while it runs sit in the memtable, so the position is read
  // first.
  const uint64_t flushed = state_->Applied().seq;
  if (auto s = state_->Flush(); !s.ok()) return s;
  uint64_t floor = flushed + 1;
  // A clone replicates from its checkpoint's GTID + 1: kept while it
  // copies, like what a connected replica needs — by PURGE BINARY LOGS,
  // not against the age and size limits (a session can be kept alive as
  // long as its peer likes: review s43a M1).
  if (keep_for_replicas) {
    floor = std::min(floor, registry_.MinNeededSeq());
    if (clone_service_) floor = std::min(floor, clone_service_->MinNeededSeq());
  }
  return floor;
}

void Node::Impl::ApplyRetention() {
  const uint64_t expire_s = vars_.GetUint("binlog_expire_logs_seconds");
  const uint64_t max_total = vars_.GetUint("max_binlog_total_size");
  if (expire_s == 0 && max_total == 0) return;
  // The limits win over a replica that is behind (a stuck replica must not
  // fill the disk); only what the state machine has not flushed is kept.
  // PURGE BINARY LOGS, by hand, keeps what connected replicas need.
  auto floor = RetentionFloor(/*keep_for_replicas=*/false);
  if (!floor.ok()) {
    spdlog::warn("binlog retention: {}", floor.status().ToString());
    return;
  }
  int purged = 0;
  if (expire_s != 0) {
    auto cutoff = fs::file_time_type::clock::now() - std::chrono::seconds(expire_s);
    auto n = binlog_->PurgeOlderThan(cutoff, *floor);
    if (!n.ok()) spdlog::warn("binlog expiry: {}", n.status().ToString());
    if (n.ok()) purged += *n;
  }
  if (max_total != 0) {
    auto n = binlog_->PurgeToTotalSize(max_total, *floor);
    if (!n.ok()) spdlog::warn("binlog size limit: {}", n.status().ToString());
    if (n.ok()) purged += *n;
  }
  if (purged == 0) return;
  // Each replica that needed what went: it is told "purged" (OUT_OF_RANGE)
  // when its stream reaches the gap or it reconnects, and must be rebuilt.
  const uint64_t first = binlog_->FirstAvailableSeq();
  for (const ConnectedReplica& r : registry_.List()) {
    if (r.acked.seq + 1 >= first) continue;
    spdlog::warn("binlog retention (binlog_expire_logs_seconds={}, max_binlog_total_size={}) "
                 "purged events that replica server_id {} ({}) still needs: it has acked {} and "
                 "the binlog now starts at seq {}; unless they were already on their way to it, "
                 "it will be refused as purged and must be rebuilt from a copy",
                 expire_s, max_total, r.server_id, r.address, r.acked.ToString(), first);
  }
  if (clone_service_ && clone_service_->MinNeededSeq() < first) {
    spdlog::warn("binlog retention (binlog_expire_logs_seconds={}, max_binlog_total_size={}) "
                 "purged events a clone in progress needs (from seq {}; the binlog now starts at "
                 "seq {}): that clone will be refused as purged when it starts replicating; "
                 "raise the limits while a large clone copies, then clone again",
                 expire_s, max_total, clone_service_->MinNeededSeq(), first);
  }
}

}  // namespace relaykv
