// Node::Scan (server/node_scan.cc, server/scan_request.cc) on embedded
// nodes with real RocksDB: ranges, prefixes, both directions, keys-only and
// count-only pages; paging that returns every key exactly once; one
// snapshot per page under concurrent writes and flushes; bad input refused
// with a message naming it; read-your-writes on a replica.
#include <atomic>
#include <cstdio>
#include <future>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "relaykv/node.h"
#include "server/scan_request.h"
#include "tests/common/temp_dir.h"
#include "tests/server/node_harness.h"

namespace relaykv {
namespace {

using testing::Address;
using testing::OpenServingNode;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

std::string Key(const std::string& prefix, int i) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%05d", i);
  return prefix + buf;
}

// Writes prefix00000.. prefix{n-1} = "v<i>" in batches of up to 1000.
void Fill(Node& node, const std::string& prefix, int n) {
  std::vector<Mutation> batch;
  for (int i = 0; i < n; ++i) {
    batch.push_back(Mutation::Put(Key(prefix, i), "v" + std::to_string(i)));
    if (batch.size() == 1000 || i == n - 1) {
      ASSERT_TRUE(node.Write(std::move(batch)).ok());
      batch.clear();
    }
  }
}

std::vector<std::string> Keys(const ScanPage& page) {
  std::vector<std::string> out;
  for (const auto& row : page.rows) out.push_back(row.key);
  return out;
}

// Every page of `range` until the end; fails the test on an error.
std::vector<ScanPage> AllPages(Node& node, ScanRange range) {
  std::vector<ScanPage> pages;
  for (int guard = 0; guard < 100000; ++guard) {
    auto page = node.Scan(range);
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok()) break;
    range.continuation = page->continuation;
    pages.push_back(*std::move(page));
    if (pages.back().done()) break;
  }
  return pages;
}

class ScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_ = OpenServingNode(dir_.path() / "p");
    ASSERT_NE(node_, nullptr);
  }
  TempDir dir_;
  std::unique_ptr<Node> node_;
};

TEST_F(ScanTest, RangeIsHalfOpenForwardAndReverse) {
  ASSERT_TRUE(node_->Write({Mutation::Put("a", "1"), Mutation::Put("b", "2"), Mutation::Put("c", "3"),
                            Mutation::Put("d", "4")})
                  .ok());
  ScanRange r;
  r.start = "b";
  r.end = "d";
  auto page = node_->Scan(r);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->rows, (std::vector<KeyValue>{{"b", "2"}, {"c", "3"}}));
  EXPECT_EQ(page->count, 2u);
  EXPECT_TRUE(page->done());
  EXPECT_EQ(page->applied, node_->applied_gtid());
  r.reverse = true;
  page = node_->Scan(r);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->rows, (std::vector<KeyValue>{{"c", "3"}, {"b", "2"}}));
  // Empty end: to the end of the keyspace; empty start: from the first key.
  r = {};
  r.start = "b";
  page = node_->Scan(r);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(Keys(*page), (std::vector<std::string>{"b", "c", "d"}));
  r = {};
  r.end = "b";
  r.reverse = true;
  page = node_->Scan(r);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(Keys(*page), (std::vector<std::string>{"a"}));
  // start == end: the empty range.
  r = {};
  r.start = r.end = "b";
  page = node_->Scan(r);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->count, 0u);
  EXPECT_TRUE(page->done());
}

TEST_F(ScanTest, PrefixKeysOnlyAndCount) {
  Fill(*node_, "user:", 30);
  Fill(*node_, "usera", 5);  // sorts right after "user:..." ('a' > ':')
  Fill(*node_, "use", 5);
  ScanRange r;
  r.prefix = "user:";
  auto page = node_->Scan(r);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->count, 30u);
  EXPECT_EQ(page->rows.front(), (KeyValue{"user:00000", "v0"}));
  EXPECT_EQ(page->rows.back().key, "user:00029");
  r.reverse = true;
  r.keys_only = true;
  r.limit = 3;
  page = node_->Scan(r);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->rows, (std::vector<KeyValue>{{"user:00029", ""}, {"user:00028", ""}, {"user:00027", ""}}));
  EXPECT_FALSE(page->done());
  r = {};
  r.prefix = "use";
  r.count_only = true;
  page = node_->Scan(r);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->count, 40u);
  EXPECT_TRUE(page->rows.empty());
  // A prefix ending in 0xff bytes still has an end (or none at all).
  EXPECT_EQ(PrefixEnd("a\xff\xff"), "b");
  EXPECT_EQ(PrefixEnd("\xff"), "");
  ASSERT_TRUE(node_->Put("\xff\xff" "z", "top").ok());
  r = {};
  r.prefix = "\xff";
  page = node_->Scan(r);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(Keys(*page), (std::vector<std::string>{"\xff\xff" "z"}));
}

