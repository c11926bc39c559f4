// A minimal HTTP/1.1 client for tests of the monitoring endpoints: one
// request per connection (Connection: close), read to EOF, over a raw
// IPv4 socket with a receive timeout. No curl, no Beast: what it checks is
// what any scraper sees on the wire.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

namespace relaykv::testing {

struct HttpReply {
  int status = 0;       // 0: no connection or no valid status line
  std::string headers;  // the status line and headers, as received
  std::string body;
};

// Opens a TCP connection to "127.0.0.1:PORT" (IPv4 literal HOST:PORT).
// -1 on failure.
inline int ConnectTo(const std::string& address, std::chrono::milliseconds timeout) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) return -1;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::atoi(address.c_str() + colon + 1)));
  if (::inet_pton(AF_INET, address.substr(0, colon).c_str(), &sa.sin_addr) != 1) return -1;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends `raw` as is and reads the reply to EOF (or the timeout).
inline HttpReply SendRawHttp(const std::string& address, const std::string& raw,
                             std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  HttpReply reply;
  const int fd = ConnectTo(address, timeout);
  if (fd < 0) return reply;
  for (size_t sent = 0; sent < raw.size();) {
    const ssize_t n = ::send(fd, raw.data() + sent, raw.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early (a cap): read what it said
    sent += static_cast<size_t>(n);
  }
  std::string all;
  char buf[16384];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) all.append(buf, static_cast<size_t>(n));
  ::close(fd);
  const auto end = all.find("\r\n\r\n");
  if (all.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return reply;
  reply.status = std::atoi(all.c_str() + 9);
  reply.headers = all.substr(0, end);
  reply.body = all.substr(end + 4);
  return reply;
}

inline HttpReply HttpRequest(const std::string& address, const std::string& method,
                             const std::string& path) {
  return SendRawHttp(address, method + " " + path + " HTTP/1.1\r\nHost: " + address +
                                  "\r\nConnection: close\r\n\r\n");
}

inline HttpReply HttpGet(const std::string& address, const std::string& path) {
  return HttpRequest(address, "GET", path);
}

}  // namespace relaykv::testing
