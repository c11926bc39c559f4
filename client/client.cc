#include "relaykv/client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>

#include "client/channel_args.h"
#include "client/channel_credentials.h"
#include "client/write_mux.h"
#include "proto/admin.grpc.pb.h"
#include "proto/kv.grpc.pb.h"
#include "proto/replication.grpc.pb.h"
#include "proto/watch.grpc.pb.h"

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

bool IsHostPort(const std::string& a) {
  auto colon = a.rfind(':');
  return colon != std::string::npos && colon > 0 && colon + 1 < a.size() &&
         a.find_first_not_of("0123456789", colon + 1) == std::string::npos;
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

class Client::Impl {
 public:
  Impl(std::vector<std::string> addresses, ClientOptions options,
       std::shared_ptr<grpc::ChannelCredentials> credentials)
      : addresses_(std::move(addresses)),
        options_(std::move(options)),
        credentials_(std::move(credentials)),
        write_target_(addresses_[0]) {}

  struct Stubs {
    std::unique_ptr<v1::Kv::Stub> kv;
    std::unique_ptr<v1::Admin::Stub> admin;
    std::unique_ptr<v1::Replication::Stub> replication;  // Revoke
    std::unique_ptr<v1::ChangeStream::Stub> watch;
  };

  // Stubs for `node` ("" = the first address), created once and shared.
  Stubs& For(const std::string& node) {
    const std::string& addr = node.empty() ? addresses_[0] : node;
    std::lock_guard l(mu_);
    auto it = stubs_.find(addr);
    if (it == stubs_.end()) {
      grpc::ChannelArguments args = ClientChannelArguments();
      auto channel = grpc::CreateCustomChannel(addr, credentials_, args);
      it = stubs_.emplace(addr, Stubs{v1::Kv::NewStub(channel), v1::Admin::NewStub(channel),
                                       v1::Replication::NewStub(channel),
                                       v1::ChangeStream::NewStub(channel)}).first;
    }
    return it->second;  // never erased: the reference stays valid
  }

  // Every call's context: its deadline and the bearer token, if any.
  void Deadline(grpc::ClientContext* ctx, std::chrono::milliseconds t = std::chrono::milliseconds(0)) {
    ctx->set_deadline(std::chrono::system_clock::now() + (t.count() > 0 ? t : options_.timeout));
    if (!options_.bearer_token.empty()) {
      ctx->AddMetadata("authorization", "Bearer " + options_.bearer_token);
    }
  }

  std::string write_target() {
    std::lock_guard l(mu_);
    return write_target_;
  }

  // Sends a write; follows a replica's hint to its primary once.
  absl::StatusOr<TxnResult> Write(v1::WriteRequest req) {
    std::string target = write_target();
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (options_.epoch_fencing) req.set_min_epoch(epoch_seen());
      absl::StatusOr<TxnResult> r = WriteOnce(target, req);
      if (r.ok()) {
        SawEpoch(r->gtid.epoch);
        return r;
      }
      const absl::Status& s = r.status();
      const std::string hint = PrimaryHint(s);
      if (!options_.follow_primary || !absl::IsFailedPrecondition(s) || hint.empty() || attempt > 0) {
        return s;
      }
      target = hint;
      std::lock_guard l(mu_);
      write_target_ = hint;
    }
    return absl::InternalError("unreachable");
  }

  // Epoch fencing (ClientOptions::epoch_fencing): the highest epoch any
  // answer carried; epochs only rise.
  uint64_t epoch_seen() const { return epoch_seen_.load(std::memory_order_relaxed); }
  void SawEpoch(uint64_t epoch) {
    uint64_t cur = epoch_seen();
    while (epoch > cur && !epoch_seen_.compare_exchange_weak(cur, epoch, std::memory_order_relaxed)) {
    }
  }

  // One write to `target`: a unary Write, or on its WriteStream.
  absl::StatusOr<TxnResult> WriteOnce(const std::string& target, const v1::WriteRequest& req) {
    if (options_.pipelined) {
      v1::StreamWrite w;
      *w.mutable_write() = req;
      return Mux(target).Write(std::move(w), std::chrono::steady_clock::now() + options_.timeout);
    }
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::WriteReply reply;
    absl::Status s = FromGrpc(For(target).kv->Write(&ctx, req, &reply));
    if (!s.ok()) return s;
    return TxnResult{FromProto(reply.gtid()), reply.succeeded()};
  }

  // The write stream to `addr`, created once and shared.
  WriteMux& Mux(const std::string& addr) {
    v1::Kv::Stub* stub = For(addr).kv.get();
    std::lock_guard l(mu_);
    auto it = muxes_.find(addr);
    if (it == muxes_.end()) it = muxes_.emplace(addr, std::make_unique<WriteMux>(stub, addr)).first;
    return *it->second;  // never erased: the reference stays valid
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
    grpc::ClientContext ctx;
    Deadline(&ctx);
    return FromGrpc((For(node).admin.get()->*method)(&ctx, req, reply));
  }

  const std::vector<std::string> addresses_;
  const ClientOptions options_;
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;  // from options_.tls
  std::mutex mu_;
  std::map<std::string, Stubs> stubs_;  // guarded by mu_
  std::string write_target_;            // guarded by mu_
  std::atomic<uint64_t> epoch_seen_{0};
  // After stubs_: each borrows its node's stub, so it must go first.
  std::map<std::string, std::unique_ptr<WriteMux>> muxes_;  // guarded by mu_
};

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(std::vector<std::string> addresses,
                                                        ClientOptions options) {
  if (addresses.empty()) return absl::InvalidArgumentError("no relaykvd address given");
  for (const auto& a : addresses) {
    if (!IsHostPort(a)) return absl::InvalidArgumentError("'" + a + "' is not HOST:PORT");
  }
  auto credentials = MakeChannelCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  return std::unique_ptr<Client>(new Client(
      std::make_unique<Impl>(std::move(addresses), std::move(options), *std::move(credentials))));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

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
}  // namespace

