#include "relaykv/client.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>

#include "client/channel_args.h"
#include "client/channel_credentials.h"
#include "client/host_port.h"
#include "client/primary_discovery.h"
#include "client/stall_cutoff.h"
#include "client/watch_decode.h"
#include "client/write_mux.h"
#include "proto/admin.grpc.pb.h"
#include "proto/kv.grpc.pb.h"
#include "proto/replication.grpc.pb.h"
#include "proto/watch.pb.h"

namespace relaykv {
namespace {

// kLocal goes as UNSPECIFIED: a server then waits for wait_for if it is set
// (as before levels existed), and a server older than levels understands it.
v1::ReadConsistency ReadConsistencyToProto(ReadConsistency c) {
  switch (c) {
    case ReadConsistency::kLocal: return v1::READ_CONSISTENCY_UNSPECIFIED;
    case ReadConsistency::kWaitForGtid: return v1::READ_WAIT_FOR_GTID;
    case ReadConsistency::kPrimaryFresh: return v1::READ_PRIMARY_FRESH;
  }
  return v1::READ_CONSISTENCY_UNSPECIFIED;
}

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

Gtid FromProto(const v1::Gtid& g) { return {g.epoch(), g.seq()}; }

// "... send writes to its primary at 127.0.0.1:7400" -> "127.0.0.1:7400".
std::string PrimaryHint(const absl::Status& s) {
  const std::string marker = "primary at ";
  const std::string msg(s.message());
  auto at = msg.rfind(marker);
  if (at == std::string::npos) return "";
  std::string addr = msg.substr(at + marker.size());
  addr = addr.substr(0, addr.find_first_of(" ;,)"));
  return IsHostPort(addr) ? addr : "";
}

}  // namespace

using Clock = std::chrono::steady_clock;

class Client::Impl {
 public:
  Impl(std::vector<std::string> addresses, ClientOptions options,
       std::shared_ptr<grpc::ChannelCredentials> credentials,
       std::unique_ptr<PrimaryDiscovery> discovery)
      : addresses_(std::move(addresses)),
        options_(std::move(options)),
        credentials_(std::move(credentials)),
        discovery_(std::move(discovery)),
        write_target_(addresses_.empty() ? "" : addresses_[0]) {}

  struct Stubs {
    std::unique_ptr<v1::Kv::Stub> kv;
    std::unique_ptr<v1::Admin::Stub> admin;
    std::unique_ptr<v1::Replication::Stub> replication;  // Revoke
    // ChangeStream.Watch is called on the channel itself: its answers are
    // read as bytes (client/watch_decode.h), not as generated messages.
    std::shared_ptr<grpc::Channel> channel;
  };

  // The deadline of a call that may take `t` (0: the client's timeout).
  Clock::time_point DeadlineAfter(std::chrono::milliseconds t = std::chrono::milliseconds(0)) const {
    return Clock::now() + (t.count() > 0 ? t : options_.timeout);
  }

  // The node a call names, or the default one: the first address, or with
  // etcd discovery the primary now (waited for until `deadline`).
  absl::StatusOr<std::string> Resolve(const std::string& node, Clock::time_point deadline) {
    if (!node.empty()) return node;
    if (!discovery_) return addresses_[0];
    auto primary = discovery_->WaitForPrimary(deadline, epoch_seen());
    if (!primary.ok()) return primary.status();
    SawEpoch(primary->epoch);
    return primary->address;
  }

  // Stubs for `addr` (a resolved node: Resolve), created once and shared.
  Stubs& For(const std::string& addr) {
    std::lock_guard l(mu_);
    auto it = stubs_.find(addr);
    if (it == stubs_.end()) {
      grpc::ChannelArguments args = ClientChannelArguments();
      auto channel = grpc::CreateCustomChannel(addr, credentials_, args);
      it = stubs_.emplace(addr, Stubs{v1::Kv::NewStub(channel), v1::Admin::NewStub(channel),
                                       v1::Replication::NewStub(channel), channel}).first;
    }
    return it->second;  // never erased: the reference stays valid
  }

  // Every call's context: its deadline and the bearer token, if any.
  void Deadline(grpc::ClientContext* ctx, Clock::time_point deadline) {
    ctx->set_deadline(std::chrono::system_clock::now() + (deadline - Clock::now()));
    if (!options_.bearer_token.empty()) {
      ctx->AddMetadata("authorization", "Bearer " + options_.bearer_token);
    }
  }

