// A real etcd and N relaykvd processes with --etcd/--cluster (automatic
// failover, server/coordinator.h), for the failover and nemesis tests. Node
// 0 is started as the first primary, the others with --replicate-from it.
// Every node keeps its port for life (a restart, or the node re-executing
// itself to rejoin, finds its address again), and reaches etcd through its
// own TcpProxy, so a test can cut one node off from etcd only.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tests/common/etcd_process.h"
#include "tests/common/tcp_proxy.h"
#include "tests/integration/process.h"

namespace relaykv::testing {

// A port the OS gives now on 127.0.0.1 (free when returned).
int FreeLoopbackPort();

// Holds a 127.0.0.1 port for a process started later, and for its restarts:
// a socket bound with SO_REUSEADDR and never listening. Linux lets another
// SO_REUSEADDR socket (gRPC's listener) bind and listen on that port, while
// outgoing connections and other binds, port 0 included, pass it over. A
// port that is only free when picked can be taken by any connection's
// ephemeral port before the node binds it ("Address already in use").
class LoopbackPortReservation {
 public:
  LoopbackPortReservation();  // port() is 0 if the OS gave none
  LoopbackPortReservation(LoopbackPortReservation&& other) noexcept;
  LoopbackPortReservation& operator=(LoopbackPortReservation&&) = delete;
  ~LoopbackPortReservation();
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class CoordinatedCluster {
 public:
  struct Options {
    int nodes = 3;
    int lease_ttl_s = 3;
    int failover_min_interval_s = 0;
    std::vector<std::string> extra_flags;  // for every node
    std::map<int, std::vector<std::string>> node_flags;  // for node i only
  };
  // Starts etcd, then node 0 (waits until it leads), then the others (waits
  // until the primary counts them as semi-sync replicas).
  static absl::StatusOr<std::unique_ptr<CoordinatedCluster>> Start(
      const std::filesystem::path& dir, Options options);

  int size() const { return static_cast<int>(nodes_.size()); }
  Relaykvd& node(int i) { return *nodes_[i]; }
  bool running(int i) const { return nodes_[i] != nullptr && nodes_[i]->running(); }
  TcpProxy& etcd_link(int i) { return *proxies_[i]; }
  EtcdCluster& etcd() { return *etcd_; }
  std::string etcd_endpoint() const { return etcd_->client_endpoints()[0]; }

  // (Re)starts node i with its flags and port (and `env` added to its
  // environment); false if it did not listen.
  bool StartNode(int i, std::vector<std::string> env = {});
  // SHOW STATUS Coordinator_role ("" if the node does not answer).
  std::string Role(int i);
  // The node that says it leads, once one does; -1 if none by `timeout`.
  int WaitForPrimary(std::chrono::seconds timeout, int except = -1);
  // Every running node has the same checksum.
  bool AllSame();
  // For a failed wait: each running node's role, checksum and replication
  // state, one line each (its log's tail is mostly the waits' own audits).
  std::string Describe();

 private:
  CoordinatedCluster() = default;
  std::vector<std::string> Flags(int i) const;

  std::filesystem::path dir_;
  Options options_;
  std::unique_ptr<EtcdCluster> etcd_;
  std::vector<std::unique_ptr<TcpProxy>> proxies_;
  std::vector<std::unique_ptr<Relaykvd>> nodes_;
  std::vector<LoopbackPortReservation> ports_;
};

}  // namespace relaykv::testing
