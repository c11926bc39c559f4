// A loopback TCP proxy for partition tests (no root, no iptables): it
// listens on 127.0.0.1 (a port from the OS) and forwards each connection to
// one target, byte for byte in both directions. Cut() makes the link fail:
// every open connection is reset and new ones are accepted and reset at
// once (to the client, the peer is gone); Heal() forwards new connections
// again. Used for "the primary is cut off from etcd only". Either side's
// end (EOF or error) resets both: no half-close is forwarded (gRPC and
// HTTP/2 never half-close a TCP connection).
//
// Threads: Boost.Asio on one thread the proxy owns; Stop() (or the
// destructor) closes the listener and every connection and joins it.
// Cut(), Heal() and Stop() may be called from any thread and return once
// the proxy's thread has applied them; after Stop() they do nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace relaykv::testing {

class TcpProxy {
 public:
  // Listens on 127.0.0.1:0 and forwards to `target` ("127.0.0.1:PORT").
  static absl::StatusOr<std::unique_ptr<TcpProxy>> Start(const std::string& target);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  // "127.0.0.1:PORT" to connect to instead of the target.
  std::string address() const;
  // Resets every forwarded connection and every new one until Heal().
  void Cut();
  void Heal();
  // Every connection open now stops forwarding, silently (what it reads is
  // dropped, nothing is reset: to the client the peer hangs); new ones are
  // forwarded as usual — a server that hung on the connections it had.
  void Blackhole();
  // Every connection open now stops reading what the target sends (the
  // client's bytes still go through): the target's writes fill the socket
  // buffers and then block — a client that stopped reading its replies.
  void StallReplies();
  bool cut() const { return cut_.load(); }
  // Connections accepted so far (reset ones included), and open now.
  uint64_t accepted() const { return accepted_.load(); }
  size_t open_connections();
  void Stop();

 private:
  struct Impl;  // Asio objects (keeps Boost out of this header)
  TcpProxy();
  void RunOnLoop(void (*fn)(Impl&));  // runs fn on the proxy's thread and waits

  std::unique_ptr<Impl> impl_;
  std::atomic<bool> cut_{false};
  std::atomic<uint64_t> accepted_{0};
  std::mutex stop_mu_;  // serializes Stop() callers
  std::thread thread_;
};

}  // namespace relaykv::testing
