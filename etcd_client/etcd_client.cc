#include "etcd_client/etcd_client.h"

#include <atomic>
#include <cstdint>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "etcd_client/etcd_stubs.h"

namespace relaykv::etcd {
namespace {

namespace pb = etcdserverpb;

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& endpoint, uint64_t generation) {
  grpc::ChannelArguments args;
  // A restarted etcd is found again within about a second (gRPC's default
  // reconnect backoff grows to two minutes). gRPC takes the "min" backoff
  // as the least time a connection attempt (TCP and the HTTP/2 SETTINGS
  // exchange) may take; 100 ms is too short on a loaded machine.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 2000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Pings on open streams (a watch) detect a dead peer; etcd refuses pings
  // more often than every 5 s (--grpc-keepalive-min-time) and pings without
  // a call, so neither is done.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  // Channels with equal arguments share one connection: a replacement
  // (Reconnect) differs in this one, or it would get the dead one back.
  if (generation != 0) args.SetString("relaykv.etcd_connection", std::to_string(generation));
  return grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args);
}

// Fills key/range_end of a RangeRequest or DeleteRangeRequest.
template <typename Request>
void SetKeys(Request* r, const std::string& key, bool prefix) {
  if (prefix && key.empty()) {
    // Every key: etcd's convention is key = range_end = "\0".
    r->set_key(std::string(1, '\0'));
    r->set_range_end(std::string(1, '\0'));
    return;
  }
  r->set_key(key);
  if (prefix) r->set_range_end(PrefixRangeEnd(key));
}

RangeResult RangeFromProto(const pb::RangeResponse& r) {
  RangeResult out;
  out.revision = r.header().revision();
  out.kvs.reserve(r.kvs_size());
  for (const auto& kv : r.kvs()) out.kvs.push_back(FromProto(kv));
  return out;
}

void ToProto(const TxnOp& op, pb::RequestOp* out) {
  switch (op.kind) {
    case TxnOp::Kind::kPut: {
      auto* put = out->mutable_request_put();
      put->set_key(op.key);
      put->set_value(op.value);
      put->set_lease(op.lease);
      break;
    }
    case TxnOp::Kind::kDelete:
      SetKeys(out->mutable_request_delete_range(), op.key, op.prefix);
      break;
    case TxnOp::Kind::kRange:
      SetKeys(out->mutable_request_range(), op.key, op.prefix);
      break;
  }
}

void ToProto(const Compare& c, pb::Compare* out) {
  out->set_key(c.key);
  switch (c.result) {
    case Compare::Result::kEqual: out->set_result(pb::Compare::EQUAL); break;
    case Compare::Result::kNotEqual: out->set_result(pb::Compare::NOT_EQUAL); break;
    case Compare::Result::kGreater: out->set_result(pb::Compare::GREATER); break;
    case Compare::Result::kLess: out->set_result(pb::Compare::LESS); break;
  }
  switch (c.target) {
    case Compare::Target::kCreateRevision:
      out->set_target(pb::Compare::CREATE);
      out->set_create_revision(c.number);
      break;
    case Compare::Target::kModRevision:
      out->set_target(pb::Compare::MOD);
      out->set_mod_revision(c.number);
      break;
    case Compare::Target::kVersion:
      out->set_target(pb::Compare::VERSION);
      out->set_version(c.number);
      break;
    case Compare::Target::kValue:
      out->set_target(pb::Compare::VALUE);
      out->set_value(c.value);
      break;
  }
}

}  // namespace

bool WaitConnected(grpc::Channel& channel, std::chrono::system_clock::time_point deadline,
                   size_t endpoints_left) {
  if (channel.GetState(/*try_to_connect=*/true) == GRPC_CHANNEL_READY) return true;
  const auto now = std::chrono::system_clock::now();
  if (now >= deadline) return false;
  return channel.WaitForConnected(now + (deadline - now) / static_cast<int>(endpoints_left));
}

std::string PrefixRangeEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    const auto last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();  // 0xff cannot be incremented: carry into the byte before
  }
  return std::string(1, '\0');  // all 0xff (or empty): to the end of the keyspace
}

