// LeaderLease: a primary's hold on /relaykv/<cluster>/leader (FAILOVER.md
// section 3, "Primary lease and self-fence"). Acquire() grants an etcd lease
// and puts the leader key on it with a put-if-absent Txn
// (create_revision == 0); a thread it owns renews the lease and keeps
// safe_until(), the moment up to which no other node can have taken the key.
// A commit may be acknowledged only while Valid(); when validity ends (or
// etcd says the lease is gone) the loss callback runs once and the lease is
// never valid again (a new Acquire() is needed). server/coordinator.h uses it.
//
// The clock argument. Let t_send be our clock reading taken just BEFORE a
// keepalive (or the grant) is sent. etcd can only process the request after
// it was sent, and it sets the lease to expire TTL after that processing, by
// its own clock. So, as long as etcd's clock does not run faster than ours
// by more than `margin` over one TTL, the lease cannot expire (and the key
// cannot be deleted and re-created by another node) before
// t_send + TTL - margin by our clock. The reply's arrival time is never used:
// a reply delayed by a slow network or a paused process would move the
// bound past etcd's real expiry. safe_until is the largest such bound seen
// and never moves back, except to "now" when the lease is known lost.
// Our clock is CLOCK_BOOTTIME: monotonic (wall-clock steps do not move it)
// and, unlike CLOCK_MONOTONIC, it advances while the host is suspended, so a
// node that wakes after its lease ran out knows it. A process paused by
// SIGSTOP keeps counting too. What this does not cover, and why replicas
// fence by epoch anyway: an etcd that revokes a lease early (etcd#15247,
// not fixed in 3.4.23), a clock whose rate is off by more than margin/TTL,
// and a commit acknowledged after a check of Valid() that took longer than
// the time left (check Valid() at reply time, as close to the send as
// possible).
//
// Threads: all methods may be called from any thread. The loss callback
// runs on the renewal thread, at most once, never after Stop() returned; it
// must not call Stop() or destroy the LeaderLease. The etcd client is
// borrowed and must outlive the LeaderLease.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "etcd_client/etcd_client.h"

namespace relaykv {

// CLOCK_BOOTTIME as a std::chrono clock (see the clock argument above).
struct LeaseClock {
  using rep = int64_t;
  using period = std::nano;
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<LeaseClock>;
  static constexpr bool is_steady = true;
  static time_point now() noexcept;
};

class LeaderLease {
 public:
  struct Options {
    std::string cluster;  // the key is /relaykv/<cluster>/leader
    std::string value;    // what the key holds: the leader record ({id, E, addr})
    std::chrono::seconds ttl{10};
    std::chrono::milliseconds renew_interval{2000};  // after a successful renewal
    std::chrono::milliseconds retry_interval{500};   // after a failed one
    std::chrono::milliseconds margin{2000};          // clock-rate allowance per TTL
    // More guards and puts for the claiming Txn (an election records the
    // new epoch in the same transaction that takes the key).
    std::vector<etcd::Compare> extra_compares;
    std::vector<etcd::TxnOp> extra_ops;
  };
  using LossCallback = std::function<void(const absl::Status& why)>;

  static std::string LeaderKey(const std::string& cluster);

  // Grants a lease and claims the key. FAILED_PRECONDITION if another holds
  // the key (the message names its value), INVALID_ARGUMENT for options that
  // leave no renewal before validity ends, else the etcd error. On any error
  // the granted lease is revoked (best effort; it expires anyway).
  static absl::StatusOr<std::unique_ptr<LeaderLease>> Acquire(etcd::EtcdClient* client,
                                                              Options options,
                                                              LossCallback on_loss);
  ~LeaderLease();  // Stop()
  LeaderLease(const LeaderLease&) = delete;
  LeaderLease& operator=(const LeaderLease&) = delete;

  LeaseClock::time_point safe_until() const;
  bool Valid() const { return LeaseClock::now() < safe_until(); }
  int64_t lease_id() const { return lease_id_; }
  // The leader key's create_revision (a Txn guard for writes "as leader").
  int64_t create_revision() const { return create_revision_; }

  // Stops renewing and joins the thread; validity ends now. The key stays
  // until etcd expires the lease (use Release() to delete it at once).
  void Stop();
  // Stop(), then revokes the lease: the key is deleted now.
  [[nodiscard]] absl::Status Release();

 private:
  LeaderLease(etcd::EtcdClient* client, Options options, LossCallback on_loss, int64_t lease_id,
              int64_t create_revision, LeaseClock::time_point safe_until);
  void Run();  // the renewal thread
  void Lose(std::unique_lock<std::mutex>& lock, const absl::Status& why);

  // Constant after construction.
  etcd::EtcdClient* const client_;
  const Options options_;
  const LossCallback on_loss_;
  const int64_t lease_id_;
  const int64_t create_revision_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  LeaseClock::time_point safe_until_;  // GUARDED_BY(mu_)
  bool stopping_ = false;              // GUARDED_BY(mu_)
  bool lost_ = false;                  // GUARDED_BY(mu_)
  std::mutex stop_mu_;                 // serializes Stop() callers; taken before mu_
  std::thread thread_;
};

}  // namespace relaykv
