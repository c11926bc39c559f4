#include "storage/applier.h"

#include <vector>

#include "spdlog/spdlog.h"
#include "storage/binlog_reader.h"

namespace relaykv {
namespace {

// One state-machine batch holds at most this much; more waits for the next.
constexpr size_t kMaxBatchEvents = 1024;
constexpr size_t kMaxBatchBytes = 16u << 20;

}  // namespace

Applier::Applier(Binlog* binlog, StateMachine* state) : binlog_(binlog), state_(state) {}

Applier::~Applier() { Stop(); }

absl::Status Applier::Start() {
  std::lock_guard g(apply_mu_);
  std::lock_guard l(mu_);
  if (running_) return absl::FailedPreconditionError("the applier is already running");
  if (thread_.joinable()) thread_.join();  // a previous run that ended on an error
  const uint64_t from = state_->Applied().seq + 1;
  auto reader = binlog_->NewReader(from);
  if (!reader.ok()) {
    error_ = reader.status();
    return error_;
  }
  reader_ = *std::move(reader);
  applied_ = from - 1;
  released_ = std::max(released_, applied_);
  stop_ = false;
  error_ = absl::OkStatus();
  running_ = true;
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void Applier::Stop() {
  {
    std::lock_guard l(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  std::lock_guard g(apply_mu_);  // an inline ApplyReleased() finishes first
}

bool Applier::running() const {
  std::lock_guard l(mu_);
  return running_;
}

void Applier::Release(uint64_t seq) {
  std::lock_guard l(mu_);
  if (seq <= released_) return;
  released_ = seq;
  cv_.notify_all();
}

uint64_t Applier::released() const {
  std::lock_guard l(mu_);
  return released_;
}

uint64_t Applier::applied() const {
  std::lock_guard l(mu_);
  return applied_;
}

int64_t Applier::applied_timestamp_us() const {
  std::lock_guard l(mu_);
  return applied_timestamp_us_;
}

int64_t Applier::last_error_time_us() const {
  std::lock_guard l(mu_);
  return error_time_us_;
}

absl::Status Applier::last_error() const {
  std::lock_guard l(mu_);
  return error_;
}

absl::Status Applier::WaitApplied(uint64_t seq, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock l(mu_);
  cv_.wait_until(l, deadline, [&] { return applied_ >= seq || !running_ || stop_; });
  if (applied_ >= seq) return absl::OkStatus();
  if (!error_.ok()) return error_;
  if (!running_ || stop_) {
    return absl::CancelledError("the applier stopped before seq " + std::to_string(seq));
  }
  return absl::DeadlineExceededError("seq " + std::to_string(seq) + " not applied before the deadline");
}

void Applier::Fail(const absl::Status& error) {
  std::lock_guard l(mu_);
  spdlog::error("applier stopped at seq {}: {}", applied_, error.ToString());
  error_ = error;
  error_time_us_ = std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  stop_ = true;
  cv_.notify_all();
}

absl::StatusOr<bool> Applier::ApplyBatch() {
  uint64_t target;
  {
    std::lock_guard l(mu_);
    if (stop_ || !running_ || released_ <= applied_) return false;
    target = released_;
  }
  batch_.clear();
  size_t bytes = 0;
  while (reader_->next_seq() <= target && batch_.size() < kMaxBatchEvents && bytes < kMaxBatchBytes) {
    auto r = reader_->Next();
    if (!r.ok()) return r.status();
    if (!r->has_value()) break;  // released ahead of visibility (a relay log can be)
    bytes += (*r)->payload.size();
    batch_.push_back(std::move((*r)->event));
  }
  if (batch_.empty()) return false;
  if (auto s = state_->Apply(batch_); !s.ok()) return s;
  std::lock_guard l(mu_);
  applied_ = batch_.back().gtid().seq();
  applied_timestamp_us_ = batch_.back().timestamp_us();
  cv_.notify_all();
  return true;
}

void Applier::ApplyReleased() {
  std::unique_lock g(apply_mu_, std::try_to_lock);
  if (!g.owns_lock()) return;  // someone else is applying; they take ours too
  auto applied = ApplyBatch();
  if (!applied.ok()) Fail(applied.status());
}

void Applier::Run() {
  for (;;) {
    {
      std::unique_lock l(mu_);
      cv_.wait(l, [&] { return stop_ || released_ > applied_; });
      if (stop_) break;
    }
    absl::StatusOr<bool> applied;
    uint64_t next_seq;
    {
      std::lock_guard g(apply_mu_);
      applied = ApplyBatch();
      next_seq = reader_->next_seq();
    }
    if (!applied.ok()) {
      Fail(applied.status());
      break;
    }
    bool behind;
    {
      std::lock_guard l(mu_);
      behind = !stop_ && released_ > applied_;
    }
    if (!*applied && behind) {
      // Released but not visible yet: wait briefly for the binlog, then
      // re-check the stop state.
      binlog_->WaitForVisibleAfter(next_seq - 1,
                                   std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
    }
  }
  std::lock_guard l(mu_);
  running_ = false;
  cv_.notify_all();
}

}  // namespace relaykv
