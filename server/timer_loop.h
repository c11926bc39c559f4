// TimerLoop: the node's periodic chores as Boost.Asio steady_timer tasks on
// one io_context, run by one thread ("rkv-timers") that the node owns
// whether or not relaykvd serves HTTP. A task is a plain function called
// every `period`; it needs no loop, condition variable or stop flag of its
// own (README "Threads" lists what runs here and what does not, and why).
//
// Threads: Every() and Stop() are thread-safe. Tasks run on the loop thread,
// one at a time, so a slow one delays the others (keep them short; they may
// block briefly, e.g. on a file purge). Stop() (idempotent; the destructor
// calls it) waits for a task in progress, cancels the timers and joins the
// thread: after it returns no task runs, and Every() adds nothing. Stop()
// must not be called from a task.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

namespace relaykv {

class TimerLoop {
 public:
  TimerLoop();  // starts the thread
  ~TimerLoop();
  TimerLoop(const TimerLoop&) = delete;
  TimerLoop& operator=(const TimerLoop&) = delete;

  // Calls `task` every `period`, the first time one period from now; the
  // next period counts from the end of a run (a slow run is not caught up).
  void Every(std::chrono::steady_clock::duration period, std::function<void()> task);
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace relaykv
