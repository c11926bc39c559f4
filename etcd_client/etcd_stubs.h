// Internal to etcd_client/: one endpoint's channel and stubs, and the
// conversions between etcd's messages and etcd_client.h's types, shared by
// the KV/lease calls (etcd_client.cc) and watches (etcd_watch.cc).
#pragma once

#include <future>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "etcd_client/etcd_client.h"

namespace relaykv::etcd {

struct EtcdClient::Stubs {
  // A channel to `endpoint`: generation 0 shares its connection with
  // other channels to it (gRPC's default); any other generation gets a
  // connection of its own (EtcdClient::Reconnect).
  Stubs(std::string endpoint, uint64_t generation);
  std::string endpoint;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;
};

struct Watch::Stream {
  std::string endpoint;
  std::unique_ptr<etcdserverpb::Watch::Stub> stub;  // on the client's channel (shared)
  etcdserverpb::WatchRequest create;
  WatchCallback callback;
  std::promise<absl::Status> created;  // set once: the watch is confirmed, or why not
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>>
      rw;
};

// Waits until `channel` is connected, for at most an equal share of the
// time left to `deadline` among `endpoints_left` endpoints; true if it is.
// Needed because a synchronous call polls gRPC's I/O only while it runs, and
// one that fails fast (no connection yet) hardly at all: without a thread
// waiting here, the reconnection to a restarted etcd (or across a healed
// partition) was never driven and timed out again and again (tests
// CallsFailWithStatusWhileEtcdIsDownAndRecoverAfterRestart,
// EtcdClientThroughProxyFailsWhileCutAndWorksAfterHeal). The price: with
// no endpoint reachable, a call takes its whole deadline to fail.
bool WaitConnected(grpc::Channel& channel, std::chrono::system_clock::time_point deadline,
                   size_t endpoints_left);

inline KeyValue FromProto(const mvccpb::KeyValue& kv) {
  return {kv.key(), kv.value(), kv.create_revision(), kv.mod_revision(), kv.version(), kv.lease()};
}

// "etcd <what> at <endpoint>: <gRPC message>", with gRPC's code.
inline absl::Status FromGrpc(const grpc::Status& s, const char* what, const std::string& endpoint) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      std::string("etcd ") + what + " at " + endpoint + ": " + s.error_message());
}

}  // namespace relaykv::etcd
