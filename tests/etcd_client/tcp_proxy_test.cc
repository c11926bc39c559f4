// tests/common/tcp_proxy: bytes pass through, Cut() breaks the link both
// ways, Heal() restores it; checked with the etcd client through the proxy.
#include "tests/common/tcp_proxy.h"

#include "gtest/gtest.h"
#include "etcd_client/etcd_client.h"
#include "tests/common/etcd_process.h"
#include "tests/common/temp_dir.h"

namespace relaykv::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(TcpProxyTest, RefusesATargetThatIsNotHostPort) {
  EXPECT_EQ(TcpProxy::Start("nowhere").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TcpProxy::Start("127.0.0.1:x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TcpProxy::Start("host:1").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TcpProxyTest, EtcdClientThroughProxyFailsWhileCutAndWorksAfterHeal) {
  RELAYKV_SKIP_WITHOUT_ETCD();
  TempDir dir;
  auto etcd = EtcdCluster::Start(dir.path());
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  auto proxy = TcpProxy::Start((*etcd)->client_endpoint(0));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto via = etcd::EtcdClient::Create({{(*proxy)->address()}, milliseconds(1000)});
  ASSERT_TRUE(via.ok()) << via.status();
  auto direct = etcd::EtcdClient::Create({(*etcd)->client_endpoints(), seconds(5)});
  ASSERT_TRUE(direct.ok()) << direct.status();

  ASSERT_TRUE((*via)->Put("/p/k", "through").ok());
  auto got = (*direct)->Get("/p/k");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].value, "through");
  EXPECT_EQ((*proxy)->open_connections(), 1u);  // one HTTP/2 connection for every call

  // A watch through the proxy ends when the link is cut.
  std::mutex mu;
  absl::Status watch_error;
  auto watch = (*via)->WatchKey("/p/", true, 0, [&](const etcd::WatchResponse& r) {
    std::lock_guard<std::mutex> lock(mu);
    if (!r.status.ok()) watch_error = r.status;
  });
  ASSERT_TRUE(watch.ok()) << watch.status();

  (*proxy)->Cut();
  EXPECT_EQ((*proxy)->open_connections(), 0u);
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto put = (*via)->Put("/p/k", "cut");
    EXPECT_FALSE(put.ok());
    EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(10));  // hang guard
  }
  EXPECT_TRUE(WaitFor([&] {
    std::lock_guard<std::mutex> lock(mu);
    return !watch_error.ok();
  }, seconds(30)));
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(watch_error.code(), absl::StatusCode::kUnavailable) << watch_error;
  }
  // etcd itself is fine: only the proxied path is cut.
  got = (*direct)->Get("/p/k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->kvs[0].value, "through");
  EXPECT_GT((*proxy)->accepted(), 1u);  // reconnect attempts reached it and were reset

  (*proxy)->Heal();
  EXPECT_TRUE(WaitFor([&] { return (*via)->Put("/p/k", "healed").ok(); }, seconds(30)));
  got = (*direct)->Get("/p/k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->kvs[0].value, "healed");
  (*watch)->Stop();
  (*proxy)->Stop();
  EXPECT_FALSE((*via)->Get("/p/k").ok());  // nothing listens any more
}

}  // namespace
}  // namespace relaykv::testing
