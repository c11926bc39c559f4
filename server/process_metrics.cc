#include "server/process_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace relaykv {
namespace {

// /proc/self/stat's fields after the command name (which may hold spaces
// and parentheses: split after its last ')'). fields[0] is field 3 (state).
std::vector<std::string> StatFields() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return {};
  const auto close = line.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(line.substr(close + 1));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;
}

// Boot time, seconds since the epoch (/proc/stat btime), or -1.
double BootTimeSeconds() {
  std::ifstream in("/proc/stat");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("btime ", 0) == 0) return std::stod(line.substr(6));
  }
  return -1;
}

}  // namespace

void AppendProcessMetrics(Exposition* out) {
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  const std::vector<std::string> f = StatFields();
  // Field n of proc(5) is f[n - 3].
  if (f.size() >= 22 && ticks > 0) {
    const double utime = std::stod(f[14 - 3]), stime = std::stod(f[15 - 3]);
    out->Family("process_cpu_seconds_total", Exposition::Type::kCounter,
                "Total user and system CPU time spent in seconds.");
    out->Sample("process_cpu_seconds_total", {}, (utime + stime) / ticks);
    out->Gauge("process_threads", "Number of OS threads in the process.", std::stod(f[20 - 3]));
    out->Gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", std::stod(f[23 - 3]));
    out->Gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
               std::stod(f[24 - 3]) * page);
    if (const double boot = BootTimeSeconds(); boot >= 0) {
      out->Gauge("process_start_time_seconds",
                 "Start time of the process since unix epoch in seconds.",
                 boot + std::stod(f[22 - 3]) / ticks);
    }
  }
  std::error_code ec;
  uint64_t fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++fds;
  }
  if (!ec) {
    // The iterator's own descriptor is counted too; it is open while we count.
    out->Gauge("process_open_fds", "Number of open file descriptors.", static_cast<double>(fds));
  }
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    out->Gauge("process_max_fds", "Maximum number of open file descriptors.",
               static_cast<double>(nofile.rlim_cur));
  }
}

}  // namespace relaykv