  std::string write_target() {
    if (discovery_) {
      auto primary = discovery_->Current(epoch_seen());
      return primary ? primary->address : "";
    }
    std::lock_guard l(mu_);
    return write_target_;
  }

  // Sends a write; follows a replica's hint to its primary once. With
  // discovery the target is the primary etcd names (waited for within the
  // write's deadline) and a hint is followed for this write only: the
  // record stays the authority.
  absl::StatusOr<TxnResult> Write(v1::WriteRequest req) {
    if (WriteMux::InCallback()) {
      return absl::FailedPreconditionError(
          "a blocking write from an async write's callback would hold up the answers behind it "
          "(on a WriteStream, its own); nothing was sent: write asynchronously there");
    }
    const Clock::time_point deadline = DeadlineAfter();
    auto target = WriteTarget(deadline);
    if (!target.ok()) return target.status();
    for (int attempt = 0;; ++attempt) {
      if (options_.epoch_fencing) req.set_min_epoch(epoch_seen());
      absl::StatusOr<TxnResult> r = WriteOnce(*target, req, deadline);
      if (r.ok()) SawEpoch(r->gtid.epoch);
      if (r.ok() || !FollowHint(r.status(), attempt, &*target)) return r;
    }
  }

  // Write's asynchronous twin, always on the WriteStream: the same target,
  // the same one hint followed, `done` called once with what Write returns.
  // Never blocks: with discovery and no primary known now it fails at once
  // (a sync write would wait for one).
  void WriteAsync(v1::WriteRequest req, WriteMux::Done done) {
    const Clock::time_point deadline = DeadlineAfter();
    auto target = WriteTarget(Clock::now());
    if (!target.ok()) return WriteMux::Refuse(done, target.status());
    SendAsync(*std::move(target), std::move(req), deadline, 0, std::move(done));
  }

  // Closes the write streams while the client is whole (~Client): the
  // callbacks that run meanwhile (each fails UNAVAILABLE) may write again,
  // and find the client closing. Every mux is shut down before any is
  // freed: a thread of one may hold a pointer to another (a followed hint).
  void Close() {
    std::map<std::string, std::unique_ptr<WriteMux>> muxes;
    {
      std::lock_guard l(mu_);
      closing_ = true;
      muxes.swap(muxes_);
    }
    for (auto& [addr, mux] : muxes) mux->Shutdown();
  }

 private:
  // Where a write goes first: the primary etcd names (waited for until
  // `deadline`), or the write target (the first address, or a primary a
  // replica named).
  absl::StatusOr<std::string> WriteTarget(Clock::time_point deadline) {
    if (discovery_) return Resolve("", deadline);
    return write_target();
  }

  // After a failed attempt: whether to send again, to the primary a
  // replica's refusal names (follow_primary, once), which becomes the
  // write target unless etcd names it.
  bool FollowHint(const absl::Status& s, int attempt, std::string* target) {
    std::string hint = PrimaryHint(s);
    if (!options_.follow_primary || !absl::IsFailedPrecondition(s) || hint.empty() || attempt > 0) {
      return false;
    }
    *target = std::move(hint);
    if (!discovery_) {
      std::lock_guard l(mu_);
      write_target_ = *target;
    }
    return true;
  }

  void SendAsync(std::string target, v1::WriteRequest req, Clock::time_point deadline, int attempt,
                 WriteMux::Done done) {
    if (options_.epoch_fencing) req.set_min_epoch(epoch_seen());
    WriteMux* mux = Mux(target);
    if (mux == nullptr) {
      return WriteMux::Refuse(done, absl::UnavailableError("write to " + target + ": the client is closing"));
    }
    v1::StreamWrite w;
    // Kept for a second attempt only if one may follow.
    const bool may_retry = options_.follow_primary && attempt == 0;
    if (may_retry) {
      *w.mutable_write() = req;
    } else {
      *w.mutable_write() = std::move(req);
    }
    mux->WriteAsync(std::move(w), deadline,
                    [this, target = std::move(target), req = may_retry ? std::move(req) : v1::WriteRequest(),
                     deadline, attempt, done = std::move(done)](absl::StatusOr<TxnResult> r) mutable {
                      if (r.ok()) SawEpoch(r->gtid.epoch);
                      if (r.ok() || !FollowHint(r.status(), attempt, &target)) return done(std::move(r));
                      SendAsync(std::move(target), std::move(req), deadline, attempt + 1, std::move(done));
                    });
  }

