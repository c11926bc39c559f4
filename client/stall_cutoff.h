// StallCutoff: cancels a gRPC call (TryCancel on its ClientContext) that
// received less than `min_bytes` within `timeout`. Keepalive notices a dead
// connection, not a peer that keeps it up and stops sending, or all but
// stops: a clone source (server/clone_receiver.cc) or a watched node
// (relaykv::Client::Watch) doing that held its caller for ever.
//
// Threads: one thread of its own, started by the constructor and joined by
// the destructor; Received() and fired() from any thread. The context must
// outlive the cutoff.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include <grpcpp/client_context.h>

namespace relaykv {

class StallCutoff {
 public:
  StallCutoff(grpc::ClientContext* ctx, std::chrono::milliseconds timeout, uint64_t min_bytes)
      : ctx_(ctx), timeout_(timeout), min_bytes_(min_bytes), thread_([this] { Run(); }) {}
  ~StallCutoff() {
    {
      std::lock_guard l(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  StallCutoff(const StallCutoff&) = delete;
  StallCutoff& operator=(const StallCutoff&) = delete;

  // `bytes` arrived: once min_bytes have since the window began, a new
  // window begins.
  void Received(uint64_t bytes) {
    std::lock_guard l(mu_);
    window_bytes_ += bytes;
    if (window_bytes_ < min_bytes_) return;
    window_bytes_ = 0;
    window_start_ = Clock::now();
  }
  // Time from Pause() to Resume() is not the peer's (a caller busy with
  // what arrived); Resume() begins a new window.
  void Pause() {
    std::lock_guard l(mu_);
    paused_ = true;
  }
  void Resume() {
    {
      std::lock_guard l(mu_);
      paused_ = false;
      window_bytes_ = 0;
      window_start_ = Clock::now();
    }
    cv_.notify_one();
  }
  // Whether it cancelled the call.
  bool fired() {
    std::lock_guard l(mu_);
    return fired_;
  }

 private:
  using Clock = std::chrono::steady_clock;

  void Run() {
    std::unique_lock l(mu_);
    while (!stop_) {
      if (paused_) {
        cv_.wait(l);
        continue;
      }
      const Clock::time_point due = window_start_ + timeout_;
      if (Clock::now() >= due) {
        fired_ = true;
        ctx_->TryCancel();
        return;
      }
      cv_.wait_until(l, due);
    }
  }

  grpc::ClientContext* const ctx_;
  const std::chrono::milliseconds timeout_;
  const uint64_t min_bytes_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                              // guarded by mu_
  bool fired_ = false;                             // guarded by mu_
  bool paused_ = false;                            // guarded by mu_
  Clock::time_point window_start_ = Clock::now();  // guarded by mu_
  uint64_t window_bytes_ = 0;                      // guarded by mu_: received in the window
  std::thread thread_;  // last: starts once the rest is set
};

}  // namespace relaykv
