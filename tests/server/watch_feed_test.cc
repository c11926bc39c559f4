// WatchFeed (server/watch_feed.h): the window of decoded binlog events that
// watchers at the head share — what it returns, when it answers "read the
// binlog yourself" (empty), and that concurrent callers all see consecutive,
// correct events while the binlog grows.
#include "server/watch_feed.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "proto/watch.pb.h"
#include "tests/storage/test_util.h"

namespace relaykv {
namespace {

using testing::CommitKeys;
using testing::OpenBinlog;
using testing::TempDir;

std::vector<uint64_t> Seqs(const std::vector<WatchFeed::EventPtr>& events) {
  std::vector<uint64_t> out;
  for (const auto& e : events) out.push_back(e->event.gtid().seq());
  return out;
}

std::vector<uint64_t> Range(uint64_t first, uint64_t last) {
  std::vector<uint64_t> out;
  for (uint64_t s = first; s <= last; ++s) out.push_back(s);
  return out;
}

TEST(WatchFeedTest, WatchersAtTheHeadShareOneDecodedCopy) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(CommitKeys(*b, 10));
  WatchFeed feed(b.get(), 1 << 20);
  auto all = feed.Fetch(1, 10, 100, 1 << 20);
  EXPECT_EQ(Seqs(all), Range(1, 10));
  ASSERT_EQ(all.size(), 10u);
  EXPECT_EQ(all[4]->event.mutations(0).key(), "key4");
  v1::WatchResponse encoded;  // the event as a Watch answer's entry, made once here
  ASSERT_TRUE(encoded.ParseFromString(all[4]->wire));
  ASSERT_EQ(encoded.events_size(), 1);
  EXPECT_EQ(encoded.events(0).gtid().seq(), 5u);
  EXPECT_EQ(encoded.events(0).changes(0).key(), "key4");
  auto some = feed.Fetch(5, 10, 3, 1 << 20);  // max_events bounds it
  EXPECT_EQ(Seqs(some), Range(5, 7));
  ASSERT_EQ(some.size(), 3u);
  EXPECT_EQ(some[0].get(), all[4].get()) << "read and decoded once";
  EXPECT_TRUE(feed.Fetch(11, 10, 5, 1 << 20).empty()) << "nothing after up_to";
}

TEST(WatchFeedTest, BehindTheTrimmedWindowTheCallerReadsItself) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(CommitKeys(*b, 20));
  WatchFeed feed(b.get(), /*max_bytes=*/1);  // keeps only what the last caller asked for
  EXPECT_EQ(Seqs(feed.Fetch(1, 10, 100, 1 << 20)), Range(1, 10));
  EXPECT_EQ(Seqs(feed.Fetch(11, 20, 100, 1 << 20)), Range(11, 20));
  EXPECT_TRUE(feed.Fetch(3, 20, 100, 1 << 20).empty()) << "trimmed: before the window";
  EXPECT_EQ(Seqs(feed.Fetch(15, 20, 100, 1 << 20)), Range(15, 20));
}

TEST(WatchFeedTest, AGapStartsTheWindowOverWhereTheCallerIs) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(CommitKeys(*b, 30));
  WatchFeed feed(b.get(), 1 << 20);
  EXPECT_EQ(Seqs(feed.Fetch(1, 2, 100, 1 << 20)), Range(1, 2));
  EXPECT_EQ(Seqs(feed.Fetch(20, 30, 100, 1 << 20)), Range(20, 30));
  EXPECT_TRUE(feed.Fetch(2, 30, 100, 1 << 20).empty()) << "the window now starts at 20";
  EXPECT_EQ(Seqs(feed.Fetch(25, 30, 3, 1 << 20)), Range(25, 27));
}

TEST(WatchFeedTest, APurgedSegmentIsLeftToTheCallersOwnReader) {
  TempDir dir;
  auto b = OpenBinlog(dir.path(), /*max_binlog_size=*/4096);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(CommitKeys(*b, 200, std::string(64, 'v')));
  const auto segs = b->Segments();
  ASSERT_GT(segs.size(), 3u);
  ASSERT_TRUE(b->PurgeTo(segs[2].name, b->LastVisible().seq).ok());
  WatchFeed feed(b.get(), 1 << 20);
  EXPECT_TRUE(feed.Fetch(1, 200, 100, 1 << 20).empty()) << "purged: no window, no crash";
  const uint64_t first = b->FirstAvailableSeq();
  EXPECT_EQ(Seqs(feed.Fetch(first, 200, 5, 1 << 20)), Range(first, first + 4));
}

