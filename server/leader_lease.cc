#include "server/leader_lease.h"

#include <time.h>

#include <algorithm>

namespace relaykv {

LeaseClock::time_point LeaseClock::now() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  return time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
}

std::string LeaderLease::LeaderKey(const std::string& cluster) {
  return "/relaykv/" + cluster + "/leader";
}

absl::StatusOr<std::unique_ptr<LeaderLease>> LeaderLease::Acquire(etcd::EtcdClient* client,
                                                                  Options options,
                                                                  LossCallback on_loss) {
  if (client == nullptr) return absl::InvalidArgumentError("leader lease: no etcd client");
  if (options.cluster.empty()) return absl::InvalidArgumentError("leader lease: empty cluster name");
  if (options.margin.count() <= 0 || options.renew_interval.count() <= 0 ||
      options.retry_interval.count() <= 0) {
    return absl::InvalidArgumentError("leader lease: margin and intervals must be positive");
  }
  // At least one renewal and one retry must fit in a lease's validity.
  if (options.renew_interval + options.retry_interval >= options.ttl - options.margin) {
    return absl::InvalidArgumentError(
        "leader lease: renew_interval + retry_interval must be below ttl - margin");
  }
  const std::string key = LeaderKey(options.cluster);
  // Before the grant is sent (the clock argument in the header).
  const LeaseClock::time_point t_send = LeaseClock::now();
  auto lease = client->LeaseGrant(options.ttl.count());
  if (!lease.ok()) return lease.status();
  std::vector<etcd::Compare> compares{
      etcd::Compare::CreateRevision(key, etcd::Compare::Result::kEqual, 0)};
  compares.insert(compares.end(), options.extra_compares.begin(), options.extra_compares.end());
  std::vector<etcd::TxnOp> ops{etcd::TxnOp::Put(key, options.value, lease->id)};
  ops.insert(ops.end(), options.extra_ops.begin(), options.extra_ops.end());
  auto txn = client->Txn(compares, ops, {etcd::TxnOp::Range(key)});
  absl::Status error;
  if (!txn.ok()) {
    error = txn.status();
  } else if (!txn->succeeded) {
    std::string holder = "?";
    if (!txn->results.empty() && !txn->results[0].range.kvs.empty()) {
      holder = txn->results[0].range.kvs[0].value;
    }
    error = absl::FailedPreconditionError(
        "leader lease: " + key + (holder == "?" ? " not claimed (a guard failed)" : " is held by '" + holder + "'"));
  }
  if (!error.ok()) {
    // Also after an unknown Txn outcome: revoking deletes a key it may have put.
    client->LeaseRevoke(lease->id).IgnoreError();  // best effort: it expires after ttl anyway
    return error;
  }
  const LeaseClock::time_point safe_until =
      t_send + std::chrono::seconds(lease->ttl_s) - options.margin;
  std::unique_ptr<LeaderLease> l(new LeaderLease(client, std::move(options), std::move(on_loss),
                                                 lease->id, txn->revision, safe_until));
  l->thread_ = std::thread([p = l.get()] { p->Run(); });
  return l;
}

LeaderLease::LeaderLease(etcd::EtcdClient* client, Options options, LossCallback on_loss,
                         int64_t lease_id, int64_t create_revision,
                         LeaseClock::time_point safe_until)
    : client_(client),
      options_(std::move(options)),
      on_loss_(std::move(on_loss)),
      lease_id_(lease_id),
      create_revision_(create_revision),
      safe_until_(safe_until) {}

LeaderLease::~LeaderLease() { Stop(); }

LeaseClock::time_point LeaderLease::safe_until() const {
  std::lock_guard<std::mutex> lock(mu_);
  return safe_until_;
}

void LeaderLease::Stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    safe_until_ = std::min(safe_until_, LeaseClock::now());
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

absl::Status LeaderLease::Release() {
  Stop();
  return client_->LeaseRevoke(lease_id_);
}

void LeaderLease::Lose(std::unique_lock<std::mutex>& lock, const absl::Status& why) {
  safe_until_ = std::min(safe_until_, LeaseClock::now());
  lost_ = true;
  lock.unlock();
  if (on_loss_) on_loss_(why);
  lock.lock();
}

void LeaderLease::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  LeaseClock::time_point next_renew = LeaseClock::now() + options_.renew_interval;
  absl::Status last_error;
  while (!stopping_) {
    const auto now = LeaseClock::now();
    if (now >= safe_until_) {
      Lose(lock, absl::DeadlineExceededError(
                     "leader lease " + std::to_string(lease_id_) +
                     ": validity ended without a renewal" +
                     (last_error.ok() ? "" : "; last error: " + last_error.ToString())));
      return;
    }
    if (now < next_renew) {
      // Wakes at the next renewal or when validity ends, whichever is first.
      // Waited for on the steady clock: only the length matters here.
      const auto wake = std::min(next_renew, safe_until_);
      cv_.wait_for(lock, std::chrono::duration_cast<std::chrono::steady_clock::duration>(wake - now));
      continue;
    }
    lock.unlock();
    const LeaseClock::time_point t_send = LeaseClock::now();  // before the request is sent
    const absl::StatusOr<int64_t> ttl_s = client_->LeaseKeepAliveOnce(lease_id_);
    lock.lock();
    if (ttl_s.ok()) {
      safe_until_ = std::max(safe_until_, t_send + std::chrono::seconds(*ttl_s) - options_.margin);
      next_renew = t_send + options_.renew_interval;
      last_error = absl::OkStatus();
      continue;
    }
    if (ttl_s.status().code() == absl::StatusCode::kNotFound) {
      // etcd says the lease is gone: the key may be someone else's now.
      if (!stopping_) Lose(lock, ttl_s.status());
      return;
    }
    last_error = ttl_s.status();  // unreachable or slow: retry while valid
    next_renew = LeaseClock::now() + options_.retry_interval;
  }
}

}  // namespace relaykv
