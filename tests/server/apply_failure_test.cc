// A primary whose state machine (RocksDB) cannot write — here its disk is
// full — stops taking writes at once with a clear error, shows why in SHOW
// STATUS, keeps serving reads, and takes writes again by itself once space
// is freed, with every acknowledged write there exactly once.
#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "relaykv/node.h"
#include "tests/common/small_fs.h"
#include "tests/common/temp_dir.h"
#include "tests/server/node_harness.h"

namespace relaykv {
namespace {

using testing::SmallFilesystem;
using testing::TempDir;

using testing::Status;

TEST(ApplyFailureTest, FullStateMachineDiskStopsWritesThenTheyResume) {
  TempDir dir;
  // RocksDB's directory on a small filesystem; the binlog on the big one.
  SmallFilesystem small(48 << 20);  // RocksDB resumes only with a memtable's worth (16 MiB) free
  if (!small.ok()) GTEST_SKIP() << small.why();
  const auto data_dir = dir.path() / "n";
  std::filesystem::create_directories(data_dir);
  std::filesystem::create_directory_symlink(small.path(), data_dir / "db");
  NodeOptions o;
  o.data_dir = data_dir;
  auto opened = Node::Open(o);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Node& node = **opened;

  std::vector<std::pair<std::string, std::string>> acked;
  for (int i = 0; i < 20; ++i) {
    const std::string key = "before" + std::to_string(i);
    ASSERT_TRUE(node.Put(key, std::string(20000, 'b')).ok());
    acked.emplace_back(key, std::string(20000, 'b'));
  }
  // A flush (what a purge does first) cannot write its table: RocksDB
  // stops taking writes.
  small.FillLeaving(0);
  std::string note;
  auto purge = node.PurgeBinaryLogsTo("binlog.000001", &note);
  EXPECT_FALSE(purge.ok()) << "the flush should fail on a full disk";

  // The next write finds the state machine failing: it fails, and from then
  // on writes are refused before they reach the binlog.
  auto first = node.Put("during", "x");
  EXPECT_FALSE(first.ok());
  const Gtid binlog_after_first = node.binlog_gtid();
  for (int i = 0; i < 5; ++i) {
    auto refused = node.Put("refused" + std::to_string(i), "x");
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
    EXPECT_NE(refused.status().message().find("writes are refused"), std::string::npos)
        << refused.status();
  }
  EXPECT_EQ(node.binlog_gtid(), binlog_after_first) << "a refused write reached the binlog";
  EXPECT_NE(Status(node, "State_machine_error"), "") << "SHOW STATUS should say why";
  // Reads go on.
  auto read = node.Get("before3");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, std::optional<std::string>(std::string(20000, 'b')));

  small.Free();
  // Writes are taken again by themselves (a hang guard of 60 s: RocksDB
  // checks the free space every few seconds).
  absl::StatusOr<Gtid> resumed = absl::UnknownError("not tried");
  for (int i = 0; i < 600 && !resumed.ok(); ++i) {
    resumed = node.Put("after", "y");
    if (!resumed.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(Status(node, "State_machine_error"), "");
  EXPECT_EQ(node.applied_gtid(), node.binlog_gtid()) << "the binlog's events all applied";
  for (const auto& [k, v] : acked) {
    auto got = node.Get(k);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(*got, std::optional<std::string>(v)) << k;
  }
  // The write that failed is in the binlog: applied now, once.
  if (binlog_after_first.seq > 20) {
    EXPECT_EQ(*node.Get("during"), std::optional<std::string>("x"));
  }
  EXPECT_EQ(*node.Get("refused0"), std::nullopt) << "a refused write must not appear";
  EXPECT_EQ(*node.Get("after"), std::optional<std::string>("y"));
}

}  // namespace
}  // namespace relaykv