TEST_F(ScanTest, PagingReturnsEveryKeyExactlyOnceEitherWay) {
  constexpr int kKeys = 2345;
  Fill(*node_, "k", kKeys);
  for (const bool reverse : {false, true}) {
    for (const uint32_t limit : {1u, 7u, 1000u, 2345u}) {
      ScanRange r;
      r.reverse = reverse;
      r.limit = limit;
      r.keys_only = limit == 7;
      const auto pages = AllPages(*node_, r);
      std::vector<std::string> keys;
      for (const auto& p : pages) {
        EXPECT_LE(p.count, limit);
        for (const auto& row : p.rows) keys.push_back(row.key);
      }
      ASSERT_EQ(keys.size(), static_cast<size_t>(kKeys)) << "reverse " << reverse << " limit " << limit;
      for (int i = 0; i < kKeys; ++i) {
        ASSERT_EQ(keys[i], Key("k", reverse ? kKeys - 1 - i : i));
      }
      EXPECT_EQ(pages.size(), static_cast<size_t>((kKeys + limit - 1) / limit));
    }
  }
  // The default page: 1000 keys.
  auto page = node_->Scan(ScanRange{});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->count, kDefaultScanLimit);
}

// Keys inserted and deleted between pages: every key that exists all along
// comes exactly once, in order, and a page never repeats an earlier one.
TEST_F(ScanTest, PagingUnderInsertsAndDeletesNeverRepeatsOrSkipsAStableKey) {
  Fill(*node_, "s", 500);
  ScanRange r;
  r.limit = 50;
  std::vector<std::string> seen;
  for (int page_no = 0;; ++page_no) {
    auto page = node_->Scan(r);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& row : page->rows) seen.push_back(row.key);
    if (page->done()) break;
    r.continuation = page->continuation;
    // Churn both sides of the cursor: new keys between stable ones
    // ("s00010x"), deleted ones that are not stable (the "x" keys).
    ASSERT_TRUE(node_->Put(Key("s", page_no * 37 % 500) + "x", "new").ok());
    ASSERT_TRUE(node_->Delete(Key("s", (page_no * 53 + 11) % 500) + "x").ok());
  }
  std::vector<std::string> stable;
  for (const auto& k : seen) {
    if (k.back() != 'x') stable.push_back(k);
  }
  ASSERT_EQ(stable.size(), 500u);
  for (int i = 0; i < 500; ++i) EXPECT_EQ(stable[i], Key("s", i));
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size());
}

