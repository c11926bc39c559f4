// PrimaryDiscovery: where a relaykv cluster's primary is now, as etcd's
// /relaykv/<cluster>/leader key says (proto/coordination.proto, LeaderRecord
// as protobuf JSON). relaykv::Client uses it when ClientOptions names etcd
// endpoints and a cluster (README "Finding the primary (clients)").
//
// Contract:
// - Owns one thread (the follower) that reads the key, then watches it from
//   the revision after that read (the etcd Watch owns the stream's reader
//   thread). When the watch breaks (etcd down, compaction, cancel) the
//   follower re-reads and re-watches, after a backoff that doubles from
//   kMinBackoff up to kMaxBackoff, for as long as this object lives. The
//   destructor stops and joins both threads; it may wait up to one etcd
//   call's timeout (Options::etcd_call_timeout) for a read in progress.
// - Epochs only rise: a record whose epoch is below the highest epoch any
//   accepted record had is ignored (logged in why_none), so the answer never
//   moves to an older primary. A deleted key (the lease ended: an election
//   runs) means no primary until a new record appears; the highest epoch is
//   kept. A record that is not LeaderRecord JSON, or whose address is not
//   HOST:PORT, counts as no primary (never a crash); unknown fields are
//   ignored (newer servers may add some).
// - WaitForPrimary blocks until a primary of at least a given epoch is known
//   or its deadline passes; then UNAVAILABLE "no primary in cluster X: why".
// - Thread-safe: any thread may call any method.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace relaykv {

namespace etcd {
class EtcdClient;
class Watch;
struct WatchResponse;
}  // namespace etcd

// The largest epoch a relaykv cluster has (a binlog segment keeps one in
// 32 bits: storage/binlog_format.h kMaxEpoch). An answer or a record above
// it is not from a relaykv node: the client must not fence itself off
// every real primary with it (review s44e M5).
inline constexpr uint64_t kMaxClusterEpoch = UINT32_MAX;
// Nor does an epoch jump further than this past one already seen (the
// server's bound too: server/epoch_promise.h kMaxEpochStep).
inline constexpr uint64_t kMaxClusterEpochStep = uint64_t{1} << 16;

// One accepted LeaderRecord.
struct PrimaryInfo {
  uint32_t server_id = 0;
  uint64_t epoch = 0;
  std::string address;  // HOST:PORT
};

// The etcd key of `cluster`'s leader record.
std::string LeaderKey(const std::string& cluster);

// A LeaderRecord's JSON → PrimaryInfo; INVALID_ARGUMENT naming what is wrong.
absl::StatusOr<PrimaryInfo> ParseLeaderRecord(const std::string& json);

class PrimaryDiscovery {
 public:
  static constexpr std::chrono::milliseconds kMinBackoff{50};
  static constexpr std::chrono::milliseconds kMaxBackoff{1000};

  struct Options {
    std::vector<std::string> etcd_endpoints;  // HOST:PORT each
    std::string cluster;
    std::chrono::milliseconds etcd_call_timeout{2000};
  };

  // INVALID_ARGUMENT with no endpoint or an empty cluster name. Starts the
  // follower; does not wait for etcd.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<PrimaryDiscovery>> Start(Options options);
  ~PrimaryDiscovery();
  PrimaryDiscovery(const PrimaryDiscovery&) = delete;
  PrimaryDiscovery& operator=(const PrimaryDiscovery&) = delete;

  // The primary now, if there is one of at least `min_epoch`.
  std::optional<PrimaryInfo> Current(uint64_t min_epoch = 0) const;
  // Waits for Current(min_epoch) until `deadline`; then UNAVAILABLE naming
  // the cluster and why there is none.
  absl::StatusOr<PrimaryInfo> WaitForPrimary(std::chrono::steady_clock::time_point deadline,
                                             uint64_t min_epoch = 0) const;
  // The highest epoch of any accepted record (0: none yet).
  uint64_t highest_epoch() const;
  // The etcd revision of the last read or event applied (0: none yet): a
  // test waits for it to pass a Put's revision to know the Put was seen.
  int64_t applied_revision() const;
  const std::string& cluster() const { return options_.cluster; }

 private:
  PrimaryDiscovery(Options options, std::unique_ptr<etcd::EtcdClient> etcd);
  void Follow();  // the follower thread's body
  // Applies the key's value at `revision` (nullopt: the key is absent).
  void Apply(const std::optional<std::string>& value, int64_t revision);
  void OnWatch(const etcd::WatchResponse& response);  // on the etcd watch's thread

  const Options options_;
  const std::string key_;
  const std::unique_ptr<etcd::EtcdClient> etcd_;

  mutable std::mutex mu_;
  mutable std::condition_variable changed_;  // a primary appeared, the watch broke, or stop
  std::optional<PrimaryInfo> current_ ABSL_GUARDED_BY(mu_);
  uint64_t highest_epoch_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t applied_revision_ ABSL_GUARDED_BY(mu_) = 0;
  std::string why_none_ ABSL_GUARDED_BY(mu_) = "its leader key was not read yet";
  bool watch_broken_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread follower_;  // last: started once the members above exist
};

}  // namespace relaykv
