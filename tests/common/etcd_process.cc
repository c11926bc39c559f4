#include "tests/common/etcd_process.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include "tests/common/http_get.h"
#include "tests/common/spawn.h"

namespace relaykv::testing {
namespace fs = std::filesystem;
namespace {

// `n` distinct free ports on 127.0.0.1: all sockets are held until every
// port is chosen, so no two are the same; then released for etcd to bind.
std::vector<int> FreePorts(int n) {
  std::vector<int> fds;
  std::vector<int> ports;
  for (int i = 0; i < n; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    socklen_t len = sizeof(sa);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
      if (fd >= 0) ::close(fd);
      ports.push_back(0);  // etcd will fail to bind; the start is retried
      continue;
    }
    fds.push_back(fd);
    ports.push_back(ntohs(sa.sin_port));
  }
  for (int fd : fds) ::close(fd);
  return ports;
}

std::string Tail(const fs::path& p, size_t max_bytes = 4000) {
  std::ifstream in(p);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  if (text.size() > max_bytes) text = "..." + text.substr(text.size() - max_bytes);
  return text;
}

bool Exited(pid_t pid, int* status) { return ::waitpid(pid, status, WNOHANG) == pid; }

}  // namespace

std::string EtcdBinary() {
  if (const char* bin = std::getenv("RELAYKV_ETCD_BIN"); bin != nullptr && *bin != '\0') {
    return ::access(bin, X_OK) == 0 ? bin : "";
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  dirs += ":/usr/bin:/usr/local/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    if (end > start) {
      const std::string candidate = dirs.substr(start, end - start) + "/etcd";
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    start = end + 1;
  }
  return "";
}

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(const fs::path& dir, int members,
                                                                std::chrono::milliseconds timeout) {
  if (EtcdBinary().empty()) return absl::FailedPreconditionError("etcd binary not found");
  if (members < 1) return absl::InvalidArgumentError("etcd cluster needs at least one member");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  absl::Status last;
  // A port taken between FreePorts() and etcd's bind fails the start: retry
  // on fresh ports and a fresh data dir.
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::unique_ptr<EtcdCluster> c(new EtcdCluster());
    c->dir_ = dir / ("etcd-" + std::to_string(attempt));
    fs::create_directories(c->dir_);
    std::random_device rd;
    c->token_ = "relaykv-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd());
    const std::vector<int> ports = FreePorts(2 * members);
    for (int i = 0; i < members; ++i) {
      Member m;
      m.name = "m" + std::to_string(i);
      m.client_port = ports[2 * i];
      m.peer_port = ports[2 * i + 1];
      m.data_dir = c->dir_ / m.name;
      m.log = c->dir_ / (m.name + ".log");
      c->members_.push_back(std::move(m));
    }
    for (int i = 0; i < members; ++i) c->Launch(i);
    last = absl::OkStatus();
    for (int i = 0; i < members && last.ok(); ++i) last = c->WaitHealthy(i, deadline);
    if (last.ok()) return c;
    // Not started: a bind race is retried, anything else too (the message
    // of the last attempt is returned if none works).
    if (std::chrono::steady_clock::now() >= deadline) break;
  }
  return last;
}

EtcdCluster::~EtcdCluster() {
  for (int i = 0; i < size(); ++i) {
    if (members_[i].pid > 0) {
      ResumeMember(i);  // a paused member cannot handle SIGTERM
      StopMember(i);
    }
  }
}

std::string EtcdCluster::client_endpoint(int i) const {
  return "127.0.0.1:" + std::to_string(members_[i].client_port);
}

std::vector<std::string> EtcdCluster::client_endpoints() const {
  std::vector<std::string> out;
  for (int i = 0; i < size(); ++i) out.push_back(client_endpoint(i));
  return out;
}

void EtcdCluster::Launch(int i) {
  Member& m = members_[i];
  const std::string peer_url = "http://127.0.0.1:" + std::to_string(m.peer_port);
  const std::string client_url = "http://" + client_endpoint(i);
  std::string initial_cluster;
  for (const Member& o : members_) {
    if (!initial_cluster.empty()) initial_cluster += ",";
    initial_cluster += o.name + "=http://127.0.0.1:" + std::to_string(o.peer_port);
  }
  std::vector<std::string> args = {
      EtcdBinary(), "--name", m.name, "--data-dir", m.data_dir.string(),
      "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
      "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
      "--initial-cluster", initial_cluster, "--initial-cluster-token", token_,
      // A restart finds its data dir and ignores the --initial-* flags.
      "--initial-cluster-state", "new",
      "--logger", "zap", "--log-outputs", "stderr"};
  m.pid = Spawn(std::move(args), "/dev/null", "/dev/null", m.log.string(), /*append_err=*/true);
}

bool EtcdCluster::Healthy(int i) const {
  if (members_[i].pid <= 0) return false;
  const HttpReply r =
      SendRawHttp(client_endpoint(i),
                  "GET /health HTTP/1.1\r\nHost: " + client_endpoint(i) +
                      "\r\nConnection: close\r\n\r\n",
                  std::chrono::seconds(2));
  return r.status == 200 && r.body.find("\"health\":\"true\"") != std::string::npos;
}

absl::Status EtcdCluster::WaitHealthy(int i, std::chrono::steady_clock::time_point deadline) {
  Member& m = members_[i];
  while (true) {
    int status = 0;
    if (m.pid > 0 && Exited(m.pid, &status)) {
      m.pid = -1;
      return absl::UnavailableError(
          "etcd member " + m.name + " exited during startup (" +
          (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                             : "signal " + std::to_string(WTERMSIG(status))) +
          "); log " + m.log.string() + ":\n" + Tail(m.log));
    }
    if (m.pid <= 0) return absl::FailedPreconditionError("etcd member " + m.name + " not running");
    if (Healthy(i)) return absl::OkStatus();
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::DeadlineExceededError("etcd member " + m.name + " on " + client_endpoint(i) +
                                         " not healthy in time; log " + m.log.string() + ":\n" +
                                         Tail(m.log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void EtcdCluster::StopMember(int i, std::chrono::milliseconds grace) {
  Member& m = members_[i];
  if (m.pid <= 0) return;
  ::kill(m.pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  int status = 0;
  while (!Exited(m.pid, &status)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(m.pid, SIGKILL);
      ::waitpid(m.pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  m.pid = -1;
}

void EtcdCluster::KillMember(int i) {
  Member& m = members_[i];
  if (m.pid <= 0) return;
  ::kill(m.pid, SIGKILL);
  ::waitpid(m.pid, nullptr, 0);
  m.pid = -1;
}

void EtcdCluster::PauseMember(int i) {
  StopAndWaitStopped(members_[i].pid);
}

void EtcdCluster::ResumeMember(int i) {
  if (members_[i].pid > 0) ::kill(members_[i].pid, SIGCONT);
}

absl::Status EtcdCluster::RestartMember(int i, std::chrono::milliseconds timeout) {
  if (members_[i].pid > 0) {
    return absl::FailedPreconditionError("etcd member " + members_[i].name + " is running");
  }
  Launch(i);
  return WaitHealthy(i, std::chrono::steady_clock::now() + timeout);
}

std::string EtcdCluster::Log(int i) const { return Tail(members_[i].log, 1 << 20); }

}  // namespace relaykv::testing
