#include "bench/watchers.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "bench/cluster.h"
#include "relaykv/client.h"

namespace relaykv::bench {
namespace {

using Clock = std::chrono::steady_clock;

// N watchers of `prefix` (every key when empty) from now, counting the
// changes they receive.
class WatcherPool {
 public:
  WatcherPool(const std::string& target, const std::string& prefix, int n) {
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this, target, prefix] {
        auto client = Client::Connect({target});
        if (!client.ok()) {
          errors_++;
          started_++;
          return;
        }
        ClientWatchOptions o;
        o.progress_interval = std::chrono::milliseconds(100);
        bool first = true;
        absl::Status s = (*client)->Watch(WatchRange::Prefix(prefix), o, [&](const WatchBatch& b) {
          if (first) started_++;
          first = false;
          uint64_t n = 0;
          for (const WatchEvent& e : b.events) n += e.changes.size();
          changes_ += n;
          return !stop_.load();
        });
        if (first) started_++;
        if (!s.ok()) {
          errors_++;
          std::fprintf(stderr, "watcher: %s\n", s.ToString().c_str());
        }
      });
    }
    while (started_.load() < n) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ~WatcherPool() {
    stop_ = true;
    for (auto& t : threads_) t.join();
  }
  uint64_t changes() const { return changes_.load(); }
  uint64_t errors() const { return errors_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> started_{0};
  std::atomic<uint64_t> changes_{0};
  std::atomic<uint64_t> errors_{0};
  std::vector<std::thread> threads_;
};

// The same pool in a child process (relaykv-bench --watch-child), as
// watchers of a deployment are: in one process, gRPC's polling threads
// serve every connection, so watcher threads would also do the writers'
// transport work and the writers theirs. The child reports its counts on
// stdout ("changes errors", every 20 ms) and exits when its stdin closes.
class WatcherProcess {
 public:
  WatcherProcess(const std::string& target, const std::string& prefix, int n) {
    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0) {
      errors_ = 1;
      return;
    }
    if (::pipe2(from_child, O_CLOEXEC) != 0) {
      ::close(to_child[0]);
      ::close(to_child[1]);
      errors_ = 1;
      return;
    }
    // Built before fork(): the child of a threaded process may only make
    // system calls until execv.
    std::vector<std::string> args = {"/proc/self/exe", "--watch-child", target, "--watchers",
                                     std::to_string(n)};
    // One argument, so that a prefix starting with '-' stays a value.
    if (!prefix.empty()) args.push_back("--watch-prefix=" + prefix);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      ::dup2(to_child[0], 0);
      ::dup2(from_child[1], 1);
      // dup2 onto the same fd (a bench started with fd 0 or 1 closed got
      // that number for the pipe) keeps its close-on-exec flag: clear it.
      ::fcntl(0, F_SETFD, 0);
      ::fcntl(1, F_SETFD, 0);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    stdin_ = to_child[1];
    if (pid_ < 0) {
      ::close(from_child[0]);
      errors_ = 1;
      return;
    }
    reader_ = std::thread([this, fd = from_child[0]] { Read(fd); });
    std::unique_lock l(mu_);
    if (!cv_.wait_for(l, kStartLimit, [&] { return started_; })) {
      std::fprintf(stderr, "watcher process: its watchers did not start within %lld s\n",
                   static_cast<long long>(kStartLimit.count()));
      errors_ += 1;
      hung_ = true;
    }
  }
  ~WatcherProcess() {
    closing_ = true;
    if (hung_) ::kill(pid_, SIGKILL);  // stuck before its loop: closing stdin would not stop it
    if (stdin_ >= 0) ::close(stdin_);  // the child stops its watchers and exits
    if (reader_.joinable()) reader_.join();
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
  }
  uint64_t changes() const { return changes_.load(); }
  uint64_t errors() const { return errors_.load(); }

 private:
  void Read(int fd) {
    std::string buf;
    char chunk[4096];
    for (;;) {
      const ssize_t got = ::read(fd, chunk, sizeof chunk);
      if (got <= 0) break;
      buf.append(chunk, static_cast<size_t>(got));
      for (size_t nl; (nl = buf.find('\n')) != std::string::npos; buf.erase(0, nl + 1)) {
        unsigned long long c = 0, e = 0;
        if (std::sscanf(buf.c_str(), "%llu %llu", &c, &e) == 2) {
          changes_ = c;
          errors_ = e;
        }
        std::lock_guard l(mu_);
        started_ = true;  // the child reports once every watcher started
        cv_.notify_all();
      }
    }
    ::close(fd);
    std::lock_guard l(mu_);
    // Its stdout closed before it was told to stop: it died (crashed, was
    // killed), before its first report or after it — an error either way.
    if (!closing_) errors_ += 1;
    started_ = true;
    cv_.notify_all();
  }

  static constexpr std::chrono::seconds kStartLimit{30};
  pid_t pid_ = -1;
  int stdin_ = -1;
  bool hung_ = false;  // did not report within kStartLimit
  std::atomic<bool> closing_{false};  // the destructor is stopping the child
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false;  // guarded by mu_
  std::atomic<uint64_t> changes_{0};
  std::atomic<uint64_t> errors_{0};
};

struct Try {
  double commits_per_s = 0, changes_per_s = 0, p50_us = 0, p99_us = 0;
  uint64_t errors = 0;
};

