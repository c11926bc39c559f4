#include "server/timer_loop.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "storage/thread_annotations.h"
#include "storage/thread_name.h"

namespace relaykv {

namespace net = boost::asio;

// What a PeriodicTask handle and the loop's timer share. Holds no Asio
// object, so a handle may outlive the loop (a timer may not outlive its
// io_context).
struct TimerLoop::PeriodicTask::State {
  explicit State(std::thread::id loop) : loop_thread(loop) {}

  // On the loop thread, before a run: false once cancelled (then it never runs).
  bool BeginRun() EXCLUDES(mu) {
    std::lock_guard l(mu);
    if (cancelled) return false;
    running = true;
    return true;
  }
  // On the loop thread, after a run: false if it was cancelled meanwhile.
  bool EndRun() EXCLUDES(mu) {
    bool keep;
    {
      std::lock_guard l(mu);
      running = false;
      keep = !cancelled;
    }
    ended.notify_all();
    return keep;
  }
  void Cancel() EXCLUDES(mu) {
    std::unique_lock l(mu);
    cancelled = true;
    // On the loop thread a run in progress is the caller's own: waiting
    // for it would never end.
    if (std::this_thread::get_id() == loop_thread) return;
    ended.wait(l, [&] { return !running; });
  }

  const std::thread::id loop_thread;
  std::mutex mu;
  std::condition_variable ended;  // running turned false
  bool cancelled GUARDED_BY(mu) = false;
  bool running GUARDED_BY(mu) = false;  // in the task's function now
};

void TimerLoop::PeriodicTask::Cancel() {
  if (state_) state_->Cancel();
}

TimerLoop::PeriodicTask& TimerLoop::PeriodicTask::operator=(PeriodicTask&& other) noexcept {
  if (this != &other) {
    Cancel();
    state_ = std::move(other.state_);
  }
  return *this;
}

class TimerLoop::Impl {
 public:
  Impl() : work_(net::make_work_guard(io_)) {
    thread_ = std::thread([this] {
      NameThisThread("rkv-timers");
      io_.run();
    });
    loop_thread_ = thread_.get_id();
  }

  std::shared_ptr<PeriodicTask::State> Every(std::chrono::steady_clock::duration period,
                                             std::function<void()> fn) {
    auto state = std::make_shared<PeriodicTask::State>(loop_thread_);
    std::lock_guard l(mu_);
    if (stopped_) return state;  // never armed: its Cancel() has nothing to wait for
    auto task = std::make_shared<Task>(io_, period, std::move(fn), state);
    // Armed on the loop thread: every timer is touched there only.
    net::post(io_, [this, task] {
      tasks_.push_back(task);
      Arm(task);
    });
    return state;
  }

  // Once: a concurrent second caller waits until the first has joined.
  void Stop() {
    std::call_once(stop_once_, [this] { StopOnce(); });
  }

 private:
  void StopOnce() {
    {
      std::lock_guard l(mu_);
      stopped_ = true;
    }
    // Runs after a task in progress (one thread) and after every Every()
    // posted before: cancels what is armed; the cancelled waits complete
    // with operation_aborted and run nothing, then run() has no work left.
    net::post(io_, [this] {
      // A wait that completed already (its timer overdue, its handler
      // queued behind this one) is not cancelled: the flag keeps it from
      // running its task and re-arming, which kept run() alive for ever.
      ending_ = true;
      for (auto& t : tasks_) t->timer.cancel();
      tasks_.clear();
      work_.reset();
    });
    thread_.join();
  }

  struct Task {
    Task(net::io_context& io, std::chrono::steady_clock::duration p, std::function<void()> f,
         std::shared_ptr<PeriodicTask::State> s)
        : timer(io), period(p), fn(std::move(f)), state(std::move(s)) {}
    net::steady_timer timer;
    const std::chrono::steady_clock::duration period;
    const std::function<void()> fn;
    const std::shared_ptr<PeriodicTask::State> state;
  };

  void Arm(const std::shared_ptr<Task>& task) {
    task->timer.expires_after(task->period);
    task->timer.async_wait([this, task](const boost::system::error_code& ec) {
      if (ec || ending_) return;  // cancelled by Stop(), or due behind it
      // A cancelled task is dropped at its next due time: its handle cannot
      // reach the loop (it may outlive it), so nothing wakes the timer early.
      if (!task->state->BeginRun()) return Drop(task);
      task->fn();
      if (!task->state->EndRun()) return Drop(task);
      Arm(task);
    });
  }

  void Drop(const std::shared_ptr<Task>& task) { std::erase(tasks_, task); }

  net::io_context io_{1};
  net::executor_work_guard<net::io_context::executor_type> work_;
  std::mutex mu_;
  bool stopped_ GUARDED_BY(mu_) = false;
  std::once_flag stop_once_;
  std::vector<std::shared_ptr<Task>> tasks_;  // loop thread only
  bool ending_ = false;                       // loop thread only: Stop() ran there
  std::thread thread_;
  std::thread::id loop_thread_;  // thread_'s id; set by the constructor, then constant
};

TimerLoop::TimerLoop() : impl_(std::make_unique<Impl>()) {}
TimerLoop::~TimerLoop() { Stop(); }
TimerLoop::PeriodicTask TimerLoop::Every(std::chrono::steady_clock::duration period,
                                         std::function<void()> task) {
  return PeriodicTask(impl_->Every(period, std::move(task)));
}
void TimerLoop::Stop() { impl_->Stop(); }

}  // namespace relaykv
