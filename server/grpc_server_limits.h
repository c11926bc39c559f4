// The gRPC server's own caps (README "Limits"), applied to a ServerBuilder
// from the variables at startup:
//   max_allowed_packet   largest message received or sent; gRPC refuses a
//                        larger one with RESOURCE_EXHAUSTED before any
//                        handler sees it.
//   keepalive_time_ms,   the server pings every connection that is silent
//   keepalive_timeout_ms for keepalive_time_ms (with calls or without) and
//                        closes it, ending its calls and streams, when no
//                        answer comes within keepalive_timeout_ms: a
//                        stopped or vanished replica or client is noticed
//                        within seconds, not when TCP gives up.
//   max_connections,     also size gRPC's thread quota for synchronous
//   max_watchers         handlers (SizeHandlerThreads, at startup and on SET).
// Peers may ping as often as once a second (the keepalive minimum).
#pragma once

#include <grpcpp/grpcpp.h>

#include "server/variables.h"

namespace relaykv {

// `threads` (borrowed: the server keeps using it) is gRPC's thread quota
// for synchronous handlers; SizeHandlerThreads sets it, then and whenever
// max_connections or max_watchers changes.
void ApplyServerLimits(const Variables& vars, grpc::ResourceQuota* threads,
                       grpc::ServerBuilder* builder);

// Every counted call and every watcher holds a thread, plus room for admin
// and health calls (not counted) and for a refused call while it is refused.
void SizeHandlerThreads(const Variables& vars, grpc::ResourceQuota* threads);

}  // namespace relaykv
