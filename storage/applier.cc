#include "storage/applier.h"

#include <vector>

#include "spdlog/spdlog.h"
#include "storage/binlog_reader.h"
#include "storage/thread_name.h"

namespace relaykv {
namespace {

// One state-machine batch holds at most this much; more waits for the next.
constexpr size_t kMaxBatchEvents = 1024;
constexpr size_t kMaxBatchBytes = 16u << 20;

}  // namespace

Applier::Applier(Binlog* binlog, StateMachine* state) : binlog_(binlog), state_(state) {}

Applier::~Applier() { Stop(); }

absl::Status Applier::Start() {
  std::lock_guard life(lifecycle_mu_);
  {
    std::lock_guard l(mu_);
    if (running_ && !stop_) return absl::FailedPreconditionError("the applier is already running");
  }
  // A previous run that stopped (or ended on an error) but whose thread may
  // still be on its way out: joined without the locks, which it needs to exit.
  if (thread_.joinable()) thread_.join();
  std::lock_guard g(apply_mu_);
  std::lock_guard l(mu_);
  if (running_) return absl::FailedPreconditionError("the applier is already running");
  const uint64_t from = state_->Applied().seq + 1;
  auto reader = binlog_->NewReader(from);
  if (!reader.ok()) {
    error_ = reader.status();
    return error_;
  }
  reader_ = *std::move(reader);
  applied_ = from - 1;
  applied_epoch_ = state_->Applied().epoch;
  released_ = std::max(released_, applied_);
  stop_ = false;
  error_ = absl::OkStatus();
  running_ = true;
  thread_ = std::thread([this] {
    NameThisThread("rkv-applier");
    Run();
  });
  return absl::OkStatus();
}

void Applier::Stop() {
  std::lock_guard life(lifecycle_mu_);
  {
    std::lock_guard l(mu_);
    stop_ = true;
    work_cv_.notify_all();
    waiters_.Take();
  }
  if (thread_.joinable()) thread_.join();
  std::lock_guard g(apply_mu_);  // an inline Drain() finishes first
}

bool Applier::running() const {
  std::lock_guard l(mu_);
  return running_ && !stop_;  // stopping (or failed) counts as stopped at once
}

void Applier::Release(uint64_t seq) {
  std::lock_guard l(mu_);
  if (seq <= released_) return;
  released_ = seq;
  work_cv_.notify_one();
}

void Applier::ReleaseAndApply(uint64_t seq) { ApplyUpTo(seq); }

uint64_t Applier::released() const {
  std::lock_guard l(mu_);
  return released_;
}

uint64_t Applier::applied() const {
  std::lock_guard l(mu_);
  return applied_;
}

Gtid Applier::applied_gtid() const {
  std::lock_guard l(mu_);
  return Gtid{applied_epoch_, applied_};
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
  while (applied_ < seq && running_ && !stop_) {
    SeqWaiters::Waiter w(seq);
    if (!waiters_.Wait(&w, l, deadline)) break;
  }
  if (applied_ >= seq) return absl::OkStatus();
  if (!error_.ok()) return error_;
  if (!running_ || stop_) {
    return absl::CancelledError("the applier stopped before seq " + std::to_string(seq));
  }
  return absl::DeadlineExceededError("seq " + std::to_string(seq) + " not applied before the deadline");
}

void Applier::Fail(const absl::Status& error) {
  spdlog::error("applier stopped at seq {}: {}", applied_, error.ToString());
  error_ = error;
  error_time_us_ = std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  stop_ = true;
  work_cv_.notify_all();
  waiters_.Take();
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
  if (auto s = state_->Apply(batch_); !s.ok()) {
    // Named by the GTIDs it could not apply (they stay in the binlog).
    return absl::Status(s.code(), "cannot apply " + GtidFromProto(batch_.front().gtid()).ToString() +
                                      ".." + GtidFromProto(batch_.back().gtid()).ToString() + ": " +
                                      std::string(s.message()));
  }
  std::lock_guard l(mu_);
  applied_ = batch_.back().gtid().seq();
  applied_timestamp_us_ = batch_.back().timestamp_us();
  applied_epoch_ = batch_.back().gtid().epoch();
  waiters_.Take(applied_);
  return true;
}

bool Applier::Drain() {
  std::lock_guard g(apply_mu_);
  for (;;) {
    absl::StatusOr<bool> applied = ApplyBatch();
    std::lock_guard l(mu_);
    if (!applied.ok()) {
      applying_ = false;
      Fail(applied.status());
      return true;
    }
    // Checked under mu_ together with clearing applying_: a release that
    // saw applying_ set is applied by this loop, never left behind.
    if (stop_ || applied_ >= released_ || !*applied) {
      applying_ = false;
      return stop_ || applied_ >= released_;
    }
  }
}

void Applier::ApplyReleased() { ApplyUpTo(0); }

void Applier::ApplyUpTo(uint64_t seq) {
  {
    // Releasing and claiming the work in one step: the thread's tick can't
    // take it in between.
    std::lock_guard l(mu_);
    released_ = std::max(released_, seq);
    if (applying_ || stop_ || !running_ || released_ <= applied_) return;
    applying_ = true;
  }
  if (!Drain()) {
    std::lock_guard l(mu_);
    work_cv_.notify_one();  // not visible yet: the thread waits for the binlog
  }
}

void Applier::Run() {
  std::unique_lock l(mu_);
  while (!stop_) {
    if (released_ <= applied_ || applying_) {
      work_cv_.wait(l);
      continue;
    }
    applying_ = true;
    l.unlock();
    if (!Drain()) {
      // Released but not visible yet (a relay log): wait briefly for the
      // binlog, then re-check the stop state.
      uint64_t next_seq;
      {
        std::lock_guard g(apply_mu_);
        next_seq = reader_->next_seq();
      }
      binlog_->WaitForVisibleAfter(next_seq - 1,
                                   std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
    }
    l.lock();
  }
  running_ = false;
  waiters_.Take();
}

}  // namespace relaykv
