// SeqWaiters: threads waiting for a growing position (a seq) to reach their
// own, each on its own condition variable, so that a new position wakes only
// the waiters it satisfies. One shared condition variable with notify_all
// woke every waiter on every ACK or applied batch to re-check and go back to
// sleep — with 64 concurrent commits most of the primary's CPU went to those
// context switches.
//
// Threads: the owner's mutex guards the list and every Waiter; all methods
// require it. Take() notifies while that mutex is held, so a waiter that has
// timed out (and may return and destroy its Waiter as soon as it gets the
// mutex) is never notified after it is gone.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>

namespace relaykv {

class SeqWaiters {
 public:
  struct Waiter {
    explicit Waiter(uint64_t s) : seq(s) {}
    const uint64_t seq;
    bool woken = false;
    std::condition_variable cv;
    std::multimap<uint64_t, Waiter*>::iterator pos;
  };

  // Blocks (the owner's lock held on entry and return, released meanwhile)
  // until Take() wakes `w` (true) or `until` passes (false, `w` removed).
  bool Wait(Waiter* w, std::unique_lock<std::mutex>& owner_lock,
            std::chrono::steady_clock::time_point until) {
    w->pos = waiters_.emplace(w->seq, w);
    if (w->cv.wait_until(owner_lock, until, [w] { return w->woken; })) return true;
    waiters_.erase(w->pos);
    return false;
  }

  // Wakes every waiter whose seq is <= `seq` (all of them by default).
  void Take(uint64_t seq = std::numeric_limits<uint64_t>::max()) {
    auto end = waiters_.upper_bound(seq);
    for (auto it = waiters_.begin(); it != end; ++it) {
      it->second->woken = true;
      it->second->cv.notify_one();
    }
    waiters_.erase(waiters_.begin(), end);
  }

  size_t size() const { return waiters_.size(); }
  bool empty() const { return waiters_.empty(); }
  // The lowest seq waited for; only when !empty().
  uint64_t lowest() const { return waiters_.begin()->first; }

 private:
  std::multimap<uint64_t, Waiter*> waiters_;
};

}  // namespace relaykv
