// Automatic failover through etcd (server/coordinator.h, issue 16): a real
// etcd and three relaykvd processes with --etcd/--cluster. A killed primary
// is replaced by the most advanced replica without losing an acknowledged
// write; the old primary comes back as a replica, truncating a tail no
// replica ACKed (kept in a quarantine file); a primary paused past its lease
// fences itself and rejoins. Data is checked by key, value and checksum.
#include <thread>

#include "gtest/gtest.h"
#include "tests/common/temp_dir.h"
#include "tests/integration/coordinated_cluster.h"

namespace relaykv::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kNodes = 3;
constexpr int kLeaseTtlS = 3;

class AutoFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RELAYKV_SKIP_WITHOUT_ETCD();
    auto c = CoordinatedCluster::Start(dir_.path(), {.nodes = kNodes, .lease_ttl_s = kLeaseTtlS});
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = *std::move(c);
  }
  Relaykvd* node(int i) { return &cluster_->node(i); }
  std::string Role(int i) { return cluster_->Role(i); }
  int WaitForPrimary(std::chrono::seconds timeout, int except = -1) {
    return cluster_->WaitForPrimary(timeout, except);
  }
  bool AllSame() { return cluster_->AllSame(); }
  void StartNode(int i) { ASSERT_TRUE(cluster_->StartNode(i)); }
  // Every acknowledged write is on every node with its value.
  void ExpectAllAcked() {
    for (int i = 0; i < kNodes; ++i) {
      for (const auto& [key, value] : acked_) {
        auto got = node(i)->Get(key);
        ASSERT_TRUE(got.ok()) << got.status();
        ASSERT_TRUE(got->has_value()) << key << " lost on node " << i + 1;
        EXPECT_EQ(**got, value) << key << " on node " << i + 1;
      }
    }
  }
  void WriteAcked(int n, const std::string& prefix, int count) {
    for (int k = 0; k < count; ++k) {
      const std::string key = prefix + std::to_string(k);
      auto g = node(n)->Put(key, "v-" + key);
      ASSERT_TRUE(g.ok()) << g.status();
      acked_[key] = "v-" + key;
    }
  }

  TempDir dir_;
  std::unique_ptr<CoordinatedCluster> cluster_;
  std::map<std::string, std::string> acked_;
};

TEST_F(AutoFailoverTest, KilledPrimaryIsReplacedAndRejoinsAsReplica) {
  WriteAcked(0, "before-", 30);
  node(0)->Kill();
  const auto killed = std::chrono::steady_clock::now();
  const int next = WaitForPrimary(60s, 0);
  ASSERT_GE(next, 1) << node(1)->Log() << node(2)->Log();
  // The first acknowledged write on the new primary.
  ASSERT_TRUE(WaitFor([&] { return node(next)->Put("first", "after").ok(); }, 30s));
  acked_["first"] = "after";
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  std::printf("failover: primary killed -> first acknowledged write on node %d in %.2f s "
              "(lease TTL %d s)\n",
              next + 1, seconds, kLeaseTtlS);
  WriteAcked(next, "after-", 20);

  StartNode(0);  // as it was started: a primary, until etcd says otherwise
  ASSERT_TRUE(WaitFor([&] { return Role(0) == "replica"; }, 60s)) << node(0)->Log();
  WriteAcked(next, "rejoined-", 5);
  ASSERT_TRUE(WaitFor([&] { return AllSame(); }, 60s)) << node(0)->Log();
  ExpectAllAcked();
  auto refused = node(0)->Put("to-old", "x");
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
}

TEST_F(AutoFailoverTest, OldPrimaryTruncatesItsUnacknowledgedTailOnRejoin) {
  WriteAcked(0, "before-", 10);
  const Gtid before = node(0)->BinlogGtid();
  // Both replicas' IO threads stopped: the next commit is in the primary's
  // binlog and waits for an ACK that never comes. (Not SIGSTOP: the
  // event would wait in their sockets and be ACKed once they run again.)
  for (int i = 1; i < kNodes; ++i) ASSERT_TRUE(node(i)->client().StopReplica(ReplicaThreads::kIo).ok());
  std::thread writer([&] {
    auto tail = node(0)->Put("tail", "never-acked");
    EXPECT_FALSE(tail.ok()) << "acknowledged with both replicas paused";
  });
  ASSERT_TRUE(WaitFor([&] { return node(0)->BinlogGtid().seq > before.seq; }, 30s));
  node(0)->Kill();
  writer.join();
  const int next = WaitForPrimary(60s, 0);
  ASSERT_GE(next, 1) << node(1)->Log() << node(2)->Log();
  ASSERT_TRUE(WaitFor([&] { return node(next)->Put("first", "after").ok(); }, 30s));
  acked_["first"] = "after";

  StartNode(0);
  ASSERT_TRUE(WaitFor([&] { return Role(0) == "replica"; }, 60s)) << node(0)->Log();
  EXPECT_NE(node(0)->Log().find("rejoining by truncating"), std::string::npos)
      << node(0)->Log();
  EXPECT_NE(node(0)->Log().find("binlog-quarantine"), std::string::npos) << node(0)->Log();
  WriteAcked(next, "after-", 5);
  ASSERT_TRUE(WaitFor([&] { return AllSame(); }, 60s)) << node(0)->Log();
  ExpectAllAcked();
  for (int i = 0; i < kNodes; ++i) {
    auto got = node(i)->Get("tail");
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_FALSE(got->has_value()) << "the unacknowledged tail survived on node " << i + 1;
  }
}

TEST_F(AutoFailoverTest, PrimaryPausedPastItsLeaseFencesItselfAndRejoins) {
  WriteAcked(0, "before-", 10);
  node(0)->Pause();
  const int next = WaitForPrimary(60s, 0);
  ASSERT_GE(next, 1) << node(1)->Log() << node(2)->Log();
  ASSERT_TRUE(WaitFor([&] { return node(next)->Put("first", "after").ok(); }, 30s));
  acked_["first"] = "after";
  node(0)->Resume();
  // Whatever it answers now, it must not be OK: its lease ran out while
  // it was paused (and its replicas promised the new epoch).
  auto late = node(0)->Put("late", "x");
  EXPECT_FALSE(late.ok()) << "the deposed primary acknowledged a write";
  // It restarts itself (same pid, same port) and follows the new primary.
  ASSERT_TRUE(WaitFor([&] { return Role(0) == "replica"; }, 60s)) << node(0)->Log();
  WriteAcked(next, "after-", 5);
  ASSERT_TRUE(WaitFor([&] { return AllSame(); }, 60s)) << node(0)->Log();
  ExpectAllAcked();
}

}  // namespace
}  // namespace relaykv::testing
