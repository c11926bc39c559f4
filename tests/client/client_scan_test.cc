// relaykv::Client::Scan against embedded nodes over real gRPC on 127.0.0.1:
// pages followed by their continuation, prefixes, keys-only and count
// pages, the server's INVALID_ARGUMENT kept with its message, and
// read-your-writes on a replica.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "relaykv/client.h"
#include "relaykv/node.h"
#include "tests/client/embedded_node.h"
#include "tests/common/temp_dir.h"

namespace relaykv {
namespace {

using testing::TempDir;

using testing::Addr;
using testing::OpenNode;

TEST(ClientScanTest, PagesFollowTheContinuationToEveryKeyOnce) {
  TempDir dir;
  auto node = OpenNode(dir.path() / "p");
  ASSERT_NE(node, nullptr);
  auto client = *Client::Connect({Addr(*node)});
  std::vector<Mutation> batch;
  for (int i = 0; i < 250; ++i) batch.push_back(Mutation::Put("item:" + std::to_string(1000 + i), std::to_string(i)));
  batch.push_back(Mutation::Put("other", "x"));
  auto written = client->Write(batch);
  ASSERT_TRUE(written.ok()) << written.status();

  for (const bool reverse : {false, true}) {
    ScanRange range;
    range.prefix = "item:";
    range.limit = 40;
    range.reverse = reverse;
    std::vector<std::string> keys;
    int pages = 0;
    for (;;) {
      auto page = client->Scan(range);
      ASSERT_TRUE(page.ok()) << page.status();
      ++pages;
      EXPECT_EQ(page->applied, *written);
      for (const auto& row : page->rows) keys.push_back(row.key);
      if (page->done()) break;
      range.continuation = page->continuation;
    }
    EXPECT_EQ(pages, 7);
    ASSERT_EQ(keys.size(), 250u);
    EXPECT_EQ(keys.front(), reverse ? "item:1249" : "item:1000");
    EXPECT_EQ(keys.back(), reverse ? "item:1000" : "item:1249");
  }

  ScanRange range;
  range.start = "item:1010";
  range.end = "item:1013";
  range.keys_only = true;
  auto page = client->Scan(range);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->rows, (std::vector<KeyValue>{{"item:1010", ""}, {"item:1011", ""}, {"item:1012", ""}}));
  range = {};
  range.count_only = true;
  page = client->Scan(range);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->count, 251u);
  EXPECT_TRUE(page->rows.empty());
}

TEST(ClientScanTest, BadInputComesBackAsInvalidArgumentWithTheServersMessage) {
  TempDir dir;
  auto node = OpenNode(dir.path() / "p");
  ASSERT_NE(node, nullptr);
  auto client = *Client::Connect({Addr(*node)});
  ScanRange range;
  range.start = "z";
  range.end = "a";
  auto page = client->Scan(range);
  EXPECT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(page.status().message().find("scan start 'z' is after end 'a'"), std::string::npos)
      << page.status();
  range = {};
  range.limit = 1000000;
  page = client->Scan(range);
  EXPECT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(page.status().message().find("limit 1000000 is over the maximum"), std::string::npos);
  range = {};
  range.continuation = std::string("\x01Q", 2) + "k";
  page = client->Scan(range);
  EXPECT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(page.status().message().find("continuation token is malformed"), std::string::npos);
}

// A scan waiting for a GTID that does not come ends at the call's timeout,
// and the server's side with it.
TEST(ClientScanTest, AWaitThatNeverEndsIsBoundedByTheTimeout) {
  TempDir dir;
  auto node = OpenNode(dir.path() / "p");
  ASSERT_NE(node, nullptr);
  auto client = *Client::Connect({Addr(*node)});
  auto g = client->Put("k", "v");
  ASSERT_TRUE(g.ok());
  ReadOptions read;
  read.wait_for = Gtid{g->epoch, g->seq + 100};
  read.timeout = std::chrono::milliseconds(300);
  const auto start = std::chrono::steady_clock::now();
  auto page = client->Scan(ScanRange{}, read);
  EXPECT_EQ(page.status().code(), absl::StatusCode::kDeadlineExceeded) << page.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  // Close() does not wait out its grace period for a scan still running.
  const auto close_start = std::chrono::steady_clock::now();
  node->Close();
  EXPECT_LT(std::chrono::steady_clock::now() - close_start, std::chrono::seconds(5));
}

TEST(ClientScanTest, ReadYourWritesOnAReplica) {
  TempDir dir;
  auto primary = OpenNode(dir.path() / "p");
  auto replica = OpenNode(dir.path() / "r", Addr(*primary), 2);
  ASSERT_NE(primary, nullptr);
  ASSERT_NE(replica, nullptr);
  auto client = *Client::Connect({Addr(*primary), Addr(*replica)});
  for (int round = 0; round < 20; ++round) {
    auto g = client->Put("r" + std::to_string(100 + round), "v");
    ASSERT_TRUE(g.ok());
    ReadOptions read;
    read.node = Addr(*replica);
    read.wait_for = *g;
    read.timeout = std::chrono::seconds(10);
    ScanRange range;
    range.prefix = "r";
    range.count_only = true;
    auto page = client->Scan(range, read);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_EQ(page->count, static_cast<uint64_t>(round + 1));
    EXPECT_GE(page->applied.seq, g->seq);
  }
}

}  // namespace
}  // namespace relaykv
