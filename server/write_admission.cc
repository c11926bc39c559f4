#include "server/write_admission.h"

#include <string>
#include <utility>
#include <vector>

#include "storage/thread_name.h"

namespace relaykv {

WriteAdmission::WriteAdmission(std::function<Limits()> limits) : limits_(std::move(limits)) {}

WriteAdmission::~WriteAdmission() { Close(); }

bool WriteAdmission::Fits(size_t bytes, const Limits& l) const {
  // A write bigger than the byte cap by itself is admitted when nothing
  // else is in flight: it passed the per-request limits (server/limits.h),
  // and refusing it forever would make a valid write impossible.
  if (in_flight_ == 0) return true;
  return in_flight_ < l.max_writes && in_flight_bytes_ + bytes <= l.max_bytes;
}

absl::Status WriteAdmission::Refusal(size_t bytes, const Limits& l, bool waited) const {
  return absl::ResourceExhaustedError(
      std::string(waited ? "write waited " + std::to_string(l.queue_timeout_ms) +
                               " ms (write_queue_timeout_ms) for admission and was refused"
                         : "write refused: the admission queue is full too") +
      ": " + std::to_string(in_flight_) + " writes of " + std::to_string(in_flight_bytes_) +
      " bytes are in flight (limits: max_inflight_writes=" + std::to_string(l.max_writes) +
      ", max_inflight_write_bytes=" + std::to_string(l.max_bytes) + "; this write has " +
      std::to_string(bytes) + " bytes); nothing was written, retry later");
}

void WriteAdmission::Admit(size_t bytes, Clock::time_point deadline, Admitted admitted) {
  const Limits l = limits_();
  absl::Status refused;
  {
    std::lock_guard lock(mu_);
    if (closed_) {
      refused = absl::UnavailableError("relaykv node is shutting down");
    } else if (queue_.empty() && Fits(bytes, l)) {
      // Invariant: queued writes go first (FIFO), so only an empty queue
      // lets a write in directly.
      ++in_flight_;
      in_flight_bytes_ += bytes;
    } else if (l.queue_timeout_ms == 0 || queue_.size() >= l.max_writes ||
               queued_bytes_ + bytes > l.max_bytes) {
      // The queue has the same caps as the pipeline: memory stays bounded.
      ++refused_;
      refused = Refusal(bytes, l, /*waited=*/false);
    } else {
      ++waits_;
      queued_bytes_ += bytes;
      deadline = std::min(deadline, Clock::now() + std::chrono::milliseconds(l.queue_timeout_ms));
      queue_.push_back({bytes, deadline, std::move(admitted)});
      if (!thread_.joinable()) {
        thread_ = std::thread([this] {
          NameThisThread("rkv-admission");
          Run();
        });
      }
      cv_.notify_all();
      return;
    }
  }
  admitted(refused);  // OK, or the refusal; outside the lock
}

void WriteAdmission::Release(size_t bytes) {
  std::lock_guard lock(mu_);
  // Invariant: every release matches an admission.
  --in_flight_;
  in_flight_bytes_ -= bytes;
  if (!queue_.empty()) cv_.notify_all();
}

void WriteAdmission::Run() {
  std::unique_lock lock(mu_);
  while (!closed_) {
    // What to answer now, answered outside the lock (the callbacks start
    // commits, which may answer and Release() on this thread).
    std::vector<std::pair<Admitted, absl::Status>> answers;
    const Limits l = limits_();
    const auto now = Clock::now();
    while (!queue_.empty() && Fits(queue_.front().bytes, l)) {
      Waiter w = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= w.bytes;
      ++in_flight_;
      in_flight_bytes_ += w.bytes;
      answers.emplace_back(std::move(w.admitted), absl::OkStatus());
    }
    // Timed-out waiters anywhere in the queue (deadlines differ).
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->deadline > now) {
        ++it;
        continue;
      }
      ++refused_;
      answers.emplace_back(std::move(it->admitted), Refusal(it->bytes, l, /*waited=*/true));
      queued_bytes_ -= it->bytes;
      it = queue_.erase(it);
    }
    if (!answers.empty()) {
      lock.unlock();
      for (auto& [fn, status] : answers) fn(status);
      lock.lock();
      continue;
    }
    Clock::time_point next = Clock::time_point::max();
    for (const Waiter& w : queue_) next = std::min(next, w.deadline);
    if (next == Clock::time_point::max()) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, next);
    }
  }
}

void WriteAdmission::Close() {
  std::deque<Waiter> waiters;
  {
    std::lock_guard lock(mu_);
    if (closed_ && !thread_.joinable()) return;
    closed_ = true;
    waiters.swap(queue_);
    queued_bytes_ = 0;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  for (Waiter& w : waiters) w.admitted(absl::UnavailableError("relaykv node is shutting down"));
}

WriteAdmission::Stats WriteAdmission::stats() const {
  std::lock_guard lock(mu_);
  return {in_flight_, in_flight_bytes_, queue_.size(), waits_, refused_};
}

}  // namespace relaykv
