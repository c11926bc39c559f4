// relaykvd: parses flags, runs a Node until SIGINT/SIGTERM, closes it.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "CLI/CLI.hpp"
#include "server/node.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"
#include "storage/file.h"

namespace {

// "127.0.0.1:0" + port 41234 -> "127.0.0.1:41234".
std::string BoundAddress(const std::string& listen, int port) {
  auto colon = listen.rfind(':');
  return (colon == std::string::npos ? listen : listen.substr(0, colon)) + ":" +
         std::to_string(port);
}

}  // namespace

int main(int argc, char** argv) {
  relaykv::NodeOptions options;
  options.listen_address = "127.0.0.1:7400";
  std::string data_dir;

  CLI::App app{"relaykvd: a relaykv key-value server (binlog, gRPC, semi-sync replication)",
               "relaykvd"};
  app.add_option("--data-dir", data_dir, "data directory (created if missing)")->required();
  app.add_option("--listen", options.listen_address, "HOST:PORT to serve gRPC on (port 0: any)")
      ->capture_default_str();
  app.add_option("--server-id,--server_id", options.server_id, "this server's id")
      ->capture_default_str();
  app.add_option("--sync_binlog,--sync-binlog", options.sync_binlog,
                 "fdatasync the binlog every N groups (0: leave it to the OS)")
      ->capture_default_str();
  app.add_option("--max_binlog_size,--max-binlog-size", options.max_binlog_size,
                 "rotate binlog segments at this many bytes")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  options.data_dir = data_dir;

  auto logger = spdlog::stderr_color_mt("relaykvd");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");

  auto node = relaykv::Node::Open(options);
  if (!node.ok()) {
    spdlog::critical("cannot start: {}", node.status().ToString());
    return 1;
  }

  // Tests and scripts started with port 0 learn the real address here.
  const std::filesystem::path addr_file = options.data_dir / "relaykvd.addr";
  if ((*node)->bound_port() != 0) {
    auto s = relaykv::WriteFileAtomically(
        addr_file, BoundAddress(options.listen_address, (*node)->bound_port()) + "\n");
    if (!s.ok()) spdlog::warn("{}", s.ToString());
  }

  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (!ec) spdlog::info("received signal {}, shutting down", signo);
    io.stop();
  });
  io.run();

  (*node)->Close();
  std::error_code ec;
  std::filesystem::remove(addr_file, ec);
  return 0;
}