 public:
  // Epoch fencing (ClientOptions::epoch_fencing): the highest epoch any
  // answer or leader record carried; epochs only rise.
  uint64_t epoch_seen() const {
    const uint64_t answered = epoch_seen_.load(std::memory_order_relaxed);
    return discovery_ ? std::max(answered, discovery_->highest_epoch()) : answered;
  }
  void SawEpoch(uint64_t epoch) {
    uint64_t cur = epoch_seen();
    // Not a relaykv node's (review s44e M5, s44f F3): elections raise the
    // epoch by one, so a jump past kMaxEpochStep is garbled or hostile.
    if (epoch > kMaxClusterEpoch || (cur != 0 && epoch > cur && epoch - cur > kMaxClusterEpochStep)) {
      return;
    }
    while (epoch > cur && !epoch_seen_.compare_exchange_weak(cur, epoch, std::memory_order_relaxed)) {
    }
  }

  // One write to `target`: a unary Write, or on its WriteStream.
  absl::StatusOr<TxnResult> WriteOnce(const std::string& target, const v1::WriteRequest& req,
                                      Clock::time_point deadline) {
    if (options_.pipelined) {
      WriteMux* mux = Mux(target);
      if (mux == nullptr) return absl::UnavailableError("write to " + target + ": the client is closing");
      v1::StreamWrite w;
      *w.mutable_write() = req;
      return mux->Write(std::move(w), deadline);
    }
    grpc::ClientContext ctx;
    Deadline(&ctx, deadline);
    v1::WriteReply reply;
    absl::Status s = FromGrpc(For(target).kv->Write(&ctx, req, &reply));
    if (!s.ok()) return s;
    return TxnResult{FromProto(reply.gtid()), reply.succeeded(),
                     reply.replication() == v1::COMMIT_SEMI_SYNC};
  }

  // The write stream to `addr`, created once and shared; null once the
  // client is closing.
  WriteMux* Mux(const std::string& addr) {
    v1::Kv::Stub* stub = For(addr).kv.get();
    std::lock_guard l(mu_);
    if (closing_) return nullptr;
    auto it = muxes_.find(addr);
    if (it == muxes_.end()) {
      auto prepare = [token = options_.bearer_token](grpc::ClientContext* ctx) {
        if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
      };
      it = muxes_.emplace(addr, std::make_unique<WriteMux>(stub, addr, prepare)).first;
    }
    return it->second.get();  // erased only by the destructor
  }

  // SHOW STATUS / SHOW VARIABLES: same request, same reply.
  using ShowMethod = grpc::Status (v1::Admin::Stub::*)(grpc::ClientContext*, const v1::ShowRequest&,
                                                       v1::ShowReply*);
  absl::StatusOr<std::map<std::string, std::string>> Show(ShowMethod method, const std::string& like,
                                                          const std::string& node) {
    v1::ShowRequest req;
    req.set_like(like);
    v1::ShowReply reply;
    if (auto s = Call(method, node, req, &reply); !s.ok()) return s;
    std::map<std::string, std::string> out;
    for (const auto& r : reply.rows()) out[r.name()] = r.value();
    return out;
  }

  // One unary Admin call to `node` under the client's deadline.
  template <typename Req, typename Reply>
  absl::Status Call(grpc::Status (v1::Admin::Stub::*method)(grpc::ClientContext*, const Req&, Reply*),
                    const std::string& node, const Req& req, Reply* reply) {
    const Clock::time_point deadline = DeadlineAfter();
    auto addr = Resolve(node, deadline);
    if (!addr.ok()) return addr.status();
    grpc::ClientContext ctx;
    Deadline(&ctx, deadline);
    return FromGrpc((For(*addr).admin.get()->*method)(&ctx, req, reply));
  }

