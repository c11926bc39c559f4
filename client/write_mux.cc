#include "client/write_mux.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <thread>
#include <utility>

namespace relaykv {

// One caller's wait. The reader fills it under mu_ and notifies after
// unlocking (a waiter woken under the lock would only block on it again);
// shared, so that it outlives that notify if the caller has returned.
struct WriteMux::Waiter {
  std::condition_variable cv;
  bool done = false;
  absl::StatusOr<TxnResult> result = absl::UnknownError("no answer");
};

// One WriteStream. Fields below `rw` are guarded by the mux's mu_.
struct WriteMux::Stream {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<v1::WriteStreamRequest, v1::WriteStreamReply>> rw;
  std::thread reader;  // joined by the mux (retired streams, destructor)
  std::map<uint64_t, std::shared_ptr<Waiter>> waiters;  // sent or queued, not yet answered
  v1::WriteStreamRequest queue;         // not yet handed to the stream
  bool writing = false;   // a caller is sending (at most one: gRPC's rule)
  bool broken = false;    // no new write may use this stream
  bool exited = false;    // the reader is done: join it
  std::condition_variable idle;  // `writing` went false
};

WriteMux::WriteMux(v1::Kv::Stub* stub, std::string address)
    : stub_(stub), address_(std::move(address)) {}

WriteMux::~WriteMux() {
  std::vector<std::shared_ptr<Stream>> all;
  {
    std::lock_guard l(mu_);
    if (current_) {
      current_->ctx.TryCancel();  // the reader's Read() fails: it fails the waiters and exits
      all.push_back(std::move(current_));
    }
    for (auto& s : retired_) {
      s->ctx.TryCancel();  // broken already; makes sure its Read() returns
      all.push_back(std::move(s));
    }
    retired_.clear();
  }
  for (auto& s : all) s->reader.join();
}

std::shared_ptr<WriteMux::Stream> WriteMux::Current() {
  if (current_ && !current_->broken) return current_;
  if (current_) retired_.push_back(std::move(current_));
  auto s = std::make_shared<Stream>();
  s->rw = stub_->WriteStream(&s->ctx);
  s->reader = std::thread([this, raw = s.get()] { ReadAnswers(raw); });
  current_ = s;
  return s;
}

absl::StatusOr<TxnResult> WriteMux::Write(v1::StreamWrite write,
                                     std::chrono::steady_clock::time_point deadline) {
  using Clock = std::chrono::steady_clock;
  // The server bounds its wait for this write by the same deadline.
  if (deadline != Clock::time_point::max()) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    write.set_timeout_ms(static_cast<uint32_t>(std::clamp<int64_t>(left, 1, UINT32_MAX)));
  }
  std::vector<std::shared_ptr<Stream>> exited;
  auto waiter = std::make_shared<Waiter>();
  Waiter& me = *waiter;
  std::unique_lock l(mu_);
  // Readers of broken streams that have exited are joined (outside mu_).
  for (auto it = retired_.begin(); it != retired_.end();) {
    if ((*it)->exited) {
      exited.push_back(std::move(*it));
      it = retired_.erase(it);
    } else {
      ++it;
    }
  }
  std::shared_ptr<Stream> s = Current();
  const uint64_t id = next_id_++;
  write.set_id(id);
  *s->queue.add_writes() = std::move(write);
  s->waiters[id] = waiter;
  if (!s->writing) {
    // Send what has queued, ours included, and whatever queues meanwhile.
    s->writing = true;
    while (s->queue.writes_size() > 0 && !s->broken) {
      v1::WriteStreamRequest batch;
      batch.Swap(&s->queue);
      l.unlock();
      const bool sent = s->rw->Write(batch);
      l.lock();
      // Not sent: the stream is over; the reader fails every waiter.
      if (!sent) s->broken = true;
    }
    s->writing = false;
    s->idle.notify_all();
  }
  l.unlock();
  for (auto& e : exited) e->reader.join();
  l.lock();
  if (!me.cv.wait_until(l, deadline, [&] { return me.done; })) {
    s->waiters.erase(id);
    return absl::DeadlineExceededError("write to " + address_ +
                                       ": no answer before the deadline; its outcome is unknown");
  }
  return std::move(me.result);
}

void WriteMux::ReadAnswers(Stream* s) {
  v1::WriteStreamReply reply;
  std::vector<std::shared_ptr<Waiter>> answered;
  while (s->rw->Read(&reply)) {
    {
      std::lock_guard l(mu_);
      for (const v1::StreamAnswer& a : reply.answers()) {
        auto it = s->waiters.find(a.id());
        if (it == s->waiters.end()) continue;  // its caller gave up
        std::shared_ptr<Waiter>& w = it->second;
        if (a.code() == 0) {
          w->result = TxnResult{Gtid{a.gtid().epoch(), a.gtid().seq()}, a.succeeded()};
        } else {
          w->result = absl::Status(static_cast<absl::StatusCode>(a.code()), a.message());
        }
        w->done = true;
        answered.push_back(std::move(w));
        s->waiters.erase(it);
      }
    }
    for (auto& w : answered) w->cv.notify_one();
    answered.clear();
  }
  {
    // Finish() must not run while a caller is inside Write().
    std::unique_lock l(mu_);
    s->broken = true;
    s->idle.wait(l, [&] { return !s->writing; });
  }
  const grpc::Status ended = s->rw->Finish();
  std::lock_guard l(mu_);
  const std::string why = "write stream to " + address_ + " ended (" +
                          std::to_string(static_cast<int>(ended.error_code())) + ": " +
                          ended.error_message() + ") before this write was answered; its "
                          "outcome is unknown";
  // A refused stream (no write role, no identity) read nothing: its writes
  // were not made, and the caller gets the refusal itself.
  const bool refused = ended.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
                       ended.error_code() == grpc::StatusCode::UNAUTHENTICATED;
  for (auto& [id, w] : s->waiters) {
    w->result = refused ? absl::Status(static_cast<absl::StatusCode>(ended.error_code()),
                                       ended.error_message())
                        : absl::UnavailableError(why);
    w->done = true;
    w->cv.notify_one();
  }
  s->waiters.clear();
  s->exited = true;
}

}  // namespace relaykv
