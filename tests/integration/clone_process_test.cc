// Clone provisioning with real relaykvd processes: a new node copies a
// primary under write load (--clone-from), through a dropped stream and a
// corrupted chunk (the source's test hooks), and catches up; a non-empty
// data dir is refused; a replica whose position was purged is told to
// clone, and a clone fixes it.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "tests/common/temp_dir.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

namespace fs = std::filesystem;

std::string ReadLog(const fs::path& data_dir) {
  std::ifstream in(data_dir.string() + ".log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Starts the primary with the clone test hooks in its environment only.
std::unique_ptr<Relaykvd> StartHookedPrimary(const fs::path& dir, std::vector<std::string> flags) {
  return Relaykvd::Start(dir, std::move(flags), 0, {},
                         {"RELAYKV_CLONE_BREAK_AT_BYTES_FOR_TESTING=100000",
                          "RELAYKV_CLONE_CORRUPT_CHUNK_FOR_TESTING=1"});
}

TEST(CloneProcessTest, NewNodeClonesAPrimaryUnderLoadAndCatchesUp) {
  TempDir dir;
  auto primary = StartHookedPrimary(
      dir.path() / "p", {"--server-id=1", "--rpl_semi_sync_master_enabled=ON"});
  ASSERT_NE(primary, nullptr);
  auto replica = StartSemiSyncReplica(dir.path() / "r", *primary, 2);
  ASSERT_NE(replica, nullptr);

  std::atomic<int> counter{0};
  WriteLoad::Acked acked;
  {
    WriteLoad preload(primary.get(), &counter, "pre", &acked,
                      {.threads = 4, .value_bytes = 1000, .total = 3000});
    preload.Wait();
    ASSERT_TRUE(preload.first_error().ok()) << preload.first_error();
  }
  WriteLoad load(primary.get(), &counter, "live", &acked, {.threads = 2, .value_bytes = 200});

  auto clone = Relaykvd::Start(dir.path() / "c",
                               {"--server-id=3", "--clone-from=" + primary->address()});
  ASSERT_NE(clone, nullptr);
  auto status = clone->Status("Clone%");
  EXPECT_EQ(status["Clone_state"], "COMPLETED");
  EXPECT_EQ(status["Clone_source"], primary->address());
  EXPECT_EQ(status["Clone_chunks_refused"], "1");      // the corrupted chunk
  EXPECT_GE(std::stoi(status["Clone_reconnects"]), 2);  // that one and the broken stream
  EXPECT_GT(std::stoull(status["Clone_bytes_received"]), 100000u);  // 3 MB of values, compressed
  const std::string log = ReadLog(dir.path() / "c");
  EXPECT_NE(log.find("CRC32C mismatch"), std::string::npos) << log;
  EXPECT_NE(log.find("resuming there"), std::string::npos) << log;
  EXPECT_EQ(clone->ReplicaStatus()["Master_Host"], "127.0.0.1");

  // It replicates on while the load goes on, then converges.
  const Gtid cloned_at = clone->BinlogGtid();
  ASSERT_TRUE(WaitFor([&] { return clone->BinlogGtid().seq > cloned_at.seq; }));
  load.Stop();
  ASSERT_TRUE(load.first_error().ok()) << load.first_error();
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*primary, *replica); }));
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*primary, *clone); }));
  auto sum = primary->Checksum();
  ASSERT_TRUE(sum.ok());
  EXPECT_GE(sum->gtid.seq, acked.max_seq);
  // The source dropped the session and its checkpoint.
  EXPECT_EQ(primary->Status("Clone_source_sessions")["Clone_source_sessions"], "0");
  EXPECT_TRUE(fs::is_empty(dir.path() / "p" / "clone-source") ||
              !fs::exists(dir.path() / "p" / "clone-source"));

  // A restart with the same flags opens the clone as it is.
  clone->Terminate();
  clone = Relaykvd::Start(dir.path() / "c",
                          {"--server-id=3", "--clone-from=" + primary->address()});
  ASSERT_NE(clone, nullptr);
  EXPECT_EQ(clone->Status("Clone_state")["Clone_state"], "ALREADY_CLONED");
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*primary, *clone); }));
}

