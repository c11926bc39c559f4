// WriteMux: many callers' writes multiplexed onto one WriteStream to one
// node (proto/kv.proto, StreamWrite), for relaykv::Client's pipelined and
// asynchronous writes. Private to client/.
//
// Write() blocks its caller until its own answer (matched by id; the server
// answers in commit order, not send order) or its deadline. WriteAsync()
// returns at once and calls `done` once with the answer, on the stream's
// reader thread (or the deadline thread, or the caller's own thread when it
// cannot even be queued). Sending is combined: a caller that finds nobody
// writing sends every queued write in one message, and keeps sending while
// more queue up behind it; the others only queue. Writes issued by `done`
// callbacks while the reader hands out one message's answers are sent
// together after the last of them: a chain of async writes batches as well
// as many threads do, without a thread switch per write.
//
// A broken stream (node gone, connection dropped, node shutting down)
// fails every write in flight with UNAVAILABLE — their outcome is unknown,
// as for a unary call whose connection drops — and the next write opens a
// new stream. A write whose deadline passes gets DEADLINE_EXCEEDED
// (outcome unknown too); the server got the same deadline
// (StreamWrite::timeout_ms) and stops waiting for it.
//
// Threads: thread-safe. The destructor cancels the stream, calls every
// pending `done` with UNAVAILABLE, and joins the threads; no Write() may
// still be running then, and a `done` must not destroy the mux. A `done`
// must not block (it holds up every answer behind it); it may write again.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/kv.grpc.pb.h"
#include "relaykv/gtid.h"
#include "relaykv/txn.h"

namespace relaykv {

class WriteMux {
 public:
  using Clock = std::chrono::steady_clock;
  using Done = std::function<void(absl::StatusOr<TxnResult>)>;

  // Borrows `stub`, which must outlive this. `address` names the node in
  // error messages; `prepare` (may be empty) is applied to each stream's
  // context before it opens (the bearer token).
  WriteMux(v1::Kv::Stub* stub, std::string address,
           std::function<void(grpc::ClientContext*)> prepare = {});
  ~WriteMux();
  WriteMux(const WriteMux&) = delete;
  WriteMux& operator=(const WriteMux&) = delete;

  // Sends `write` (its op set; its id is assigned here) and waits for its
  // answer until `deadline`.
  [[nodiscard]] absl::StatusOr<TxnResult> Write(v1::StreamWrite write, Clock::time_point deadline);

  // Sends `write` and returns; `done` gets its answer (see the file comment).
  void WriteAsync(v1::StreamWrite write, Clock::time_point deadline, Done done);

 private:
  struct Waiter;
  struct Stream;
  using Answered = std::vector<std::pair<std::shared_ptr<Waiter>, absl::StatusOr<TxnResult>>>;

  // Queues `write` for `waiter` on the open stream (opening one if needed)
  // and sends unless someone else is sending or the reader will. Called
  // and returns with `l` holding mu_ (released while sending).
  std::shared_ptr<Stream> Enqueue(v1::StreamWrite write, Clock::time_point deadline,
                                  std::shared_ptr<Waiter> waiter, std::unique_lock<std::mutex>& l);
  // Sends what is queued on `s` (and whatever queues meanwhile) unless a
  // caller already is. Called and returns with `l` holding mu_.
  void SendQueued(Stream* s, std::unique_lock<std::mutex>& l);
  // The open stream, or a new one if there is none or it broke.
  std::shared_ptr<Stream> Current();
  // The reader thread: hands out answers until the stream ends, then fails
  // whoever still waits.
  void ReadAnswers(Stream* stream);
  // The deadline thread: fails async writes whose deadline passed.
  void ExpireAsync();
  // Fills in `w`'s result: wakes a blocked caller, or (async) moves it to
  // `answered` for its callback to be run after mu_ is released.
  void Finish(std::shared_ptr<Waiter> w, absl::StatusOr<TxnResult> result, Answered* answered);
  static void RunCallbacks(Answered* answered);

  v1::Kv::Stub* const stub_;
  const std::string address_;
  const std::function<void(grpc::ClientContext*)> prepare_;

  // Guards stream state (queues, waiters), the streams themselves and the
  // async deadlines.
  std::mutex mu_;
  std::shared_ptr<Stream> current_;              // guarded by mu_
  std::vector<std::shared_ptr<Stream>> retired_;  // broken, reader maybe running; guarded by mu_
  uint64_t next_id_ = 1;                          // guarded by mu_
  bool closing_ = false;                          // the destructor runs; guarded by mu_
  // Async writes in flight by deadline, and the stream each is on.
  std::map<std::pair<Clock::time_point, uint64_t>, Stream*> async_deadlines_;  // guarded by mu_
  std::condition_variable deadlines_changed_;
  std::thread deadline_thread_;  // started with the first async write
};

}  // namespace relaykv
