// EtcdClient::WatchKey and Watch: one bidi Watch stream per watch, read by
// the watch's own thread. The thread also opens the stream and waits for
// etcd's "created" answer, so WatchKey can bound that wait by the call's
// deadline (a sync stream's first Read has no deadline of its own; the
// context's deadline would end the watch itself later).
#include <future>

#include "etcd_client/etcd_client.h"
#include "etcd_client/etcd_stubs.h"

namespace relaykv::etcd {
namespace {

namespace pb = etcdserverpb;

WatchEvent EventFromProto(const mvccpb::Event& e) {
  WatchEvent out;
  out.type = e.type() == mvccpb::Event::DELETE ? WatchEvent::Type::kDelete : WatchEvent::Type::kPut;
  out.kv = FromProto(e.kv());
  return out;
}

// Why etcd ended a watch it had sent `r` for.
absl::Status CancelStatus(const pb::WatchResponse& r, const std::string& endpoint) {
  if (r.compact_revision() > 0) {
    return absl::OutOfRangeError("etcd Watch at " + endpoint + ": revision compacted; first kept is " +
                                 std::to_string(r.compact_revision()));
  }
  return absl::CancelledError("etcd Watch at " + endpoint + ": cancelled by etcd" +
                              (r.cancel_reason().empty() ? "" : ": " + r.cancel_reason()));
}

}  // namespace

Watch::Watch(std::unique_ptr<Stream> stream) : stream_(std::move(stream)) {}

Watch::~Watch() { Stop(); }

void Watch::Stop() {
  std::lock_guard<std::mutex> lock(stop_mu_);
  stopping_.store(true);
  stream_->context.TryCancel();  // ends a blocked Read (also before the call started)
  if (thread_.joinable()) thread_.join();
}

void Watch::Run() {
  Stream& s = *stream_;
  s.rw = s.stub->Watch(&s.context);
  pb::WatchResponse r;
  if (!s.rw->Write(s.create) || !s.rw->Read(&r)) {
    absl::Status st = FromGrpc(s.rw->Finish(), "Watch", s.endpoint);
    if (st.ok()) st = absl::UnavailableError("etcd Watch at " + s.endpoint + ": stream ended at once");
    s.created.set_value(st);
    return;
  }
  // End the stream (we no longer read it) and collect its status.
  auto finish = [&s] {
    s.context.TryCancel();
    pb::WatchResponse rest;
    while (s.rw->Read(&rest)) {
    }
    return s.rw->Finish();
  };
  if (!r.created() || r.canceled() || r.compact_revision() > 0) {
    s.created.set_value(CancelStatus(r, s.endpoint));
    finish().IgnoreError();
    return;
  }
  s.created.set_value(absl::OkStatus());
  // From here on the callback owns the outcome: every event batch, then at
  // most one error, none after Stop().
  while (s.rw->Read(&r)) {
    if (stopping_.load()) break;
    WatchResponse out;
    out.revision = r.header().revision();
    if (r.canceled() || r.compact_revision() > 0) {
      out.status = CancelStatus(r, s.endpoint);
      out.compact_revision = r.compact_revision();
      s.callback(out);
      finish().IgnoreError();
      return;
    }
    if (r.events_size() == 0) continue;  // a progress notification
    out.events.reserve(r.events_size());
    for (const auto& e : r.events()) out.events.push_back(EventFromProto(e));
    s.callback(out);
  }
  const grpc::Status ended = finish();
  if (stopping_.load()) return;
  WatchResponse out;
  out.status = absl::UnavailableError("etcd Watch at " + s.endpoint + ": stream ended: " +
                                      (ended.ok() ? "by etcd" : ended.error_message()));
  s.callback(out);
}

absl::StatusOr<std::unique_ptr<Watch>> EtcdClient::WatchKey(const std::string& key, bool prefix,
                                                            int64_t start_revision,
                                                            WatchCallback callback) {
  if (!callback) return absl::InvalidArgumentError("etcd Watch: no callback");
  pb::WatchRequest create;
  auto* c = create.mutable_create_request();
  if (prefix && key.empty()) {
    c->set_key(std::string(1, '\0'));
    c->set_range_end(std::string(1, '\0'));
  } else {
    c->set_key(key);
    if (prefix) c->set_range_end(PrefixRangeEnd(key));
  }
  c->set_start_revision(start_revision);

  const auto deadline = std::chrono::steady_clock::now() + options_.call_timeout;
  const size_t n = stubs_.size();
  const size_t first = preferred_.load();
  absl::Status last;
  for (size_t i = 0; i < n; ++i) {
    const size_t index = (first + i) % n;
    const std::shared_ptr<const Stubs> stubs = StubsAt(index);
    const auto left = deadline - std::chrono::steady_clock::now();
    const bool was_connected =
        WaitConnected(*stubs->channel,
                      std::chrono::system_clock::now() +
                          std::chrono::duration_cast<std::chrono::system_clock::duration>(left),
                      n - i);
    auto stream = std::make_unique<Watch::Stream>();
    stream->endpoint = stubs->endpoint;
    stream->stub = pb::Watch::NewStub(stubs->channel);
    stream->create = create;
    stream->callback = callback;
    std::future<absl::Status> created = stream->created.get_future();
    std::unique_ptr<Watch> watch(new Watch(std::move(stream)));
    watch->thread_ = std::thread([w = watch.get()] { w->Run(); });
    if (created.wait_until(deadline) != std::future_status::ready) {
      watch->Stop();  // cancels the stream; Run() then fails the promise and exits
      if (was_connected) Reconnect(index, stubs.get());  // as Call() does
      preferred_.store((index + 1) % n);
      return absl::DeadlineExceededError("etcd Watch at " + stubs->endpoint +
                                         ": not confirmed within the deadline");
    }
    last = created.get();
    if (last.ok()) {
      preferred_.store(index);
      return watch;
    }
    watch->Stop();  // the thread has ended already; joins it
    if (last.code() != absl::StatusCode::kUnavailable) return last;
    if (std::chrono::steady_clock::now() >= deadline) break;
  }
  return last;
}

}  // namespace relaykv::etcd
