// server/http_server.h: routes, 404/405, the request bounds (header and
// body caps, read timeout, connection cap), loopback-only addresses and a
// clean Stop().
#include "server/http_server.h"

#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/http_get.h"

namespace relaykv {
namespace {

using ::testing::HasSubstr;
using testing::HttpGet;
using testing::HttpRequest;
using testing::SendRawHttp;

std::unique_ptr<HttpServer> StartServer(HttpServerOptions o = {}) {
  o.listen_address = "127.0.0.1:0";
  HttpServer::Routes routes;
  routes["/hello"] = [] { return HttpResponse{200, "text/plain", "hi\n"}; };
  routes["/down"] = [] { return HttpResponse{503, "text/plain", "not today\n"}; };
  routes["/big"] = [] { return HttpResponse{200, "text/plain", std::string(16 << 20, 'b')}; };
  auto s = HttpServer::Start(o, std::move(routes));
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : nullptr;
}

std::string Addr(const HttpServer& s) { return "127.0.0.1:" + std::to_string(s.port()); }

TEST(HttpServerTest, RoutesAnswerWithTheirStatusAndBody) {
  auto s = StartServer();
  ASSERT_NE(s, nullptr);
  EXPECT_NE(s->port(), 0);
  auto r = HttpGet(Addr(*s), "/hello");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hi\n");
  EXPECT_THAT(r.headers, HasSubstr("Content-Type: text/plain"));
  EXPECT_EQ(HttpGet(Addr(*s), "/down").status, 503);
  EXPECT_EQ(HttpGet(Addr(*s), "/hello?x=1").status, 200);  // a query string is ignored
}

TEST(HttpServerTest, UnknownPathIs404AndOtherMethodsAre405) {
  auto s = StartServer();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(HttpGet(Addr(*s), "/nope").status, 404);
  auto post = HttpRequest(Addr(*s), "POST", "/hello");
  EXPECT_EQ(post.status, 405);
  EXPECT_THAT(post.headers, HasSubstr("Allow: GET"));
  EXPECT_EQ(HttpRequest(Addr(*s), "DELETE", "/hello").status, 405);
}

TEST(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  auto s = StartServer();
  ASSERT_NE(s, nullptr);
  const std::string one = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
  auto r = SendRawHttp(Addr(*s), one + one + "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  // Three replies on the connection: the first parsed, two more in its body.
  size_t replies = 0;
  for (size_t at = 0; (at = r.headers.find("HTTP/1.1 200", at)) != std::string::npos; ++at) ++replies;
  for (size_t at = 0; (at = r.body.find("HTTP/1.1 200", at)) != std::string::npos; ++at) ++replies;
  EXPECT_EQ(replies, 3u);
}

TEST(HttpServerTest, OversizedHeaderIs431AndOversizedBodyIs413) {
  HttpServerOptions o;
  o.max_header_bytes = 512;
  o.max_body_bytes = 16;
  auto s = StartServer(o);
  ASSERT_NE(s, nullptr);
  auto big_header = SendRawHttp(
      Addr(*s), "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4096, 'a') + "\r\n\r\n");
  EXPECT_EQ(big_header.status, 431);
  auto big_body = SendRawHttp(Addr(*s), "GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" +
                                            std::string(1000, 'b'));
  EXPECT_EQ(big_body.status, 413);
  EXPECT_EQ(HttpGet(Addr(*s), "/hello").status, 200);  // and it still serves
}

// A chunk-size line or a trailer that never ends is bounded like a header
// (review s43b F1: the read buffer grew until the read timeout).
TEST(HttpServerTest, EndlessChunkLineOrTrailerIs400AtOnce) {
  HttpServerOptions o;
  o.read_timeout = std::chrono::seconds(30);
  auto s = StartServer(o);
  ASSERT_NE(s, nullptr);
  const std::string chunked = "GET /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const std::string& tail : {"1;" + std::string(40000, 'a'),
                                  "0\r\nX-Trailer: " + std::string(40000, 'a')}) {
    const auto start = std::chrono::steady_clock::now();
    auto r = SendRawHttp(Addr(*s), chunked + tail);
    EXPECT_EQ(r.status, 400) << tail.substr(0, 20);
    EXPECT_THAT(r.body, HasSubstr("too large"));
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  }
  EXPECT_EQ(HttpGet(Addr(*s), "/hello").status, 200);
}

TEST(HttpServerTest, GarbageIs400) {
  auto s = StartServer();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(SendRawHttp(Addr(*s), "\x01\x02 nonsense\r\n\r\n").status, 400);
}

TEST(HttpServerTest, SilentClientIsClosedAfterTheReadTimeout) {
  HttpServerOptions o;
  o.read_timeout = std::chrono::milliseconds(300);
  auto s = StartServer(o);
  ASSERT_NE(s, nullptr);
  const int fd = testing::ConnectTo(Addr(*s), std::chrono::seconds(10));
  ASSERT_GE(fd, 0);
  const auto start = std::chrono::steady_clock::now();
  char c;
  EXPECT_EQ(::recv(fd, &c, 1, 0), 0);  // EOF: the server closed it
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  ::close(fd);
}

// Every slot held by a connection whose request never ends (one byte of
// header, then nothing): a new connection closes the one that waited
// longest and is served; it used to be refused until the read timeout
// freed a slot, so one local peer kept /primary and /healthz from the
// load balancer (review s43b F10).
TEST(HttpServerTest, AtTheCapTheConnectionWaitingLongestMakesRoom) {
  HttpServerOptions o;
  o.max_connections = 2;
  auto s = StartServer(o);
  ASSERT_NE(s, nullptr);
  std::vector<int> held;
  for (int i = 0; i < 2; ++i) {
    held.push_back(testing::ConnectTo(Addr(*s), std::chrono::seconds(10)));
    ASSERT_GE(held.back(), 0);
    ASSERT_EQ(::send(held.back(), "G", 1, MSG_NOSIGNAL), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // accepted, in this order
  }
  EXPECT_EQ(HttpGet(Addr(*s), "/hello").status, 200);
  char c;
  EXPECT_EQ(::recv(held[0], &c, 1, 0), 0) << "the oldest was not closed";
  EXPECT_EQ(::recv(held[1], &c, 1, MSG_DONTWAIT), -1) << "the newer one was closed too";
  EXPECT_EQ(errno, EAGAIN);
  for (int fd : held) ::close(fd);
  EXPECT_EQ(HttpGet(Addr(*s), "/hello").status, 200);
}

// Review s44d M2: a peer that never reads its replies blocks the server's
// writes; such connections, stuck for over a second, make room at the cap
// too.
TEST(HttpServerTest, AtTheCapConnectionsWhoseRepliesAreNotReadMakeRoom) {
  HttpServerOptions o;
  o.max_connections = 2;
  auto s = StartServer(o);
  ASSERT_NE(s, nullptr);
  std::vector<int> held;
  const std::string request = "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";  // 16 MiB
  for (int i = 0; i < 2; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    const int small = 1024;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(s->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    held.push_back(fd);
    ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // replies stuck
  EXPECT_EQ(HttpGet(Addr(*s), "/hello").status, 200);
  for (int fd : held) ::close(fd);
}

// Review s44c H1: connections answered with Connection: close whose peer
// never closes them (the server drains them for the read timeout) make
// room at the cap first; they held every slot.
TEST(HttpServerTest, AtTheCapAnsweredConnectionsLeftOpenMakeRoom) {
  HttpServerOptions o;
  o.max_connections = 2;
  auto s = StartServer(o);
  ASSERT_NE(s, nullptr);
  std::vector<int> held;
  const std::string request = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  for (int i = 0; i < 2; ++i) {
    held.push_back(testing::ConnectTo(Addr(*s), std::chrono::seconds(10)));
    ASSERT_GE(held.back(), 0);
    ASSERT_EQ(::send(held.back(), request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // answered, draining
  EXPECT_EQ(HttpGet(Addr(*s), "/hello").status, 200);
  for (int fd : held) ::close(fd);
}

// Out of file descriptors, a pending connection cannot be accepted: the
// server waits and tries again instead of spinning (review s43b F9), and
// serves again once descriptors are free.
TEST(HttpServerTest, AcceptOutOfDescriptorsDoesNotSpin) {
  auto s = StartServer();
  ASSERT_NE(s, nullptr);
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  // Every descriptor number up to the new limit taken, but for the client's socket.
  std::vector<int> fillers;
  const int client = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(client, 0);
  for (int fd; (fd = ::dup(client)) >= 0 && fd < 4096;) fillers.push_back(fd);
  const int highest = fillers.empty() ? client : fillers.back();
  ::close(highest);
  fillers.pop_back();
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(highest);  // no descriptor numbered `highest` or above
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(s->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  rusage before{};
  ::getrusage(RUSAGE_SELF, &before);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  rusage after{};
  ::getrusage(RUSAGE_SELF, &after);
  auto cpu_us = [](const rusage& r) {
    return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1000000 + r.ru_utime.tv_usec + r.ru_stime.tv_usec;
  };
  EXPECT_LT(cpu_us(after) - cpu_us(before), 300000) << "the accept loop spins";
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  for (int fd : fillers) ::close(fd);
  ::close(client);
  EXPECT_EQ(HttpGet(Addr(*s), "/hello").status, 200);
}

TEST(HttpServerTest, NonLoopbackOrMalformedAddressIsRefused) {
  for (const std::string bad : {"0.0.0.0:0", "10.1.2.3:9100", "[::]:0", "example.com:80", "127.0.0.1",
                                "127.0.0.1:99999", "127.0.0.1:x"}) {
    auto s = HttpServer::Start({.listen_address = bad}, {});
    EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << bad << ": " << s.status();
  }
  EXPECT_TRUE(CheckLoopbackListenAddress("127.0.0.1:0").ok());
  EXPECT_TRUE(CheckLoopbackListenAddress("localhost:9187").ok());
  EXPECT_TRUE(CheckLoopbackListenAddress("[::1]:9187").ok());
  EXPECT_TRUE(CheckLoopbackListenAddress("127.0.0.2:9187").ok());
}

TEST(HttpServerTest, PortInUseIsUnavailable) {
  auto s = StartServer();
  ASSERT_NE(s, nullptr);
  auto second = HttpServer::Start({.listen_address = Addr(*s)}, {});
  EXPECT_TRUE(absl::IsUnavailable(second.status())) << second.status();
}

TEST(HttpServerTest, StopClosesOpenConnectionsAndIsIdempotent) {
  auto s = StartServer();
  ASSERT_NE(s, nullptr);
  const std::string addr = Addr(*s);
  const int fd = testing::ConnectTo(addr, std::chrono::seconds(10));
  ASSERT_GE(fd, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  s->Stop();
  char c;
  EXPECT_EQ(::recv(fd, &c, 1, 0), 0);
  ::close(fd);
  s->Stop();
  EXPECT_EQ(HttpGet(addr, "/hello").status, 0);
}

}  // namespace
}  // namespace relaykv
