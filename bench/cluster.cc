#include "bench/cluster.h"

#include <sys/prctl.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

namespace relaykv::bench {
namespace fs = std::filesystem;

absl::StatusOr<std::unique_ptr<Process>> Process::Start(const std::string& binary,
                                                        const fs::path& data_dir,
                                                        std::vector<std::string> args) {
  fs::create_directories(data_dir);
  const fs::path addr_file = data_dir / "relaykvd.addr";
  fs::remove(addr_file);
  args.insert(args.begin(), {binary, "--data-dir", data_dir.string(), "--listen", "127.0.0.1:0"});
  const std::string log = (data_dir / "relaykvd.log").string();
  // Built before fork(): the child of a threaded process (an embedded
  // primary runs threads) may only make system calls until execv.
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // no orphaned relaykvd if the bench dies
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 2);
      ::dup2(fd, 1);
    }
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(addr_file);
    std::string address;
    if (in && std::getline(in, address) && !address.empty()) {
      return std::unique_ptr<Process>(new Process(pid, address));
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      return absl::UnavailableError("relaykvd exited during startup; see " + log);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return absl::DeadlineExceededError("relaykvd did not start within 30 s; see " + log);
}

Process::~Process() {
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 1000; ++i) {
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

long Process::rss_kb() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      long kb = 0;
      in >> kb;
      return kb;
    }
  }
  return 0;
}

absl::StatusOr<std::unique_ptr<Cluster>> Cluster::Start(const std::string& relaykvd,
                                                        const fs::path& root, int replicas,
                                                        const std::vector<std::string>& primary_flags,
                                                        const std::vector<std::string>& replica_flags) {
  auto c = std::make_unique<Cluster>();
  c->root_ = root;
  fs::remove_all(root);
  auto primary = Process::Start(relaykvd, root / "primary", primary_flags);
  if (!primary.ok()) return primary.status();
  c->primary_ = *std::move(primary);
  c->primary_address_ = c->primary_->address();
  if (auto s = c->StartReplicas(relaykvd, replicas, replica_flags); !s.ok()) return s;
  return c;
}

absl::StatusOr<std::unique_ptr<Cluster>> Cluster::StartEmbedded(
    const std::string& relaykvd, const fs::path& root, int replicas,
    const std::vector<std::pair<std::string, std::string>>& primary_variables,
    const std::vector<std::string>& replica_flags) {
  auto c = std::make_unique<Cluster>();
  c->root_ = root;
  fs::remove_all(root);
  NodeOptions options;
  options.data_dir = root / "primary";
  options.listen_address = "127.0.0.1:0";
  options.variables = primary_variables;
  auto node = Node::Open(options);
  if (!node.ok()) return node.status();
  c->embedded_ = *std::move(node);
  c->primary_address_ = "127.0.0.1:" + std::to_string(c->embedded_->bound_port());
  if (auto s = c->StartReplicas(relaykvd, replicas, replica_flags); !s.ok()) return s;
  return c;
}

absl::Status Cluster::StartReplicas(const std::string& relaykvd, int replicas,
                                    const std::vector<std::string>& replica_flags) {
  for (int i = 0; i < replicas; ++i) {
    std::vector<std::string> flags = replica_flags;
    flags.push_back("--server-id=" + std::to_string(i + 2));
    flags.push_back("--replicate-from=" + primary_address_);
    auto r = Process::Start(relaykvd, root_ / ("replica" + std::to_string(i + 1)), flags);
    if (!r.ok()) return r.status();
    replicas_.push_back(*std::move(r));
  }
  return absl::OkStatus();
}

Cluster::~Cluster() {
  replicas_.clear();
  primary_.reset();
  embedded_.reset();
  std::error_code ec;
  fs::remove_all(root_, ec);
}

}  // namespace relaykv::bench