std::vector<std::string> EtcdClient::ParseEndpoints(const std::string& list) {
  std::vector<std::string> out;
  for (absl::string_view e : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    e = absl::StripAsciiWhitespace(e);
    absl::ConsumePrefix(&e, "http://");
    out.emplace_back(e);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(Options options) {
  if (options.endpoints.empty()) return absl::InvalidArgumentError("etcd client: no endpoint given");
  for (const auto& e : options.endpoints) {
    if (e.empty()) return absl::InvalidArgumentError("etcd client: empty endpoint");
  }
  if (options.call_timeout <= std::chrono::milliseconds(0)) {
    return absl::InvalidArgumentError("etcd client: call_timeout must be positive");
  }
  return std::unique_ptr<EtcdClient>(new EtcdClient(std::move(options)));
}

EtcdClient::Stubs::Stubs(std::string e, uint64_t generation)
    : endpoint(std::move(e)),
      channel(MakeChannel(endpoint, generation)),
      kv(pb::KV::NewStub(channel)),
      lease(pb::Lease::NewStub(channel)) {}

EtcdClient::EtcdClient(Options options) : options_(std::move(options)) {
  for (const auto& endpoint : options_.endpoints) {
    stubs_.push_back(std::make_shared<Stubs>(endpoint, 0));
  }
}

std::shared_ptr<const EtcdClient::Stubs> EtcdClient::StubsAt(size_t index) const {
  std::lock_guard l(stubs_mu_);
  return stubs_[index];
}

void EtcdClient::Reconnect(size_t index, const Stubs* broken) {
  std::lock_guard l(stubs_mu_);
  if (stubs_[index].get() != broken) return;
  // Unique in the process: another client's replacement is not shared either.
  static std::atomic<uint64_t> generations{0};
  stubs_[index] = std::make_shared<Stubs>(broken->endpoint, generations.fetch_add(1) + 1);
}

EtcdClient::~EtcdClient() = default;

absl::Status EtcdClient::Call(
    const char* what, bool repeatable,
    const std::function<absl::Status(const Stubs&, grpc::ClientContext&)>& attempt) {
  const auto deadline = std::chrono::system_clock::now() + options_.call_timeout;
  const size_t n = stubs_.size();
  const size_t first = preferred_.load();
  absl::Status last;
  for (size_t i = 0; i < n; ++i) {
    const size_t index = (first + i) % n;
    const std::shared_ptr<const Stubs> stubs = StubsAt(index);
    const bool was_connected = WaitConnected(*stubs->channel, deadline, n - i);
    grpc::ClientContext context;
    context.set_deadline(deadline);
    last = attempt(*stubs, context);
    if (last.code() == absl::StatusCode::kDeadlineExceeded) {
      // Sent but unanswered: not repeated (its outcome is unknown), but the
      // next call starts elsewhere in case this endpoint hangs, and never
      // on this connection again.
      if (was_connected) Reconnect(index, stubs.get());
      preferred_.store((index + 1) % n);
      return last;
    }
    if (last.code() != absl::StatusCode::kUnavailable) {
      preferred_.store(index);  // it answered (maybe with an error of the request's own)
      return last;
    }
    if (!repeatable && was_connected) {
      return absl::UnavailableError(std::string(last.message()) +
                                    " (the connection broke during the call: outcome unknown)");
    }
    if (std::chrono::system_clock::now() >= deadline) break;
  }
  (void)what;
  return last;
}

absl::StatusOr<RangeResult> EtcdClient::Range(const std::string& key, bool prefix) {
  pb::RangeRequest req;
  SetKeys(&req, key, prefix);
  RangeResult out;
  absl::Status s = Call("Range", true, [&](const Stubs& stub, grpc::ClientContext& ctx) {
    pb::RangeResponse resp;
    absl::Status st = FromGrpc(stub.kv->Range(&ctx, req, &resp), "Range", stub.endpoint);
    if (st.ok()) out = RangeFromProto(resp);
    return st;
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<RangeResult> EtcdClient::Get(const std::string& key) { return Range(key, false); }

absl::StatusOr<RangeResult> EtcdClient::GetPrefix(const std::string& prefix) {
  return Range(prefix, true);
}

absl::StatusOr<int64_t> EtcdClient::Put(const std::string& key, const std::string& value,
                                        int64_t lease) {
  pb::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  req.set_lease(lease);
  int64_t revision = 0;
  absl::Status s = Call("Put", true, [&](const Stubs& stub, grpc::ClientContext& ctx) {
    pb::PutResponse resp;
    absl::Status st = FromGrpc(stub.kv->Put(&ctx, req, &resp), "Put", stub.endpoint);
    if (st.ok()) revision = resp.header().revision();
    return st;
  });
  if (!s.ok()) return s;
  return revision;
}

absl::StatusOr<int64_t> EtcdClient::Delete(const std::string& key, bool prefix) {
  pb::DeleteRangeRequest req;
  SetKeys(&req, key, prefix);
  int64_t deleted = 0;
  absl::Status s = Call("DeleteRange", true, [&](const Stubs& stub, grpc::ClientContext& ctx) {
    pb::DeleteRangeResponse resp;
    absl::Status st =
        FromGrpc(stub.kv->DeleteRange(&ctx, req, &resp), "DeleteRange", stub.endpoint);
    if (st.ok()) deleted = resp.deleted();
    return st;
  });
  if (!s.ok()) return s;
  return deleted;
}

absl::StatusOr<TxnResult> EtcdClient::Txn(const std::vector<Compare>& compares,
                                          const std::vector<TxnOp>& then_ops,
                                          const std::vector<TxnOp>& else_ops) {
  pb::TxnRequest req;
  for (const auto& c : compares) ToProto(c, req.add_compare());
  for (const auto& op : then_ops) ToProto(op, req.add_success());
  for (const auto& op : else_ops) ToProto(op, req.add_failure());
  // A Txn that only reads may be repeated anywhere.
  bool read_only = true;
  for (const auto* ops : {&then_ops, &else_ops}) {
    for (const auto& op : *ops) read_only = read_only && op.kind == TxnOp::Kind::kRange;
  }
  TxnResult out;
  absl::Status s = Call("Txn", read_only, [&](const Stubs& stub, grpc::ClientContext& ctx) {
    pb::TxnResponse resp;
    absl::Status st = FromGrpc(stub.kv->Txn(&ctx, req, &resp), "Txn", stub.endpoint);
    if (!st.ok()) return st;
    out = TxnResult{};
    out.succeeded = resp.succeeded();
    out.revision = resp.header().revision();
    for (const auto& r : resp.responses()) {
      TxnResult::OpResult op;
      if (r.has_response_range()) op.range = RangeFromProto(r.response_range());
      if (r.has_response_delete_range()) op.deleted = r.response_delete_range().deleted();
      out.results.push_back(std::move(op));
    }
    return st;
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<Lease> EtcdClient::LeaseGrant(int64_t ttl_s) {
  if (ttl_s <= 0) return absl::InvalidArgumentError("etcd LeaseGrant: TTL must be positive");
  pb::LeaseGrantRequest req;
  req.set_ttl(ttl_s);
  Lease out;
  absl::Status s = Call("LeaseGrant", false, [&](const Stubs& stub, grpc::ClientContext& ctx) {
    pb::LeaseGrantResponse resp;
    absl::Status st =
        FromGrpc(stub.lease->LeaseGrant(&ctx, req, &resp), "LeaseGrant", stub.endpoint);
    if (st.ok() && !resp.error().empty()) {
      st = absl::FailedPreconditionError("etcd LeaseGrant at " + stub.endpoint + ": " +
                                         resp.error());
    }
    if (st.ok()) out = Lease{resp.id(), resp.ttl()};
    return st;
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<int64_t> EtcdClient::LeaseKeepAliveOnce(int64_t id) {
  int64_t ttl_s = 0;
  absl::Status s = Call("LeaseKeepAlive", true, [&](const Stubs& stub, grpc::ClientContext& ctx) {
    const std::string& endpoint = stub.endpoint;
    auto stream = stub.lease->LeaseKeepAlive(&ctx);
    pb::LeaseKeepAliveRequest req;
    req.set_id(id);
    pb::LeaseKeepAliveResponse resp;
    // etcd answers each request in order and ends the stream at our
    // WritesDone, after the answer.
    const bool got = stream->Write(req) && stream->WritesDone() && stream->Read(&resp);
    pb::LeaseKeepAliveResponse rest;
    while (got && stream->Read(&rest)) {
    }  // to the end of the stream: Finish() needs every message read
    const grpc::Status finished = stream->Finish();
    if (!got) {
      absl::Status st = FromGrpc(finished, "LeaseKeepAlive", endpoint);
      if (st.ok()) st = absl::UnavailableError("etcd LeaseKeepAlive at " + endpoint + ": no answer");
      return st;
    }
    if (resp.ttl() <= 0) {
      return absl::NotFoundError("etcd LeaseKeepAlive at " + endpoint + ": lease " +
                                 std::to_string(id) + " expired or revoked");
    }
    ttl_s = resp.ttl();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return ttl_s;
}

absl::Status EtcdClient::LeaseRevoke(int64_t id) {
  pb::LeaseRevokeRequest req;
  req.set_id(id);
  return Call("LeaseRevoke", true, [&](const Stubs& stub, grpc::ClientContext& ctx) {
    pb::LeaseRevokeResponse resp;
    return FromGrpc(stub.lease->LeaseRevoke(&ctx, req, &resp), "LeaseRevoke",
                    stub.endpoint);
  });
}

}  // namespace relaykv::etcd
