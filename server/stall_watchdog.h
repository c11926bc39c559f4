// StallWatchdog: ends a gRPC call whose blocking operation outlives its
// deadline — a replica that never sends its hello (net_read_timeout), or
// never reads, so that the primary's send waits on flow control for ever
// (net_write_timeout). The synchronous gRPC API cannot time out a Read()
// or Write(); TryCancel() on the call's context ends both, and the handler
// sees the operation fail.
//
// A Watch covers one operation: from its construction to its destruction.
// Past the deadline the watchdog logs `what` (one warning line naming the
// peer and the limit) and cancels the call, once.
//
// Threads: thread-safe. One thread, started with the watchdog, wakes every
// 100 ms while something is watched and sleeps otherwise; the destructor
// stops and joins it. A Watch must end before its context is destroyed.
// A Watch wakes that thread only when it sleeps: a primary watches every
// send to a replica, and a wake-up per send cost a context switch per
// commit group.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "storage/thread_annotations.h"

namespace relaykv {

class StallWatchdog {
 public:
  using Clock = std::chrono::steady_clock;

  StallWatchdog();
  ~StallWatchdog();
  StallWatchdog(const StallWatchdog&) = delete;
  StallWatchdog& operator=(const StallWatchdog&) = delete;

  class Watch {
   public:
    Watch(StallWatchdog* dog, grpc::ServerContextBase* ctx, Clock::duration timeout, std::string what)
        : dog_(dog), id_(dog->Add(ctx, Clock::now() + timeout, std::move(what))) {}
    ~Watch() { dog_->Remove(id_); }
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;

   private:
    StallWatchdog* const dog_;
    const uint64_t id_;
  };

  // Calls cancelled since start.
  uint64_t fired() const { return fired_.load(); }

 private:
  struct Entry {
    grpc::ServerContextBase* ctx;
    Clock::time_point deadline;
    std::string what;
  };
  uint64_t Add(grpc::ServerContextBase* ctx, Clock::time_point deadline, std::string what)
      EXCLUDES(mu_);
  void Remove(uint64_t id) EXCLUDES(mu_);
  void Run() EXCLUDES(mu_);

  std::mutex mu_;
  std::condition_variable cv_;  // something to watch, or stop
  uint64_t next_id_ GUARDED_BY(mu_) = 1;
  std::map<uint64_t, Entry> watched_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;
  bool sleeping_ GUARDED_BY(mu_) = false;  // in the wait for something to watch
  std::atomic<uint64_t> fired_{0};
  std::thread thread_;
};

}  // namespace relaykv
