// PrimaryReadIndex: a replica asks its primary where a primary-fresh read
// must be (proto/replication.proto ReadIndex), over a channel it keeps for
// the next read. The channel is the IO thread's in all that matters: the
// same address, TLS settings (MASTER_SSL*, so the same client certificate
// and identity) and channel limits; a CHANGE MASTER to another primary or
// other TLS settings makes a new one at the next call.
//
// Errors: UNAVAILABLE naming the primary and why (unreachable, it refused,
// bad TLS files); DEADLINE_EXCEEDED when it did not answer by `deadline`.
//
// Threads: Ask is thread-safe; calls run concurrently on one channel.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "client/channel_args.h"
#include "relaykv/gtid.h"
#include "relaykv/tls.h"
#include "storage/thread_annotations.h"

namespace relaykv {

class PrimaryReadIndex {
 public:
  struct Target {
    std::string address;  // HOST:PORT
    TlsOptions tls;
    ChannelLimits channel;
  };
  [[nodiscard]] absl::StatusOr<Gtid> Ask(const Target& target,
                                         std::chrono::steady_clock::time_point deadline)
      EXCLUDES(mu_);

 private:
  std::mutex mu_;
  std::string key_ GUARDED_BY(mu_);  // what channel_ was made for
  std::shared_ptr<grpc::Channel> channel_ GUARDED_BY(mu_);
};

}  // namespace relaykv
