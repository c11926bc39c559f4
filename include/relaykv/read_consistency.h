// Read consistency levels (public API): what a Get or Scan waits for
// before it reads, on Node (GetOptions), the gRPC API (proto/kv.proto) and
// Client (ReadOptions) alike.
//
//   kLocal         read this node's applied state at once. With a wait_for
//                  GTID it waits for it first (the behaviour before levels
//                  existed), exactly as kWaitForGtid.
//   kWaitForGtid   read-your-writes: wait until this node has applied the
//                  given GTID (it must be given: INVALID_ARGUMENT otherwise).
//   kPrimaryFresh  linearizable reads of committed data, from any node
//                  (etcd's ReadIndex): a replica first asks its primary for
//                  the primary's applied GTID (a replica of a replica asks
//                  its own primary, which does the same), then waits until it
//                  has applied it, then reads locally. A read therefore sees
//                  every write that was answered OK before it started. On a
//                  primary it is a local read (under AFTER_SYNC only ACKed
//                  writes are applied, so visible). Errors: UNAVAILABLE when
//                  the primary cannot be asked (unreachable, or it refuses:
//                  a revoked primary) naming it; DEADLINE_EXCEEDED when the
//                  wait passes the read's deadline. A given wait_for GTID is
//                  waited for too.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace relaykv {

enum class ReadConsistency : uint8_t { kLocal = 0, kWaitForGtid = 1, kPrimaryFresh = 2 };

// "local" / "wait_for_gtid" / "primary_fresh".
constexpr std::string_view ReadConsistencyName(ReadConsistency c) {
  switch (c) {
    case ReadConsistency::kLocal: return "local";
    case ReadConsistency::kWaitForGtid: return "wait_for_gtid";
    case ReadConsistency::kPrimaryFresh: return "primary_fresh";
  }
  return "unknown";
}

}  // namespace relaykv
