// WriteMux: many callers' writes multiplexed onto one WriteStream to one
// node (proto/kv.proto, StreamWrite), for relaykv::Client's pipelined and
// asynchronous writes. Private to client/.
//
// Write() blocks its caller until its own answer (matched by id; the server
// answers in commit order, not send order) or its deadline. WriteAsync()
// queues and returns; `done` is called once with the answer, on the
// stream's reader thread or the mux's expiry thread (on the caller's thread
// when the write is refused before it is queued). Sending is combined: a
// blocking caller with no other caller's write outstanding on a stream
// that has sent before sends its own (unless a send is under way: that
// sender takes it), for the latency of a unary call; otherwise (the first
// send waits for the connection) writes are sent by the sender thread, which
// takes whatever queued while it woke or sent, so the writes of callers
// woken by one answer tend to leave in one message. A blocking caller
// that is sending leaves what queued behind its own write to the sender
// thread — unless its write is over kMaxAloneBytes. Once a write handed to
// a stream expired unanswered, and until a write handed since is answered,
// callers send nothing themselves: the node may have stopped
// reading (alive, so keepalive never ends the connection), and its flow
// control would hold a caller in its send past its deadline, for good
// (review s44e M3). The reader thread never sends: it must always
// be free to read, or unread answers would stop the node from reading (its
// in-flight cap) while a send waits for the node (flow control). Nor does
// the expiry thread, so that deadlines hold while a send waits. Writes
// issued by `done` callbacks while the reader hands out one message's
// answers wake the sender once, after the last of them: a chain of async
// writes batches as well as many threads do, without a thread per write.
// A message carries at most kMaxWritesPerMessage writes and
// kMaxMessageBytes (or one write); a queued write whose deadline passed is
// not sent. A node takes a message of up to 256 writes whatever its
// max_write_stream_inflight (proto/kv.proto).
//
// A broken stream (node gone, connection dropped, node shutting down)
// fails every write in flight with UNAVAILABLE — their outcome is unknown,
// as for a unary call whose connection drops — and the next write opens a
// new stream. A write whose deadline passes gets DEADLINE_EXCEEDED
// (outcome unknown too); the server gets what is left of that deadline
// when the write is taken for sending (StreamWrite::timeout_ms) and stops
// waiting for it then — give or take the time the send itself waited
// (flow control, a connection being made). More than
// kMaxAsyncInFlight async writes unanswered: RESOURCE_EXHAUSTED at once
// (nothing sent).
//
// Threads: thread-safe. Shutdown() (and the destructor) cancels the
// stream, answers every pending write with UNAVAILABLE and joins the
// threads; writes after it fail at once. A send that flow control holds (a
// node that stopped reading) ends with the cancel; one wait it cannot cut
// short: a send stuck in the socket (a peer gone silent with its TCP
// buffers full) stays blocked until gRPC completes the connection's write,
// so Shutdown() then returns once keepalive declares the connection dead
// (~10 s with the client's channel arguments). A `done` must not block (it holds
// up every answer behind it), nor destroy the mux; it may write again.
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

  // Queues `write` and returns; `done` gets its answer (see the file comment).
  void WriteAsync(v1::StreamWrite write, Clock::time_point deadline, Done done);

  // Whether this thread is running a `done` callback (of any mux): a
  // blocking write there would hold up the answers it waits behind.
  static bool InCallback();

  // Calls `done` with `refusal` for a write refused before it was sent,
  // on this thread, before returning — unless this thread is already
  // kMaxNestedRefusals such calls deep: then once the outermost one's
  // `done` has returned. A callback that retries every refusal (the client
  // closing, the async cap reached) so loops instead of recursing until
  // the stack overflows, while a callback that writes again a few times
  // sees each refusal inline, as before.
  static void Refuse(const Done& done, absl::Status refusal);
  static constexpr int kMaxNestedRefusals = 16;

  // Ends every stream and joins every thread (see the file comment). Once
  // it returned no thread of this mux runs, so the owner may then destroy
  // other objects its callbacks use. Idempotent.
  void Shutdown();

  static constexpr int kMaxWritesPerMessage = 256;
  static constexpr size_t kMaxMessageBytes = 4 << 20;
  // The largest write a blocking caller sends itself: well inside HTTP/2's
  // initial stream window (64 KiB), which a node that read everything sent
  // so far has open.
  static constexpr size_t kMaxAloneBytes = 16 << 10;
  static constexpr size_t kMaxAsyncInFlight = 65536;

 private:
  struct Waiter;
  struct Stream;
  using Answered = std::vector<std::pair<std::shared_ptr<Waiter>, absl::StatusOr<TxnResult>>>;

  // Queues `write` for `waiter` on the open stream (opening one if needed);
  // a blocking write with no other outstanding, on a stream that has sent
  // before, is then sent by its caller, any other is left to the sender
  // thread. Called and returns with `l`
  // holding mu_ (released while sending).
  std::shared_ptr<Stream> Enqueue(v1::StreamWrite write, Clock::time_point deadline,
                                  std::shared_ptr<Waiter> waiter, std::unique_lock<std::mutex>& l);
  // Sends what is queued on `s` (and whatever queues meanwhile) unless a
  // caller already is; a blocking caller passes its write's id (see the
  // file comment). Called and returns with `l` holding mu_.
  void SendQueued(Stream* s, std::unique_lock<std::mutex>& l, uint64_t own_id = 0);
  // The next message's writes, taken from the front of `s`'s queue.
  v1::WriteStreamRequest TakeMessage(Stream* s);
  // Stops waiting for write `id` on `s` (its deadline passed): its waiter
  // goes, and so does the write if it was not handed to the stream yet (a
  // send stuck behind a node that stopped reading must not let the queue
  // grow with every caller's retry). Under mu_.
  void Abandon(Stream* s, uint64_t id);
  // Wakes the sender thread for current_'s queue. Under mu_.
  void WantSend();
  // Starts the sender and expiry threads, each unless it runs. Under mu_.
  void StartThreads();
  // The open stream, or a new one if there is none or it broke.
  std::shared_ptr<Stream> Current();
  // The reader thread: hands out answers until the stream ends, then fails
  // whoever still waits.
  void ReadAnswers(Stream* stream);
  // The sender thread: sends what callers left to it.
  void SendLeft();
  // The expiry thread: fails async writes whose deadline passed.
  void ExpireAsync();
  // Joins the readers of retired streams that have exited (outside mu_).
  std::vector<std::shared_ptr<Stream>> TakeExited();
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
  bool closing_ = false;                          // Shutdown() began; guarded by mu_
  // Async writes in flight by deadline, and the stream each is on.
  std::map<std::pair<Clock::time_point, uint64_t>, Stream*> async_deadlines_;  // guarded by mu_
  size_t async_in_flight_ = 0;    // async writes not yet answered; guarded by mu_
  bool send_wanted_ = false;      // writes wait in current_'s queue for the sender; guarded by mu_
  std::condition_variable send_cv_;    // send_wanted_ (or closing_)
  std::condition_variable expiry_cv_;  // a sooner deadline (or closing_)
  // Both started with the first write not sent by its own caller.
  std::thread sender_thread_;
  std::thread expiry_thread_;
};

}  // namespace relaykv
