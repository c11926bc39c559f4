#include "tests/integration/coordinated_cluster.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

#include "tests/common/temp_dir.h"

namespace relaykv::testing {

using namespace std::chrono_literals;

int FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

LoopbackPortReservation::LoopbackPortReservation() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  const int on = 1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == 0 &&
      ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port_ = ntohs(a.sin_port);
  }
}

LoopbackPortReservation::LoopbackPortReservation(LoopbackPortReservation&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), port_(std::exchange(other.port_, 0)) {}

LoopbackPortReservation::~LoopbackPortReservation() {
  if (fd_ >= 0) ::close(fd_);
}

absl::StatusOr<std::unique_ptr<CoordinatedCluster>> CoordinatedCluster::Start(
    const std::filesystem::path& dir, Options options) {
  std::unique_ptr<CoordinatedCluster> c(new CoordinatedCluster());
  c->dir_ = dir;
  c->options_ = std::move(options);
  auto etcd = EtcdCluster::Start(dir / "etcd", 1);
  if (!etcd.ok()) return etcd.status();
  c->etcd_ = *std::move(etcd);
  const int n = c->options_.nodes;
  c->nodes_.resize(n);
  for (int i = 0; i < n; ++i) {
    c->ports_.emplace_back();
    if (c->ports_.back().port() == 0) return absl::InternalError("no loopback port to reserve");
    auto proxy = TcpProxy::Start(c->etcd_endpoint());
    if (!proxy.ok()) return proxy.status();
    c->proxies_.push_back(*std::move(proxy));
  }
  if (!c->StartNode(0)) return absl::InternalError("node 1 did not start");
  if (c->WaitForPrimary(30s) != 0) {
    return absl::InternalError("node 1 did not claim the new cluster: " + c->nodes_[0]->Log());
  }
  for (int i = 1; i < n; ++i) {
    if (!c->StartNode(i)) return absl::InternalError("node " + std::to_string(i + 1) + " did not start");
  }
  const bool followed = WaitFor(
      [&] {
        auto rows = c->nodes_[0]->client().ShowStatus("Rpl_semi_sync_master_clients");
        return rows.ok() && !rows->empty() && rows->begin()->second == std::to_string(n - 1);
      },
      30s);
  if (!followed) return absl::InternalError("the replicas did not connect as semi-sync replicas");
  return c;
}

std::vector<std::string> CoordinatedCluster::Flags(int i) const {
  std::vector<std::string> f = {
      "--server-id=" + std::to_string(i + 1),
      "--etcd=" + proxies_[i]->address(),
      "--cluster=test",
      "--lease-ttl=" + std::to_string(options_.lease_ttl_s),
      "--failover-min-interval=" + std::to_string(options_.failover_min_interval_s),
      "--rpl_semi_sync_master_enabled=ON",
      "--rpl_semi_sync_slave_enabled=ON",
      // Commits wait for their ACK (no async fallback within a test).
      "--rpl_semi_sync_master_timeout=600000",
  };
  if (i != 0) f.push_back("--replicate-from=127.0.0.1:" + std::to_string(ports_[0].port()));
  f.insert(f.end(), options_.extra_flags.begin(), options_.extra_flags.end());
  if (auto own = options_.node_flags.find(i); own != options_.node_flags.end()) {
    f.insert(f.end(), own->second.begin(), own->second.end());
  }
  return f;
}

bool CoordinatedCluster::StartNode(int i, std::vector<std::string> env) {
  nodes_[i] = Relaykvd::Start(dir_ / ("n" + std::to_string(i + 1)), Flags(i), ports_[i].port(), {},
                              std::move(env));
  return nodes_[i] != nullptr;
}

std::string CoordinatedCluster::Role(int i) {
  if (!running(i)) return "";
  auto rows = nodes_[i]->client().ShowStatus("Coordinator_role");
  if (!rows.ok() || rows->empty()) return "";
  return rows->begin()->second;
}

int CoordinatedCluster::WaitForPrimary(std::chrono::seconds timeout, int except) {
  int found = -1;
  WaitFor(
      [&] {
        for (int i = 0; i < size(); ++i) {
          if (i != except && Role(i) == "primary") found = i;
        }
        return found >= 0;
      },
      timeout);
  return found;
}

bool CoordinatedCluster::AllSame() {
  int first = -1;
  for (int i = 0; i < size(); ++i) {
    if (!running(i)) continue;
    if (first < 0) {
      first = i;
    } else if (!SameChecksum(*nodes_[first], *nodes_[i])) {
      return false;
    }
  }
  return true;
}

std::string CoordinatedCluster::Describe() {
  std::string out = "\n";
  for (int i = 0; i < size(); ++i) {
    out += "node " + std::to_string(i) + " (" + (nodes_[i] ? nodes_[i]->address() : "-") + "): ";
    if (!running(i)) {
      out += "not running\n";
      continue;
    }
    Relaykvd& n = *nodes_[i];
    out += "role '" + Role(i) + "'";
    if (auto c = n.Checksum(); c.ok()) {
      out += "; checksum at " + c->gtid.ToString() + " hash " + std::to_string(c->hash) + " versions " +
             std::to_string(c->versions_hash) + " keys " + std::to_string(c->keys);
    } else {
      out += "; checksum: " + c.status().ToString();
    }
    auto st = n.Status();
    out += "; applied " + st["Applied_gtid"] + " binlog " + st["Binlog_gtid"];
    auto rs = n.ReplicaStatus();
    if (!rs.empty()) {
      out += "; IO " + rs["Slave_IO_Running"] + " from port " + rs["Master_Port"] + " retrieved " +
             rs["Retrieved_Gtid_Set"] + " executed " + rs["Executed_Gtid_Set"] + " SQL " +
             rs["Slave_SQL_Running"] + " last IO error '" + rs["Last_IO_Error"] + "' last SQL error '" +
             rs["Last_SQL_Error"] + "'";
    }
    out += "\n";
  }
  return out;
}

}  // namespace relaykv::testing
