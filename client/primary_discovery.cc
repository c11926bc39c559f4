#include "client/primary_discovery.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <utility>

#include "client/host_port.h"
#include "etcd_client/etcd_client.h"
#include "proto/coordination.pb.h"

namespace relaykv {

std::string LeaderKey(const std::string& cluster) { return "/relaykv/" + cluster + "/leader"; }

absl::StatusOr<PrimaryInfo> ParseLeaderRecord(const std::string& json) {
  v1::LeaderRecord record;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // a newer server may add fields
  const auto parsed = google::protobuf::util::JsonStringToMessage(json, &record, options);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError("not LeaderRecord JSON (" + std::string(parsed.message()) +
                                      "): '" + json.substr(0, 200) + "'");
  }
  if (!IsHostPort(record.address())) {
    return absl::InvalidArgumentError("LeaderRecord address '" + record.address() +
                                      "' is not HOST:PORT");
  }
  if (record.epoch() > kMaxClusterEpoch) {
    return absl::InvalidArgumentError("LeaderRecord epoch " + std::to_string(record.epoch()) +
                                      " is above " + std::to_string(kMaxClusterEpoch) +
                                      ", the largest a relaykv cluster has");
  }
  return PrimaryInfo{record.server_id(), record.epoch(), record.address()};
}

absl::StatusOr<std::unique_ptr<PrimaryDiscovery>> PrimaryDiscovery::Start(Options options) {
  if (options.cluster.empty()) return absl::InvalidArgumentError("no cluster name given with the etcd endpoints");
  if (options.etcd_endpoints.empty()) {
    return absl::InvalidArgumentError("no etcd endpoint given for cluster " + options.cluster);
  }
  for (const auto& e : options.etcd_endpoints) {
    if (!IsHostPort(e)) return absl::InvalidArgumentError("etcd endpoint '" + e + "' is not HOST:PORT");
  }
  auto etcd = etcd::EtcdClient::Create({options.etcd_endpoints, options.etcd_call_timeout});
  if (!etcd.ok()) return etcd.status();
  return std::unique_ptr<PrimaryDiscovery>(new PrimaryDiscovery(std::move(options), *std::move(etcd)));
}

PrimaryDiscovery::PrimaryDiscovery(Options options, std::unique_ptr<etcd::EtcdClient> etcd)
    : options_(std::move(options)), key_(LeaderKey(options_.cluster)), etcd_(std::move(etcd)) {
  follower_ = std::thread([this] { Follow(); });
}

PrimaryDiscovery::~PrimaryDiscovery() {
  {
    std::lock_guard l(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  follower_.join();  // it stops (and joins) the etcd watch before it returns
}

std::optional<PrimaryInfo> PrimaryDiscovery::Current(uint64_t min_epoch) const {
  std::lock_guard l(mu_);
  if (current_ && current_->epoch >= min_epoch) return current_;
  return std::nullopt;
}

absl::StatusOr<PrimaryInfo> PrimaryDiscovery::WaitForPrimary(
    std::chrono::steady_clock::time_point deadline, uint64_t min_epoch) const {
  std::unique_lock l(mu_);
  const auto usable = [&] { return current_ && current_->epoch >= min_epoch; };
  changed_.wait_until(l, deadline, [&] { return stopping_ || usable(); });
  if (usable()) return *current_;
  std::string why = why_none_;
  if (current_) {  // known, but older than an epoch this client saw elsewhere
    why = "its leader record (server_id " + std::to_string(current_->server_id) + " at " +
          current_->address + ") is of epoch " + std::to_string(current_->epoch) +
          ", older than epoch " + std::to_string(min_epoch) + " this client has seen";
  }
  return absl::UnavailableError("no primary in cluster " + options_.cluster + ": " + why);
}

uint64_t PrimaryDiscovery::highest_epoch() const {
  std::lock_guard l(mu_);
  return highest_epoch_;
}

int64_t PrimaryDiscovery::applied_revision() const {
  std::lock_guard l(mu_);
  return applied_revision_;
}

void PrimaryDiscovery::Apply(const std::optional<std::string>& value, int64_t revision) {
  std::lock_guard l(mu_);
  applied_revision_ = std::max(applied_revision_, revision);
  if (!value) {
    current_.reset();
    why_none_ = "leader key " + key_ + " is absent (no primary holds the lease; an election may be running)";
    return;
  }
  auto record = ParseLeaderRecord(*value);
  if (!record.ok()) {
    current_.reset();
    why_none_ = "leader key " + key_ + " holds no valid record: " + std::string(record.status().message());
    return;
  }
  // Epochs only rise: an older record (a stale writer, a restored backup)
  // must never send writes back to a deposed primary.
  if (highest_epoch_ != 0 && record->epoch > highest_epoch_ + kMaxClusterEpochStep) {
    why_none_ = "leader key " + key_ + " names " + record->address + " of epoch " +
                std::to_string(record->epoch) + ", more than " +
                std::to_string(kMaxClusterEpochStep) + " past epoch " +
                std::to_string(highest_epoch_) + " seen before (garbled; ignored)";
    return;
  }
  if (record->epoch < highest_epoch_) {
    why_none_ = "leader key " + key_ + " names " + record->address + " of epoch " +
                std::to_string(record->epoch) + ", older than epoch " +
                std::to_string(highest_epoch_) + " seen before (ignored)";
    return;
  }
  highest_epoch_ = record->epoch;
  current_ = *std::move(record);
  changed_.notify_all();
}

void PrimaryDiscovery::OnWatch(const etcd::WatchResponse& response) {
  for (const etcd::WatchEvent& e : response.events) {
    if (e.type == etcd::WatchEvent::Type::kDelete) {
      Apply(std::nullopt, e.kv.mod_revision);
    } else {
      Apply(e.kv.value, e.kv.mod_revision);
    }
  }
  std::lock_guard l(mu_);
  if (response.status.ok()) {
    applied_revision_ = std::max(applied_revision_, response.revision);
    return;
  }
  // The last call of this watch: the follower re-reads and re-watches.
  watch_broken_ = true;
  changed_.notify_all();
}

void PrimaryDiscovery::Follow() {
  using Clock = std::chrono::steady_clock;
  std::chrono::milliseconds backoff = kMinBackoff;
  for (;;) {
    absl::Status failed;
    auto read = etcd_->Get(key_);
    if (read.ok()) {
      Apply(read->kvs.empty() ? std::nullopt : std::optional<std::string>(read->kvs[0].value),
            read->revision);
      {
        std::lock_guard l(mu_);
        watch_broken_ = false;
      }
      auto watch = etcd_->WatchKey(key_, /*prefix=*/false, read->revision + 1,
                                   [this](const etcd::WatchResponse& r) { OnWatch(r); });
      if (watch.ok()) {
        const auto started = Clock::now();
        {
          std::unique_lock l(mu_);
          changed_.wait(l, [this] { return stopping_ || watch_broken_; });
        }
        (*watch)->Stop();  // here, not in its callback: Stop joins the watch's thread
        // A watch that held for a while was a healthy one: start over.
        if (Clock::now() - started > kMaxBackoff) backoff = kMinBackoff;
      } else {
        failed = watch.status();
      }
    } else {
      failed = read.status();
    }
    std::unique_lock l(mu_);
    if (!failed.ok() && !current_) {
      // The last known primary stays the answer while etcd cannot be read.
      why_none_ = "cannot read " + key_ + " from etcd: " + std::string(failed.message());
    }
    if (changed_.wait_for(l, backoff, [this] { return stopping_; })) return;
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

}  // namespace relaykv