// Watchers in this process or a child, behind one face.
struct Watchers {
  std::unique_ptr<WatcherPool> here;
  std::unique_ptr<WatcherProcess> child;
  uint64_t changes() const { return here ? here->changes() : child->changes(); }
  uint64_t errors() const { return here ? here->errors() : child->errors(); }
};

Try MeasureOnce(const std::string& target, const std::string& prefix, LoadOptions lo, int watchers,
                bool in_process) {
  std::unique_ptr<Watchers> pool;
  if (watchers > 0) {
    pool = std::make_unique<Watchers>();
    if (in_process) {
      pool->here = std::make_unique<WatcherPool>(target, prefix, watchers);
    } else {
      pool->child = std::make_unique<WatcherProcess>(target, prefix, watchers);
    }
  }
  uint64_t changes_at_start = 0;
  Clock::time_point measuring_since{};
  bool measuring = false;
  lo.tick = [&](double, bool now_measuring) {
    if (now_measuring && !measuring && pool) {
      changes_at_start = pool->changes();
      measuring_since = Clock::now();
    }
    measuring = measuring || now_measuring;
  };
  LoadResult r = RunLoad(lo);
  Try t;
  t.commits_per_s = r.ops_per_s();
  t.p50_us = r.Percentile(50);
  t.p99_us = r.Percentile(99);
  if (pool) {
    const double s = std::chrono::duration<double>(Clock::now() - measuring_since).count();
    if (measuring && s > 0) t.changes_per_s = static_cast<double>(pool->changes() - changes_at_start) / s;
    t.errors = pool->errors();
  }
  return t;
}

}  // namespace

std::vector<WatchersPoint> RunWatchers(const std::string& relaykvd, const std::string& work_dir,
                                       int watchers, const std::string& prefix, LoadOptions lo,
                                       int repeat, bool in_process) {
  std::vector<WatchersPoint> out;
  const std::filesystem::path root = std::filesystem::path(work_dir) / "watchers";
  auto cluster = Cluster::Start(relaykvd, root, 1,
                                {"--rpl_semi_sync_master_enabled=ON",
                                 "--rpl_semi_sync_master_wait_point=AFTER_SYNC"},
                                {"--rpl_semi_sync_slave_enabled=ON"});
  if (!cluster.ok()) {
    std::fprintf(stderr, "cannot start the cluster: %s\n", cluster.status().ToString().c_str());
    return out;
  }
  const std::string target = (*cluster)->primary_address();
  lo.target = target;
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the replica connects
  std::vector<int> counts = {0, 1};
  if (watchers > 1) counts.push_back(watchers);
  // Repeats alternate over the watcher counts: a drifting machine weighs
  // on each alike.
  std::map<int, std::vector<Try>> tries;
  for (int i = 0; i < repeat; ++i) {
    for (int w : counts) {
      std::fprintf(stderr, "watchers %d, %d clients, try %d ...\n", w, lo.clients, i + 1);
      tries[w].push_back(MeasureOnce(target, prefix, lo, w, in_process));
    }
  }
  for (int w : counts) {
    auto& t = tries[w];
    std::sort(t.begin(), t.end(), [](const Try& a, const Try& b) { return a.commits_per_s < b.commits_per_s; });
    const Try& median = t[t.size() / 2];
    std::vector<double> changes;
    uint64_t errors = 0;
    for (const Try& x : t) {
      changes.push_back(x.changes_per_s);
      errors += x.errors;
    }
    std::sort(changes.begin(), changes.end());
    out.push_back({w, lo.clients, median.commits_per_s, changes[changes.size() / 2], median.p50_us,
                   median.p99_us, errors});
  }
  return out;
}

int RunWatcherChild(const std::string& target, const std::string& prefix, int n) {
  WatcherPool pool(target, prefix, n);
  for (;;) {
    std::printf("%llu %llu\n", static_cast<unsigned long long>(pool.changes()),
                static_cast<unsigned long long>(pool.errors()));
    std::fflush(stdout);
    pollfd in{0, POLLIN, 0};
    if (::poll(&in, 1, 20) != 0) break;  // stdin closed (or the parent wrote): stop
  }
  return pool.errors() == 0 ? 0 : 1;
}

void PrintWatchers(const std::vector<WatchersPoint>& points, std::ostream& out) {
  const double base = points.empty() ? 0 : points.front().commits_per_s;
  out << "AFTER_SYNC, 1 semi-sync replica: commits with watchers of every key (median)\n";
  out << "watchers  clients  commits/s  vs 0 watchers  p50 us  p99 us  changes/s delivered  per watcher  errors\n";
  for (const WatchersPoint& p : points) {
    char line[256];
    std::snprintf(line, sizeof line, "%8d  %7d  %9.0f  %12.1f%%  %6.0f  %6.0f  %19.0f  %11.0f  %6llu\n",
                  p.watchers, p.clients, p.commits_per_s,
                  base > 0 ? 100.0 * (p.commits_per_s - base) / base : 0.0, p.p50_us, p.p99_us,
                  p.changes_per_s, p.watchers > 0 ? p.changes_per_s / p.watchers : 0.0,
                  static_cast<unsigned long long>(p.watch_errors));
    out << line;
  }
}

}  // namespace relaykv::bench