TEST(CloneProcessTest, CloneOfAReplicaReplicatesFromThatReplica) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p", {"--server-id=1"});
  ASSERT_NE(primary, nullptr);
  auto replica = StartReplica(dir.path() / "r", *primary, {.server_id = 2});
  ASSERT_NE(replica, nullptr);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(primary->Put("a" + std::to_string(i), "x").ok());
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*primary, *replica); }));
  auto clone = Relaykvd::Start(dir.path() / "c",
                               {"--server-id=3", "--clone-from=" + replica->address()});
  ASSERT_NE(clone, nullptr);
  EXPECT_EQ(clone->ReplicaStatus()["Master_Port"], std::to_string(replica->port()));
  EXPECT_NE(ReadLog(dir.path() / "c").find("(a replica of " + primary->address() + ")"),
            std::string::npos);
  ASSERT_TRUE(primary->Put("after", "clone").ok());
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*primary, *clone); }));
}

TEST(CloneProcessTest, CloneIntoANonEmptyDataDirIsRefused) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p", {"--server-id=1"});
  ASSERT_NE(primary, nullptr);
  ASSERT_TRUE(primary->Put("a", "1").ok());
  auto other = Relaykvd::Start(dir.path() / "o", {"--server-id=2"});  // a node of its own
  ASSERT_NE(other, nullptr);
  other->Terminate();
  auto refusal = StartExpectingRefusal(dir.path() / "o",
                                       {"--server-id=2", "--clone-from=" + primary->address()});
  EXPECT_TRUE(refusal.exited) << refusal.log;
  EXPECT_NE(refusal.exit_status, 0);
  EXPECT_NE(refusal.log.find("refusing to clone into"), std::string::npos) << refusal.log;
  EXPECT_NE(refusal.log.find("it is not empty (holds binlog, db"), std::string::npos)
      << refusal.log;
  EXPECT_NE(refusal.log.find("move the directory aside"), std::string::npos) << refusal.log;
}

TEST(CloneProcessTest, PurgedReplicaIsToldToCloneAndACloneFixesIt) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p", {"--server-id=1", "--max_binlog_size=4096"});
  ASSERT_NE(primary, nullptr);
  auto replica = StartReplica(dir.path() / "r", *primary, {.server_id = 2});
  ASSERT_NE(replica, nullptr);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(primary->Put("a" + std::to_string(i), "x").ok());
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*primary, *replica); }));
  replica->Terminate();
  // While it is away the primary writes on and purges what it would need.
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(primary->Put("b" + std::to_string(i), std::string(300, 'y')).ok());
  }
  auto logs = primary->client().ShowBinaryLogs();
  ASSERT_TRUE(logs.ok() && logs->size() >= 3) << logs.status();
  auto purged = primary->client().PurgeBinaryLogsTo(logs->back().name);
  ASSERT_TRUE(purged.ok()) << purged.status();
  ASSERT_GT(purged->purged, 0);

  replica = StartReplica(dir.path() / "r", *primary, {.server_id = 2});
  ASSERT_NE(replica, nullptr);
  std::string error;
  ASSERT_TRUE(WaitFor([&] {
    error = replica->ReplicaStatus()["Last_IO_Error"];
    return !error.empty();
  }));
  EXPECT_NE(error.find("(purged)"), std::string::npos) << error;
  EXPECT_NE(error.find("--clone-from"), std::string::npos) << error;
  replica->Terminate();

  // The operator's fix, as the error says: move the data dir aside, clone.
  fs::rename(dir.path() / "r", dir.path() / "r.old");
  auto cloned = Relaykvd::Start(dir.path() / "r",
                                {"--server-id=2", "--clone-from=" + primary->address()});
  ASSERT_NE(cloned, nullptr);
  ASSERT_TRUE(primary->Put("after", "clone").ok());
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*primary, *cloned); }));
  EXPECT_EQ(cloned->ReplicaStatus()["Last_IO_Error"], "");
}

}  // namespace
}  // namespace relaykv::testing
