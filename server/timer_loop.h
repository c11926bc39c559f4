// TimerLoop: the node's periodic chores as Boost.Asio steady_timer tasks on
// one io_context, run by one thread ("rkv-timers") that the node owns
// whether or not relaykvd serves HTTP. A task is a plain function called
// every `period`; it needs no loop, condition variable or stop flag of its
// own (README "Threads" lists what runs here and what does not, and why).
//
// Threads: Every(), Stop() and PeriodicTask::Cancel() are thread-safe.
// Tasks run on the loop thread, one at a time, so a slow one delays the
// others (keep them short; they may block briefly, e.g. on a file purge).
// Stop() (idempotent, and a concurrent second call waits for the first;
// the destructor calls it) waits for a task in progress, cancels the
// timers and joins the thread: after it returns no
// task runs, and Every() adds nothing. Stop() must not be called from a task.
//
// Removing one task: Every() returns a PeriodicTask; its Cancel() (or its
// destruction) returns only once the task is not running and never will
// again — so a component whose task uses its members cancels it first in
// its destructor, and may be destroyed before or after the loop. Called on
// the loop thread (from inside this task or another one), Cancel() does not
// wait: the running task is then the caller itself.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

namespace relaykv {

class TimerLoop {
 public:
  // A task registered by Every(); cancels it when destroyed. Movable, not
  // copyable; a default-constructed one holds nothing. May outlive the loop.
  class PeriodicTask {
   public:
    PeriodicTask() = default;
    ~PeriodicTask() { Cancel(); }
    PeriodicTask(PeriodicTask&&) noexcept = default;
    PeriodicTask& operator=(PeriodicTask&& other) noexcept;
    PeriodicTask(const PeriodicTask&) = delete;
    PeriodicTask& operator=(const PeriodicTask&) = delete;

    // Once it returns, the task is not running (unless the caller is that
    // very run, on the loop thread) and never runs again. Idempotent; fine
    // after the loop's Stop() or destruction. The task's function object is
    // destroyed later on the loop thread (or by Stop()): it must not own
    // anything that needs its registrant alive.
    void Cancel();

    struct State;  // timer_loop.cc

   private:
    friend class TimerLoop;
    explicit PeriodicTask(std::shared_ptr<State> state) : state_(std::move(state)) {}
    std::shared_ptr<State> state_;  // shared with the loop's timer
  };

  TimerLoop();  // starts the thread
  ~TimerLoop();
  TimerLoop(const TimerLoop&) = delete;
  TimerLoop& operator=(const TimerLoop&) = delete;

  // Calls `task` every `period`, the first time one period from now; the
  // next period counts from the end of a run (a slow run is not caught up).
  // The task runs until the returned handle is cancelled or destroyed, or
  // the loop stops; once stopped, the handle returned does nothing.
  [[nodiscard]] PeriodicTask Every(std::chrono::steady_clock::duration period,
                                   std::function<void()> task);
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace relaykv