absl::StatusOr<Gtid> Client::Write(const std::vector<Mutation>& mutations) {
  v1::WriteRequest req;
  AddMutations(mutations, req.mutable_mutations());
  auto r = impl_->Write(std::move(req));
  if (!r.ok()) return r.status();
  return r->gtid;
}

absl::StatusOr<TxnResult> Client::Txn(const relaykv::Txn& txn) {
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
  return impl_->Write(std::move(req));  // without compares: a plain write, succeeded
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
  grpc::ClientContext ctx;
  impl_->Deadline(&ctx, options.timeout);
  v1::GetRequest req;
  req.set_key(key);
  req.mutable_wait_for_gtid()->set_epoch(options.wait_for.epoch);
  req.mutable_wait_for_gtid()->set_seq(options.wait_for.seq);
  req.set_consistency(ReadConsistencyToProto(options.consistency));
  v1::GetReply reply;
  if (auto s = FromGrpc(impl_->For(options.node).kv->Get(&ctx, req, &reply)); !s.ok()) return s;
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
  grpc::ClientContext ctx;
  impl_->Deadline(&ctx, options.timeout);
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
  if (auto s = FromGrpc(impl_->For(options.node).kv->Scan(&ctx, req, &reply)); !s.ok()) return s;
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

WatchBatch FromProto(const v1::WatchResponse& msg) {
  WatchBatch batch;
  batch.events.reserve(msg.events_size());
  for (const v1::WatchEvent& pe : msg.events()) {
    WatchEvent e;
    e.gtid = FromProto(pe.gtid());
    e.timestamp_us = pe.timestamp_us();
    for (const v1::Mutation& m : pe.changes()) {
      e.changes.push_back(m.op() == v1::Mutation::DELETE ? Mutation::Delete(m.key())
                                                         : Mutation::Put(m.key(), m.value()));
    }
    batch.events.push_back(std::move(e));
  }
  batch.progress = FromProto(msg.progress());
  batch.head = FromProto(msg.head());
  return batch;
}

}  // namespace

absl::Status Client::Watch(const WatchRange& range, const ClientWatchOptions& options,
                           const WatchDeliver& deliver) {
  using Clock = std::chrono::steady_clock;
  v1::WatchRequest req;
  req.set_start(range.start);
  req.set_end(range.end);
  req.set_prefix(range.prefix);
  req.set_committed_only(options.committed_only);
  req.set_progress_interval_ms(static_cast<uint32_t>(options.progress_interval.count()));
  std::optional<Gtid> after = options.after;
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
    const std::string& node =
        !options.node.empty() ? options.node : impl_->addresses_[attempt % impl_->addresses_.size()];
    grpc::ClientContext ctx;
    if (!impl_->options_.bearer_token.empty()) {
      ctx.AddMetadata("authorization", "Bearer " + impl_->options_.bearer_token);
    }
    auto reader = impl_->For(node).watch->Watch(&ctx, req);
    v1::WatchResponse msg;
    bool stopped = false;
    while (reader->Read(&msg)) {
      outage_ends = Clock::time_point::max();  // connected: a later break is a new outage
      backoff = std::chrono::milliseconds(50);
      WatchBatch batch = FromProto(msg);
      after = batch.progress;
      if (!deliver(batch)) {
        stopped = true;
        ctx.TryCancel();
        break;
      }
    }
    absl::Status s = FromGrpc(reader->Finish());
    if (stopped) return absl::OkStatus();
    if (s.ok()) return absl::UnavailableError("watch stream of " + node + " ended");  // not expected
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
                          reply.keys()};
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
  grpc::ClientContext ctx;
  impl_->Deadline(&ctx);
  if (auto s = FromGrpc(impl_->For(node).replication->Revoke(&ctx, req, &reply)); !s.ok()) return s;
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

uint64_t Client::epoch_seen() const { return impl_->epoch_seen(); }

}  // namespace relaykv
