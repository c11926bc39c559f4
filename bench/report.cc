#include "bench/report.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

namespace relaykv::bench {
namespace {

std::string Fixed(double v, int digits = 1) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string Label(const Run& r) {
  std::string l = r.mode;
  if (r.mode == "after_sync" || r.mode == "after_commit") l += "/w" + std::to_string(r.wait_count);
  if (r.tls) l += "+tls";
  if (r.transport != "unary") l += "+" + r.transport;
  return l;
}

std::string FloorJson(const Floor& f) {
  return "{\"fdatasync_p50_us\": " + Fixed(f.fdatasync_p50_us) +
         ", \"grpc_rtt_p50_us\": " + Fixed(f.grpc_rtt_p50_us) +
         ", \"grpc_tls_rtt_p50_us\": " + Fixed(f.grpc_tls_rtt_p50_us) +
         ", \"semisync_floor_us\": " + Fixed(f.semisync_floor_us()) +
         ", \"fdatasync_prealloc_p50_us\": " + Fixed(f.fdatasync_prealloc_p50_us) + "}";
}

}  // namespace

double MedianKey(const Run& r) { return r.ratio_to_floor > 0 ? r.ratio_to_floor : r.ops_per_s; }

Run MedianRun(std::vector<Run> runs) {
  std::sort(runs.begin(), runs.end(),
            [](const Run& a, const Run& b) { return MedianKey(a) < MedianKey(b); });
  Run median = runs[runs.size() / 2];
  median.errors = 0;
  median.no_tx = 0;
  for (const Run& x : runs) {
    median.repeat_keys.push_back(MedianKey(x));
    // A failure or a fallback to async in any run stays visible.
    median.errors += x.errors;
    median.no_tx += x.no_tx;
  }
  return median;
}

void PrintTable(const Report& r, std::ostream& out) {
  out << "floor: fdatasync p50 " << Fixed(r.floor.fdatasync_p50_us) << " us, gRPC stream RTT p50 "
      << Fixed(r.floor.grpc_rtt_p50_us) << " us"
      << (r.floor.grpc_tls_rtt_p50_us > 0
              ? " (over mutual TLS " + Fixed(r.floor.grpc_tls_rtt_p50_us) + " us)"
              : std::string())
      << ", semi-sync floor "
      << Fixed(r.floor.semisync_floor_us()) << " us (fdatasync into preallocated space p50 "
      << Fixed(r.floor.fdatasync_prealloc_p50_us) << " us)\n";
  char line[512];
  std::snprintf(line, sizeof(line), "%-20s %4s %7s %10s %9s %9s %9s %9s %9s %8s %7s %7s %9s %8s\n",
                "mode", "repl", "clients", "ops/s", "p50_us", "p90_us", "p99_us", "p999_us",
                "max_us", "yes_tx", "no_tx", "errors", "floor_us", "x_floor");
  out << line;
  for (const Run& x : r.runs) {
    std::snprintf(line, sizeof(line),
                  "%-20s %4d %7d %10.0f %9.0f %9.0f %9.0f %9.0f %9.0f %8llu %7llu %7llu %9s %8s\n",
                  Label(x).c_str(), x.replicas, x.clients, x.ops_per_s, x.p50_us, x.p90_us,
                  x.p99_us, x.p999_us, x.max_us, static_cast<unsigned long long>(x.yes_tx),
                  static_cast<unsigned long long>(x.no_tx), static_cast<unsigned long long>(x.errors),
                  x.floor_us > 0 ? Fixed(x.floor_us, 0).c_str() : "-",
                  x.ratio_to_floor > 0 ? Fixed(x.ratio_to_floor, 2).c_str() : "-");
    out << line;
  }
  // With --tls both: what TLS costs at each point measured both ways.
  for (const Run& t : r.runs) {
    if (!t.tls) continue;
    for (const Run& p : r.runs) {
      if (p.tls || p.mode != t.mode || p.wait_count != t.wait_count || p.clients != t.clients ||
          p.transport != t.transport || p.ops_per_s <= 0) {
        continue;
      }
      std::snprintf(line, sizeof(line),
                    "tls cost: %s at %d clients: %.0f ops/s plaintext, %.0f with mTLS (%.2f of "
                    "plaintext, %+.1f%%); p50 %.0f -> %.0f us\n",
                    Label(p).c_str(), p.clients, p.ops_per_s, t.ops_per_s, t.ops_per_s / p.ops_per_s,
                    100.0 * (t.ops_per_s / p.ops_per_s - 1), p.p50_us, t.p50_us);
      out << line;
    }
  }
  out << "x_floor: p50 at one client over the floor measured right before and after that run "
         "(the lower of the two): 2 x fdatasync + RTT for semi-sync, 1 x fdatasync otherwise\n";
  for (const Run& x : r.runs) {
    if (x.repeat_keys.size() < 2) continue;
    out << "each point is the median of " << x.repeat_keys.size()
        << " runs: by x_floor at one client, by ops/s otherwise (every run's figure is in the "
           "JSON); errors and no_tx are summed over the runs\n";
    break;
  }
}

absl::Status WriteJson(const Report& r, const std::string& path) {
  std::ofstream out(path);
  if (!out) return absl::UnavailableError("cannot write " + path);
  out << "{\n  \"floor\": " << FloorJson(r.floor) << ",\n  \"runs\": [";
  for (size_t i = 0; i < r.runs.size(); ++i) {
    const Run& x = r.runs[i];
    out << (i ? "," : "") << "\n    {\"mode\": \"" << x.mode << "\", \"replicas\": " << x.replicas
        << ", \"wait_count\": " << x.wait_count << ", \"clients\": " << x.clients
        << ", \"tls\": " << (x.tls ? "true" : "false")
        << ", \"ops_per_s\": " << Fixed(x.ops_per_s) << ", \"p50_us\": " << Fixed(x.p50_us)
        << ", \"p90_us\": " << Fixed(x.p90_us) << ", \"p99_us\": " << Fixed(x.p99_us)
        << ", \"p999_us\": " << Fixed(x.p999_us) << ", \"max_us\": " << Fixed(x.max_us)
        << ", \"yes_tx\": " << x.yes_tx << ", \"no_tx\": " << x.no_tx
        << ", \"tx_avg_wait_time_us\": " << x.tx_avg_wait_time_us << ", \"errors\": " << x.errors
        << ", \"rss_start_kb\": " << x.rss_start_kb << ", \"rss_peak_kb\": " << x.rss_peak_kb
        << ", \"rss_end_kb\": " << x.rss_end_kb << ", \"transport\": \"" << x.transport << "\""
        << ", \"p50_to_floor\": " << Fixed(x.ratio_to_floor, 3)
        << ", \"floor_us\": " << Fixed(x.floor_us);
    if (x.floor_us > 0) out << ", \"floor\": " << FloorJson(x.floor);
    if (x.repeat_keys.size() > 1) {
      out << ", \"median_of\": [";
      for (size_t k = 0; k < x.repeat_keys.size(); ++k) {
        out << (k ? ", " : "") << Fixed(x.repeat_keys[k], x.ratio_to_floor > 0 ? 3 : 1);
      }
      out << "]";
    }
    out << "}";
  }
  out << "\n  ],\n  \"settings\": {";
  bool first = true;
  for (const auto& [k, v] : r.settings) {
    out << (first ? "" : ", ") << "\"" << k << "\": \"" << v << "\"";
    first = false;
  }
  out << "}\n}\n";
  return out ? absl::OkStatus() : absl::UnavailableError("cannot write " + path);
}

absl::Status WriteCsv(const Report& r, const std::string& path) {
  std::ofstream out(path);
  if (!out) return absl::UnavailableError("cannot write " + path);
  out << "mode,replicas,wait_count,clients,ops_per_s,p50_us,p90_us,p99_us,p999_us,max_us,yes_tx,"
         "no_tx,tx_avg_wait_time_us,errors,rss_start_kb,rss_peak_kb,rss_end_kb,p50_to_floor,"
         "floor_us,fdatasync_p50_us,grpc_rtt_p50_us,semisync_floor_us,fdatasync_prealloc_p50_us,"
         "transport\n";
  for (const Run& x : r.runs) {
    out << x.mode << "," << x.replicas << "," << x.wait_count << "," << x.clients << ","
        << Fixed(x.ops_per_s) << "," << Fixed(x.p50_us) << "," << Fixed(x.p90_us) << ","
        << Fixed(x.p99_us) << "," << Fixed(x.p999_us) << "," << Fixed(x.max_us) << "," << x.yes_tx
        << "," << x.no_tx << "," << x.tx_avg_wait_time_us << "," << x.errors << ","
        << x.rss_start_kb << "," << x.rss_peak_kb << "," << x.rss_end_kb << ","
        << Fixed(x.ratio_to_floor, 3) << "," << Fixed(x.floor_us) << ",";
    // The floor this run was compared with, else the one measured at the start.
    const Floor& f = x.floor_us > 0 ? x.floor : r.floor;
    out << Fixed(f.fdatasync_p50_us) << "," << Fixed(f.grpc_rtt_p50_us) << ","
        << Fixed(f.semisync_floor_us()) << "," << Fixed(f.fdatasync_prealloc_p50_us) << ","
        << x.transport << "\n";
  }
  return out ? absl::OkStatus() : absl::UnavailableError("cannot write " + path);
}

absl::Status WritePlot(const Report& r, const std::string& png, int cdf_clients) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    return absl::UnavailableError("gnuplot is not installed (apt-get install gnuplot-nox); no plot");
  }
  const std::filesystem::path dir = std::filesystem::path(png).parent_path().empty()
                                        ? std::filesystem::path(".")
                                        : std::filesystem::path(png).parent_path();
  std::set<std::string> labels;
  for (const Run& x : r.runs) {
    if (x.mode != "reads") labels.insert(Label(x));
  }
  std::string sweep_plot, p99_plot, cdf_plot;
  int i = 0;
  // Labels like "after_sync/w1" name data files: no '/' in file names.
  auto file_of = [&](const std::string& l, const std::string& ext) {
    std::string f = l;
    std::replace(f.begin(), f.end(), '/', '-');
    return dir / (".bench-" + f + ext);
  };
  for (const std::string& l : labels) {
    const auto data = file_of(l, ".dat");
    std::ofstream d(data);
    for (const Run& x : r.runs) {
      if (Label(x) == l) d << x.clients << " " << x.ops_per_s << " " << x.p99_us << "\n";
    }
    const auto cdf = file_of(l, ".cdf");
    std::ofstream c(cdf);
    for (const Run& x : r.runs) {
      if (Label(x) != l || x.clients != cdf_clients) continue;
      for (const auto& [us, frac] : x.cdf) c << us << " " << frac << "\n";
    }
    std::string sep = i++ ? ", " : "";
    sweep_plot += sep + "'" + data.string() + "' using 1:2 with linespoints title '" + l + "'";
    p99_plot += sep + "'" + data.string() + "' using 1:3 with linespoints title '" + l + "'";
    cdf_plot += sep + "'" + cdf.string() + "' using 1:2 with lines title '" + l + "'";
  }
  const auto script = dir / ".bench-plot.gp";
  std::ofstream gp(script);
  gp << "set terminal pngcairo size 1500,480 noenhanced\nset output '" << png << "'\n"
     << "set multiplot layout 1,3\nset logscale x 2\nset grid\nset key left top\n"
     << "set xlabel 'clients'\nset ylabel 'commits/s'\nset title 'throughput'\nplot " << sweep_plot
     << "\nset ylabel 'p99 latency (us)'\nset title 'p99 latency'\nplot " << p99_plot
     << "\nunset logscale x\nset logscale x 10\nset xlabel 'latency (us)'\nset ylabel 'fraction'\n"
     << "set key right bottom\nset title 'latency CDF at " << cdf_clients << " clients'\nplot "
     << cdf_plot << "\nunset multiplot\n";
  gp.close();
  const std::string cmd = "gnuplot '" + script.string() + "'";
  if (std::system(cmd.c_str()) != 0) return absl::InternalError("gnuplot failed on " + script.string());
  for (const std::string& l : labels) {
    std::filesystem::remove(file_of(l, ".dat"));
    std::filesystem::remove(file_of(l, ".cdf"));
  }
  std::filesystem::remove(script);
  return absl::OkStatus();
}

}  // namespace relaykv::bench
