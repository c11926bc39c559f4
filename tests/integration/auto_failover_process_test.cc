// Automatic failover through etcd (server/coordinator.h, issue 16): a real
// etcd and three relaykvd processes with --etcd/--cluster. A killed primary
// is replaced by the most advanced replica without losing an acknowledged
// write; the old primary comes back as a replica, truncating a tail no
// replica ACKed (kept in a quarantine file); a primary paused past its lease
// fences itself and rejoins. Data is checked by key, value and checksum.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "gtest/gtest.h"
#include "tests/common/etcd_process.h"
#include "tests/common/temp_dir.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kNodes = 3;

// A port the OS gives now: a node re-executes itself (rejoin) and must find
// its address again, so the ports are fixed from the first start.
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
constexpr int kLeaseTtlS = 3;

class AutoFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RELAYKV_SKIP_WITHOUT_ETCD();
    auto etcd = EtcdCluster::Start(dir_.path() / "etcd", 1);
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    etcd_ = *std::move(etcd);
    nodes_.resize(kNodes);
    for (int i = 0; i < kNodes; ++i) ports_.push_back(FreeLoopbackPort());
    StartNode(0);
    ASSERT_NE(nodes_[0], nullptr);
    ASSERT_TRUE(WaitFor([&] { return Role(0) == "primary"; }, 30s)) << nodes_[0]->Log();
    for (int i = 1; i < kNodes; ++i) {
      StartNode(i);
      ASSERT_NE(nodes_[i], nullptr);
    }
    ASSERT_TRUE(WaitFor([&] { return SemiSyncClients(0) == kNodes - 1; }, 30s))
        << nodes_[1]->Log() << nodes_[2]->Log();
  }

  std::vector<std::string> Flags(int i) const {
    std::vector<std::string> f = {
        "--server-id=" + std::to_string(i + 1),
        "--etcd=" + etcd_->client_endpoints()[0],
        "--cluster=test",
        "--lease-ttl=" + std::to_string(kLeaseTtlS),
        "--failover-min-interval=0",
        "--rpl_semi_sync_master_enabled=ON",
        "--rpl_semi_sync_slave_enabled=ON",
        // Commits wait for their ACK; a timeout would release them async.
        "--rpl_semi_sync_master_timeout=600000",
    };
    if (i != 0) f.push_back("--replicate-from=" + nodes_[0]->address());
    return f;
  }

  // Always on its own port (a restart keeps its address).
  void StartNode(int i) {
    nodes_[i] = Relaykvd::Start(dir_.path() / ("n" + std::to_string(i + 1)), Flags(i), ports_[i]);
  }

  std::string Role(int i) {
    if (nodes_[i] == nullptr || !nodes_[i]->running()) return "";
    auto rows = nodes_[i]->client().ShowStatus("Coordinator_role");
    if (!rows.ok() || rows->empty()) return "";
    return rows->begin()->second;
  }
  int SemiSyncClients(int i) {
    auto rows = nodes_[i]->client().ShowStatus("Rpl_semi_sync_master_clients");
    if (!rows.ok() || rows->empty()) return -1;
    return std::stoi(rows->begin()->second);
  }
  // The node that says it is the primary, once one does (-1: none by then).
  int WaitForPrimary(std::chrono::seconds timeout, int except = -1) {
    int found = -1;
    WaitFor(
        [&] {
          for (int i = 0; i < kNodes; ++i) {
            if (i != except && Role(i) == "primary") found = i;
          }
          return found >= 0;
        },
        timeout);
    return found;
  }
  bool AllSame() {
    for (int i = 1; i < kNodes; ++i) {
      if (!SameChecksum(*nodes_[0], *nodes_[i])) return false;
    }
    return true;
  }
  // Every acknowledged write is on every node with its value.
  void ExpectAllAcked() {
    for (int i = 0; i < kNodes; ++i) {
      for (const auto& [key, value] : acked_) {
        auto got = nodes_[i]->Get(key);
        ASSERT_TRUE(got.ok()) << got.status();
        ASSERT_TRUE(got->has_value()) << key << " lost on node " << i + 1;
        EXPECT_EQ(**got, value) << key << " on node " << i + 1;
      }
    }
  }
  void WriteAcked(int node, const std::string& prefix, int n) {
    for (int k = 0; k < n; ++k) {
      const std::string key = prefix + std::to_string(k);
      auto g = nodes_[node]->Put(key, "v-" + key);
      ASSERT_TRUE(g.ok()) << g.status();
      acked_[key] = "v-" + key;
    }
  }

  TempDir dir_;
  std::unique_ptr<EtcdCluster> etcd_;
  std::vector<std::unique_ptr<Relaykvd>> nodes_;
  std::vector<int> ports_;
  std::map<std::string, std::string> acked_;
};

