#include "server/http_server.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <optional>
#include <thread>
#include <unordered_set>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "spdlog/spdlog.h"
#include "storage/thread_name.h"

namespace relaykv {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr auto kAcceptRetry = std::chrono::milliseconds(100);

struct ParsedAddress {
  net::ip::address ip;
  uint16_t port = 0;
};

absl::StatusOr<ParsedAddress> ParseListenAddress(const std::string& listen) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError("--http-listen " + listen + ": " + std::string(why) +
                                      " (expected HOST:PORT, e.g. 127.0.0.1:9187)");
  };
  std::string host, port;
  if (!listen.empty() && listen.front() == '[') {
    const auto close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return bad("malformed [IPv6]:PORT");
    }
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
  } else {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos) return bad("no port");
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) > 65535) {
    return bad("port must be a number in [0, 65535]");
  }
  ParsedAddress out;
  out.port = static_cast<uint16_t>(std::stoul(port));
  if (host == "localhost") {
    out.ip = net::ip::address_v4::loopback();
    return out;
  }
  boost::system::error_code ec;
  out.ip = net::ip::make_address(host, ec);
  if (ec) return bad("host must be a literal IP address or localhost");
  return out;
}

}  // namespace

absl::Status CheckLoopbackListenAddress(const std::string& listen_address) {
  auto parsed = ParseListenAddress(listen_address);
  if (!parsed.ok()) return parsed.status();
  if (!parsed->ip.is_loopback()) {
    return absl::InvalidArgumentError(listen_address +
                                      " is not a loopback address (127.0.0.1, ::1, localhost)");
  }
  return absl::OkStatus();
}

class HttpServer::Impl {
 public:
  Impl(HttpServerOptions options, Routes routes)
      : options_(std::move(options)), routes_(std::move(routes)) {}

