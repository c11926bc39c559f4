// An idle replication stream between real relaykvd processes (README,
// "Replication"): the primary heartbeats every second, a replica ends a
// stream after 10 s of silence — so an idle but healthy stream must outlive
// that watchdog: one connection, no error, the semi-sync client counted
// throughout, and the next commit ACKed on it at once.
#include <fstream>
#include <iterator>
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

using Clock = std::chrono::steady_clock;

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string LogOf(const Relaykvd& s) {
  std::ifstream in(s.data_dir().string() + ".log");
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

TEST(HeartbeatProcessTest, IdleStreamOutlivesTheSilenceWatchdog) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p", {"--rpl_semi_sync_master_enabled=ON",
                                                    "--rpl_semi_sync_master_timeout=60000"});
  ASSERT_NE(primary, nullptr);
  auto replica = StartSemiSyncReplica(dir.path() / "r", *primary);
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(primary->Put("before", "1").ok());
  EXPECT_EQ(primary->Status()["Rpl_semi_sync_master_yes_tx"], "1");

  // 15 s with nothing to replicate: 1.5 times the 10 s watchdog. The
  // primary must count its semi-sync client the whole time.
  const auto idle_until = Clock::now() + std::chrono::seconds(15);
  while (Clock::now() < idle_until) {
    ASSERT_EQ(primary->Status()["Rpl_semi_sync_master_clients"], "1")
        << "the idle stream was dropped (primary side)";
    auto rs = replica->ReplicaStatus();
    ASSERT_EQ(rs["Slave_IO_Running"], "Yes") << rs["Last_IO_Error"];
    ASSERT_EQ(rs["Last_IO_Error"], "");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  auto rs = replica->ReplicaStatus();
  EXPECT_EQ(rs["Seconds_Behind_Master"], "0");
  EXPECT_EQ(rs["Source_Binlog_Gtid"], "1:1") << "heartbeats carry the primary's position";

  // Still the first stream: one connection in each log, no silence error.
  const std::string rlog = LogOf(*replica);
  const std::string plog = LogOf(*primary);
  EXPECT_EQ(Count(rlog, "replica IO thread: connected to"), 1u) << rlog;
  EXPECT_EQ(Count(rlog, "no message from primary"), 0u) << rlog;
  EXPECT_EQ(Count(plog, "replica server_id 2"), 1u) << "subscribed once, never disconnected:\n" << plog;

  // The next commit is ACKed on that stream, well before the 60 s timeout.
  const auto start = Clock::now();
  ASSERT_TRUE(primary->Put("after", "2").ok());
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));  // hang guard
  auto st = primary->Status();
  EXPECT_EQ(st["Rpl_semi_sync_master_yes_tx"], "2");
  EXPECT_EQ(st["Rpl_semi_sync_master_no_tx"], "0");
  EXPECT_EQ(st["Rpl_semi_sync_master_status"], "ON");
}

}  // namespace
}  // namespace relaykv::testing
