#include "server/stall_watchdog.h"

#include "spdlog/spdlog.h"
#include "storage/thread_name.h"

namespace relaykv {
namespace {
// How late past its deadline a stall may be noticed.
constexpr auto kTick = std::chrono::milliseconds(100);
}  // namespace

StallWatchdog::StallWatchdog() {
  thread_ = std::thread([this] {
    NameThisThread("rkv-stallwatch");
    Run();
  });
}

StallWatchdog::~StallWatchdog() {
  {
    std::lock_guard l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

uint64_t StallWatchdog::Add(grpc::ServerContextBase* ctx, Clock::time_point deadline, std::string what) {
  std::lock_guard l(mu_);
  const uint64_t id = next_id_++;
  watched_.emplace(id, Entry{ctx, deadline, std::move(what)});
  // Awake, the thread looks at this within a tick: early enough.
  if (sleeping_) cv_.notify_all();
  return id;
}

void StallWatchdog::Remove(uint64_t id) {
  std::lock_guard l(mu_);
  watched_.erase(id);  // gone already if it fired
}

void StallWatchdog::Run() {
  std::unique_lock l(mu_);
  while (!stop_) {
    if (watched_.empty()) {
      sleeping_ = true;
      cv_.wait(l, [&] { return stop_ || !watched_.empty(); });
      sleeping_ = false;
      continue;
    }
    cv_.wait_for(l, kTick, [&] { return stop_; });
    const auto now = Clock::now();
    for (auto it = watched_.begin(); it != watched_.end();) {
      if (it->second.deadline > now) {
        ++it;
        continue;
      }
      // Under mu_: the Watch (and so the call's context) is still alive.
      spdlog::warn("{}", it->second.what);
      it->second.ctx->TryCancel();
      fired_.fetch_add(1);
      it = watched_.erase(it);
    }
  }
}

}  // namespace relaykv
