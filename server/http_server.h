// HttpServer: a small, bounded HTTP/1.1 server for monitoring endpoints
// (relaykvd's /metrics, /healthz, /primary), on Boost.Beast over one
// Boost.Asio io_context.
//
// Routes map an exact path (a query string is ignored) to a handler; GET
// only. An unknown path gets 404, another method 405 (with Allow: GET),
// malformed input 400. Handlers run on the server's thread, one at a time:
// keep them short and non-blocking beyond brief locks (a scrape holds no
// request up for long).
//
// Bounds (HttpServerOptions): a request's header and body are capped (431 /
// 413 and the connection closed), a connection that does not send a whole
// request within the read timeout is closed (also an idle keep-alive one),
// and at most max_connections are open at once: at the cap a new
// connection closes the one that has waited longest for a request (so a
// peer holding every slot with requests that trickle in cannot keep a
// health check out), and is itself closed at once only while every
// connection is answering; a flood costs a socket each, never memory or
// threads.
//
// Address: HOST:PORT with a literal IP (or "localhost"), port 0 = the OS
// picks (port()). Only loopback addresses are accepted: the endpoints have
// no authentication and no TLS (the gRPC listener's rules may relax this
// for both once TLS/roles exist; see README "Monitoring").
//
// Threads and ownership: Start() owns one io_context and one thread running
// it; Stop() (idempotent; the destructor calls it) closes the listener and
// every connection, stops the io_context and joins the thread. No detached
// threads; after Stop() returns no handler runs. Not copyable. (Not on the
// node's TimerLoop: README "Threads" says why.)
//
// Errors: Start() returns INVALID_ARGUMENT for a malformed or non-loopback
// address, UNAVAILABLE when it cannot bind or listen (naming the address).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace relaykv {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

struct HttpServerOptions {
  std::string listen_address;  // HOST:PORT, loopback only unless allow_non_loopback
  // relaykvd --allow-insecure: the operator accepts unauthenticated
  // plaintext endpoints on a non-loopback address.
  bool allow_non_loopback = false;
  size_t max_connections = 64;
  size_t max_header_bytes = 8 * 1024;
  size_t max_body_bytes = 1024;  // a GET has none; bounds what a bad client may send
  std::chrono::milliseconds read_timeout{10000};
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse()>;
  using Routes = std::map<std::string, Handler, std::less<>>;  // exact path -> handler

  [[nodiscard]] static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const HttpServerOptions& options, Routes routes);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port (the OS's choice for port 0).
  int port() const;
  // "HOST:PORT" actually bound.
  std::string bound_address() const;
  void Stop();

  class Impl;  // http_server.cc

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Parses "HOST:PORT" (HOST a literal IPv4, [IPv6] or "localhost") and
// checks that HOST is a loopback address ("... not a loopback address ..."
// otherwise). Also the rule for relaykvd's plaintext gRPC listener
// (Node::Impl::Open), relaxed by --allow-insecure for both.
absl::Status CheckLoopbackListenAddress(const std::string& listen_address);

}  // namespace relaykv
