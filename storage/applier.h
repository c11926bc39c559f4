// Applier: the one thread that moves binlog events into the state machine,
// in seq order, in batches. The primary's commit path, its crash recovery
// and a replica's SQL thread all use it.
//
// The applier applies only up to the release point: Release(seq) allows
// events with seq <= `seq` (on a primary once the commit may become visible:
// right after the binlog sync, or after the semi-sync ACK under AFTER_SYNC;
// on a replica once the relay log holds them). Released events must be
// visible in the binlog. A committer calls ReleaseAndApply(seq), which
// applies on its own thread unless another thread is applying right now —
// that one then takes this release too before it stops — so the commit path
// needs no thread hop and wakes nobody. WaitApplied waiters are woken one by
// one as their seq is applied (SeqWaiters), not all at once.
//
// Threads: all methods thread-safe (Start() and Stop() are serialized by a
// lock of their own: both join the thread). Start()
// starts the thread (joining one still on its way out), Stop() sets the stop
// state, wakes and joins it (also done by the destructor). An apply error
// stops the thread; the error is kept in last_error() and returned to every
// waiter. running() is false from the moment a stop or failure begins.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "storage/thread_annotations.h"
#include "absl/status/status.h"
#include "storage/binlog.h"
#include "storage/binlog_reader.h"
#include "storage/seq_waiters.h"
#include "storage/state_machine.h"

namespace relaykv {

class Applier {
 public:
  // Borrows both; they must outlive the Applier.
  Applier(Binlog* binlog, StateMachine* state);
  ~Applier();
  Applier(const Applier&) = delete;
  Applier& operator=(const Applier&) = delete;

  // Starts applying from state->Applied().seq + 1. FAILED_PRECONDITION if
  // already running; the binlog's error if it cannot be read from there.
  [[nodiscard]] absl::Status Start() EXCLUDES(mu_);
  // Stops after the batch in progress. Waiters get CANCELLED.
  void Stop() EXCLUDES(mu_);
  bool running() const EXCLUDES(mu_);

  // Allows events up to `seq` to be applied (monotonic: lower values no-op)
  // and wakes the applier thread to apply them.
  void Release(uint64_t seq) EXCLUDES(mu_);
  // Release(seq) without the wake-up, then ApplyReleased().
  void ReleaseAndApply(uint64_t seq) EXCLUDES(apply_mu_, mu_);
  // Applies what is released on the calling thread, unless another thread
  // is applying right now (then it returns at once and that one does it).
  void ApplyReleased() EXCLUDES(apply_mu_, mu_);
  uint64_t released() const EXCLUDES(mu_);
  uint64_t applied() const EXCLUDES(mu_);
  Gtid applied_gtid() const EXCLUDES(mu_);  // applied() with its epoch
  // timestamp_us of the last applied event (0 before any): replica lag.
  int64_t applied_timestamp_us() const EXCLUDES(mu_);

  // Blocks until seq is applied (OK), the deadline passes (DEADLINE_EXCEEDED),
  // the applier stops (CANCELLED) or fails (its error).
  [[nodiscard]] absl::Status WaitApplied(uint64_t seq,
                                         std::chrono::steady_clock::time_point deadline)
      EXCLUDES(mu_);

  absl::Status last_error() const EXCLUDES(mu_);
  // Wall clock (µs) of last_error(); 0 if none.
  int64_t last_error_time_us() const EXCLUDES(mu_);

 private:
  void Run() EXCLUDES(apply_mu_, mu_);
  // Releases up to `seq` (0: nothing new) and applies on this thread unless
  // another one is applying.
  void ApplyUpTo(uint64_t seq) EXCLUDES(apply_mu_, mu_);
  // Applies batches until everything released is applied; the caller has
  // set applying_, which this clears. Returns false if it stopped short
  // because released events are not visible in the binlog yet.
  bool Drain() EXCLUDES(apply_mu_, mu_);
  // Reads and applies one batch of released events. Returns whether it
  // applied anything.
  absl::StatusOr<bool> ApplyBatch() REQUIRES(apply_mu_) EXCLUDES(mu_);
  void Fail(const absl::Status& error) REQUIRES(mu_);

  Binlog* const binlog_;
  StateMachine* const state_;

  // Held while reading and applying a batch. Lock order: apply_mu_, then mu_.
  std::mutex apply_mu_;
  std::unique_ptr<BinlogReader> reader_ GUARDED_BY(apply_mu_);
  std::vector<v1::Event> batch_ GUARDED_BY(apply_mu_);

  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // for the thread: Release(), stop_, or work it must take over
  SeqWaiters waiters_ GUARDED_BY(mu_);  // WaitApplied callers
  bool applying_ GUARDED_BY(mu_) = false;  // a thread is in Drain()
  uint64_t released_ GUARDED_BY(mu_) = 0;
  uint64_t applied_ GUARDED_BY(mu_) = 0;
  int64_t applied_timestamp_us_ GUARDED_BY(mu_) = 0;
  uint64_t applied_epoch_ GUARDED_BY(mu_) = 0;
  bool stop_ GUARDED_BY(mu_) = false;
  bool running_ GUARDED_BY(mu_) = false;
  absl::Status error_ GUARDED_BY(mu_);
  int64_t error_time_us_ GUARDED_BY(mu_) = 0;
  // Held for the whole of Start() and Stop() (both join thread_); the
  // thread itself never takes it. Lock order: lifecycle_mu_ first.
  std::mutex lifecycle_mu_;
  std::thread thread_;  // started by Start(), joined by Stop(); GUARDED_BY(lifecycle_mu_)
};

}  // namespace relaykv
