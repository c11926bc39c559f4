// The channel arguments every gRPC client of relaykv uses (the library, the
// CLI, the bench, a replica's IO thread), next to its credentials
// (channel_credentials.h): the largest message, and keepalive pings so that
// a server that is gone without closing the connection (a dead host, a
// stopped process, a cut path) fails the calls on it within
// keepalive_time + keepalive_timeout instead of when TCP gives up (minutes
// to hours). relaykvd accepts pings as often as once a second
// (server/grpc_server_limits.cc); pinging more often gets the connection
// closed with GOAWAY "too_many_pings".
#pragma once

#include <chrono>

#include <grpcpp/support/channel_arguments.h>

namespace relaykv {

struct ChannelLimits {
  // Both ways; relaykvd's max_allowed_packet default.
  int max_message_bytes = 48 * 1024 * 1024;
  std::chrono::milliseconds keepalive_time{10000};
  std::chrono::milliseconds keepalive_timeout{10000};
  // Ping with no call in progress too (a replica's stream is always in
  // progress; an idle application channel has nothing to lose).
  bool keepalive_without_calls = false;
};

inline grpc::ChannelArguments ClientChannelArguments(const ChannelLimits& limits = {}) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(limits.max_message_bytes);
  args.SetMaxSendMessageSize(limits.max_message_bytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(limits.keepalive_time.count()));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, static_cast<int>(limits.keepalive_timeout.count()));
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, limits.keepalive_without_calls ? 1 : 0);
  // Keep pinging on a stream that only receives (a replica between batches
  // still ACKs, but an idle client may not send for a while).
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  return args;
}

}  // namespace relaykv
