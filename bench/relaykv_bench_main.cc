// relaykv-bench: commit latency and throughput in every durability mode,
// next to the machine's floor. Spawns its own local cluster of real
// relaykvd processes (default) or drives one given with --target.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/synchronization/mutex.h"
#include "bench/catchup.h"
#include "bench/scan.h"
#include "bench/watchers.h"
#include "bench/cluster.h"
#include "bench/floor.h"
#include "bench/load.h"
#include "bench/report.h"
#include "client/channel_credentials.h"
#include "proto/admin.grpc.pb.h"
#include "relaykv/client.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace relaykv::bench {
namespace {

namespace fs = std::filesystem;

// `tls`: how the bench's clients connect (--tls; plaintext by default).
std::map<std::string, uint64_t> SemiSyncCounters(const std::string& target, const TlsOptions& tls) {
  auto credentials = MakeChannelCredentials(tls);
  if (!credentials.ok()) return {};
  auto stub = v1::Admin::NewStub(grpc::CreateChannel(target, *credentials));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ShowRequest req;
  req.set_like("Rpl_semi_sync_master%");
  v1::ShowReply reply;
  std::map<std::string, uint64_t> out;
  if (!stub->ShowStatus(&ctx, req, &reply).ok()) return out;
  for (const auto& row : reply.rows()) {
    const std::string name = row.name().substr(std::string("Rpl_semi_sync_master_").size());
    out[name] = row.value() == "ON" ? 1 : row.value() == "OFF" ? 0 : std::strtoull(row.value().c_str(), nullptr, 10);
  }
  return out;
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// lo.tls: how the clients connect (also for the counters).
Run Measure(const std::string& target, LoadOptions lo, const std::string& mode, int replicas,
            int wait_count, const Process* primary, const fs::path& floor_dir) {
  auto before = SemiSyncCounters(target, lo.tls);
  Run run;
  run.mode = mode;
  run.tls = lo.tls.enabled;
  run.replicas = replicas;
  run.wait_count = wait_count;
  run.clients = lo.clients;
  lo.target = target;
  const bool tty = ::isatty(2);
  // The primary's RSS when the measured window starts (after warm-up), its
  // peak, and at the end: memory must stay flat under load.
  lo.tick = [&](double left, bool measuring) {
    if (tty) std::fprintf(stderr, "\r  %-14s clients %-3d %5.1f s left   ", mode.c_str(), lo.clients, left);
    if (primary != nullptr && measuring) {
      const long rss = primary->rss_kb();
      if (run.rss_start_kb == 0) run.rss_start_kb = rss;
      run.rss_peak_kb = std::max(run.rss_peak_kb, rss);
    }
  };
  if (!tty) std::fprintf(stderr, "  %s, %d clients, %.1f s\n", mode.c_str(), lo.clients, lo.warmup_s + lo.duration_s);
  // The one-client latency is compared with a floor measured next to it,
  // not minutes earlier: this machine's fdatasync and wake-up times drift.
  const bool vs_floor = lo.clients == 1 && !lo.reads;
  const Floor floor_before = vs_floor ? MeasureFloor(floor_dir) : Floor{};
  LoadResult r = RunLoad(lo);
  if (vs_floor) run.floor = LowerFloor(floor_before, MeasureFloor(floor_dir));
  if (tty) std::fprintf(stderr, "\r%60s\r", "");
  run.rss_end_kb = primary ? primary->rss_kb() : 0;
  auto after = SemiSyncCounters(target, lo.tls);
  run.ops_per_s = r.ops_per_s();
  run.p50_us = r.Percentile(50);
  run.p90_us = r.Percentile(90);
  run.p99_us = r.Percentile(99);
  run.p999_us = r.Percentile(99.9);
  run.max_us = r.latency_us.empty() ? 0 : r.latency_us.back();
  run.errors = r.errors;
  run.yes_tx = after["yes_tx"] - before["yes_tx"];
  run.no_tx = after["no_tx"] - before["no_tx"];
  const uint64_t waits = after["tx_waits"] - before["tx_waits"];
  run.tx_avg_wait_time_us = waits ? (after["tx_wait_time"] - before["tx_wait_time"]) / waits : 0;
  if (vs_floor) {
    const bool semi = mode == "after_sync" || mode == "after_commit";
    run.floor_us = semi ? run.floor.semisync_floor_us() : run.floor.fdatasync_p50_us;
    run.ratio_to_floor = run.floor_us > 0 ? run.p50_us / run.floor_us : 0;
  }
  for (int i = 1; i <= 100; ++i) run.cdf.emplace_back(r.Percentile(i), i / 100.0);
  if (r.errors > 0) {
    std::fprintf(stderr, "  %s: %llu errors, first: %s\n", mode.c_str(),
                 static_cast<unsigned long long>(r.errors), r.first_error.c_str());
  }
  return run;
}

// How the load reaches `target` for a transport: its own channels (unary);
// one pipelined relaykv::Client shared by every client thread (stream); or
// that client's async writes, each client a chain of PutAsync calls and no
// thread of its own (async). The client is created on first use and kept
// in `*client`.
LoadOptions ForTransport(LoadOptions lo, const std::string& transport, const std::string& target,
                         std::unique_ptr<relaykv::Client>* client) {
  if (transport == "unary") return lo;
  if (*client == nullptr) {
    relaykv::ClientOptions co;
    co.timeout = std::chrono::seconds(30);
    co.pipelined = true;
    co.tls = lo.tls;
    *client = *relaykv::Client::Connect({target}, co);
  }
  relaykv::Client* c = client->get();
  if (transport == "async") {
    lo.put_blocking = nullptr;
    lo.put_async = [c](std::string key, std::string value, LoadOptions::PutDone done) {
      c->PutAsync(key, value, [done = std::move(done)](absl::StatusOr<relaykv::Gtid> g) {
        done(g.status());
      });
    };
    return lo;
  }
  lo.put_async = nullptr;
  lo.put_blocking = [c](std::string key, std::string value) { return c->Put(key, value).status(); };
  return lo;
}

// "--name=value" flags as (name, value) variables.
std::vector<std::pair<std::string, std::string>> Variables(const std::vector<std::string>& flags) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& f : flags) {
    const size_t eq = f.find('=');
    out.emplace_back(f.substr(2, eq - 2), f.substr(eq + 1));
  }
  return out;
}

