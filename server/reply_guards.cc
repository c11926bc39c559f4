#include "server/reply_guards.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/cleanup/cleanup.h"

namespace relaykv {

namespace {

// A handler of a method the factory does not guard (a wiring mistake).
absl::Status NotGuarded(std::string_view what) {
  return absl::InternalError(std::string(what) +
                             ": no reply guard for this call (its method is not guarded)");
}

// "<what> refused: <holders> <held> bytes, and this one's <bytes> more
// would pass <budget>=<limit> (<why>); retry" (", at <budget>" for a
// refusal before the reply is read: `bytes` 0).
absl::Status BudgetRefusal(std::string_view what, std::string_view holders, uint64_t held,
                           uint64_t bytes, std::string_view budget, uint64_t limit,
                           std::string_view why) {
  return absl::ResourceExhaustedError(
      std::string(what) + " refused: " + std::string(holders) + " " + std::to_string(held) +
      " bytes" +
      (bytes > 0 ? ", and this one's " + std::to_string(bytes) + " more would pass " : ", at ") +
      std::string(budget) + "=" + std::to_string(limit) + " (" + std::string(why) + "); retry");
}

}  // namespace

class ReplyGuards::Interceptor final : public grpc::experimental::Interceptor {
 public:
  Interceptor(ReplyGuards* guards, grpc::ServerContextBase* ctx) : guards_(guards), ctx_(ctx) {
    std::lock_guard l(guards_->mu_);
    guards_->calls_[ctx_] = this;
  }
  ~Interceptor() override {
    send_watch_.reset();
    std::lock_guard l(guards_->mu_);
    guards_->calls_.erase(ctx_);
    if (holds_slot_) guards_->slots_->Release();
    guards_->reply_bytes_ -= reserved_;
    if (reserved_ > 0) guards_->released_.notify_all();
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      send_watch_.emplace(&guards_->watchdog_, ctx_, guards_->send_timeout_(),
                          "ending a call from " + ctx_->peer() +
                              ": its reply was not sent within net_write_timeout (the client "
                              "does not read it, or reads it slower than that allows)");
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_SEND_MESSAGE)) {
      send_watch_.reset();
    }
    methods->Proceed();
  }

  // Under guards_->mu_.
  bool holds_slot() const { return holds_slot_; }
  void set_holds_slot() { holds_slot_ = true; }
  void add_reserved(uint64_t bytes) { reserved_ += bytes; }

 private:
  ReplyGuards* const guards_;
  grpc::ServerContextBase* const ctx_;
  bool holds_slot_ = false;  // guarded by guards_->mu_
  uint64_t reserved_ = 0;    // reply bytes; guarded by guards_->mu_
  // Set while the reply is being sent (gRPC runs one batch of a call at a
  // time, and a unary call sends one message).
  std::optional<StallWatchdog::Watch> send_watch_;
};

class ReplyGuards::Factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(ReplyGuards* guards) : guards_(guards) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    if (guards_->methods_.count(info->method()) == 0) return nullptr;
    return new Interceptor(guards_, info->server_context());
  }

 private:
  ReplyGuards* const guards_;
};

ReplyGuards::ReplyGuards(ConnectionSlots* slots, std::function<std::chrono::seconds()> send_timeout,
                         std::function<uint64_t()> max_reply_bytes, std::set<std::string> methods)
    : slots_(slots),
      send_timeout_(std::move(send_timeout)),
      max_reply_bytes_(std::move(max_reply_bytes)),
      methods_(std::move(methods)) {}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> ReplyGuards::NewFactory() {
  return std::make_unique<Factory>(this);
}

absl::Status ReplyGuards::Acquire(grpc::ServerContextBase* ctx, std::string_view what) {
  std::lock_guard l(mu_);
  auto it = calls_.find(ctx);
  if (it == calls_.end()) return NotGuarded(what);
  if (it->second->holds_slot()) return absl::OkStatus();
  // A full reply budget refuses before the read is made: a refused reply
  // costs its read and, until its status is sent, the call (review s43e E1).
  if (const uint64_t limit = max_reply_bytes_(); reply_bytes_ >= limit) {
    return ReplyBudgetFull(what, 0, limit);
  }
  if (auto s = slots_->Acquire(what); !s.ok()) return s;
  it->second->set_holds_slot();
  return absl::OkStatus();
}

absl::Status ReplyGuards::Reserve(grpc::ServerContextBase* ctx, uint64_t bytes,
                                  std::string_view what) {
  std::lock_guard l(mu_);
  auto it = calls_.find(ctx);
  if (it == calls_.end()) return NotGuarded(what);
  const uint64_t limit = max_reply_bytes_();
  if (reply_bytes_ > 0 && reply_bytes_ + bytes > limit) return ReplyBudgetFull(what, bytes, limit);
  reply_bytes_ += bytes;
  it->second->add_reserved(bytes);
  return absl::OkStatus();
}

