// PrimaryReadIndex: a replica asks its primary where a primary-fresh read
// must be (proto/replication.proto ReadIndex), over a channel it keeps for
// the next read. The channel is the IO thread's in all that matters: the
// same address, TLS settings (MASTER_SSL*, so the same client certificate
// and identity) and channel limits; a CHANGE MASTER to another primary or
// other TLS settings makes a new one at the next call.
//
// A replica asked by another passes the read on with the chain of
// replicas it came through (ReadIndexChain). Without a bound, a replica of
// itself, or an A<->B cycle, asked itself again at every level until the
// deadline and used up the gRPC handler threads (review s4 finding 6):
// CheckPassOn refuses, before asking, when this node is in the chain
// already or the read would pass through more than kMaxReadIndexHops
// replicas.
//
// Errors: UNAVAILABLE naming the primary and why (unreachable, it refused,
// bad TLS files); DEADLINE_EXCEEDED when it did not answer by `deadline`;
// FAILED_PRECONDITION naming the chain when CheckPassOn refused, here or
// upstream (the refusal travels back as such: IsReadIndexChainError, and
// a trailer, kReadIndexChainTrailer, between nodes).
//
// Threads: Ask is thread-safe; calls run concurrently on one channel.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "client/channel_args.h"
#include "relaykv/gtid.h"
#include "relaykv/tls.h"
#include "storage/thread_annotations.h"

namespace relaykv {

// Replicas a primary-fresh read may pass through in a row (cascading
// replication deeper than this is refused, not waited out).
inline constexpr uint32_t kMaxReadIndexHops = 4;

// The replicas that passed a read on to this node (ReadIndexRequest):
// empty for a read of this node's own client.
struct ReadIndexChain {
  uint32_t hops = 0;               // >= asked_by.size() (an older peer sends neither)
  std::vector<uint32_t> asked_by;  // server_ids, in order
};

// OK if this node (server_id `self`) may ask its primary for `chain`;
// else FAILED_PRECONDITION (IsReadIndexChainError) naming the chain.
[[nodiscard]] absl::Status CheckPassOn(const ReadIndexChain& chain, uint32_t self);
bool IsReadIndexChainError(const absl::Status& s);
// Set on a ReadIndex answer that is CheckPassOn's refusal.
inline constexpr char kReadIndexChainTrailer[] = "relaykv-read-index-chain";

class PrimaryReadIndex {
 public:
  struct Target {
    std::string address;  // HOST:PORT
    TlsOptions tls;
    ChannelLimits channel;
  };
  // Asks for `chain` as passed on by this node: `self` is added to it.
  [[nodiscard]] absl::StatusOr<Gtid> Ask(const Target& target,
                                         std::chrono::steady_clock::time_point deadline,
                                         const ReadIndexChain& chain, uint32_t self)
      EXCLUDES(mu_);

 private:
  std::mutex mu_;
  std::string key_ GUARDED_BY(mu_);  // what channel_ was made for
  std::shared_ptr<grpc::Channel> channel_ GUARDED_BY(mu_);
};

}  // namespace relaykv
