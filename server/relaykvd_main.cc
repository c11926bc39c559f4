// relaykvd: parses flags and the config file, runs a Node until
// SIGINT/SIGTERM, closes it; SIGHUP reopens --log-file and re-reads the
// roles file.
//
// Flags as mysqld spells them too (README "Running a server"): --datadir,
// --port/--bind-address, --defaults-file, --version; `--loose-NAME=VALUE`
// (and `loose-NAME` in the config file) is ignored with a warning when NAME
// is unknown.
#include <atomic>
#include <csignal>
#include <cstring>
#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>

#include "CLI/CLI.hpp"
#include "absl/synchronization/mutex.h"
#include "relaykv/node.h"
#include "server/http_server.h"
#include "server/logging.h"
#include "server/metrics.h"
#include "server/process_metrics.h"
#include "server/relaykvd_options.h"
#include "server/variables.h"
#include "spdlog/spdlog.h"
#include "storage/fault_injection.h"
#include "storage/file.h"

namespace {

// "127.0.0.1:0" + port 41234 -> "127.0.0.1:41234".
std::string BoundAddress(const std::string& listen, int port) {
  auto colon = listen.rfind(':');
  return (colon == std::string::npos ? listen : listen.substr(0, colon)) + ":" +
         std::to_string(port);
}

std::string Dashed(std::string_view name) {
  std::string s(name);
  for (char& c : s) c = c == '_' ? '-' : c;
  return s;
}

// The monitoring endpoints (README "Monitoring") over `node`, which must
// outlive the server.
relaykv::HttpServer::Routes MonitoringRoutes(relaykv::Node* node) {
  using relaykv::HttpResponse;
  relaykv::HttpServer::Routes routes;
  routes["/metrics"] = [node] {
    relaykv::Exposition process;
    relaykv::AppendProcessMetrics(&process);
    return HttpResponse{200, std::string(relaykv::Exposition::kContentType),
                        node->MetricsText() + process.text()};
  };
  routes["/healthz"] = [node] {
    const relaykv::NodeHealth h = node->Health();
    return h.serving ? HttpResponse{200, "text/plain; charset=utf-8", "ok\n"}
                     : HttpResponse{503, "text/plain; charset=utf-8", h.reason + "\n"};
  };
  // For load balancers (as Patroni's /primary): 200 on a writable primary only.
  routes["/primary"] = [node] {
    const relaykv::NodeHealth h = node->Health();
    if (h.writable_primary) return HttpResponse{200, "text/plain; charset=utf-8", "ok: writable primary\n"};
    std::string why = node->is_replica() ? "not a primary: a replica" : h.reason;
    return HttpResponse{503, "text/plain; charset=utf-8", why + "\n"};
  };
  return routes;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil is built with absl::Mutex deadlock detection on, which
  // records a stack trace per lock in gRPC's hot paths (~3% of a loaded
  // primary's CPU). Set before gRPC creates any mutex.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  relaykv::NodeOptions options;
  options.listen_address = "127.0.0.1:7400";
  std::string data_dir;
  std::string config;
  std::string http_listen;

  CLI::App app{"relaykvd: a relaykv key-value server (binlog, gRPC replication, lossless "
               "semi-sync commit)",
               "relaykvd"};
  app.set_version_flag("--version", std::string("relaykvd Ver ") + RELAYKV_VERSION,
                       "print the version and exit");
  // An option given twice: the last one wins, as in mysqld (a wrapper
  // script appends to a command line, e.g. --sync_binlog=0 ... --sync_binlog=1).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--data-dir,--datadir", data_dir, "data directory (created if missing)");
  app.add_option("--listen", options.listen_address,
                 "HOST:PORT to serve gRPC on (port 0: any); default 127.0.0.1:7400")
      ->capture_default_str();
  std::optional<int> port;
  std::string bind_address;
  app.add_option("-P,--port", port, "TCP port to serve gRPC on (mysqld's --port; 0: any), on "
                 "--bind-address")
      ->check(CLI::Range(0, 65535));
  app.add_option("--bind-address", bind_address,
                 "address to serve gRPC on with --port (mysqld's spelling); default 127.0.0.1");
  app.add_option("--http-listen", http_listen,
                 "HOST:PORT (loopback only; port 0: any) to serve GET /metrics (Prometheus), "
                 "/healthz and /primary on; off by default");
  app.add_option("--replicate-from", options.replicate_from,
                 "HOST:PORT of the primary: run as its replica (saved in the data dir)");
  app.add_option("--clone-from", options.clone_from,
                 "HOST:PORT of a running node to copy into the empty data dir first (MySQL's "
                 "CLONE; resumes an interrupted clone); then replicate from it (README \"Clone\")");
  app.add_option("--etcd", options.etcd_endpoints,
                 "HOST:PORT[,HOST:PORT...] of etcd: automatic failover with the other nodes of "
                 "--cluster (README \"Automatic failover\")")
      ->join(',');  // a list: given twice, both parts
  app.add_option("--cluster", options.cluster, "the cluster's name in etcd (with --etcd)");
  int lease_ttl_s = 10;
  app.add_option("--lease-ttl", lease_ttl_s,
                 "seconds: the primary's etcd lease; a dead primary is replaced after about this "
                 "long (with --etcd)")
      ->capture_default_str()
      ->check(CLI::Range(3, 600));
  int failover_min_interval_s = 60;
  app.add_option("--failover-min-interval", failover_min_interval_s,
                 "seconds: no automatic failover this soon after the last one (anti-flap)")
      ->capture_default_str()
      ->check(CLI::Range(0, 86400));
  app.add_option("--failover-priority", options.failover_priority,
                 "ties between equally advanced candidates of an election go to the higher; 0: "
                 "never promoted automatically (with --etcd)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  app.add_option("--config,--defaults-file", config,
                 std::string("my.cnf-style file; its [relaykvd] section sets variables and server "
                             "options (default: ") + relaykv::kDefaultConfigFile + " if it exists)")
      ->check(CLI::ExistingFile);
  bool no_defaults = false;
  app.add_flag("--no-defaults", no_defaults,
               std::string("read no config file, not even ") + relaykv::kDefaultConfigFile);
  std::string log_file;
  app.add_option("--log-file,--log-error", log_file,
                 "write the log here instead of stderr (appended; SIGHUP reopens it)");
  // Security (README "Security"); ssl_ca/ssl_cert/ssl_key and
  // require_secure_transport are variables below.
  app.add_option("--roles-file", options.roles_file,
                 "who may read/write/replicate/administer: 'IDENTITY: role,...' lines (certificate "
                 "CN or SAN) and 'token IDENTITY SHA256HEX: role,...'; re-read on SIGHUP");
  app.add_flag("--allow-insecure", options.allow_insecure,
               "allow plaintext gRPC (no ssl_cert) and --http-listen on a non-loopback address");
  bool master_ssl = false;
  app.add_flag("--master-ssl,--source-ssl", master_ssl,
               "connect to --replicate-from over TLS (MASTER_SSL=1; implied by --master-ssl-ca)");
  app.add_option("--master-ssl-ca,--source-ssl-ca", options.replicate_tls.ca,
                 "PEM file of the CA that signed the primary's certificate (MASTER_SSL_CA)");
  app.add_option("--master-ssl-cert,--source-ssl-cert", options.replicate_tls.cert,
                 "PEM file of this replica's client certificate (MASTER_SSL_CERT)");
  app.add_option("--master-ssl-key,--source-ssl-key", options.replicate_tls.key,
                 "PEM file of this replica's private key (MASTER_SSL_KEY)");
  // --NAME=VALUE (or --NAME-WITH-DASHES) for every variable in the table
  // (log_level among them: --log-level).
  std::map<std::string, std::string> flag_values;
  for (const relaykv::VariableDef& d : relaykv::AllVariableDefs()) {
    std::string names = "--" + std::string(d.name);
    if (Dashed(d.name) != d.name) names += ",--" + Dashed(d.name);
    if (!d.alias.empty()) names += ",--" + std::string(d.alias) + ",--" + Dashed(d.alias);
    app.add_option(names, flag_values[std::string(d.name)],
                   std::string(d.help) + " (default " + std::string(d.default_value) + ")")
        ->group("Variables");
  }
  std::vector<std::string> args;
  std::vector<std::string> warnings = relaykv::StripLooseOptions(app, argc, argv, &args);
  std::vector<const char*> arg_ptrs;
  for (const std::string& a : args) arg_ptrs.push_back(a.c_str());
  CLI11_PARSE(app, static_cast<int>(arg_ptrs.size()), arg_ptrs.data());

  // Until the options are known: stderr, in the same format.
  if (auto s = relaykv::InstallLogging({}); !s.ok()) {
    std::cerr << "relaykvd: " << s << "\n";
    return 1;
  }
  relaykv::FileOptions file;
  if (no_defaults && !config.empty()) {
    spdlog::critical("cannot start: --no-defaults and --defaults-file contradict each other");
    return 1;
  }
  if (config.empty() && !no_defaults && std::filesystem::exists(relaykv::kDefaultConfigFile)) {
    config = relaykv::kDefaultConfigFile;
  }
  if (!config.empty()) {
    if (auto s = relaykv::ReadConfig(config, &file, &options.variables, &warnings); !s.ok()) {
      spdlog::critical("cannot read config: {}", std::string(s.message()));
      return 1;
    }
  }
  for (const auto& [name, value] : flag_values) {
    if (app.count("--" + name) > 0) options.variables.emplace_back(name, value);
  }
  if (data_dir.empty()) data_dir = file.data_dir.value_or("");
  if (data_dir.empty()) {
    spdlog::critical("cannot start: no data directory (--datadir, or datadir in the config file)");
    return 1;
  }
  if (log_file.empty()) log_file = file.log_file.value_or("");
  if (http_listen.empty()) http_listen = file.http_listen.value_or("");
  if (options.replicate_from.empty()) options.replicate_from = file.replicate_from.value_or("");
  if (options.roles_file.empty()) options.roles_file = file.roles_file.value_or("");
  options.replicate_tls.enabled = master_ssl || !options.replicate_tls.ca.empty() ||
                                  !options.replicate_tls.cert.empty() ||
                                  !options.replicate_tls.key.empty();
  if (options.replicate_tls.enabled && options.replicate_from.empty() &&
      options.clone_from.empty()) {
    spdlog::critical("cannot start: --master-ssl* options need --replicate-from (or use CHANGE "
                     "MASTER TO ... MASTER_SSL=1)");
    return 1;
  }
  if (options.etcd_endpoints.empty() != options.cluster.empty()) {
    spdlog::critical("cannot start: --etcd and --cluster go together (automatic failover)");
    return 1;
  }
  options.lease_ttl = std::chrono::seconds(lease_ttl_s);
  options.failover_min_interval = std::chrono::seconds(failover_min_interval_s);
  // --listen, or --bind-address:--port (mysqld's), from the command line
  // first, then the config file.
  const bool cli_listen = app.count("--listen") > 0;
  if (cli_listen && (port || !bind_address.empty())) {
    spdlog::critical("cannot start: give --listen HOST:PORT, or --port/--bind-address, not both");
    return 1;
  }
  if (!port) port = file.port;
  if (bind_address.empty()) bind_address = file.bind_address.value_or("");
  if (!cli_listen) {
    if (port || !bind_address.empty()) {
      std::string host = bind_address.empty() ? "127.0.0.1" : bind_address;
      if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
      options.listen_address = host + ":" + std::to_string(port.value_or(7400));
    } else if (file.listen) {
      options.listen_address = *file.listen;
    }
  }
  options.data_dir = data_dir;

  // The log level is set before the node opens (SET PERSIST log_level
  // then applies when it reads relaykvd-auto.cnf).
  relaykv::LogOptions log;
  log.file = log_file;
  for (const auto& [name, value] : options.variables) {
    if (name == "log_level") log.level = value;
  }
  if (auto s = relaykv::InstallLogging(log); !s.ok()) {
    spdlog::critical("cannot start: {}", std::string(s.message()));
    return 1;
  }
  for (const std::string& w : warnings) spdlog::warn("{}", w);

  // Refused before anything opens: the endpoints have no authentication.
  const std::filesystem::path http_addr_file = options.data_dir / "relaykvd.http.addr";
  std::error_code stale;
  std::filesystem::remove(http_addr_file, stale);  // a killed run's: never read as ours
  if (!http_listen.empty() && !options.allow_insecure) {
    if (auto s = relaykv::CheckLoopbackListenAddress(http_listen); !s.ok()) {
      spdlog::critical("cannot start: --http-listen {}; the monitoring endpoints have no "
                       "authentication or TLS, so relaykvd serves them on loopback only (scrape "
                       "through a local agent or proxy, or pass --allow-insecure)",
                       std::string(s.message()));
      return 1;
    }
  }

  // Tests' power cuts of this process (storage/fault_injection.h, shadow
  // mode): with RELAYKV_FAULT_SHADOW set, what each fsync makes durable in
  // the data dir and its binlog is journaled there. Unset: nothing at all.
  // Destroyed after the node (declared before it).
  auto shadow = relaykv::FaultInjection::InstallShadowFromEnvironment(
      {options.data_dir, options.data_dir / "binlog"});
  if (!shadow.ok()) {
    spdlog::critical("cannot start fault injection shadow mode: {}", shadow.status().ToString());
    return 1;
  }
  if (*shadow != nullptr) {
    spdlog::warn("fault injection shadow mode: journaling what is durable to {} (tests only)",
                 std::getenv(relaykv::FaultInjection::kShadowEnv));
  }

  // Signals are caught from here on (and handled once io runs): a SIGHUP
  // or SIGTERM sent as soon as relaykvd.addr exists — or while the node
  // opens — must not take the default action and kill the process.
  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  // Automatic failover may need the node closed and opened again (a tail
  // to truncate before the binlog opens, a lost lease): relaykvd then
  // stops as on SIGTERM and executes itself again, same pid and arguments.
  std::atomic<bool> restart{false};
  bool stop_signalled = false;  // io's thread only
  options.on_restart_needed = [&](const std::string&) {
    restart.store(true);
    boost::asio::post(io, [&] { io.stop(); });
  };
  auto node = relaykv::Node::Open(options);
  if (!node.ok()) {
    spdlog::critical("cannot start: {}", node.status().ToString());
    return 1;
  }

  // Monitoring over HTTP; its thread is joined before the node closes.
  // Started before relaykvd.addr is written: whoever waits for that file
  // finds relaykvd.http.addr there too.
  std::unique_ptr<relaykv::HttpServer> http;
  if (!http_listen.empty()) {
    relaykv::HttpServerOptions ho;
    ho.listen_address = http_listen;
    ho.allow_non_loopback = options.allow_insecure;
    auto started = relaykv::HttpServer::Start(ho, MonitoringRoutes(node->get()));
    if (!started.ok()) {
      spdlog::critical("cannot start: {}", started.status().ToString());
      (*node)->Close();
      return 1;
    }
    http = *std::move(started);
    spdlog::info("serving /metrics, /healthz and /primary over HTTP on {}", http->bound_address());
    auto s = relaykv::WriteFileAtomically(http_addr_file, http->bound_address() + "\n");
    if (!s.ok()) spdlog::warn("{}", s.ToString());
  }

  // Tests and scripts started with port 0 learn the real address here.
  const std::filesystem::path addr_file = options.data_dir / "relaykvd.addr";
  if ((*node)->bound_port() != 0) {
    auto s = relaykv::WriteFileAtomically(
        addr_file, BoundAddress(options.listen_address, (*node)->bound_port()) + "\n");
    if (!s.ok()) spdlog::warn("{}", s.ToString());
  }

  // SIGHUP: logrotate renamed the old log file (lines go to a new one at
  // the path), and the roles file is re-read (a bad file keeps the old roles).
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signo) {
        if (!ec && signo == SIGHUP) {
          if (auto s = relaykv::ReopenLogFile(); !s.ok()) {
            spdlog::error("SIGHUP: {}", s.ToString());
          } else {
            spdlog::info("SIGHUP: log file reopened");
          }
          if (options.roles_file.empty()) {
            spdlog::info("SIGHUP: no --roles-file to re-read");
          } else if (auto s = (*node)->ReloadRoles(); !s.ok()) {
            spdlog::error("SIGHUP: roles file not reloaded, the old roles stay: {}", s.ToString());
          }
          signals.async_wait(on_signal);
          return;
        }
        if (!ec) spdlog::info("received signal {}, shutting down", signo);
        stop_signalled = true;  // wins over a pending restart
        io.stop();
      };
  signals.async_wait(on_signal);
  io.run();

  if (http) http->Stop();
  (*node)->Close();
  spdlog::info("relaykvd stopped cleanly");
  std::error_code ec;
  std::filesystem::remove(addr_file, ec);
  if (http) std::filesystem::remove(http_addr_file, ec);
  if (restart.load() && !stop_signalled) {
    spdlog::warn("relaykvd restarts itself to rejoin the cluster");
    spdlog::default_logger()->flush();
    ::execv("/proc/self/exe", argv);
    spdlog::critical("cannot restart: execv: {}", std::strerror(errno));
    return 1;
  }
  return 0;
}