// A writer moves amounts between the two keys of a pair with ONE Write of
// two mutations, keeping each pair's sum at 100, while pages are read and
// the state machine is flushed (PURGE BINARY LOGS flushes it first). Pages
// hold whole pairs, so each must add up to 100 per pair — a page mixing
// two snapshots would not.
TEST_F(ScanTest, EveryPageIsOneSnapshotUnderConcurrentWritesAndFlushes) {
  constexpr int kPairs = 400;
  std::vector<Mutation> init;
  for (int i = 0; i < kPairs; ++i) {
    init.push_back(Mutation::Put(Key("p", i) + "/a", "50"));
    init.push_back(Mutation::Put(Key("p", i) + "/b", "50"));
  }
  ASSERT_TRUE(node_->Write(std::move(init)).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> writes{0};
  std::thread writer([&] {
    std::mt19937 rng(17);
    while (!stop) {
      const int i = static_cast<int>(rng() % kPairs);
      const int a = static_cast<int>(rng() % 101);
      auto g = node_->Write({Mutation::Put(Key("p", i) + "/a", std::to_string(a)),
                             Mutation::Put(Key("p", i) + "/b", std::to_string(100 - a))});
      ASSERT_TRUE(g.ok()) << g.status();
      ++writes;
    }
  });
  std::thread flusher([&] {
    while (!stop) {
      std::string note;
      (void)node_->PurgeBinaryLogsTo("binlog.000001", &note);  // flushes RocksDB; the result is not the point
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  int pages_read = 0;
  Gtid last_applied;
  const auto until = Clock::now() + std::chrono::seconds(2);
  while (Clock::now() < until || writes < 50) {
    ScanRange r;
    r.prefix = "p";
    r.limit = 2 * 37;  // whole pairs per page
    r.reverse = pages_read % 2 == 1;
    for (;;) {
      auto page = node_->Scan(r);
      ASSERT_TRUE(page.ok()) << page.status();
      ASSERT_EQ(page->count % 2, 0u);
      EXPECT_GE(page->applied, last_applied) << "a later page read an older state";
      last_applied = page->applied;
      for (size_t j = 0; j + 1 < page->rows.size(); j += 2) {
        const auto& x = page->rows[j];
        const auto& y = page->rows[j + 1];
        ASSERT_EQ(x.key.substr(0, 6), y.key.substr(0, 6));
        ASSERT_EQ(std::stoi(x.value) + std::stoi(y.value), 100)
            << x.key << "=" << x.value << " " << y.key << "=" << y.value << " at "
            << page->applied.ToString();
      }
      ++pages_read;
      if (page->done()) break;
      r.continuation = page->continuation;
    }
  }
  stop = true;
  writer.join();
  flusher.join();
  EXPECT_GT(pages_read, 10);
  EXPECT_GE(writes.load(), 50);
}

TEST_F(ScanTest, BadInputIsInvalidArgumentNamingTheProblem) {
  Fill(*node_, "k", 10);
  auto expect = [&](const ScanRange& r, const std::string& part) {
    auto page = node_->Scan(r);
    ASSERT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument) << part;
    EXPECT_NE(page.status().message().find(part), std::string::npos) << page.status();
  };
  ScanRange r;
  r.start = "b";
  r.end = "a";
  expect(r, "scan start 'b' is after end 'a'");
  r = {};
  r.limit = kMaxScanLimit + 1;
  expect(r, "scan limit 100001 is over the maximum of 100000");
  r.count_only = true;
  r.limit = kMaxScanCountLimit + 1;
  expect(r, "is over the maximum of 10000000 for a count");
  r = {};
  r.prefix = "k";
  r.start = "a";
  expect(r, "scan prefix cannot be combined with start or end");
  r = {};
  r.end = std::string(70000, 'z');
  expect(r, "scan end is 70000 bytes; the limit is 65536");
  r = {};
  r.continuation = "garbage";
  expect(r, "continuation token is malformed: unknown version");
  r.continuation = "\x01";
  expect(r, "continuation token is malformed: 1 bytes is too short");
  // A real token, used the other way round or outside its range.
  r = {};
  r.limit = 2;
  auto first = node_->Scan(r);
  ASSERT_TRUE(first.ok());
  ASSERT_FALSE(first->done());
  r.continuation = first->continuation;
  r.reverse = true;
  expect(r, "it continues a forward scan, this one runs in reverse");
  r.reverse = false;
  r.start = "x";
  expect(r, "is outside the scanned range");
  // The same token with its own range still works.
  r.start.clear();
  auto second = node_->Scan(r);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->rows.front().key, Key("k", 2));
}

// Read-your-writes on a replica: a scan waiting for the primary's GTID
// returns once the replica has applied it, and shows the write.
TEST(ScanReplicaTest, ScanWaitsForTheGtidLikeGet) {
  TempDir dir;
  auto primary = OpenServingNode(dir.path() / "p", {{"server_id", "1"}});
  ASSERT_NE(primary, nullptr);
  auto replica = OpenServingNode(dir.path() / "r", {{"server_id", "2"}}, Address(*primary));
  ASSERT_NE(replica, nullptr);
  auto first = primary->Put("k1", "1");
  ASSERT_TRUE(first.ok());
  GetOptions read;
  read.wait_for = *first;
  read.deadline = Clock::now() + std::chrono::seconds(10);
  auto page = replica->Scan(ScanRange{}, read);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(Keys(*page), (std::vector<std::string>{"k1"}));
  EXPECT_GE(page->applied.seq, first->seq);

  // With the IO thread stopped the scan waits, and returns once the write
  // has arrived and is applied.
  ASSERT_TRUE(replica->StopReplica(ReplicaThreads::kIo).ok());
  auto second = primary->Put("k2", "2");
  ASSERT_TRUE(second.ok());
  read.wait_for = *second;
  read.deadline = Clock::now() + std::chrono::seconds(20);
  auto scan = std::async(std::launch::async, [&] { return replica->Scan(ScanRange{}, read); });
  ASSERT_EQ(scan.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout)
      << "the scan should wait for " << second->ToString();
  ASSERT_TRUE(replica->StartReplica(ReplicaThreads::kIo).ok());
  page = scan.get();
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(Keys(*page), (std::vector<std::string>{"k1", "k2"}));

  // With the SQL thread stopped it cannot come: refused at once, as Get is.
  ASSERT_TRUE(replica->StopReplica(ReplicaThreads::kSql).ok());
  auto third = primary->Put("k3", "3");
  ASSERT_TRUE(third.ok());
  read.wait_for = *third;
  auto stopped = replica->Scan(ScanRange{}, read);
  EXPECT_EQ(stopped.status().code(), absl::StatusCode::kFailedPrecondition) << stopped.status();
  EXPECT_EQ(replica->Get("k3", read).status(), stopped.status());
  ASSERT_TRUE(replica->StartReplica(ReplicaThreads::kSql).ok());

  // A GTID that never comes: the deadline ends the wait.
  read.wait_for = Gtid{third->epoch, third->seq + 1000};
  read.deadline = Clock::now() + std::chrono::milliseconds(200);
  EXPECT_EQ(replica->Scan(ScanRange{}, read).status().code(), absl::StatusCode::kDeadlineExceeded);
  // And bad input is refused before any wait.
  ScanRange bad;
  bad.start = "b";
  bad.end = "a";
  read.deadline = Node::NoDeadline();
  EXPECT_EQ(replica->Scan(bad, read).status().code(), absl::StatusCode::kInvalidArgument);
}

// Invariant 2 (DESIGN.md): under AFTER_SYNC no reader sees a write before
// enough replicas hold it — a scan neither. With semi-sync on and no
// replica to ACK, a write is durable in the binlog but never visible.
TEST(ScanVisibilityTest, AfterSyncScanNeverShowsAnUnackedWrite) {
  TempDir dir;
  auto node = OpenServingNode(dir.path() / "p", {{"rpl_semi_sync_master_timeout", "60000"}});
  ASSERT_NE(node, nullptr);
  ASSERT_TRUE(node->Put("visible", "1").ok());
  ASSERT_TRUE(node->SetVariable("rpl_semi_sync_master_enabled", "ON", false).ok());
  WriteOptions w;
  w.deadline = Clock::now() + std::chrono::milliseconds(700);
  auto writer = std::async(std::launch::async, [&] { return node->Put("pending", "v", w); });
  ScanRange all;
  bool returned = false;
  while (!returned) {
    returned = writer.wait_for(std::chrono::milliseconds(5)) == std::future_status::ready;
    auto page = node->Scan(all);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_EQ(Keys(*page), (std::vector<std::string>{"visible"}))
        << "AFTER_SYNC let a scan see an un-ACKed write";
    EXPECT_EQ(page->applied.seq, 1u);
  }
  // The commit gave up waiting (never OK); the write is in the binlog, and
  // still invisible.
  EXPECT_EQ(writer.get().status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(node->binlog_gtid().seq, 2u);
  all.count_only = true;
  auto count = node->Scan(all);
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count->count, 1u);
}

TEST(ScanClosedNodeTest, ScanOnAClosedNodeIsUnavailable) {
  TempDir dir;
  auto node = OpenServingNode(dir.path() / "p");
  ASSERT_NE(node, nullptr);
  node->Close();
  EXPECT_EQ(node->Scan(ScanRange{}).status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace relaykv
