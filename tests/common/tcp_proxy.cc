#include "tests/common/tcp_proxy.h"

#include <array>
#include <future>

#include <boost/asio.hpp>

namespace relaykv::testing {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// Closes `s` with a RST (linger 0), so the peer sees the connection reset
// rather than an orderly end: a broken link, not a server that hung up.
void Reset(tcp::socket& s) {
  boost::system::error_code ec;
  if (!s.is_open()) return;
  s.set_option(asio::socket_base::linger(true, 0), ec);
  s.close(ec);
}

}  // namespace

// Everything below runs on the proxy's thread only (sessions, acceptor),
// so nothing needs a lock.
struct TcpProxy::Impl {
  // One forwarded connection: client <-> target, a buffer per direction.
  struct Session : std::enable_shared_from_this<Session> {
    Session(Impl* impl, uint64_t id, tcp::socket client)
        : impl(impl), id(id), client(std::move(client)), server(impl->io) {}
    void Start() {
      auto self = shared_from_this();
      server.async_connect(impl->target, [self](const boost::system::error_code& ec) {
        if (ec) return self->Close();
        self->Pump(self->client, self->server, self->up);
        self->Pump(self->server, self->client, self->down);
      });
    }
    void Pump(tcp::socket& from, tcp::socket& to, std::array<char, 16384>& buf) {
      if (replies_stalled && &from == &server) return;  // left unread
      auto self = shared_from_this();
      from.async_read_some(asio::buffer(buf), [self, &from, &to, &buf](
                                                  const boost::system::error_code& ec, size_t n) {
        if (ec) return self->Close();
        if (self->blackholed) return self->Pump(from, to, buf);
        asio::async_write(to, asio::buffer(buf.data(), n),
                          [self, &from, &to, &buf](const boost::system::error_code& ec, size_t) {
                            if (ec) return self->Close();
                            self->Pump(from, to, buf);
                          });
      });
    }
    // Either side ended or the link was cut: reset both (pending operations
    // finish with operation_aborted and drop their reference).
    void Close() {
      Reset(client);
      Reset(server);
      impl->sessions.erase(id);
    }

    Impl* impl;
    const uint64_t id;
    tcp::socket client;
    tcp::socket server;
    bool blackholed = false;
    bool replies_stalled = false;
    std::array<char, 16384> up{};
    std::array<char, 16384> down{};
  };

  explicit Impl(TcpProxy* owner) : owner(owner), work(asio::make_work_guard(io)), acceptor(io) {}

  void Accept() {
    acceptor.async_accept([this](const boost::system::error_code& ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (!ec) {
        owner->accepted_.fetch_add(1);
        if (owner->cut_.load()) {
          Reset(s);
        } else {
          auto session = std::make_shared<Session>(this, next_id++, std::move(s));
          sessions[session->id] = session;
          session->Start();
        }
      }
      Accept();
    });
  }
  void CloseAll() {
    // Close() erases from the map: iterate over a copy.
    auto copy = sessions;
    for (auto& [id, s] : copy) s->Close();
  }

  TcpProxy* owner;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  tcp::acceptor acceptor;
  tcp::endpoint target;
  tcp::endpoint listening;
  std::map<uint64_t, std::shared_ptr<Session>> sessions;
  uint64_t next_id = 0;
};

TcpProxy::TcpProxy() : impl_(std::make_unique<Impl>(this)) {}

absl::StatusOr<std::unique_ptr<TcpProxy>> TcpProxy::Start(const std::string& target) {
  const auto colon = target.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError("tcp proxy: target '" + target + "' is not HOST:PORT");
  }
  boost::system::error_code ec;
  const auto host = asio::ip::make_address(target.substr(0, colon), ec);
  if (ec) return absl::InvalidArgumentError("tcp proxy: target host '" + target + "': " + ec.message());
  int port = 0;
  try {
    port = std::stoi(target.substr(colon + 1));
  } catch (...) {
    port = -1;
  }
  if (port <= 0 || port > 65535) {
    return absl::InvalidArgumentError("tcp proxy: target port '" + target + "'");
  }
  std::unique_ptr<TcpProxy> p(new TcpProxy());
  Impl& impl = *p->impl_;
  impl.target = tcp::endpoint(host, static_cast<uint16_t>(port));
  const tcp::endpoint listen(asio::ip::address_v4::loopback(), 0);
  impl.acceptor.open(listen.protocol(), ec);
  if (!ec) impl.acceptor.bind(listen, ec);
  if (!ec) impl.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (!ec) impl.listening = impl.acceptor.local_endpoint(ec);
  if (ec) return absl::UnavailableError("tcp proxy: cannot listen on 127.0.0.1: " + ec.message());
  impl.Accept();
  p->thread_ = std::thread([&impl] { impl.io.run(); });
  return p;
}

TcpProxy::~TcpProxy() { Stop(); }

std::string TcpProxy::address() const {
  return "127.0.0.1:" + std::to_string(impl_->listening.port());
}

void TcpProxy::RunOnLoop(void (*fn)(Impl&)) {
  std::promise<void> done;
  asio::post(impl_->io, [this, fn, &done] {
    fn(*impl_);
    done.set_value();
  });
  done.get_future().wait();
}

void TcpProxy::Cut() {
  cut_.store(true);  // new connections are reset from now on
  if (!thread_.joinable()) return;  // stopped: nothing is forwarded anyway
  RunOnLoop([](Impl& impl) { impl.CloseAll(); });
}

void TcpProxy::Heal() { cut_.store(false); }

void TcpProxy::Blackhole() {
  if (!thread_.joinable()) return;
  RunOnLoop([](Impl& impl) {
    for (auto& [id, s] : impl.sessions) s->blackholed = true;
  });
}

void TcpProxy::StallReplies() {
  if (!thread_.joinable()) return;
  RunOnLoop([](Impl& impl) {
    for (auto& [id, s] : impl.sessions) s->replies_stalled = true;
  });
}

size_t TcpProxy::open_connections() {
  if (!thread_.joinable()) return 0;
  std::promise<size_t> count;
  asio::post(impl_->io, [this, &count] { count.set_value(impl_->sessions.size()); });
  return count.get_future().get();
}

void TcpProxy::Stop() {
  std::lock_guard<std::mutex> lock(stop_mu_);
  if (!thread_.joinable()) return;
  RunOnLoop([](Impl& impl) {
    boost::system::error_code ec;
    impl.acceptor.close(ec);
    impl.CloseAll();
    impl.work.reset();  // run() returns once the aborted operations have finished
  });
  thread_.join();
}

}  // namespace relaykv::testing
