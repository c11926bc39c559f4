// WatchService: ChangeStream.Watch (proto/watch.proto) over Node::Watch's
// loop — the one an embedding application calls — in the form that builds
// each batch as the WatchResponse's bytes (Node::Impl::WatchWire,
// server/watch_wire.h): the service is registered by hand with a raw
// (grpc::ByteBuffer) response, so an event that many watchers deliver is
// encoded once, not serialized per watcher. Clients see the generated
// service's messages. Needs the read role
// (server/auth.h). Each call runs on one of gRPC's sync server threads and
// writes each batch with a blocking Write: when the client does not read,
// gRPC flow control blocks the write and, with it, the binlog walk, so a
// slow client costs the server one batch plus gRPC's window.
//
// Memory: each batch being written counts against max_inflight_reply_bytes
// (the budget of unsent Get and Scan replies, server/reply_guards.h), so
// watchers that do not read cannot hold more than it together.
//
// A client that stops reading altogether would hold that thread in Write
// for ever; Node::Watch's lag check runs only between batches. So a
// watchdog task on the node's TimerLoop looks at every call once a second
// and cancels one whose
// Write has been blocked for twice watch_max_lag_seconds, and at least 10 s
// more, or for net_write_timeout if that is shorter (as a replica's stream
// and a Get's reply: what it holds counts against the reply budget every
// read shares; logged, naming the variables; the client sees CANCELLED if
// it ever reads again). A reader that is only slow gets Node::Watch's
// RESOURCE_EXHAUSTED once its Write returns.
//
// Threads: gRPC's, and the node's timer loop (server/timer_loop.h) for the
// watchdog: registered by the constructor, cancelled by the destructor,
// which returns once no scan runs (the node destroys the service after the
// gRPC server has shut down; the loop may have stopped before).
// The watchdog holds mu_ while it cancels: a call that has removed itself
// from calls_ is never touched again.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/service_type.h"
#include "grpcpp/support/byte_buffer.h"
#include "proto/watch.pb.h"
#include "server/auth.h"
#include "server/reply_guards.h"
#include "server/timer_loop.h"
#include "storage/thread_annotations.h"

namespace relaykv {

class Node;

class WatchService final : public grpc::Service {
 public:
  // Borrows `node`, `auth` and `budget`, which must outlive the service,
  // and `timers` for the constructor only. `max_lag` reads
  // watch_max_lag_seconds, `send_timeout` net_write_timeout. Each batch is
  // counted against `budget`'s max_inflight_reply_bytes while it is
  // written; a batch waits up to half watch_max_lag_seconds for room (while
  // waiting batches hold no more than the budget again), then ends the
  // stream with UNAVAILABLE naming the budget (relaykv::Client resumes from
  // the last GTID it received).
  WatchService(Node* node, const Authorizer* auth, ReplyGuards* budget, TimerLoop* timers,
               std::function<std::chrono::seconds()> max_lag,
               std::function<std::chrono::seconds()> send_timeout);
  ~WatchService() override;
  WatchService(const WatchService&) = delete;
  WatchService& operator=(const WatchService&) = delete;

  grpc::Status Watch(grpc::ServerContext* ctx, const v1::WatchRequest* request,
                     grpc::ServerWriter<grpc::ByteBuffer>* writer);

 private:
  struct Call;
  // One watchdog round (every second on the timer loop).
  void Watchdog() EXCLUDES(mu_);

  Node* const node_;
  const Authorizer* const auth_;
  ReplyGuards* const budget_;
  const std::function<std::chrono::seconds()> max_lag_;
  const std::function<std::chrono::seconds()> send_timeout_;

  std::mutex mu_;
  std::vector<Call*> calls_ GUARDED_BY(mu_);  // borrowed: each removes itself before it ends
  TimerLoop::PeriodicTask watchdog_;  // last: runs once the rest is set up
};

}  // namespace relaykv