TEST(WatchFeedTest, AFillReadsAtMostOneBatchOfBytes) {
  TempDir dir;
  auto b = OpenBinlog(dir.path());
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(CommitKeys(*b, 10, std::string(1000, 'v')));
  WatchFeed feed(b.get(), 1 << 20);
  EXPECT_EQ(Seqs(feed.Fetch(1, 10, 100, /*max_bytes=*/1)), Range(1, 1)) << "at least one event";
  EXPECT_EQ(Seqs(feed.Fetch(2, 10, 100, /*max_bytes=*/2500)), Range(2, 4));
}

// Review finding (review-feed HIGH): a failed move of the window's reader
// left a window without a reader, and the next caller inside it crashed.
TEST(WatchFeedTest, AFailedMoveLeavesNoWindowBehind) {
  TempDir dir;
  auto b = OpenBinlog(dir.path(), /*max_binlog_size=*/64 << 10, /*sync_binlog=*/0);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(CommitKeys(*b, 12000));
  WatchFeed feed(b.get(), 1 << 20);
  EXPECT_EQ(Seqs(feed.Fetch(1, 5, 100, 1 << 20)), Range(1, 5));
  const auto segs = b->Segments();
  size_t k = 0;
  while (k + 1 < segs.size() && segs[k].first_seq <= 11000) ++k;
  ASSERT_TRUE(b->PurgeTo(segs[k].name, b->LastVisible().seq).ok());
  ASSERT_GT(b->FirstAvailableSeq(), 11000u);
  // The feed's reader keeps its (purged) segment open: a little ahead, it
  // reads its way there.
  EXPECT_EQ(Seqs(feed.Fetch(50, 12000, 100, 1 << 20)), Range(50, 149));
  EXPECT_TRUE(feed.Fetch(3, 12000, 100, 1 << 20).empty()) << "behind the window";
  EXPECT_TRUE(feed.Fetch(10500, 12000, 100, 1 << 20).empty()) << "far ahead and purged: no reader";
  EXPECT_TRUE(feed.Fetch(60, 12000, 100, 1 << 20).empty()) << "the old window went with the reader";
  const uint64_t first = b->FirstAvailableSeq();
  EXPECT_EQ(Seqs(feed.Fetch(first, 12000, 3, 1 << 20)), Range(first, first + 2));
  feed.Release();
  EXPECT_EQ(Seqs(feed.Fetch(first + 1, 12000, 2, 1 << 20)), Range(first + 1, first + 2));
}

TEST(WatchFeedTest, ConcurrentCallersSeeEveryEventInOrderWhileTheBinlogGrows) {
  TempDir dir;
  auto b = OpenBinlog(dir.path(), 1 << 20, /*sync_binlog=*/0);
  ASSERT_NE(b, nullptr);
  constexpr uint64_t kEvents = 3000;
  WatchFeed feed(b.get(), 64 << 10);  // small: trims while callers read
  std::atomic<bool> failed{false};
  std::vector<std::thread> readers;
  for (int t = 0; t < 6; ++t) {
    readers.emplace_back([&, t] {
      uint64_t next = 1;
      const auto deadline = testing::HangGuardDeadline();
      while (next <= kEvents && std::chrono::steady_clock::now() < deadline && !failed) {
        const uint64_t visible = b->LastVisible().seq;
        if (visible < next) {
          std::this_thread::yield();
          continue;
        }
        auto got = feed.Fetch(next, visible, 1 + t * 37, 1 << 20);
        if (got.empty()) {
          // Behind the window: read one event the way a watcher would.
          auto r = b->NewReader(next);
          auto rec = r.ok() ? (*r)->Next() : r.status();
          if (!rec.ok() || !rec->has_value()) {
            failed = true;
            break;
          }
          got.push_back(std::make_shared<const WatchFeed::Item>(WatchFeed::Item{(*rec)->event, {}}));
        }
        for (const auto& e : got) {
          if (e->event.gtid().seq() != next ||
              e->event.mutations(0).key() != "key" + std::to_string(next - 1)) {
            failed = true;
            break;
          }
          ++next;
        }
      }
      if (next <= kEvents) failed = true;
    });
  }
  EXPECT_TRUE(CommitKeys(*b, kEvents));
  for (auto& r : readers) r.join();
  EXPECT_FALSE(failed.load());
}

}  // namespace
}  // namespace relaykv