// Waits until the primary counts `n` semi-sync replicas.
bool WaitForSemiSyncClients(const std::string& target, const TlsOptions& tls, uint64_t n) {
  for (int i = 0; i < 1000; ++i) {
    if (SemiSyncCounters(target, tls)["clients"] >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace
}  // namespace relaykv::bench

int main(int argc, char** argv) {
  // As in relaykvd: no absl::Mutex deadlock detection (a stack trace per
  // lock) in the load generator's gRPC calls.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // An embedded node logs where relaykvd does: stderr, so stdout is the table.
  spdlog::set_default_logger(spdlog::stderr_color_mt("relaykv-bench"));
  using namespace relaykv::bench;
  std::string target, modes = "none,async,after_commit,after_sync", clients = "1,4,16,64";
  std::string wait_counts = "1", json, csv, plot, relaykvd, work_dir;
  int replicas = 1, cdf_clients = 16, repeat = 1;
  double duration = 5, warmup = 1;
  LoadOptions lo;
  bool reads = true;
  uint64_t catchup = 0;
  int watchers = 0;
  std::string watch_prefix;
  bool scan = false;
  ScanOptions scan_options;

  CLI::App app{"relaykv-bench: commit latency and throughput per durability mode, against the "
               "machine's floor (fdatasync, gRPC round trip)",
               "relaykv-bench"};
  auto* target_opt =
      app.add_option("--target", target, "HOST:PORT of a running primary (default: --spawn)");
  bool spawn = false, embedded = false;
  app.add_flag("--spawn", spawn, "spawn a local cluster of relaykvd processes (the default)")
      ->excludes(target_opt);
  app.add_flag("--embedded", embedded,
               "the primary is a relaykv::Node in this process and each client a closed loop of "
               "Node::WriteAsync calls: the commit path without a client's gRPC round trip")
      ->excludes(target_opt);
  app.add_option("--replicas", replicas, "replicas in the spawned cluster")->capture_default_str();
  app.add_option("--modes", modes, "comma list of none,async,after_commit,after_sync")->capture_default_str();
  app.add_option("--clients", clients, "comma list of concurrent clients")->capture_default_str();
  app.add_option("--wait-counts", wait_counts,
                 "rpl_semi_sync_master_wait_for_slave_count values for semi-sync modes")
      ->capture_default_str();
  app.add_option("--duration", duration, "measured seconds per point")->capture_default_str();
  app.add_option("--warmup", warmup, "unmeasured seconds before each point")->capture_default_str();
  app.add_option("--repeat", repeat,
                 "measure each point this many times and report the median run (this machine "
                 "is noisy)")
      ->check(CLI::Range(1, 99))
      ->capture_default_str();
  app.add_option("--keyspace", lo.keyspace, "distinct keys")->capture_default_str();
  app.add_option("--value-size", lo.value_size, "bytes per value")->capture_default_str();
  app.add_option("--json", json, "write every figure and the settings as JSON");
  app.add_option("--csv", csv, "write every figure as CSV");
  app.add_option("--plot", plot, "write a PNG (needs gnuplot)");
  app.add_option("--cdf-clients", cdf_clients, "concurrency whose latency CDF is plotted")
      ->capture_default_str();
  app.add_flag("!--no-reads", reads, "skip the Get run that shows the load generator's headroom");
  bool stream = false, stream_only = false;
  app.add_flag("--stream", stream,
               "also measure every write point over one WriteStream (relaykv::Client with "
               "pipelined writes, shared by all clients), right after the unary one");
  app.add_flag("--stream-only", stream_only, "measure writes over the WriteStream only");
  bool async = false;
  app.add_flag("--async", async,
               "also measure every write point with relaykv::Client's async writes on one "
               "WriteStream: each client a chain of PutAsync calls (the next sent from the last "
               "one's callback), no thread per client");
  app.add_option("--relaykvd", relaykvd, "relaykvd binary (default: next to relaykv-bench)");
  app.add_option("--work-dir", work_dir, "where spawned clusters keep their data (default: a temp dir)");
  app.add_flag("--scan", scan,
               "range reads: load --scan-keys keys (--value-size bytes), then keys/s of paged "
               "scans of the whole range, with values and keys-only (median of --repeat)");
  app.add_option("--scan-keys", scan_options.keys, "keys loaded for --scan")->capture_default_str();
  app.add_option("--scan-page", scan_options.page, "keys per page for --scan")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--watchers", watchers,
                 "measure the change stream: AFTER_SYNC commits at the last --clients count without "
                 "watchers and with 1 and N watchers of every key, and the changes/s they receive");
  app.add_option("--watch-prefix", watch_prefix,
                 "with --watchers: watch keys with this prefix only (default every key; one that "
                 "matches none measures the cost of watching with nothing to deliver)");
  bool watchers_in_process = false;
  app.add_flag("--watchers-in-process", watchers_in_process,
               "with --watchers: run the watchers in this process, beside the writers (they then "
               "share gRPC's polling threads), not in a child process of their own");
  std::string watch_child;  // internal: this process is --watchers' child
  app.add_option("--watch-child", watch_child)->group("");
  app.add_option("--catchup", catchup,
                 "instead: time a fresh replica catching up this many events behind");
  // TLS (README "Security"): the spawned servers serve mutual TLS with
  // these files, replicas connect to the primary with them, and so do the
  // clients (the node certificate of scripts/make-test-certs.sh is also a
  // client certificate).
  std::string tls_mode = "off";
  relaykv::TlsOptions tls_files{true, "", "", ""};
  app.add_option("--tls", tls_mode,
                 "off | on | both (each mode on a plaintext and a mutual-TLS cluster side by side, "
                 "the repeats alternating, and the cost in ops/s printed); needs "
                 "--ssl-ca/--ssl-cert/--ssl-key")
      ->check(CLI::IsMember({"off", "on", "both"}))
      ->capture_default_str();
  app.add_option("--ssl-ca", tls_files.ca, "PEM file of the CA (servers verify clients with it)");
  app.add_option("--ssl-cert", tls_files.cert, "PEM certificate for servers, replicas and clients");
  app.add_option("--ssl-key", tls_files.key, "its PEM private key");
  CLI11_PARSE(app, argc, argv);
  if (!watch_child.empty()) return RunWatcherChild(watch_child, watch_prefix, std::max(watchers, 1));
  if (tls_mode != "off" && (tls_files.ca.empty() || tls_files.cert.empty() || tls_files.key.empty())) {
    std::fprintf(stderr, "--tls %s needs --ssl-ca, --ssl-cert and --ssl-key (scripts/make-test-certs.sh "
                         "DIR makes them: DIR/ca.pem, DIR/node.pem, DIR/node.key)\n",
                 tls_mode.c_str());
    return 2;
  }
  if (tls_mode != "off" && embedded) {
    std::fprintf(stderr, "--tls does not apply to --embedded (its clients make no gRPC calls)\n");
    return 2;
  }
  if (auto made = relaykv::MakeChannelCredentials(tls_files); tls_mode != "off" && !made.ok()) {
    std::fprintf(stderr, "--tls: %s\n", made.status().ToString().c_str());
    return 2;
  }
  std::vector<bool> tls_passes;
  if (tls_mode != "on") tls_passes.push_back(false);
  if (tls_mode != "off") tls_passes.push_back(true);
  if (!target.empty() && tls_mode == "on") lo.tls = tls_files;
  lo.duration_s = duration;
  lo.warmup_s = warmup;
  std::vector<std::string> transports = {"unary"};
  if (stream) transports.push_back("stream");
  if (stream_only) transports = {"stream"};
  if (async) transports.push_back("async");
  if (embedded && (stream || stream_only || async)) {
    std::fprintf(stderr, "--stream and --async measure gRPC writes: not with --embedded\n");
    return 2;
  }

  namespace fs = std::filesystem;
  if (relaykvd.empty()) relaykvd = (fs::canonical("/proc/self/exe").parent_path() / "relaykvd").string();
  if (work_dir.empty()) {
    work_dir = (fs::temp_directory_path() / ("relaykv-bench-" + std::to_string(::getpid()))).string();
  }
  fs::create_directories(work_dir);
  // Removed however main ends (an error return included), after every
  // Cluster in it has stopped its processes.
  struct RemoveOnExit {
    std::string dir;
    ~RemoveOnExit() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } remove_work_dir{work_dir};
  if (scan) {
    scan_options.value_size = lo.value_size;
    scan_options.repeat = app.count("--repeat") > 0 ? repeat : 3;  // median of 3 by default
    auto points = RunScan(relaykvd, work_dir, scan_options);
    if (points.empty()) return 1;
    PrintScan(scan_options, points, std::cout);
    return 0;
  }
  if (watchers > 0) {
    lo.clients = std::stoi(Split(clients).back());
    auto points = RunWatchers(relaykvd, work_dir, watchers, watch_prefix, lo, repeat, watchers_in_process);
    if (points.empty()) return 1;
    PrintWatchers(points, std::cout);
    return 0;
  }
  if (catchup > 0) {
    PrintCatchup(RunCatchup(relaykvd, work_dir, catchup, lo.value_size), std::cout);
    return 0;
  }

  Report report;
  report.settings = {{"duration_s", std::to_string(duration)}, {"warmup_s", std::to_string(warmup)},
                     {"keyspace", std::to_string(lo.keyspace)},
                     {"value_size", std::to_string(lo.value_size)}, {"clients", clients},
                     {"modes", modes}, {"replicas", std::to_string(replicas)},
                     {"wait_counts", wait_counts},
                     {"target", !target.empty() ? target : embedded ? "embedded" : "spawn"},
                     {"cores", std::to_string(std::thread::hardware_concurrency())},
                     {"repeat", std::to_string(repeat)}, {"tls", tls_mode}};
  std::fprintf(stderr, "measuring the floor in %s ...\n", work_dir.c_str());
  report.floor = MeasureFloor(work_dir, 500, tls_mode != "off" ? tls_files : relaykv::TlsOptions{});

  std::vector<int> client_counts;
  for (const auto& c : Split(clients)) client_counts.push_back(std::stoi(c));
  int exit_code = 0;

  // Repeats of a point alternate between the transports, so that both
  // see the same drift of this shared machine's load.
  std::unique_ptr<relaykv::Client> stream_client;
  if (!target.empty()) {
    for (int c : client_counts) {
      lo.clients = c;
      std::map<std::string, std::vector<Run>> tries;
      for (int i = 0; i < repeat; ++i) {
        for (const std::string& t : transports) {
          Run run = Measure(target, ForTransport(lo, t, target, &stream_client), "target", 0, 0,
                            nullptr, work_dir);
          run.transport = t;
          tries[t].push_back(std::move(run));
        }
      }
      for (const std::string& t : transports) report.runs.push_back(MedianRun(std::move(tries[t])));
    }
  } else {
    bool reads_done = !reads || embedded;  // embedded clients only write
    for (const std::string& mode : Split(modes)) {
      const bool semi = mode == "after_sync" || mode == "after_commit";
      if (!semi && mode != "none" && mode != "async") {
        std::fprintf(stderr, "unknown mode '%s'\n", mode.c_str());
        return 2;
      }
      for (const std::string& wc_text : semi ? Split(wait_counts) : std::vector<std::string>{"0"}) {
        const int wc = std::stoi(wc_text);
        const int n = mode == "none" ? 0 : replicas;
        if (semi && wc > n) {
          std::fprintf(stderr, "skipping %s with wait count %d: only %d replicas\n", mode.c_str(), wc, n);
          continue;
        }
        // One cluster per TLS pass, side by side: with --tls both the
        // repeats alternate plaintext and TLS, so that a drifting machine
        // (other load, disk) weighs on both alike.
        struct Pass {
          bool tls;
          std::unique_ptr<Cluster> cluster;
        };
        std::vector<Pass> passes;
        for (const bool tls : tls_passes) {
          const relaykv::TlsOptions client_tls = tls ? tls_files : relaykv::TlsOptions{};
          std::vector<std::string> pflags;
          if (semi) {
            pflags = {"--rpl_semi_sync_master_enabled=ON",
                      "--rpl_semi_sync_master_wait_point=" + std::string(mode == "after_sync" ? "AFTER_SYNC" : "AFTER_COMMIT"),
                      "--rpl_semi_sync_master_wait_for_slave_count=" + std::to_string(wc)};
          }
          std::vector<std::string> rflags = {"--rpl_semi_sync_slave_enabled=ON"};
          if (tls) {
            for (auto* flags : {&pflags, &rflags}) {
              flags->insert(flags->end(), {"--ssl-ca=" + tls_files.ca, "--ssl-cert=" + tls_files.cert,
                                           "--ssl-key=" + tls_files.key,
                                           "--require_secure_transport=ON"});
            }
            rflags.insert(rflags.end(), {"--master-ssl-ca=" + tls_files.ca,
                                         "--master-ssl-cert=" + tls_files.cert,
                                         "--master-ssl-key=" + tls_files.key});
          }
          const fs::path cluster_dir = fs::path(work_dir) / (mode + (tls ? "-tls" : ""));
          auto cluster = embedded ? Cluster::StartEmbedded(relaykvd, cluster_dir, n, Variables(pflags), rflags)
                                  : Cluster::Start(relaykvd, cluster_dir, n, pflags, rflags);
          if (!cluster.ok()) {
            std::fprintf(stderr, "cannot start the %s cluster: %s\n", mode.c_str(),
                         cluster.status().ToString().c_str());
            return 1;
          }
          if (relaykv::Node* node = (*cluster)->embedded()) {
            lo.put_async = [node](std::string key, std::string value, LoadOptions::PutDone done) {
              std::vector<relaykv::Mutation> m{relaykv::Mutation::Put(std::move(key), std::move(value))};
              node->WriteAsync(std::move(m), relaykv::WriteOptions(),
                               [done = std::move(done)](absl::StatusOr<relaykv::Gtid> g) { done(g.status()); });
            };
          }
          if (semi && !WaitForSemiSyncClients((*cluster)->primary_address(), client_tls,
                                              static_cast<uint64_t>(n))) {
            std::fprintf(stderr, "replicas did not connect as semi-sync replicas\n");
            return 1;
          }
          passes.push_back({tls, *std::move(cluster)});
        }
        // One pipelined client per cluster (its TLS), made on first use.
        std::vector<std::unique_ptr<relaykv::Client>> stream_clients(passes.size());
        for (int c : client_counts) {
          lo.clients = c;
          lo.reads = false;
          // Repeats alternate over every (TLS pass, transport) pair.
          std::map<std::pair<size_t, std::string>, std::vector<Run>> tries;
          for (int i = 0; i < repeat; ++i) {
            for (size_t p = 0; p < passes.size(); ++p) {
              lo.tls = passes[p].tls ? tls_files : relaykv::TlsOptions{};
              const Cluster& cluster = *passes[p].cluster;
              const std::string addr = cluster.primary_address();
              for (const std::string& t : transports) {
                Run run = Measure(addr, ForTransport(lo, t, addr, &stream_clients[p]), mode, n, wc,
                                  cluster.primary_process(), work_dir);
                run.transport = t;
                if (semi && run.no_tx > 0) {
                  std::fprintf(stderr,
                               "WARNING: %s%s at %d clients fell back to async for %llu commits\n",
                               mode.c_str(), t == "unary" ? "" : (" (" + t + ")").c_str(), c,
                               static_cast<unsigned long long>(run.no_tx));
                  exit_code = 3;
                }
                tries[{p, t}].push_back(std::move(run));
              }
            }
          }
          for (size_t p = 0; p < passes.size(); ++p) {
            for (const std::string& t : transports) {
              report.runs.push_back(MedianRun(std::move(tries[{p, t}])));
            }
          }
        }
        if (!reads_done) {
          const Pass& first = passes.front();
          lo.tls = first.tls ? tls_files : relaykv::TlsOptions{};
          lo.clients = client_counts.back();
          lo.reads = true;
          report.runs.push_back(Measure(first.cluster->primary_address(), lo, "reads", n, 0,
                                        first.cluster->primary_process(), work_dir));
          reads_done = true;
        }
      }
    }
  }
  PrintTable(report, std::cout);
  if (!json.empty()) {
    if (auto s = WriteJson(report, json); !s.ok()) std::cerr << s << "\n";
  }
  if (!csv.empty()) {
    if (auto s = WriteCsv(report, csv); !s.ok()) std::cerr << s << "\n";
  }
  if (!plot.empty()) {
    if (auto s = WritePlot(report, plot, cdf_clients); !s.ok()) std::cerr << "plot: " << s << "\n";
  }
  return exit_code;
}
