// ReplyGuards: what a synchronous unary read (Get, Scan, ReadIndex) holds
// after its handler returned. gRPC then sends the reply on the handler's
// thread and waits for the client's flow control, so a client that grants
// no window held that thread and the reply (up to 16 MiB) for as long as it
// liked, outside max_connections (review s43b F2): enough such calls and
// every other call, admin and replication included, found no thread.
//
// One server interceptor per guarded call (registered with NewFactory())
// keeps the call's max_connections slot, taken by the handler through
// Acquire(), and the bytes its reply holds, counted by Reserve() against
// max_inflight_reply_bytes (a count and a time alone still let 1000 stalled
// 16 MiB replies and their encodings take 32 GiB: review s43d R1), until
// gRPC is done with the call; and it ends (TryCancel) a reply send blocked
// longer than net_write_timeout with a warning naming the peer — as a
// replica's stream is ended.
//
// Threads: thread-safe; interceptors run on gRPC's threads.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include <grpcpp/support/server_interceptor.h>

#include "absl/status/status.h"
#include "server/connection_slots.h"
#include "server/stall_watchdog.h"
#include "storage/thread_annotations.h"

namespace relaykv {

class ReplyGuards {
 public:
  // Borrows `slots`, which must outlive this. `methods`: full gRPC method
  // names ("/relaykv.v1.Kv/Get") whose calls are guarded.
  ReplyGuards(ConnectionSlots* slots, std::function<std::chrono::seconds()> send_timeout,
              std::function<uint64_t()> max_reply_bytes, std::set<std::string> methods);
  ReplyGuards(const ReplyGuards&) = delete;
  ReplyGuards& operator=(const ReplyGuards&) = delete;

  // For ServerBuilder::experimental().SetInterceptorCreators. The factory
  // borrows this: it must outlive the gRPC server.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewFactory();

  // In a guarded method's handler: one max_connections slot for the call,
  // held until gRPC is done with it (a second call for the same call takes
  // none). OK, or the refusal naming max_connections, or
  // max_inflight_reply_bytes when replies already fill it.
  [[nodiscard]] absl::Status Acquire(grpc::ServerContextBase* ctx, std::string_view what)
      EXCLUDES(mu_);

  // In a guarded method's handler, once its reply is built: `bytes` held
  // until gRPC is done with the call. OK, or RESOURCE_EXHAUSTED naming
  // max_inflight_reply_bytes (a reply alone is always let through).
  [[nodiscard]] absl::Status Reserve(grpc::ServerContextBase* ctx, uint64_t bytes,
                                     std::string_view what) EXCLUDES(mu_);

  // A message of a stream (a Watch batch) about to be written: `bytes`
  // counted against the same budget until ReleaseBytes(), once its Write
  // returned (watchers that do not read each held a batch, up to a 32 MiB
  // event, with no bound on their sum: review s43b F8). Waits for room, as
  // flow control would, until `deadline` or `cancelled()`; then the refusal
  // naming max_inflight_reply_bytes (a message alone is always let through).
  // Stream messages together hold at most half the budget (one alone any
  // size), so that reads keep the other half (review s44d L2). Messages
  // waiting for room go in the order they came: a newcomer waits behind
  // them even if it would fit (review s46d M1), unless it is up to
  // kSmallStreamMessageBytes and the oldest has waited less than
  // kSmallMessagesPass (s46e M1, s46f M1). Reads (Reserve) are not
  // ordered with them.
  // Waiting messages are built already: they may wait only while those
  // waiting hold no more than the budget again, else the refusal comes at
  // once (review s44d M1).
  [[nodiscard]] absl::Status ReserveBytes(uint64_t bytes, std::string_view what,
                                          std::chrono::steady_clock::time_point deadline,
                                          const std::function<bool()>& cancelled) EXCLUDES(mu_);
  void ReleaseBytes(uint64_t bytes) EXCLUDES(mu_);

  // Bytes reserved by replies and stream messages not yet sent.
  uint64_t reply_bytes() const EXCLUDES(mu_);
  // Bytes of stream messages waiting in ReserveBytes.
  uint64_t waiting_bytes() const EXCLUDES(mu_);

  static constexpr uint64_t kSmallStreamMessageBytes = 64 << 10;
  static constexpr std::chrono::milliseconds kSmallMessagesPass{500};

 private:
  class Interceptor;
  class Factory;

  // The refusal naming max_inflight_reply_bytes (`bytes`: the reply's, 0
  // before it is read).
  absl::Status ReplyBudgetFull(std::string_view what, uint64_t bytes, uint64_t limit) const
      REQUIRES(mu_);
  // The refusal of a message that waited behind older ones.
  absl::Status QueuedBehind(std::string_view what, uint64_t bytes) const REQUIRES(mu_);

  ConnectionSlots* const slots_;
  const std::function<std::chrono::seconds()> send_timeout_;
  const std::function<uint64_t()> max_reply_bytes_;
  const std::set<std::string> methods_;
  mutable std::mutex mu_;
  std::unordered_map<const grpc::ServerContextBase*, Interceptor*> calls_ GUARDED_BY(mu_);
  uint64_t reply_bytes_ GUARDED_BY(mu_) = 0;
  uint64_t stream_bytes_ GUARDED_BY(mu_) = 0;   // of reply_bytes_, ReserveBytes' messages
  struct Queued {
    uint64_t ticket;
    std::chrono::steady_clock::time_point since;
  };
  std::deque<Queued> stream_queue_ GUARDED_BY(mu_);  // waiting messages, in order
  uint64_t next_ticket_ GUARDED_BY(mu_) = 0;
  uint64_t waiting_bytes_ GUARDED_BY(mu_) = 0;  // of messages waiting in ReserveBytes
  std::condition_variable released_;  // reply_bytes_ went down
  StallWatchdog watchdog_;
};

}  // namespace relaykv