TEST_F(AutoFailoverTest, KilledPrimaryIsReplacedAndRejoinsAsReplica) {
  WriteAcked(0, "before-", 30);
  nodes_[0]->Kill();
  const auto killed = std::chrono::steady_clock::now();
  const int next = WaitForPrimary(60s, 0);
  ASSERT_GE(next, 1) << nodes_[1]->Log() << nodes_[2]->Log();
  // The first acknowledged write on the new primary.
  ASSERT_TRUE(WaitFor([&] { return nodes_[next]->Put("first", "after").ok(); }, 30s));
  acked_["first"] = "after";
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  std::printf("failover: primary killed -> first acknowledged write on node %d in %.2f s "
              "(lease TTL %d s)\n",
              next + 1, seconds, kLeaseTtlS);
  WriteAcked(next, "after-", 20);

  StartNode(0);  // as it was started: a primary, until etcd says otherwise
  ASSERT_NE(nodes_[0], nullptr);
  ASSERT_TRUE(WaitFor([&] { return Role(0) == "replica"; }, 60s)) << nodes_[0]->Log();
  WriteAcked(next, "rejoined-", 5);
  ASSERT_TRUE(WaitFor([&] { return AllSame(); }, 60s)) << nodes_[0]->Log();
  ExpectAllAcked();
  auto refused = nodes_[0]->Put("to-old", "x");
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
}

TEST_F(AutoFailoverTest, OldPrimaryTruncatesItsUnacknowledgedTailOnRejoin) {
  WriteAcked(0, "before-", 10);
  const Gtid before = nodes_[0]->BinlogGtid();
  // Both replicas' IO threads stopped: the next commit is in the primary's
  // binlog and waits for an ACK that never comes. (Not SIGSTOP: the
  // event would wait in their sockets and be ACKed once they run again.)
  for (int i = 1; i < kNodes; ++i) ASSERT_TRUE(nodes_[i]->client().StopReplica(ReplicaThreads::kIo).ok());
  std::thread writer([&] {
    auto tail = nodes_[0]->Put("tail", "never-acked");
    EXPECT_FALSE(tail.ok()) << "acknowledged with both replicas paused";
  });
  ASSERT_TRUE(WaitFor([&] { return nodes_[0]->BinlogGtid().seq > before.seq; }, 30s));
  nodes_[0]->Kill();
  writer.join();
  const int next = WaitForPrimary(60s, 0);
  ASSERT_GE(next, 1) << nodes_[1]->Log() << nodes_[2]->Log();
  ASSERT_TRUE(WaitFor([&] { return nodes_[next]->Put("first", "after").ok(); }, 30s));
  acked_["first"] = "after";

  StartNode(0);
  ASSERT_NE(nodes_[0], nullptr);
  ASSERT_TRUE(WaitFor([&] { return Role(0) == "replica"; }, 60s)) << nodes_[0]->Log();
  EXPECT_NE(nodes_[0]->Log().find("rejoining by truncating"), std::string::npos)
      << nodes_[0]->Log();
  EXPECT_NE(nodes_[0]->Log().find("binlog-quarantine"), std::string::npos) << nodes_[0]->Log();
  WriteAcked(next, "after-", 5);
  ASSERT_TRUE(WaitFor([&] { return AllSame(); }, 60s)) << nodes_[0]->Log();
  ExpectAllAcked();
  for (int i = 0; i < kNodes; ++i) {
    auto got = nodes_[i]->Get("tail");
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_FALSE(got->has_value()) << "the unacknowledged tail survived on node " << i + 1;
  }
}

TEST_F(AutoFailoverTest, PrimaryPausedPastItsLeaseFencesItselfAndRejoins) {
  WriteAcked(0, "before-", 10);
  nodes_[0]->Pause();
  const int next = WaitForPrimary(60s, 0);
  ASSERT_GE(next, 1) << nodes_[1]->Log() << nodes_[2]->Log();
  ASSERT_TRUE(WaitFor([&] { return nodes_[next]->Put("first", "after").ok(); }, 30s));
  acked_["first"] = "after";
  nodes_[0]->Resume();
  // Whatever it answers now, it must not be OK: its lease ran out while
  // it was paused (and its replicas promised the new epoch).
  auto late = nodes_[0]->Put("late", "x");
  EXPECT_FALSE(late.ok()) << "the deposed primary acknowledged a write";
  // It restarts itself (same pid, same port) and follows the new primary.
  ASSERT_TRUE(WaitFor([&] { return Role(0) == "replica"; }, 60s)) << nodes_[0]->Log();
  WriteAcked(next, "after-", 5);
  ASSERT_TRUE(WaitFor([&] { return AllSame(); }, 60s)) << nodes_[0]->Log();
  ExpectAllAcked();
}

}  // namespace
}  // namespace relaykv::testing
