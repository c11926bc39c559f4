#include "client/write_mux.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <deque>

namespace relaykv {
namespace {

// The stream whose answers this thread (its reader) is handing out to
// callbacks: async writes they issue on it wake the sender once, after the
// last callback, and so leave in one message instead of one each.
thread_local const void* tl_handing_out = nullptr;
// Set while this thread runs `done` callbacks (any mux's): a blocking write
// there would hold up the very answers it waits behind.
thread_local bool tl_in_callback = false;
// Refuse() calls running on this thread, and the refusals left for the
// outermost one to run (null outside Refuse).
thread_local int tl_refuse_depth = 0;
thread_local std::deque<std::pair<WriteMux::Done, absl::Status>>* tl_refusals = nullptr;

}  // namespace

// One write's wait. A blocked caller waits on its own lock `m`, not mu_:
// woken, it returns without queueing for mu_ behind the reader, the sender
// and every other caller (each such wait is one more futex sleep and wake
// per write); it is woken after both locks are released. An async write's
// `done` is run outside mu_. Shared, so that it outlives that wake-up if
// the caller has returned. `m` is taken after mu_ when both are held.
struct WriteMux::Waiter {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;  // guarded by m (blocking writes)
  absl::StatusOr<TxnResult> result = absl::UnknownError("no answer");  // guarded by m (blocking)
  // The rest: set before the waiter is shared (callback) or guarded by mu_.
  Done callback;                 // set: async
  uint64_t id = 0;
  Clock::time_point deadline;    // async: with id, its key in async_deadlines_
  // The write's deadline, max() for none: the server gets what is left of
  // it when the write is taken for sending (StreamWrite::timeout_ms).
  Clock::time_point ends = Clock::time_point::max();
};

// One WriteStream. Fields below `rw` are guarded by the mux's mu_.
struct WriteMux::Stream {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<v1::WriteStreamRequest, v1::WriteStreamReply>> rw;
  std::thread reader;  // joined by the mux (retired streams, destructor)
  std::map<uint64_t, std::shared_ptr<Waiter>> waiters;  // sent or queued, not yet answered
  v1::WriteStreamRequest queue;         // not yet handed to the stream
  bool writing = false;   // a caller is sending (at most one: gRPC's rule)
  bool sent = false;      // a message went out: the connection is up
  bool broken = false;    // no new write may use this stream
  bool exited = false;    // the reader is done: join it
  bool deferred = false;  // callbacks queued writes during the reader's hand-out
  uint64_t handed_upto = 0;  // the highest id handed to the stream: none above is answerable
  // Nonzero: a write handed to the stream expired unanswered, and the
  // stream had handed writes up to this id then, none of them (nor a later
  // one) answered since: the node may have stopped reading, so its flow
  // control may hold a send for good. Callers then leave every send to the
  // sender thread and wait on their deadlines only (review s44e M3). An
  // answer to an older write is no sign it reads again (s45b L1, s45c L1).
  uint64_t stalled_from = 0;
  std::string violation;     // an answer no write could have had: the stream was cancelled
  std::condition_variable idle;  // `writing` went false
};

WriteMux::WriteMux(v1::Kv::Stub* stub, std::string address,
                   std::function<void(grpc::ClientContext*)> prepare)
    : stub_(stub), address_(std::move(address)), prepare_(std::move(prepare)) {}

WriteMux::~WriteMux() { Shutdown(); }

void WriteMux::Shutdown() {
  std::vector<std::shared_ptr<Stream>> all;
  {
    std::lock_guard l(mu_);
    if (closing_) return;
    closing_ = true;  // writes fail at once from now on
    if (current_) {
      current_->ctx.TryCancel();  // the reader's Read() fails: it fails the waiters and exits
      all.push_back(std::move(current_));
    }
    for (auto& s : retired_) {
      s->ctx.TryCancel();  // broken already; makes sure its Read() returns
      all.push_back(std::move(s));
    }
    retired_.clear();
    send_cv_.notify_all();
    expiry_cv_.notify_all();
  }
  for (auto& s : all) s->reader.join();
  if (sender_thread_.joinable()) sender_thread_.join();
  if (expiry_thread_.joinable()) expiry_thread_.join();
}

std::vector<std::shared_ptr<WriteMux::Stream>> WriteMux::TakeExited() {
  std::vector<std::shared_ptr<Stream>> exited;
  for (auto it = retired_.begin(); it != retired_.end();) {
    if ((*it)->exited) {
      exited.push_back(std::move(*it));
      it = retired_.erase(it);
    } else {
      ++it;
    }
  }
  return exited;
}

std::shared_ptr<WriteMux::Stream> WriteMux::Current() {
  if (current_ && !current_->broken) return current_;
  if (current_) retired_.push_back(std::move(current_));
  auto s = std::make_shared<Stream>();
  if (prepare_) prepare_(&s->ctx);
  // Corked: the call's headers leave with its first message, so opening
  // returns at once instead of waiting, under mu_, for the connection —
  // up to gRPC's connect timeout (20 s) for a node that accepts TCP and
  // says nothing, holding every caller of this mux, async ones included
  // (review-async N5). The first send waits instead, outside mu_.
  s->ctx.set_initial_metadata_corked(true);
  s->rw = stub_->WriteStream(&s->ctx);
  s->reader = std::thread([this, raw = s.get()] { ReadAnswers(raw); });
  current_ = s;
  return s;
}

std::shared_ptr<WriteMux::Stream> WriteMux::Enqueue(v1::StreamWrite write, Clock::time_point deadline,
                                                    std::shared_ptr<Waiter> waiter,
                                                    std::unique_lock<std::mutex>& l) {
  waiter->ends = deadline;
  std::shared_ptr<Stream> s = Current();
  const bool async = static_cast<bool>(waiter->callback);
  // A blocking caller with no other caller's write outstanding sends its
  // own (unless a send is under way: that sender takes it), for the
  // latency of a unary call; otherwise the sender thread sends it, and its
  // wake-up lets the writes of callers woken by the same answer tend to
  // leave together — one message, one sendmsg, where each caller sending
  // its own cost the node and this process a loopback send per write
  // (64 callers: 1.7-2.2 writes per message before, 3.3-4.1 after).
  // Not the first write on a stream, though: that send waits for the
  // connection (the stream opens corked), up to gRPC's connect timeout
  // (20 s) past the caller's deadline; the caller waits on its own lock
  // instead, until its deadline. Threads start before anything is queued:
  // if that throws, nothing was.
  // And only a write the stream's flow-control window surely takes: a
  // larger one would hold its caller in the send, past its deadline, if
  // the node stopped reading after answering everything (review s45b M2).
  const bool alone = !async && s->waiters.empty() && s->sent && s->stalled_from == 0 &&
                     write.ByteSizeLong() <= kMaxAloneBytes;
  if (!alone) StartThreads();
  const uint64_t id = next_id_++;
  write.set_id(id);
  waiter->id = id;
  *s->queue.add_writes() = std::move(write);
  s->waiters[id] = std::move(waiter);
  if (alone) {
    SendQueued(s.get(), l, id);
    return s;
  }
  if (!async) {
    WantSend();
    return s;
  }
  ++async_in_flight_;
  if (deadline != Clock::time_point::max()) {
    s->waiters[id]->deadline = deadline;
    auto [it, added] = async_deadlines_.emplace(std::make_pair(deadline, id), s.get());
    if (it == async_deadlines_.begin()) expiry_cv_.notify_one();
  }
  if (tl_handing_out == s.get()) {
    s->deferred = true;  // the reader wakes the sender after the last callback
  } else {
    WantSend();
  }
  return s;
}

v1::WriteStreamRequest WriteMux::TakeMessage(Stream* s) {
  v1::WriteStreamRequest batch;
  auto* q = s->queue.mutable_writes();
  int n = 0;
  size_t bytes = 0;
  while (n < q->size() && n < kMaxWritesPerMessage) {
    const size_t b = q->Get(n).ByteSizeLong();
    if (n > 0 && bytes + b > kMaxMessageBytes) break;
    bytes += b;
    ++n;
  }
  if (n == q->size()) {
    batch.Swap(&s->queue);
  } else {
    std::vector<v1::StreamWrite*> taken(static_cast<size_t>(n));
    q->ExtractSubrange(0, n, taken.data());
    for (v1::StreamWrite* w : taken) batch.mutable_writes()->AddAllocated(w);
  }
  // A write whose caller gave up (its deadline passed) is not sent; the
  // server bounds its wait for the others by what is left of their
  // deadlines now (a queue, or a connection still being made, took some).
  auto* w = batch.mutable_writes();
  int kept = 0;
  const auto now = Clock::now();
  for (int i = 0; i < w->size(); ++i) {
    auto it = s->waiters.find(w->Get(i).id());
    if (it == s->waiters.end()) continue;
    if (const Clock::time_point ends = it->second->ends; ends != Clock::time_point::max()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(ends - now).count();
      w->Mutable(i)->set_timeout_ms(static_cast<uint32_t>(std::clamp<int64_t>(left, 1, UINT32_MAX)));
    }
    if (kept != i) w->SwapElements(kept, i);
    ++kept;
  }
  if (kept < w->size()) w->DeleteSubrange(kept, w->size() - kept);
  return batch;
}

void WriteMux::Abandon(Stream* s, uint64_t id) {
  s->waiters.erase(id);
  if (id <= s->handed_upto) {
    // From the newest handed: an answer to an older write does not say
    // the window has room for a write of ours (review s45c L1).
    s->stalled_from = s->handed_upto;
    return;
  }
  // Queued ids only grow: it is near the end.
  auto* q = s->queue.mutable_writes();
  for (int i = q->size() - 1; i >= 0; --i) {
    if (q->Get(i).id() == id) {
      q->DeleteSubrange(i, 1);
      return;
    }
  }
}

void WriteMux::SendQueued(Stream* s, std::unique_lock<std::mutex>& l, uint64_t own_id) {
  if (s->writing || s->queue.writes_size() == 0) return;  // that caller sends ours too
  s->writing = true;
  while (s->queue.writes_size() > 0 && !s->broken) {
    v1::WriteStreamRequest batch = TakeMessage(s);
    if (batch.writes_size() == 0) continue;
    const uint64_t last_id = batch.writes(batch.writes_size() - 1).id();
    s->handed_upto = std::max(s->handed_upto, last_id);  // before: its answer may come at once
    l.unlock();
    const bool sent = s->rw->Write(batch);
    l.lock();
    // Not sent: the stream is over; the reader fails every waiter.
    if (!sent) s->broken = true;
    s->sent = s->sent || sent;
    // A blocking caller whose write is on the wire leaves the rest to the
    // sender thread, if there is one: async writes could keep it sending
    // long past its own answer.
    if (own_id != 0 && last_id >= own_id && sender_thread_.joinable()) {
      if (s->queue.writes_size() > 0) WantSend();
      break;
    }
  }
  s->writing = false;
  s->idle.notify_all();
}

void WriteMux::StartThreads() {
  if (!sender_thread_.joinable()) sender_thread_ = std::thread([this] { SendLeft(); });
  if (!expiry_thread_.joinable()) expiry_thread_ = std::thread([this] { ExpireAsync(); });
}

void WriteMux::WantSend() {
  if (send_wanted_) return;
  send_wanted_ = true;
  send_cv_.notify_one();
}

absl::StatusOr<TxnResult> WriteMux::Write(v1::StreamWrite write, Clock::time_point deadline) {
  auto waiter = std::make_shared<Waiter>();
  std::unique_lock l(mu_);
  if (closing_) return absl::UnavailableError("write to " + address_ + ": the client is closing");
  std::vector<std::shared_ptr<Stream>> exited = TakeExited();
  std::shared_ptr<Stream> s = Enqueue(std::move(write), deadline, waiter, l);
  if (!exited.empty()) {
    l.unlock();
    for (auto& e : exited) e->reader.join();
    l.lock();
  }
  l.unlock();
  {
    std::unique_lock wl(waiter->m);
    if (waiter->cv.wait_until(wl, deadline, [&] { return waiter->done; })) {
      return std::move(waiter->result);
    }
  }
  // Timed out: unless the answer came meanwhile, stop waiting for it.
  l.lock();
  std::lock_guard wl(waiter->m);
  if (waiter->done) return std::move(waiter->result);
  Abandon(s.get(), waiter->id);
  return absl::DeadlineExceededError("write to " + address_ +
                                     ": no answer before the deadline; its outcome is unknown");
}

void WriteMux::WriteAsync(v1::StreamWrite write, Clock::time_point deadline, Done done) {
  auto waiter = std::make_shared<Waiter>();
  waiter->callback = std::move(done);
  std::vector<std::shared_ptr<Stream>> exited;
  absl::Status refused;
  {
    std::unique_lock l(mu_);
    if (closing_) {
      refused = absl::UnavailableError("write to " + address_ + ": the client is closing");
    } else if (async_in_flight_ >= kMaxAsyncInFlight) {
      refused = absl::ResourceExhaustedError(
          "write to " + address_ + ": " + std::to_string(kMaxAsyncInFlight) +
          " async writes are unanswered already; nothing was sent (wait for some answers)");
    } else {
      exited = TakeExited();
      Enqueue(std::move(write), deadline, waiter, l);
    }
  }
  for (auto& e : exited) e->reader.join();
  if (!refused.ok()) Refuse(waiter->callback, std::move(refused));
}

void WriteMux::Refuse(const Done& done, absl::Status refusal) {
  if (tl_refuse_depth >= kMaxNestedRefusals) {
    tl_refusals->emplace_back(done, std::move(refusal));
    return;
  }
  std::deque<std::pair<Done, absl::Status>> later;
  struct Depth {
    explicit Depth(std::deque<std::pair<Done, absl::Status>>* q) {
      if (tl_refuse_depth++ == 0) tl_refusals = q;
    }
    ~Depth() {
      if (--tl_refuse_depth == 0) tl_refusals = nullptr;
    }
  } depth(&later);
  done(std::move(refusal));
  if (tl_refuse_depth > 1) return;  // the outermost runs what was left
  while (!later.empty()) {
    auto [next, status] = std::move(later.front());
    later.pop_front();
    next(std::move(status));
  }
}

void WriteMux::Finish(std::shared_ptr<Waiter> w, absl::StatusOr<TxnResult> result,
                      Answered* answered) {
  if (w->callback) {
    if (w->deadline != Clock::time_point{}) async_deadlines_.erase({w->deadline, w->id});
    --async_in_flight_;
    answered->emplace_back(std::move(w), std::move(result));
  } else {
    {
      std::lock_guard wl(w->m);
      w->result = std::move(result);
      w->done = true;
    }
    answered->emplace_back(std::move(w), TxnResult{});  // unused: the caller reads w->result
  }
}

bool WriteMux::InCallback() { return tl_in_callback; }

void WriteMux::RunCallbacks(Answered* answered) {
  const bool outer = tl_in_callback;
  tl_in_callback = true;
  for (auto& [w, result] : *answered) {
    if (w->callback) {
      w->callback(std::move(result));
    } else {
      w->cv.notify_one();
    }
  }
  tl_in_callback = outer;
  answered->clear();
}

void WriteMux::ReadAnswers(Stream* s) {
  v1::WriteStreamReply reply;
  Answered answered;
  while (s->violation.empty() && s->rw->Read(&reply)) {
    {
      std::lock_guard l(mu_);
      for (const v1::StreamAnswer& a : reply.answers()) {
        if (s->stalled_from != 0 && a.id() >= s->stalled_from) s->stalled_from = 0;  // it reads
        // An answer for a write never sent, or a success without a GTID,
        // is no write's outcome (review s44e L4: it was reported as one):
        // the stream is ended, and every write on it is of unknown outcome.
        if (a.id() > s->handed_upto || (a.code() == 0 && a.gtid().seq() == 0)) {
          s->violation = "the server answered id " + std::to_string(a.id()) +
                         (a.id() > s->handed_upto ? ", never sent" : " OK without a GTID");
          s->ctx.TryCancel();
          break;
        }
        auto it = s->waiters.find(a.id());
        if (it == s->waiters.end()) continue;  // its caller gave up
        std::shared_ptr<Waiter> w = std::move(it->second);
        s->waiters.erase(it);
        Finish(std::move(w),
               a.code() == 0 ? absl::StatusOr<TxnResult>(
                                   TxnResult{Gtid{a.gtid().epoch(), a.gtid().seq()}, a.succeeded(),
                                             a.replication() == v1::COMMIT_SEMI_SYNC})
                             : absl::Status(static_cast<absl::StatusCode>(a.code()), a.message()),
               &answered);
      }
    }
    tl_handing_out = s;
    RunCallbacks(&answered);
    tl_handing_out = nullptr;
    std::lock_guard l(mu_);
    if (s->deferred) WantSend();  // what the callbacks wrote: one message
    s->deferred = false;
  }
  {
    // Finish() must not run while a caller is inside Write().
    std::unique_lock l(mu_);
    s->broken = true;
    s->idle.wait(l, [&] { return !s->writing; });
  }
  const grpc::Status ended = s->rw->Finish();
  {
    std::lock_guard l(mu_);
    const std::string why = "write stream to " + address_ + " ended (" +
                            (s->violation.empty()
                                 ? std::to_string(static_cast<int>(ended.error_code())) + ": " +
                                       ended.error_message()
                                 : s->violation) +
                            ") before this write was answered; its outcome is unknown";
    // A refused stream (no write role, no identity) read nothing: its writes
    // were not made, and the caller gets the refusal itself.
    const bool refused = ended.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
                         ended.error_code() == grpc::StatusCode::UNAUTHENTICATED;
    for (auto& [id, w] : s->waiters) {
      Finish(std::move(w),
             refused ? absl::Status(static_cast<absl::StatusCode>(ended.error_code()),
                                    ended.error_message())
                     : absl::UnavailableError(why),
             &answered);
    }
    s->waiters.clear();
  }
  RunCallbacks(&answered);
  std::lock_guard l(mu_);
  s->exited = true;
}

void WriteMux::SendLeft() {
  std::unique_lock l(mu_);
  while (!closing_) {
    if (!send_wanted_) {
      send_cv_.wait(l);
      continue;
    }
    // Writes queued on a stream that broke meanwhile are failed by its
    // reader; current_ has the rest.
    send_wanted_ = false;
    if (std::shared_ptr<Stream> s = current_) SendQueued(s.get(), l);
  }
}

void WriteMux::ExpireAsync() {
  std::unique_lock l(mu_);
  Answered expired;
  while (!closing_) {
    const Clock::time_point now = Clock::now();
    while (!async_deadlines_.empty() && async_deadlines_.begin()->first.first <= now) {
      const auto [key, stream] = *async_deadlines_.begin();
      async_deadlines_.erase(async_deadlines_.begin());
      auto it = stream->waiters.find(key.second);
      if (it == stream->waiters.end()) continue;
      std::shared_ptr<Waiter> w = std::move(it->second);
      Abandon(stream, key.second);
      w->deadline = {};  // its entry is gone already
      Finish(std::move(w),
             absl::DeadlineExceededError("write to " + address_ +
                                         ": no answer before the deadline; its outcome is unknown"),
             &expired);
    }
    if (!expired.empty()) {
      l.unlock();
      RunCallbacks(&expired);
      l.lock();
      continue;
    }
    if (async_deadlines_.empty()) {
      expiry_cv_.wait(l);
    } else {
      expiry_cv_.wait_until(l, async_deadlines_.begin()->first.first);
    }
  }
}

}  // namespace relaykv
