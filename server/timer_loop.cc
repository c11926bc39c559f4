#include "server/timer_loop.h"

#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "storage/thread_name.h"

namespace relaykv {

namespace net = boost::asio;

class TimerLoop::Impl {
 public:
  Impl() : work_(net::make_work_guard(io_)) {
    thread_ = std::thread([this] {
      NameThisThread("rkv-timers");
      io_.run();
    });
  }

  void Every(std::chrono::steady_clock::duration period, std::function<void()> fn) {
    std::lock_guard l(mu_);
    if (stopped_) return;
    auto task = std::make_shared<Task>(io_, period, std::move(fn));
    // Armed on the loop thread: every timer is touched there only.
    net::post(io_, [this, task] {
      tasks_.push_back(task);
      Arm(task);
    });
  }

  void Stop() {
    {
      std::lock_guard l(mu_);
      if (stopped_) return;
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

 private:
  struct Task {
    Task(net::io_context& io, std::chrono::steady_clock::duration p, std::function<void()> f)
        : timer(io), period(p), fn(std::move(f)) {}
    net::steady_timer timer;
    const std::chrono::steady_clock::duration period;
    const std::function<void()> fn;
  };

  void Arm(const std::shared_ptr<Task>& task) {
    task->timer.expires_after(task->period);
    task->timer.async_wait([this, task](const boost::system::error_code& ec) {
      if (ec || ending_) return;  // cancelled by Stop(), or due behind it
      task->fn();
      Arm(task);
    });
  }

  net::io_context io_{1};
  net::executor_work_guard<net::io_context::executor_type> work_;
  std::mutex mu_;
  bool stopped_ = false;                      // guarded by mu_
  std::vector<std::shared_ptr<Task>> tasks_;  // loop thread only
  bool ending_ = false;                       // loop thread only: Stop() ran there
  std::thread thread_;
};

TimerLoop::TimerLoop() : impl_(std::make_unique<Impl>()) {}
TimerLoop::~TimerLoop() { Stop(); }
void TimerLoop::Every(std::chrono::steady_clock::duration period, std::function<void()> task) {
  impl_->Every(period, std::move(task));
}
void TimerLoop::Stop() { impl_->Stop(); }

}  // namespace relaykv