  absl::Status Listen(const ParsedAddress& at) {
    const tcp::endpoint endpoint(at.ip, at.port);
    boost::system::error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError("cannot listen for HTTP on " + options_.listen_address + ": " +
                                    ec.message());
    }
    bound_ = acceptor_.local_endpoint(ec);
    return absl::OkStatus();
  }

  void Run() {
    Accept();
    thread_ = std::thread([this] {
      NameThisThread("rkv-http");
      io_.run();
    });
  }

  void Stop() {
    if (!thread_.joinable()) return;
    // On the io thread: nothing else touches the acceptor or the sessions.
    net::post(io_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
      accept_retry_.cancel();
      for (Session* s : sessions_) s->Close();
      io_.stop();
    });
    thread_.join();
  }

  ~Impl() { Stop(); }

  int port() const { return bound_.port(); }
  std::string bound_address() const {
    const std::string ip = bound_.address().to_string();
    return (bound_.address().is_v6() ? "[" + ip + "]" : ip) + ":" + std::to_string(bound_.port());
  }

 private:
  // One connection: read a request (bounded, timed), answer, repeat while
  // keep-alive. Lives as long as an operation of its own is pending.
  class Session : public std::enable_shared_from_this<Session> {
   public:
    // The buffer is bounded too: the parser's header limit does not cover
    // a chunk-size line or a trailer that never ends (review s43b F1), and
    // without a bound the buffer grew until the read timeout.
    Session(Impl* server, tcp::socket socket)
        : server_(server),
          stream_(std::move(socket)),
          buffer_(server->options_.max_header_bytes + server->options_.max_body_bytes + 4096) {
      server_->sessions_.insert(this);
    }
    // On the io thread, or in the io_context's destruction after Stop().
    ~Session() { server_->sessions_.erase(this); }

    void Read() {
      waiting_since_ = std::chrono::steady_clock::now();
      waiting_ = true;
      parser_.emplace();
      parser_->header_limit(static_cast<uint32_t>(server_->options_.max_header_bytes));
      parser_->body_limit(server_->options_.max_body_bytes);
      stream_.expires_after(server_->options_.read_timeout);
      http::async_read(stream_, buffer_, *parser_,
                       [self = shared_from_this()](beast::error_code ec, size_t) {
                         self->OnRead(ec);
                       });
    }

    // What may make room for a new connection at the cap, and since when:
    // one waiting for (the rest of) a request, or answered and draining, or
    // whose reply has not gone out for kStuckWrite (a peer that pipelines
    // requests and never reads held every slot: review s44d M2).
    std::optional<std::chrono::steady_clock::time_point> evictable_since(
        std::chrono::steady_clock::time_point now) const {
      if (closed_) return std::nullopt;
      if (waiting_) return waiting_since_;
      if (writing_ && now - writing_since_ > kStuckWrite) return writing_since_;
      return std::nullopt;
    }
    bool closed() const { return closed_; }

    void Close() {
      closed_ = true;
      beast::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
      stream_.close();
    }

   private:
    void OnRead(beast::error_code ec) {
      waiting_ = false;
      // Evicted at the cap while its request was already queued: no reply
      // (review s44c H2).
      if (closed_) return Close();
      if (ec == http::error::header_limit) return Reply(Error(431, "request header too large"), false);
      if (ec == http::error::body_limit) return Reply(Error(413, "request body too large"), false);
      if (ec == http::error::buffer_overflow) {
        return Reply(Error(400, "bad request: its framing (chunk lines, trailers) is too large"),
                     false);
      }
      if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
          ec == net::error::operation_aborted || ec == net::error::connection_reset ||
          ec == net::error::eof) {
        return Close();
      }
      if (ec) return Reply(Error(400, "bad request: " + ec.message()), false);
      const auto& req = parser_->get();
      const bool keep_alive = req.keep_alive();
      if (req.method() != http::verb::get) {
        HttpResponse r = Error(405, "method not allowed; use GET");
        return Reply(std::move(r), keep_alive, /*allow_get=*/true);
      }
      std::string_view target(req.target().data(), req.target().size());
      target = target.substr(0, target.find('?'));
      auto route = server_->routes_.find(target);
      if (route == server_->routes_.end()) {
        return Reply(Error(404, "not found: " + std::string(target)), keep_alive);
      }
      Reply(route->second(), keep_alive);
    }

    static HttpResponse Error(int status, std::string message) {
      return HttpResponse{status, "text/plain; charset=utf-8", std::move(message) + "\n"};
    }

    void Reply(HttpResponse r, bool keep_alive, bool allow_get = false) {
      res_ = {};
      res_.version(11);
      res_.result(static_cast<unsigned>(r.status));
      res_.set(http::field::server, "relaykvd");
      res_.set(http::field::content_type, r.content_type);
      if (allow_get) res_.set(http::field::allow, "GET");
      res_.keep_alive(keep_alive);
      res_.body() = std::move(r.body);
      res_.prepare_payload();
      // The write is bounded by the same timeout: a client that stops
      // reading does not hold the connection.
      stream_.expires_after(server_->options_.read_timeout);
      writing_ = true;
      writing_since_ = std::chrono::steady_clock::now();
      http::async_write(stream_, res_,
                        [self = shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                          self->writing_ = false;
                          if (!ec && keep_alive) return self->Read();
                          if (ec) return self->Close();
                          self->FinishThenClose();
                        });
    }

    // Closing with unread input would reset the connection and could
    // discard the reply before the client reads it (a 431 for a header
    // still arriving): send FIN, then read and drop what the client still
    // sends — at most kMaxDrainBytes, within the read timeout — and close.
    void FinishThenClose() {
      // Answered and only draining: the first to make room at the cap (a
      // peer that never closes such connections held every slot: review
      // s44c H1).
      waiting_ = true;
      waiting_since_ = std::chrono::steady_clock::time_point::min();
      beast::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
      if (ec) return Close();
      stream_.expires_after(server_->options_.read_timeout);
      Drain();
    }

    void Drain() {
      stream_.async_read_some(net::buffer(drain_),
                              [self = shared_from_this()](beast::error_code ec, size_t n) {
                                self->drained_ += n;
                                if (ec || self->drained_ > kMaxDrainBytes) return self->Close();
                                self->Drain();
                              });
    }

    static constexpr size_t kMaxDrainBytes = 64 * 1024;
    Impl* const server_;  // outlives every session (Stop() ends them first)
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    http::response<http::string_body> res_;
    std::array<char, 4096> drain_;  // FinishThenClose's discarded input
    size_t drained_ = 0;
    static constexpr auto kStuckWrite = std::chrono::seconds(1);
    bool waiting_ = false;
    bool writing_ = false;
    bool closed_ = false;  // Close() ran; gone once its pending handler has
    std::chrono::steady_clock::time_point waiting_since_;
    std::chrono::steady_clock::time_point writing_since_;
  };

  // At the cap: the open connection evictable longest (Session::
  // evictable_since), or null when every one is answering.
  Session* LongestWaiting() const {
    const auto now = std::chrono::steady_clock::now();
    Session* victim = nullptr;
    std::chrono::steady_clock::time_point oldest;
    for (Session* s : sessions_) {
      const auto since = s->evictable_since(now);
      if (since && (victim == nullptr || *since < oldest)) {
        victim = s;
        oldest = *since;
      }
    }
    return victim;
  }

  size_t OpenSessions() const {
    return static_cast<size_t>(std::count_if(sessions_.begin(), sessions_.end(),
                                             [](const Session* s) { return !s->closed(); }));
  }

  void Accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
      if (ec) {
        // Out of file descriptors (EMFILE, ENFILE) or memory: the pending
        // connection stays queued, so accepting again at once spun this
        // thread at 100% (review s43b F9). Try again a little later.
        if (!warned_accept_) {
          spdlog::warn("http: cannot accept a connection ({}); retrying every {} ms",
                       ec.message(), kAcceptRetry.count());
          warned_accept_ = true;
        }
        accept_retry_.expires_after(kAcceptRetry);
        accept_retry_.async_wait([this](beast::error_code wait_ec) {
          if (!wait_ec) Accept();
        });
        return;
      }
      warned_accept_ = false;
      if (!ec) {
        // At the cap, the connection that has waited longest for a request
        // makes room: refusing the new one let a peer holding every slot
        // with requests that never end keep /primary and /healthz from
        // the load balancer (review s43b F10). Refused (closed at once,
        // costing nothing beyond the accept) only while every connection
        // is answering.
        const bool full = OpenSessions() >= options_.max_connections;
        Session* victim = full ? LongestWaiting() : nullptr;
        if (full && !warned_full_) {
          spdlog::warn("http: {} connections open (the cap); closing the one waiting longest for "
                       "a request to make room (refusing new ones while all are answering)",
                       options_.max_connections);
        }
        warned_full_ = full;
        if (victim != nullptr) victim->Close();
        if (full && victim == nullptr) {
          boost::system::error_code ignored;
          socket.close(ignored);
        } else {
          std::make_shared<Session>(this, std::move(socket))->Read();
        }
      }
      Accept();
    });
  }

  const HttpServerOptions options_;
  const Routes routes_;
  tcp::endpoint bound_;
  // Touched on the io thread only (and in ~Impl once it has been joined).
  std::unordered_set<Session*> sessions_;  // open connections
  bool warned_full_ = false;
  // Destroyed before sessions_ (declared after): the io_context's
  // destruction ends the sessions still held by its pending handlers.
  net::io_context io_{1};
  tcp::acceptor acceptor_{io_};
  net::steady_timer accept_retry_{io_};  // after a failed accept
  bool warned_accept_ = false;  // io thread only
  std::thread thread_;  // runs io_; started by Run(), joined by Stop()
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              Routes routes) {
  if (!options.allow_non_loopback) {
    if (auto s = CheckLoopbackListenAddress(options.listen_address); !s.ok()) {
      return absl::InvalidArgumentError(
          "--http-listen " + std::string(s.message()) +
          "; the monitoring endpoints have no authentication or TLS, so relaykvd serves them on "
          "loopback only (scrape through a local agent or proxy, or pass --allow-insecure)");
    }
  }
  auto parsed = ParseListenAddress(options.listen_address);
  if (!parsed.ok()) return parsed.status();
  auto impl = std::make_unique<Impl>(options, std::move(routes));
  if (auto s = impl->Listen(*parsed); !s.ok()) return s;
  impl->Run();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() { Stop(); }
int HttpServer::port() const { return impl_->port(); }
std::string HttpServer::bound_address() const { return impl_->bound_address(); }
void HttpServer::Stop() { impl_->Stop(); }

}  // namespace relaykv