absl::Status ReplyGuards::ReserveBytes(uint64_t bytes, std::string_view what,
                                       std::chrono::steady_clock::time_point deadline,
                                       const std::function<bool()>& cancelled) {
  constexpr auto kCancelCheck = std::chrono::milliseconds(100);
  // Stream messages take at most half the budget together (one alone
  // any), so a fan-out of a large change to slow watchers leaves reads
  // room (review s44d L2). Messages waiting for room go in order, so
  // newcomers cannot keep an older, larger one waiting for good (review
  // s46c M1, s46d M1) — except that a small newcomer (progress, a small
  // change) that fits goes while the oldest waiting has waited less than
  // kSmallMessagesPass, so one large batch at the head does not hold every
  // other watcher up (s46e M1), nor can small ones hold it up for good
  // (s46f M1). Reads do not queue: reads that keep the budget full can
  // make a large batch wait until its deadline (review s46g L1).
  const bool small = bytes <= kSmallStreamMessageBytes;
  std::unique_lock l(mu_);
  bool waiting = false;
  std::optional<uint64_t> ticket;  // its place in stream_queue_
  absl::Cleanup leave = [&] {
    if (waiting) waiting_bytes_ -= bytes;
    if (ticket) {
      std::erase_if(stream_queue_, [&](const Queued& q) { return q.ticket == *ticket; });
      released_.notify_all();  // the next in line may go now
    }
  };
  for (;;) {
    const uint64_t limit = max_reply_bytes_();
    const auto now = std::chrono::steady_clock::now();
    const bool budget_full = reply_bytes_ > 0 && reply_bytes_ + bytes > limit;
    const bool share_full = stream_bytes_ > 0 && stream_bytes_ + bytes > limit / 2;
    const bool passes =
        small && !ticket &&
        (stream_queue_.empty() || now - stream_queue_.front().since < kSmallMessagesPass);
    const bool its_turn =
        passes || stream_queue_.empty() || (ticket && stream_queue_.front().ticket == *ticket);
    if (its_turn && !budget_full && !share_full) break;
    if (!waiting && waiting_bytes_ > 0 && waiting_bytes_ + bytes > limit) {
      return BudgetRefusal(what, "stream messages waiting for room add up to", waiting_bytes_,
                           bytes, "max_inflight_reply_bytes", limit,
                           "watchers that do not read hold the room");
    }
    if (now >= deadline || cancelled()) {
      if (budget_full) return ReplyBudgetFull(what, bytes, limit);
      if (share_full) {
        return BudgetRefusal(
            what, "stream messages waiting to be sent hold", stream_bytes_, bytes,
            "half of max_inflight_reply_bytes", limit,
            "the other half is kept for reads; watchers that do not read hold them");
      }
      return QueuedBehind(what, bytes);
    }
    if (!waiting) {
      waiting = true;
      waiting_bytes_ += bytes;
    }
    if (!ticket) {  // in line from its first wait, small or not (review s46g L2)
      ticket = next_ticket_++;
      stream_queue_.push_back({*ticket, now});
    }
    released_.wait_until(l, std::min(deadline, now + kCancelCheck));
  }
  reply_bytes_ += bytes;
  stream_bytes_ += bytes;
  return absl::OkStatus();
}

void ReplyGuards::ReleaseBytes(uint64_t bytes) {
  {
    std::lock_guard l(mu_);
    reply_bytes_ -= bytes;
    stream_bytes_ -= bytes;
  }
  released_.notify_all();
}

absl::Status ReplyGuards::ReplyBudgetFull(std::string_view what, uint64_t bytes,
                                          uint64_t limit) const {
  return BudgetRefusal(what, "replies waiting to be sent hold", reply_bytes_, bytes,
                       "max_inflight_reply_bytes", limit,
                       "clients that do not read their replies hold them");
}

absl::Status ReplyGuards::QueuedBehind(std::string_view what, uint64_t bytes) const {
  return absl::ResourceExhaustedError(
      std::string(what) + " refused: its " + std::to_string(bytes) +
      " bytes waited behind older stream messages that wait for room in "
      "max_inflight_reply_bytes (watchers that do not read hold it); retry");
}

uint64_t ReplyGuards::waiting_bytes() const {
  std::lock_guard l(mu_);
  return waiting_bytes_;
}

uint64_t ReplyGuards::reply_bytes() const {
  std::lock_guard l(mu_);
  return reply_bytes_;
}

}  // namespace relaykv