  const std::vector<std::string> addresses_;
  const ClientOptions options_;
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;  // from options_.tls
  const std::unique_ptr<PrimaryDiscovery> discovery_;  // with etcd_endpoints; else null
  std::mutex mu_;
  std::map<std::string, Stubs> stubs_;  // guarded by mu_
  std::string write_target_;            // guarded by mu_
  std::atomic<uint64_t> epoch_seen_{0};
  // After stubs_: each borrows its node's stub, so it must go first.
  std::map<std::string, std::unique_ptr<WriteMux>> muxes_;  // guarded by mu_
  bool closing_ = false;                                     // guarded by mu_
};

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(std::vector<std::string> addresses,
                                                        ClientOptions options) {
  const bool discover = !options.etcd_endpoints.empty() || !options.cluster.empty();
  if (addresses.empty() && !discover) return absl::InvalidArgumentError("no relaykvd address given");
  for (const auto& a : addresses) {
    if (!IsHostPort(a)) return absl::InvalidArgumentError("'" + a + "' is not HOST:PORT");
  }
  auto credentials = MakeChannelCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  std::unique_ptr<PrimaryDiscovery> discovery;
  if (discover) {
    // An etcd read in progress bounds the destructor: keep it short.
    auto started = PrimaryDiscovery::Start(
        {options.etcd_endpoints, options.cluster,
         std::min<std::chrono::milliseconds>(options.timeout, std::chrono::milliseconds(2000))});
    if (!started.ok()) return started.status();
    discovery = *std::move(started);
  }
  return std::unique_ptr<Client>(new Client(std::make_unique<Impl>(
      std::move(addresses), std::move(options), *std::move(credentials), std::move(discovery))));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() { impl_->Close(); }

absl::StatusOr<Gtid> Client::Put(const std::string& key, const std::string& value) {
  return Write({Mutation::Put(key, value)});
}

absl::StatusOr<Gtid> Client::Delete(const std::string& key) { return Write({Mutation::Delete(key)}); }

namespace {
void AddMutations(const std::vector<Mutation>& mutations,
                  google::protobuf::RepeatedPtrField<v1::Mutation>* out) {
  for (const Mutation& m : mutations) {
    v1::Mutation* pm = out->Add();
    pm->set_op(m.op == Mutation::Op::kDelete ? v1::Mutation::DELETE : v1::Mutation::PUT);
    pm->set_key(m.key);
    pm->set_value(m.value);
  }
}

v1::WriteRequest TxnRequest(const relaykv::Txn& txn) {
  v1::WriteRequest req;
  AddMutations(txn.then_ops, req.mutable_mutations());
  AddMutations(txn.else_ops, req.mutable_else_mutations());
  for (const Compare& c : txn.compares) {
    v1::Compare* pc = req.add_compares();
    switch (c.target) {
      case Compare::Target::kVersion: pc->set_target(v1::Compare::VERSION); break;
      case Compare::Target::kValue: pc->set_target(v1::Compare::VALUE); break;
      case Compare::Target::kAbsent: pc->set_target(v1::Compare::ABSENT); break;
    }
    pc->set_key(c.key);
    pc->mutable_version()->set_epoch(c.version.epoch);
    pc->mutable_version()->set_seq(c.version.seq);
    pc->set_value(c.value);
  }
  return req;
}
}  // namespace

absl::StatusOr<Gtid> Client::Write(const std::vector<Mutation>& mutations) {
  v1::WriteRequest req;
  AddMutations(mutations, req.mutable_mutations());
  auto r = impl_->Write(std::move(req));
  if (!r.ok()) return r.status();
  return r->gtid;
}

void Client::PutAsync(const std::string& key, const std::string& value, WriteDone done) {
  WriteAsync({Mutation::Put(key, value)}, std::move(done));
}

void Client::WriteAsync(const std::vector<Mutation>& mutations, WriteDone done) {
  v1::WriteRequest req;
  AddMutations(mutations, req.mutable_mutations());
  impl_->WriteAsync(std::move(req), [done = std::move(done)](absl::StatusOr<TxnResult> r) {
    if (!r.ok()) return done(r.status());
    done(r->gtid);
  });
}

void Client::TxnAsync(const relaykv::Txn& txn, TxnDone done) {
  impl_->WriteAsync(TxnRequest(txn), std::move(done));
}

absl::StatusOr<TxnResult> Client::Txn(const relaykv::Txn& txn) {
  return impl_->Write(TxnRequest(txn));  // without compares: a plain write, succeeded
}

absl::StatusOr<TxnResult> Client::CompareAndSet(const std::string& key, Gtid version,
                                                const std::string& value) {
  return Txn({{Compare::VersionIs(key, version)}, {Mutation::Put(key, value)}, {}});
}

absl::StatusOr<TxnResult> Client::CreateIfAbsent(const std::string& key, const std::string& value) {
  return Txn({{Compare::Absent(key)}, {Mutation::Put(key, value)}, {}});
}

absl::StatusOr<TxnResult> Client::DeleteIfVersion(const std::string& key, Gtid version) {
  return Txn({{Compare::VersionIs(key, version)}, {Mutation::Delete(key)}, {}});
}

absl::StatusOr<std::optional<std::string>> Client::Get(const std::string& key,
                                                       const ReadOptions& options) {
  auto r = Read(key, options);
  if (!r.ok()) return r.status();
  return std::move(r->value);
}

absl::StatusOr<ReadResult> Client::Read(const std::string& key, const ReadOptions& options) {
  const Clock::time_point deadline = impl_->DeadlineAfter(options.timeout);
  auto node = impl_->Resolve(options.node, deadline);
  if (!node.ok()) return node.status();
  grpc::ClientContext ctx;
  impl_->Deadline(&ctx, deadline);
  v1::GetRequest req;
  req.set_key(key);
  req.mutable_wait_for_gtid()->set_epoch(options.wait_for.epoch);
  req.mutable_wait_for_gtid()->set_seq(options.wait_for.seq);
  req.set_consistency(ReadConsistencyToProto(options.consistency));
  v1::GetReply reply;
  if (auto s = FromGrpc(impl_->For(*node).kv->Get(&ctx, req, &reply)); !s.ok()) return s;
  ReadResult out;
  out.applied = FromProto(reply.applied_gtid());
  impl_->SawEpoch(out.applied.epoch);
  if (reply.found()) {
    out.value = reply.value();
    out.version = FromProto(reply.version());
  }
  return out;
}

absl::StatusOr<ScanPage> Client::Scan(const ScanRange& range, const ReadOptions& options) {
  const Clock::time_point deadline = impl_->DeadlineAfter(options.timeout);
  auto node = impl_->Resolve(options.node, deadline);
  if (!node.ok()) return node.status();
  grpc::ClientContext ctx;
  impl_->Deadline(&ctx, deadline);
  v1::ScanRequest req;
  req.set_start(range.start);
  req.set_end(range.end);
  req.set_prefix(range.prefix);
  req.set_limit(range.limit);
  req.set_reverse(range.reverse);
  req.set_keys_only(range.keys_only);
  req.set_count_only(range.count_only);
  req.set_continuation(range.continuation);
  req.mutable_wait_for_gtid()->set_epoch(options.wait_for.epoch);
  req.mutable_wait_for_gtid()->set_seq(options.wait_for.seq);
  req.set_consistency(ReadConsistencyToProto(options.consistency));
  v1::ScanReply reply;
  if (auto s = FromGrpc(impl_->For(*node).kv->Scan(&ctx, req, &reply)); !s.ok()) return s;
  ScanPage page;
  page.rows.reserve(static_cast<size_t>(reply.rows_size()));
  for (auto& row : *reply.mutable_rows()) {
    page.rows.push_back({std::move(*row.mutable_key()), std::move(*row.mutable_value())});
  }
  page.count = reply.count();
  page.continuation = std::move(*reply.mutable_continuation());
  page.applied = FromProto(reply.applied_gtid());
  impl_->SawEpoch(page.applied.epoch);
  return page;
}

namespace {

// How long a watch waits for the node's next message: it sends one at least
// every progress_interval (the server raises one under 100 ms to 100 ms).
std::chrono::milliseconds WatchSilenceLimit(std::chrono::milliseconds progress_interval) {
  return std::max(4 * std::max(progress_interval, std::chrono::milliseconds(100)),
                  std::chrono::milliseconds(10000));
}

// A batch continues the watch standing at `after` (nullopt: at the start):
// its events in GTID order past `after`, its progress at or past both.
absl::Status CheckWatchProgress(const std::optional<Gtid>& after, const WatchBatch& batch) {
  uint64_t at = after ? after->seq : 0;
  for (const WatchEvent& e : batch.events) {
    if ((after || &e != &batch.events.front()) && e.gtid.seq <= at) {
      return absl::DataLossError("the node sent change " + e.gtid.ToString() +
                                 " at or before seq " + std::to_string(at) +
                                 ", where this watch already stood (it would be delivered twice)");
    }
    at = e.gtid.seq;
  }
  if ((after || !batch.events.empty()) && batch.progress.seq < at) {
    return absl::DataLossError("the node's progress " + batch.progress.ToString() +
                               " is behind seq " + std::to_string(at) +
                               ", where this watch already stood (resuming there would deliver "
                               "changes twice)");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Client::Watch(const WatchRange& range, const ClientWatchOptions& options,
                           const WatchDeliver& deliver) {
  v1::WatchRequest req;
  req.set_start(range.start);
  req.set_end(range.end);
  req.set_prefix(range.prefix);
  req.set_committed_only(options.committed_only);
  // 0 (or less): the server's default, 1 s; at most an hour (review s44f F5).
  const std::chrono::milliseconds interval =
      options.progress_interval <= std::chrono::milliseconds(0)
          ? std::chrono::milliseconds(1000)
          : std::min<std::chrono::milliseconds>(options.progress_interval, std::chrono::hours(1));
  req.set_progress_interval_ms(static_cast<uint32_t>(interval.count()));
  std::optional<Gtid> after = options.after;
  // What the generated stub would call, with the answer read as bytes.
  static const grpc::internal::RpcMethod kWatch("/relaykv.v1.ChangeStream/Watch",
                                                grpc::internal::RpcMethod::SERVER_STREAMING);
  size_t attempt = 0;
  Clock::time_point outage_ends = Clock::time_point::max();  // max(): connected
  auto backoff = std::chrono::milliseconds(50);
  for (;;) {
    // Resume right after the last GTID delivered (or the caller's start).
    if (after) {
      req.mutable_after()->set_epoch(after->epoch);
      req.mutable_after()->set_seq(after->seq);
    } else {
      req.clear_after();
    }
    // The node named, or the next address, or the primary etcd names now.
    std::string node = options.node;
    absl::Status s;
    bool stopped = false;
    if (node.empty() && impl_->discovery_) {
      auto primary = impl_->Resolve("", impl_->DeadlineAfter());
      if (primary.ok()) node = *primary;
      s = primary.status();  // UNAVAILABLE without one: an outage like any other
    } else if (node.empty()) {
      node = impl_->addresses_[attempt % impl_->addresses_.size()];
    }
    if (s.ok()) {
      grpc::ClientContext ctx;
      if (!impl_->options_.bearer_token.empty()) {
        ctx.AddMetadata("authorization", "Bearer " + impl_->options_.bearer_token);
      }
      // Once the stream has started, the node sends at least every
      // progress_interval: a node that keeps the connection up and sends
      // nothing is cut off like a broken one (review s44e M2: the watch
      // waited for ever). Not before its first message: a replica resuming
      // a watch after a GTID it has not received yet says nothing until it
      // has (review s44f F2). Time in `deliver` is not the node's (F1).
      StallCutoff silence(&ctx, WatchSilenceLimit(interval), 1);
      silence.Pause();
      // Create() hands over a raw pointer (the generated stub wraps it too).
      const std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
          grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(
              impl_->For(node).channel.get(), kWatch, &ctx, req));
      // Decoded into one batch, reused answer after answer: its events,
      // changes and their bytes are not allocated again.
      WatchBatch batch;
      grpc::ByteBuffer answer;
      absl::Status malformed;
      while (reader->Read(&answer)) {
        silence.Pause();
        grpc::ProtoBufferReader bytes(&answer);
        malformed = DecodeWatchResponse(&bytes, answer.Length(), &batch);
        if (!malformed.ok()) {
          ctx.TryCancel();
          break;
        }
        // Nothing twice: a node whose progress goes back, or that sends a
        // change at or before where this watch stands, would have it
        // delivered again (review s44e M1).
        malformed = CheckWatchProgress(after, batch);
        if (!malformed.ok()) {
          ctx.TryCancel();
          break;
        }
        outage_ends = Clock::time_point::max();  // connected: a later break is a new outage
        backoff = std::chrono::milliseconds(50);
        after = batch.progress;
        if (!deliver(batch)) {
          stopped = true;
          ctx.TryCancel();
          break;
        }
        silence.Resume();
      }
      s = FromGrpc(reader->Finish());
      if (silence.fired() && absl::IsCancelled(s) && !stopped && malformed.ok()) {
        s = absl::UnavailableError("watch stream of " + node + ": nothing received for " +
                                   std::to_string(WatchSilenceLimit(interval).count()) +
                                   " ms (the node stopped sending)");
      }
      if (stopped) return absl::OkStatus();
      if (!malformed.ok()) {  // not an outage: resuming would read the same bytes
        return absl::DataLossError("watch stream of " + node + ": " +
                                   std::string(malformed.message()));
      }
      if (s.ok()) return absl::UnavailableError("watch stream of " + node + " ended");  // not expected
    }
    if (options.resume_for.count() <= 0 || !absl::IsUnavailable(s)) return s;
    const auto now = Clock::now();
    if (outage_ends == Clock::time_point::max()) outage_ends = now + options.resume_for;
    if (now >= outage_ends) {
      return absl::UnavailableError("watch could not resume within " +
                                    std::to_string(options.resume_for.count()) +
                                    " ms: " + std::string(s.message()));
    }
    std::this_thread::sleep_for(std::min<Clock::duration>(backoff, outage_ends - now));
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
    ++attempt;
  }
}

absl::StatusOr<std::map<std::string, std::string>> Client::ShowStatus(const std::string& like,
                                                                      const std::string& node) {
  return impl_->Show(&v1::Admin::Stub::ShowStatus, like, node);
}

absl::StatusOr<std::map<std::string, std::string>> Client::ShowVariables(const std::string& like,
                                                                         const std::string& node) {
  return impl_->Show(&v1::Admin::Stub::ShowVariables, like, node);
}

absl::Status Client::SetVariable(const std::string& name, const std::string& value, bool persist,
                                 const std::string& node) {
  v1::SetVariableRequest req;
  req.set_name(name);
  req.set_value(value);
  req.set_persist(persist);
  v1::SetVariableReply reply;
  return impl_->Call(&v1::Admin::Stub::SetVariable, node, req, &reply);
}

absl::StatusOr<KeyspaceChecksum> Client::Checksum(const std::string& node) {
  v1::ChecksumReply reply;
  if (auto s = impl_->Call(&v1::Admin::Stub::Checksum, node, v1::ChecksumRequest(), &reply); !s.ok()) {
    return s;
  }
  return KeyspaceChecksum{FromProto(reply.gtid()), std::strtoull(reply.hash().c_str(), nullptr, 16),
                          reply.keys(), std::strtoull(reply.versions_hash().c_str(), nullptr, 16)};
}

absl::Status Client::ResetPersist(const std::string& name, const std::string& node) {
  v1::ResetPersistRequest req;
  req.set_name(name);
  v1::ResetPersistReply reply;
  return impl_->Call(&v1::Admin::Stub::ResetPersist, node, req, &reply);
}

absl::StatusOr<std::map<std::string, std::string>> Client::ShowReplicaStatus(const std::string& node) {
  v1::ReplicaStatusReply reply;
  if (auto s = impl_->Call(&v1::Admin::Stub::ReplicaStatus, node, v1::ReplicaStatusRequest(), &reply);
      !s.ok()) {
    return s;
  }
  std::map<std::string, std::string> out;
  for (const auto& f : reply.fields()) out[f.name()] = f.value();
  return out;
}

namespace {
v1::ReplicaThreadsRequest ThreadsRequest(v1::ReplicaThreadsRequest::Action action,
                                         ReplicaThreads threads) {
  v1::ReplicaThreadsRequest req;
  req.set_action(action);
  req.set_threads(threads == ReplicaThreads::kIo    ? v1::ReplicaThreadsRequest::IO
                  : threads == ReplicaThreads::kSql ? v1::ReplicaThreadsRequest::SQL
                                                    : v1::ReplicaThreadsRequest::BOTH);
  return req;
}
}  // namespace

absl::Status Client::StartReplica(ReplicaThreads threads, const std::string& node) {
  v1::ReplicaThreadsReply reply;
  return impl_->Call(&v1::Admin::Stub::ReplicaThreads, node,
                     ThreadsRequest(v1::ReplicaThreadsRequest::START, threads), &reply);
}

absl::Status Client::StopReplica(ReplicaThreads threads, const std::string& node) {
  v1::ReplicaThreadsReply reply;
  return impl_->Call(&v1::Admin::Stub::ReplicaThreads, node,
                     ThreadsRequest(v1::ReplicaThreadsRequest::STOP, threads), &reply);
}

absl::Status Client::ChangeMaster(const std::string& host, uint32_t port, const std::string& node,
                                  const ChangeMasterTls& tls) {
  v1::ChangeMasterRequest req;
  req.set_host(host);
  req.set_port(port);
  if (tls.ssl) req.set_ssl(*tls.ssl);
  if (tls.ca) req.set_ssl_ca(*tls.ca);
  if (tls.cert) req.set_ssl_cert(*tls.cert);
  if (tls.key) req.set_ssl_key(*tls.key);
  v1::ChangeMasterReply reply;
  return impl_->Call(&v1::Admin::Stub::ChangeMaster, node, req, &reply);
}

absl::StatusOr<Gtid> Client::ResetReplicaAll(const std::string& node) {
  v1::ResetReplicaReply reply;
  if (auto s = impl_->Call(&v1::Admin::Stub::ResetReplica, node, v1::ResetReplicaRequest(), &reply);
      !s.ok()) {
    return s;
  }
  return FromProto(reply.epoch_start());
}

absl::StatusOr<RevokeResult> Client::Revoke(uint64_t epoch, const std::string& node,
                                            uint32_t candidate) {
  v1::RevokeRequest req;
  req.set_epoch(epoch);
  req.set_candidate_server_id(candidate);
  v1::RevokeReply reply;
  const Clock::time_point deadline = impl_->DeadlineAfter();
  auto addr = impl_->Resolve(node, deadline);
  if (!addr.ok()) return addr.status();
  grpc::ClientContext ctx;
  impl_->Deadline(&ctx, deadline);
  if (auto s = FromGrpc(impl_->For(*addr).replication->Revoke(&ctx, req, &reply)); !s.ok()) return s;
  return RevokeResult{reply.promised_epoch(), FromProto(reply.durable_gtid()),
                      FromProto(reply.applied_gtid()), reply.node_epoch(), reply.revoked_primary(),
                      reply.promised_owner(), reply.may_have_acked_unsynced()};
}

absl::StatusOr<MasterStatus> Client::ShowMasterStatus(const std::string& node) {
  v1::MasterStatusReply reply;
  if (auto s = impl_->Call(&v1::Admin::Stub::MasterStatus, node, v1::MasterStatusRequest(), &reply);
      !s.ok()) {
    return s;
  }
  return MasterStatus{reply.file(), reply.position(), FromProto(reply.executed_gtid())};
}

absl::StatusOr<std::vector<BinaryLogInfo>> Client::ShowBinaryLogs(const std::string& node) {
  v1::BinaryLogsReply reply;
  if (auto s = impl_->Call(&v1::Admin::Stub::BinaryLogs, node, v1::BinaryLogsRequest(), &reply);
      !s.ok()) {
    return s;
  }
  std::vector<BinaryLogInfo> out;
  for (const auto& l : reply.logs()) out.push_back({l.name(), l.size_bytes(), l.first_seq()});
  return out;
}

absl::StatusOr<PurgeSummary> Client::PurgeBinaryLogsTo(const std::string& file, const std::string& node) {
  v1::PurgeBinaryLogsRequest req;
  req.set_to_file(file);
  v1::PurgeBinaryLogsReply reply;
  if (auto s = impl_->Call(&v1::Admin::Stub::PurgeBinaryLogs, node, req, &reply); !s.ok()) return s;
  return PurgeSummary{reply.purged(), reply.note()};
}

std::string Client::write_target() const { return impl_->write_target(); }

absl::StatusOr<std::string> Client::PrimaryAddress() {
  if (!impl_->discovery_) return impl_->write_target();
  return impl_->Resolve("", impl_->DeadlineAfter());
}

uint64_t Client::epoch_seen() const { return impl_->epoch_seen(); }

}  // namespace relaykv
