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
  std::lock_guard l(mu_);
  if (running_) return absl::FailedPreconditionError("the applier is already running");
  if (thread_.joinable()) thread_.join();  // a previous run that ended on an error
  const uint64_t from = state_->Applied().seq + 1;
  auto reader = binlog_->NewReader(from);
  if (!reader.ok()) {
    error_ = reader.status();
    return error_;
  }
  applied_ = from - 1;
  released_ = std::max(released_, applied_);
  stop_ = false;
  error_ = absl::OkStatus();
  running_ = true;
  thread_ = std::thread([this, r = *std::move(reader)]() mutable { Run(std::move(r)); });
  return absl::OkStatus();
}

void Applier::Stop() {
  {
    std::lock_guard l(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
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

absl::Status Applier::last_error() const {
  std::lock_guard l(mu_);
  return error_;
}

absl::Status Applier::WaitApplied(uint64_t seq, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock l(mu_);
  cv_.wait_until(l, deadline, [&] { return applied_ >= seq || !running_; });
  if (applied_ >= seq) return absl::OkStatus();
  if (!error_.ok()) return error_;
  if (!running_) return absl::CancelledError("the applier stopped before seq " + std::to_string(seq));
  return absl::DeadlineExceededError("seq " + std::to_string(seq) + " not applied before the deadline");
}

void Applier::Run(std::unique_ptr<BinlogReader> reader) {
  std::vector<v1::Event> batch;
  absl::Status error;
  for (;;) {
    uint64_t target;
    {
      std::unique_lock l(mu_);
      cv_.wait(l, [&] { return stop_ || released_ > applied_; });
      if (stop_) break;
      target = released_;
    }
    batch.clear();
    size_t bytes = 0;
    while (reader->next_seq() <= target && batch.size() < kMaxBatchEvents && bytes < kMaxBatchBytes) {
      auto r = reader->Next();
      if (!r.ok()) {
        error = r.status();
        break;
      }
      if (!r->has_value()) {
        // Released ahead of visibility (a replica's relay log can be); wait
        // briefly for the binlog, then re-check the stop state.
        if (!batch.empty()) break;
        binlog_->WaitForVisibleAfter(reader->next_seq() - 1,
                                     std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
        std::lock_guard l(mu_);
        if (stop_) break;
        continue;
      }
      bytes += (*r)->payload.size();
      batch.push_back(std::move((*r)->event));
    }
    if (error.ok() && !batch.empty()) error = state_->Apply(batch);
    std::lock_guard l(mu_);
    if (!error.ok()) break;
    if (!batch.empty()) {
      applied_ = batch.back().gtid().seq();
      applied_timestamp_us_ = batch.back().timestamp_us();
    }
    cv_.notify_all();
  }
  std::lock_guard l(mu_);
  if (!error.ok()) {
    spdlog::error("applier stopped at seq {}: {}", applied_, error.ToString());
    error_ = error;
  }
  running_ = false;
  cv_.notify_all();
}

}  // namespace relaykv
