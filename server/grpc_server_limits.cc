#include "server/grpc_server_limits.h"

#include <grpcpp/resource_quota.h>

#include <algorithm>
#include <climits>
#include <string>

#include "server/node_impl.h"

namespace relaykv {
namespace {

// Threads gRPC may run synchronous handlers on beyond max_connections and
// max_watchers: admin and health calls are not counted in either, and a
// refused call needs a thread for a moment to be refused.
constexpr int kHandlerThreadsHeadroom = 64;
// Concurrent HTTP/2 streams one client connection may open. More wait on
// the client's side (gRPC queues them); the server never holds state for
// them.
constexpr int kMaxStreamsPerConnection = 1024;
// The keepalive_time_ms minimum: a peer pinging more often is told
// "too_many_pings" and disconnected.
constexpr int kMinPeerPingIntervalMs = 1000;

int ClampInt(uint64_t v) { return static_cast<int>(std::min<uint64_t>(v, INT_MAX)); }

}  // namespace

void SizeHandlerThreads(const Variables& vars, grpc::ResourceQuota* threads) {
  // Watchers hold a thread each and no max_connections slot: without them
  // in the quota, max_watchers open watches left admin calls (SET GLOBAL
  // max_connections) no thread (review s43b F3). Resized at runtime: with
  // a quota fixed at startup, raising either cap let counted calls and
  // watchers take every thread again (review s43c).
  threads->SetMaxThreads(ClampInt(vars.GetUint("max_connections") + vars.GetUint("max_watchers") +
                                  kHandlerThreadsHeadroom));
}

void ApplyServerLimits(const Variables& vars, grpc::ResourceQuota* threads,
                       grpc::ServerBuilder* builder) {
  const int max_message = ClampInt(vars.GetUint("max_allowed_packet"));
  builder->SetMaxReceiveMessageSize(max_message);
  builder->SetMaxSendMessageSize(max_message);

  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, ClampInt(vars.GetUint("keepalive_time_ms")));
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                              ClampInt(vars.GetUint("keepalive_timeout_ms")));
  // Idle connections too: a dead client's connection is reclaimed.
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // What we accept from peers (client/channel_args.h pings every 10 s by
  // default; a replica as its own keepalive_time_ms says).
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                              kMinPeerPingIntervalMs);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, kMaxStreamsPerConnection);

  SizeHandlerThreads(vars, threads);
  builder->SetResourceQuota(*threads);
}

// Here, next to the other caps' startup use: the hot-path copies of the
// runtime caps (server/node_impl.h).
void Node::Impl::Caps::Load(const Variables& vars, const std::string& name) {
  auto load = [&](std::string_view var, std::atomic<uint64_t>& cap) {
    if (name.empty() || name == var) cap.store(vars.GetUint(var), std::memory_order_relaxed);
  };
  load("max_connections", max_connections);
  load("max_inflight_writes", max_inflight_writes);
  load("max_inflight_write_bytes", max_inflight_write_bytes);
  load("max_inflight_reply_bytes", max_inflight_reply_bytes);
  load("write_queue_timeout_ms", write_queue_timeout_ms);
  load("max_write_stream_inflight", max_write_stream_inflight);
  load("max_replicas", max_replicas);
  load("net_read_timeout", net_read_timeout_s);
  load("net_write_timeout", net_write_timeout_s);
}

}  // namespace relaykv
