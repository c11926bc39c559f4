// ConnectionSlots: max_connections (README "Limits").
//
// gRPC multiplexes many calls over one HTTP/2 connection and many clients
// may share one, so the TCP connection is not what costs a server memory
// and threads: the call is. What MySQL's max_connections bounds (sessions
// holding server resources) is therefore, here, client calls in progress:
// each unary KV call (Put, Delete, Write for its duration; Get, Scan and
// ReadIndex until their reply is sent: server/reply_guards.h), each
// WriteStream for its life, each replication stream (a replica's
// connection counts in MySQL too) and each clone FetchFile. Admin calls
// are not counted, as MySQL keeps one connection for an administrator:
// SET GLOBAL max_connections must work when the limit is reached. Past the limit a call is refused at
// once with RESOURCE_EXHAUSTED "Too many connections" (MySQL's
// ER_CON_COUNT_ERROR), naming the limit.
//
// Threads: lock-free; the limit is re-read at every Acquire().
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace relaykv {

class ConnectionSlots {
 public:
  // Borrows `limit`, which must outlive this object.
  explicit ConnectionSlots(const std::atomic<uint64_t>* limit) : limit_(limit) {}

  // OK and one slot taken, or RESOURCE_EXHAUSTED naming the limit and `what`.
  [[nodiscard]] absl::Status Acquire(std::string_view what) {
    const uint64_t limit = limit_->load(std::memory_order_relaxed);
    uint64_t n = active_.load(std::memory_order_relaxed);
    do {
      if (n >= limit) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        return absl::ResourceExhaustedError(
            "Too many connections: " + std::string(what) + " refused, " + std::to_string(n) +
            " client calls and streams are in progress; the limit is max_connections=" +
            std::to_string(limit));
      }
    } while (!active_.compare_exchange_weak(n, n + 1));
    return absl::OkStatus();
  }
  void Release() { active_.fetch_sub(1); }

  uint64_t active() const { return active_.load(); }
  // Calls refused for the limit since start (Connection_errors_max_connections).
  uint64_t refused() const { return refused_.load(); }

 private:
  const std::atomic<uint64_t>* const limit_;
  std::atomic<uint64_t> active_{0};
  std::atomic<uint64_t> refused_{0};
};

// One slot for a scope (a synchronous call's handler).
class ConnectionSlot {
 public:
  ConnectionSlot(ConnectionSlots* slots, std::string_view what)
      : slots_(slots), status_(slots->Acquire(what)) {}
  ~ConnectionSlot() {
    if (status_.ok()) slots_->Release();
  }
  ConnectionSlot(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(const ConnectionSlot&) = delete;
  const absl::Status& status() const { return status_; }

 private:
  ConnectionSlots* const slots_;
  const absl::Status status_;
};

}  // namespace relaykv
