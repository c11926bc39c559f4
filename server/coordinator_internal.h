// Internals shared by the coordinator's files — coordinator.cc (the loop,
// following, elections, claims), coordinator_records.cc (what etcd holds,
// and this primary's changes to its epoch record), coordinator_admin.cc
// (SWITCHOVER TO, FAILOVER FORCE). Not an interface of its own.
#pragma once

#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "proto/coordination.pb.h"
#include "relaykv/gtid.h"
#include "server/leader_lease.h"

namespace relaykv::coordinator_internal {

using Clock = std::chrono::steady_clock;
// How often the coordinator looks at etcd (and renews nothing: the lease
// has its own thread). Bounds how long a dead leader's key, once expired,
// goes unnoticed.
inline constexpr auto kLoop = std::chrono::milliseconds(200);
// Coordinator::RestartStoppedIo: the first wait, the longest, and how long
// a restarted IO thread must run without stopping for the wait to start
// from the first again.
inline constexpr auto kIoRestartFirst = std::chrono::seconds(5);
inline constexpr auto kIoRestartMost = std::chrono::seconds(60);
inline constexpr auto kIoRestartForgotten = std::chrono::seconds(60);
// A switchover's parts: the target catching up, the new leader appearing.
inline constexpr auto kSwitchoverCatchUp = std::chrono::seconds(5);
// After the target's ACK, how long a switchover waits at most for the
// answers of the writes that ACK released (after kSwitchoverCatchUp, not
// within it: an ACK late in the catch-up still gets its grace).
inline constexpr auto kSwitchoverAnswers = std::chrono::seconds(1);
inline constexpr auto kSwitchoverElection = std::chrono::seconds(10);
// One peer's Revoke answer; a peer that does not answer in time counts as
// not reached.
inline constexpr auto kPeerRevokeTimeout = std::chrono::seconds(3);

// Records are protobuf JSON (readable with etcdctl).
std::string ToJson(const google::protobuf::Message& m);
template <typename M>
absl::StatusOr<M> FromJson(const std::string& json, const std::string& key) {
  M m;
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = true;
  if (auto s = google::protobuf::util::JsonStringToMessage(json, &m, o); !s.ok()) {
    return absl::DataLossError("etcd key " + key + " does not hold a valid record: " +
                               std::string(s.message()));
  }
  return m;
}

inline Gtid FromProto(const v1::Gtid& g) { return Gtid{g.epoch(), g.seq()}; }
inline void ToProto(const Gtid& g, v1::Gtid* out) {
  out->set_epoch(g.epoch);
  out->set_seq(g.seq);
}

inline int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline int64_t LeaseNanos(LeaseClock::time_point t) { return t.time_since_epoch().count(); }

}  // namespace relaykv::coordinator_internal
