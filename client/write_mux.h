// WriteMux: many threads' writes multiplexed onto one WriteStream to one
// node (proto/kv.proto, StreamWrite), for relaykv::Client with
// ClientOptions::pipelined. Private to client/.
//
// Each Write() blocks its caller until its own answer (matched by id; the
// server answers in commit order, not send order) or its deadline. Sending
// is combined: a caller that finds nobody writing sends every queued write
// in one message, and keeps sending while more queue up behind it; the
// others only queue and wait. One reader thread per stream hands answers
// to their callers.
//
// A broken stream (node gone, connection dropped, node shutting down)
// fails every write in flight with UNAVAILABLE — their outcome is unknown,
// as for a unary call whose connection drops — and the next Write() opens
// a new stream. A write whose deadline passes returns DEADLINE_EXCEEDED;
// the server got the same deadline (StreamWrite::timeout_ms) and stops
// waiting for it too.
//
// Threads: thread-safe. The destructor cancels the stream (callers still
// waiting get UNAVAILABLE) and joins the reader threads; no Write() may
// still be running then.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/kv.grpc.pb.h"
#include "relaykv/gtid.h"
#include "relaykv/txn.h"

namespace relaykv {

class WriteMux {
 public:
  // Borrows `stub`, which must outlive this. `address` names the node in
  // error messages.
  WriteMux(v1::Kv::Stub* stub, std::string address);
  ~WriteMux();
  WriteMux(const WriteMux&) = delete;
  WriteMux& operator=(const WriteMux&) = delete;

  // Sends `write` (its op set; its id is assigned here) and waits for its
  // answer until `deadline`.
  [[nodiscard]] absl::StatusOr<TxnResult> Write(v1::StreamWrite write,
                                           std::chrono::steady_clock::time_point deadline);

 private:
  struct Waiter;
  struct Stream;

  // The open stream, or a new one if there is none or it broke.
  std::shared_ptr<Stream> Current();
  // The reader thread: hands out answers until the stream ends, then fails
  // whoever still waits.
  void ReadAnswers(Stream* stream);

  v1::Kv::Stub* const stub_;
  const std::string address_;

  // Guards stream state (queues, waiters) and the streams themselves.
  std::mutex mu_;
  std::shared_ptr<Stream> current_;              // guarded by mu_
  std::vector<std::shared_ptr<Stream>> retired_;  // broken, reader maybe running; guarded by mu_
  uint64_t next_id_ = 1;                          // guarded by mu_
};

}  // namespace relaykv
