// WriteAdmission: bounds the writes in a node's commit path (README
// "Limits"). A write is admitted while fewer than `max_inflight_writes`
// writes, and fewer than `max_inflight_write_bytes` bytes of keys and
// values, are between admission and their answer. Past that it waits in a
// FIFO queue — itself bounded by the same two caps, so that waiting writes
// cannot grow memory without bound either — for at most
// `write_queue_timeout_ms` (or its own deadline, if sooner), then is refused
// with RESOURCE_EXHAUSTED naming the limits. Admission comes before the
// binlog: a refused write was never appended (DESIGN.md invariant 5, and a
// refused write is not in the binlog).
//
// A write that fits is admitted on the caller's thread, inside Admit(). A
// queued one is admitted (or refused) on the admission thread, never inside
// Release(): Release() runs in a commit's answer, and admitting there would
// nest one commit's path inside another's callbacks.
//
// Threads: thread-safe. Close() refuses every waiter (UNAVAILABLE) and joins
// the thread; later Admit() calls are refused at once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/status/status.h"
#include "storage/thread_annotations.h"

namespace relaykv {

class WriteAdmission {
 public:
  using Clock = std::chrono::steady_clock;
  struct Limits {
    uint64_t max_writes = 0;
    uint64_t max_bytes = 0;
    uint64_t queue_timeout_ms = 0;
  };
  // Called once: OK when admitted (the caller must Release(bytes) once the
  // write is answered), else the refusal (nothing to release).
  using Admitted = std::function<void(absl::Status)>;

  // `limits` is read at every Admit(), so SET GLOBAL takes effect at once.
  explicit WriteAdmission(std::function<Limits()> limits);
  ~WriteAdmission();
  WriteAdmission(const WriteAdmission&) = delete;
  WriteAdmission& operator=(const WriteAdmission&) = delete;

  // `deadline`: the write's own (a queued write waits no longer than it).
  void Admit(size_t bytes, Clock::time_point deadline, Admitted admitted) EXCLUDES(mu_);
  void Release(size_t bytes) EXCLUDES(mu_);
  void Close() EXCLUDES(mu_);

  struct Stats {
    uint64_t in_flight = 0;        // admitted, not yet released
    uint64_t in_flight_bytes = 0;
    uint64_t queued = 0;           // waiting now
    uint64_t waits = 0;            // writes that had to wait (ever)
    uint64_t refused = 0;          // writes refused for the limits (ever)
  };
  Stats stats() const EXCLUDES(mu_);

 private:
  struct Waiter {
    size_t bytes;
    Clock::time_point deadline;
    Admitted admitted;
  };
  bool Fits(size_t bytes, const Limits& l) const REQUIRES(mu_);
  absl::Status Refusal(size_t bytes, const Limits& l, bool waited) const REQUIRES(mu_);
  void Run() EXCLUDES(mu_);

  const std::function<Limits()> limits_;
  mutable std::mutex mu_;
  std::condition_variable cv_;  // a release, a new waiter, or Close()
  uint64_t in_flight_ GUARDED_BY(mu_) = 0;
  uint64_t in_flight_bytes_ GUARDED_BY(mu_) = 0;
  std::deque<Waiter> queue_ GUARDED_BY(mu_);  // FIFO: oldest first
  uint64_t queued_bytes_ GUARDED_BY(mu_) = 0;
  uint64_t waits_ GUARDED_BY(mu_) = 0;
  uint64_t refused_ GUARDED_BY(mu_) = 0;
  bool closed_ GUARDED_BY(mu_) = false;
  std::thread thread_;  // started by the first write that has to wait
};

}  // namespace relaykv
