// The change stream (Node::Watch, ChangeStream.Watch, Client::Watch) on
// embedded nodes: order, range, resume exactly once, purged and bad starts,
// committed_only under AFTER_SYNC, the lag limit and the watcher cap.
#include <atomic>
#include <map>
#include <future>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "proto/kv.grpc.pb.h"
#include "proto/watch.grpc.pb.h"
#include "relaykv/client.h"
#include "relaykv/node.h"
#include "tests/common/temp_dir.h"
#include "tests/server/node_harness.h"

namespace relaykv {
namespace {

using testing::TempDir;
using testing::WaitFor;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::unique_ptr<Node> OpenEmbedded(const std::filesystem::path& dir, NameValues vars = {}) {
  NodeOptions o;
  o.data_dir = dir;
  o.variables = std::move(vars);
  auto n = Node::Open(o);
  EXPECT_TRUE(n.ok()) << n.status();
  return n.ok() ? *std::move(n) : nullptr;
}

struct Watched {
  absl::Status status;
  std::vector<WatchEvent> events;
  std::vector<WatchBatch> batches;
};

// Watches until `done(watched)` after a batch, or an error; a hang guard
// cancels it after 60 s.
Watched Collect(Node& n, WatchOptions o, const std::function<bool(const Watched&)>& done) {
  Watched w;
  const auto guard = Clock::now() + 60s;
  o.cancelled = [guard] { return Clock::now() > guard; };
  w.status = n.Watch(o, [&](const WatchBatch& b) {
    for (const WatchEvent& e : b.events) w.events.push_back(e);
    w.batches.push_back(b);
    return !done(w);
  });
  return w;
}

// Collect() on another thread; returns once its first batch (the start)
// was delivered, so that every later write is after its starting point.
std::future<Watched> CollectInBackground(Node& n, WatchOptions o,
                                         std::function<bool(const Watched&)> done) {
  auto started = std::make_shared<std::promise<void>>();
  auto f = std::async(std::launch::async, [&n, o, done, started] {
    bool first = true;
    return Collect(n, o, [&](const Watched& w) {
      if (first) started->set_value();
      first = false;
      return done(w);
    });
  });
  started->get_future().wait();
  return f;
}

// Until the watch has looked at `gtid`.
std::function<bool(const Watched&)> Reached(const Gtid& gtid) {
  return [gtid](const Watched& w) { return w.batches.back().progress.seq >= gtid.seq; };
}

std::string Line(const WatchEvent& e) {
  std::string out = e.gtid.ToString();
  for (const Mutation& m : e.changes) {
    out += m.op == Mutation::Op::kDelete ? " DEL " + m.key : " PUT " + m.key + "=" + m.value;
  }
  return out;
}

std::vector<std::string> Lines(const std::vector<WatchEvent>& events) {
  std::vector<std::string> out;
  for (const WatchEvent& e : events) out.push_back(Line(e));
  return out;
}

TEST(WatchTest, DeliversEveryCommittedChangeOfThePrefixInGtidOrder) {
  TempDir dir;
  auto n = OpenEmbedded(dir.path() / "n");
  ASSERT_TRUE(n);
  auto g1 = n->Put("a/1", "one");
  auto g2 = n->Put("b/1", "other");
  auto g3 = n->Put("a/2", "two");
  auto g4 = n->Delete("a/1");
  auto g5 = n->Write({Mutation::Put("b/2", "x"), Mutation::Put("a/3", "three"), Mutation::Delete("a/2")});
  ASSERT_TRUE(g1.ok() && g2.ok() && g3.ok() && g4.ok() && g5.ok());
  WatchOptions o;
  o.range = WatchRange::Prefix("a/");
  o.after = Gtid{};  // from the beginning
  Watched w = Collect(*n, o, Reached(*g5));
  ASSERT_TRUE(w.status.ok()) << w.status;
  EXPECT_EQ(Lines(w.events),
            (std::vector<std::string>{g1->ToString() + " PUT a/1=one", g3->ToString() + " PUT a/2=two",
                                      g4->ToString() + " DEL a/1",
                                      g5->ToString() + " PUT a/3=three DEL a/2"}));
  for (const WatchEvent& e : w.events) EXPECT_GT(e.timestamp_us, 0);
  // b/1's write was looked at, not delivered: progress went past it.
  EXPECT_EQ(w.batches.back().progress, *g5);
  EXPECT_EQ(w.batches.back().head, *g5);
}

TEST(WatchTest, RangeIsHalfOpenAndCutsAWriteToItsChangesInside) {
  TempDir dir;
  auto n = OpenEmbedded(dir.path() / "n");
  ASSERT_TRUE(n);
  auto g = n->Write({Mutation::Put("a", "1"), Mutation::Put("b", "2"), Mutation::Put("c", "3"),
                     Mutation::Put("d", "4")});
  ASSERT_TRUE(g.ok());
  WatchOptions o;
  o.range.start = "b";
  o.range.end = "d";
  o.after = Gtid{};
  Watched w = Collect(*n, o, Reached(*g));
  ASSERT_TRUE(w.status.ok()) << w.status;
  EXPECT_EQ(Lines(w.events), (std::vector<std::string>{g->ToString() + " PUT b=2 PUT c=3"}));
}

TEST(WatchTest, ResumingAfterAGtidDeliversEveryLaterChangeExactlyOnce) {
  TempDir dir;
  auto n = OpenEmbedded(dir.path() / "n");
  ASSERT_TRUE(n);
  std::vector<Gtid> gtids;
  for (int i = 0; i < 10; ++i) gtids.push_back(*n->Put("k" + std::to_string(i), std::to_string(i)));
  WatchOptions o;
  o.after = Gtid{};
  Watched first = Collect(*n, o, [](const Watched& w) { return w.events.size() >= 4; });
  ASSERT_TRUE(first.status.ok()) << first.status;
  ASSERT_GE(first.events.size(), 4u);
  const Gtid resume = first.events[3].gtid;
  EXPECT_EQ(resume, gtids[3]);
  for (int i = 10; i < 15; ++i) gtids.push_back(*n->Put("k" + std::to_string(i), std::to_string(i)));
  for (const Gtid after : {resume, Gtid{0, resume.seq}}) {  // with its epoch, and seq only
    o.after = after;
    Watched rest = Collect(*n, o, Reached(gtids.back()));
    ASSERT_TRUE(rest.status.ok()) << rest.status;
    ASSERT_EQ(rest.events.size(), 11u) << after.ToString();
    for (size_t i = 0; i < rest.events.size(); ++i) {
      EXPECT_EQ(rest.events[i].gtid, gtids[i + 4]);
      EXPECT_EQ(rest.events[i].changes[0].key, "k" + std::to_string(i + 4));
    }
  }
}

// A GTID past a primary's binlog, or another history's, is not there: a
// primary that takes writes says so for good (FAILED_PRECONDITION); a
// fenced one cannot know whether a newer primary has it, so it says
// UNAVAILABLE and a client tries another node (review s35-watch F2).
TEST(WatchTest, ResumingPastAFencedPrimarysHistoryIsUnavailableNotFinal) {
  TempDir dir;
  auto n = OpenEmbedded(dir.path() / "n");
  ASSERT_TRUE(n);
  const Gtid last = *n->Put("k", "v");
  const Gtid beyond{last.epoch + 1, last.seq + 5};
  const Gtid other{last.epoch + 1, last.seq};
  WatchOptions o;
  for (const Gtid& after : {beyond, other}) {
    o.after = after;
    Watched w = Collect(*n, o, [](const Watched&) { return true; });
    EXPECT_TRUE(absl::IsFailedPrecondition(w.status)) << after.ToString() << ": " << w.status;
  }
  auto revoked = n->Revoke(last.epoch + 1);
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  for (const Gtid& after : {beyond, other}) {
    o.after = after;
    Watched w = Collect(*n, o, [](const Watched&) { return true; });
    EXPECT_TRUE(absl::IsUnavailable(w.status)) << after.ToString() << ": " << w.status;
    EXPECT_NE(std::string(w.status.message()).find("fenced"), std::string::npos) << w.status;
  }
  // What it has is still served.
  o.after = Gtid{};
  Watched w = Collect(*n, o, Reached(last));
  EXPECT_TRUE(w.status.ok()) << w.status;
}

TEST(WatchTest, FromNowStartsAtTheNodesPositionAndSeesOnlyLaterChanges) {
  TempDir dir;
  auto n = OpenEmbedded(dir.path() / "n");
  ASSERT_TRUE(n);
  ASSERT_TRUE(n->Put("old", "1").ok());
  const Gtid now = n->applied_gtid();
  std::promise<Gtid> started;
  auto watcher = std::async(std::launch::async, [&] {
    bool first = true;
    return Collect(*n, WatchOptions{}, [&](const Watched& w) {
      if (first) started.set_value(w.batches.front().progress);
      first = false;
      return !w.events.empty();
    });
  });
  EXPECT_EQ(started.get_future().get(), now) << "the first batch names the starting point";
  auto g = n->Put("new", "2");
  ASSERT_TRUE(g.ok());
  Watched w = watcher.get();
  ASSERT_TRUE(w.status.ok()) << w.status;
  EXPECT_EQ(Lines(w.events), (std::vector<std::string>{g->ToString() + " PUT new=2"}));
}

TEST(WatchTest, QuietWatchGetsProgressMessagesCarryingTheCurrentGtid) {
  TempDir dir;
  auto n = OpenEmbedded(dir.path() / "n");
  ASSERT_TRUE(n);
  auto other = n->Put("other", "1");
  ASSERT_TRUE(other.ok());
  WatchOptions o;
  o.range = WatchRange::Prefix("nothing-here/");
  o.after = Gtid{};
  o.progress_interval = 50ms;
  Watched w = Collect(*n, o, [](const Watched& w) { return w.batches.size() >= 3; });
  ASSERT_TRUE(w.status.ok()) << w.status;
  EXPECT_TRUE(w.events.empty());
  EXPECT_EQ(w.batches.back().progress, *other) << "resuming from it skips what did not match";
}

TEST(WatchTest, PurgedStartIsOutOfRangeNamingTheOldestGtidAvailable) {
  TempDir dir;
  auto n = OpenEmbedded(dir.path() / "n", {{"max_binlog_size", "4096"}});
  ASSERT_TRUE(n);
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(n->Put("k" + std::to_string(i), std::string(100, 'v')).ok());
  auto logs = n->BinaryLogs();
  ASSERT_GT(logs.size(), 3u);
  std::string note;
  ASSERT_TRUE(n->PurgeBinaryLogsTo(logs.back().name, &note).ok());
  const Gtid oldest{1, logs.back().first_seq};
  WatchOptions o;
  o.after = Gtid{};
  Watched w = Collect(*n, o, [](const Watched&) { return true; });
  EXPECT_EQ(w.status.code(), absl::StatusCode::kOutOfRange) << w.status;
  EXPECT_NE(w.status.message().find("purged"), std::string::npos) << w.status;
  EXPECT_NE(w.status.message().find("oldest still available is " + oldest.ToString()), std::string::npos)
      << w.status;
  // Right at the boundary it works, and starts with the oldest.
  o.after = Gtid{1, oldest.seq - 1};
  w = Collect(*n, o, [](const Watched& w) { return !w.events.empty(); });
  ASSERT_TRUE(w.status.ok()) << w.status;
  EXPECT_EQ(w.events.front().gtid, oldest);
}

TEST(WatchTest, BadInputIsRefusedWithAnErrorNamingIt) {
  TempDir dir;
  auto n = OpenEmbedded(dir.path() / "n");
  ASSERT_TRUE(n);
  auto g = n->Put("a", "1");
  ASSERT_TRUE(g.ok());
  auto refused = [&](WatchOptions o) { return Collect(*n, std::move(o), [](const Watched&) { return true; }).status; };
  WatchOptions o;
  o.range.start = "z";
  o.range.end = "a";
  absl::Status s = refused(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("after its end"), std::string::npos) << s;
  o.range = {"a", "", "p/"};
  s = refused(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  o.range = WatchRange::Prefix(std::string(70000, 'k'));
  s = refused(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  // A GTID of another history (epoch 9 at our seq), and one past our end.
  o.range = {};
  o.after = Gtid{9, g->seq};
  s = refused(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("not in this node's history (it has " + g->ToString()), std::string::npos) << s;
  o.after = Gtid{g->epoch, g->seq + 100};
  s = refused(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("binlog ends at " + g->ToString()), std::string::npos) << s;
}

// AFTER_SYNC with the only semi-sync replica's IO thread stopped: the
// write waits for an ACK, and a committed_only watcher sees nothing of it
// before the write is visible to readers — while a watcher of the binlog
// (committed_only false) already has it. The ACK releases it to both.
TEST(WatchTest, CommittedOnlyWatcherSeesAWriteOnlyOnceItIsAcked) {
  TempDir dir;
  auto p = testing::OpenServingNode(dir.path() / "p", {{"rpl_semi_sync_master_enabled", "ON"},
                                                       {"rpl_semi_sync_master_timeout", "60000"}});
  ASSERT_TRUE(p);
  auto r = testing::OpenServingNode(dir.path() / "r", {{"server_id", "2"}, {"rpl_semi_sync_slave_enabled", "ON"}},
                                    testing::Address(*p));
  ASSERT_TRUE(r);
  ASSERT_TRUE(WaitFor([&] { return testing::Status(*p, "Rpl_semi_sync_master_clients") == "1"; }));
  ASSERT_TRUE(r->StopReplica(ReplicaThreads::kIo).ok());
  ASSERT_TRUE(WaitFor([&] { return testing::Status(*p, "Rpl_semi_sync_master_clients") == "0"; }));

  std::atomic<bool> committed_seen{false}, binlog_seen{false};
  auto watch = [&](bool committed_only, std::atomic<bool>* seen) {
    WatchOptions o;
    o.committed_only = committed_only;
    o.range = WatchRange::Prefix("k");
    return CollectInBackground(*p, o, [seen](const Watched& w) {
      if (!w.events.empty()) *seen = true;
      return !w.events.empty();
    });
  };
  auto committed = watch(true, &committed_seen);
  auto binlog = watch(false, &binlog_seen);
  auto put = std::async(std::launch::async, [&] { return p->Put("k", "v"); });
  ASSERT_TRUE(WaitFor([&] { return binlog_seen.load(); })) << "the binlog watcher sees the durable write";
  // Until the ACK: the write is not visible, and the committed watcher has nothing.
  for (int i = 0; i < 20; ++i) {
    const bool seen = committed_seen.load();
    const bool visible = p->Get("k")->has_value();
    EXPECT_FALSE(seen && !visible) << "a committed_only watcher saw a write readers cannot see";
    EXPECT_FALSE(visible) << "nothing ACKed it";
    std::this_thread::sleep_for(25ms);
  }
  EXPECT_FALSE(committed_seen.load());
  EXPECT_EQ(put.wait_for(0s), std::future_status::timeout) << "the write waits for its ACK";
  ASSERT_TRUE(r->StartReplica(ReplicaThreads::kIo).ok());
  ASSERT_TRUE(put.get().ok());
  Watched w = committed.get();
  ASSERT_TRUE(w.status.ok()) << w.status;
  EXPECT_EQ(w.events.size(), 1u);
  ASSERT_TRUE(binlog.get().status.ok());
}

// The semi-sync timeout falls back to async: the write becomes visible,
// and the committed_only watcher gets it then.
TEST(WatchTest, CommittedOnlyWatcherGetsAWriteWhenTheTimeoutMakesItAsync) {
  TempDir dir;
  auto p = testing::OpenServingNode(dir.path() / "p", {{"rpl_semi_sync_master_enabled", "ON"},
                                                       {"rpl_semi_sync_master_timeout", "1000"}});
  ASSERT_TRUE(p);
  auto watcher = CollectInBackground(*p, WatchOptions{}, [](const Watched& w) { return !w.events.empty(); });
  auto g = p->Put("k", "v");  // no replica: waits out the timeout
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(testing::Status(*p, "Rpl_semi_sync_master_no_tx"), "1");
  Watched w = watcher.get();
  ASSERT_TRUE(w.status.ok()) << w.status;
  ASSERT_EQ(w.events.size(), 1u);
  EXPECT_EQ(w.events[0].gtid, *g);
}

TEST(WatchTest, ReplicaWatcherSeesWhatTheReplicaApplied) {
  TempDir dir;
  auto p = testing::OpenServingNode(dir.path() / "p");
  ASSERT_TRUE(p);
  auto r = testing::OpenServingNode(dir.path() / "r", {{"server_id", "2"}}, testing::Address(*p));
  ASSERT_TRUE(r);
  auto g1 = p->Put("a", "1");
  ASSERT_TRUE(g1.ok());
  ASSERT_TRUE(WaitFor([&] { return r->applied_gtid() == *g1; }));
  auto watcher = std::async(std::launch::async, [&] {
    WatchOptions o;
    o.after = *g1;
    return Collect(*r, o, [](const Watched& w) { return !w.events.empty(); });
  });
  auto g2 = p->Put("b", "2");
  ASSERT_TRUE(g2.ok());
  Watched w = watcher.get();
  ASSERT_TRUE(w.status.ok()) << w.status;
  EXPECT_EQ(Lines(w.events), (std::vector<std::string>{g2->ToString() + " PUT b=2"}));
  EXPECT_TRUE(r->Get("b")->has_value()) << "delivered only once applied";
}

TEST(WatchTest, WatcherThatKeepsChangesWaitingIsEndedNamingTheLimit) {
  TempDir dir;
  auto n = OpenEmbedded(dir.path() / "n", {{"watch_max_lag_seconds", "1"}});
  ASSERT_TRUE(n);
  std::atomic<bool> got_first{false};
  auto watcher = CollectInBackground(*n, WatchOptions{}, [&](const Watched& w) {
    if (!w.events.empty() && !got_first.exchange(true)) std::this_thread::sleep_for(2500ms);
    return false;
  });
  ASSERT_TRUE(n->Put("k1", "v").ok());
  ASSERT_TRUE(WaitFor([&] { return got_first.load(); }));
  ASSERT_TRUE(n->Put("k2", "v").ok());  // waits while the watcher sleeps
  Watched w = watcher.get();
  EXPECT_EQ(w.status.code(), absl::StatusCode::kResourceExhausted) << w.status;
  EXPECT_NE(w.status.message().find("watch_max_lag_seconds (1 s)"), std::string::npos) << w.status;
  EXPECT_EQ(w.events.size(), 1u) << "k2 was never delivered";
}

TEST(WatchTest, OneWatcherMoreThanMaxWatchersIsRefused) {
  TempDir dir;
  auto n = OpenEmbedded(dir.path() / "n", {{"max_watchers", "2"}});
  ASSERT_TRUE(n);
  std::atomic<bool> stop{false};
  std::atomic<int> started{0};
  std::vector<std::future<absl::Status>> watchers;
  for (int i = 0; i < 2; ++i) {
    watchers.push_back(std::async(std::launch::async, [&] {
      WatchOptions o;
      o.progress_interval = 20ms;
      bool counted = false;
      return n->Watch(o, [&](const WatchBatch&) {
        if (!counted) started++;
        counted = true;
        return !stop.load();
      });
    }));
  }
  ASSERT_TRUE(WaitFor([&] { return started.load() == 2; }));
  absl::Status s = n->Watch(WatchOptions{}, [](const WatchBatch&) { return false; });
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_NE(s.message().find("max_watchers is 2"), std::string::npos) << s;
  stop = true;
  for (auto& f : watchers) EXPECT_TRUE(f.get().ok());
  // Their slots are free again.
  EXPECT_TRUE(n->Watch(WatchOptions{}, [](const WatchBatch&) { return false; }).ok());
}

TEST(WatchTest, CloseEndsAWatchWithUnavailable) {
  TempDir dir;
  auto n = OpenEmbedded(dir.path() / "n");
  ASSERT_TRUE(n);
  std::atomic<bool> started{false};
  auto watcher = std::async(std::launch::async, [&] {
    return n->Watch(WatchOptions{}, [&](const WatchBatch&) {
      started = true;
      return true;
    });
  });
  ASSERT_TRUE(WaitFor([&] { return started.load(); }));
  n->Close();
  absl::Status s = watcher.get();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
}

// Over gRPC through the client library: prefix, resume, and the CLI's view.
TEST(WatchTest, ClientWatchStreamsAndResumesOverGrpc) {
  TempDir dir;
  auto n = testing::OpenServingNode(dir.path() / "n");
  ASSERT_TRUE(n);
  auto client = Client::Connect({testing::Address(*n)});
  ASSERT_TRUE(client.ok());
  std::vector<Gtid> gtids;
  for (int i = 0; i < 6; ++i) gtids.push_back(*(*client)->Put("w/" + std::to_string(i), "v"));
  ASSERT_TRUE((*client)->Put("x/other", "v").ok());
  ClientWatchOptions o;
  o.after = Gtid{};
  std::vector<WatchEvent> events;
  absl::Status s = (*client)->Watch(WatchRange::Prefix("w/"), o, [&](const WatchBatch& b) {
    for (const auto& e : b.events) {
      events.push_back(e);
      if (events.size() == 3) return false;
    }
    return true;
  });
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_EQ(events.size(), 3u);
  o.after = events.back().gtid;
  std::vector<Gtid> rest;
  s = (*client)->Watch(WatchRange::Prefix("w/"), o, [&](const WatchBatch& b) {
    for (const auto& e : b.events) rest.push_back(e.gtid);
    return rest.size() < 3;
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(rest, (std::vector<Gtid>{gtids[3], gtids[4], gtids[5]}));
  // The server's errors come back as they are.
  o.after = Gtid{7, 1};
  s = (*client)->Watch(WatchRange{"b", "a", ""}, o, [](const WatchBatch&) { return true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

// The gRPC service sends bytes it encodes itself (server/watch_wire.h): an
// event all in range as the feed's one encoding, any other cut to the
// range. A client must get exactly what Node::Watch delivers, for every
// kind of range, deletes and a value bigger than a batch included.
TEST(WatchTest, GrpcWatchersGetWhatNodeWatchDelivers) {
  TempDir dir;
  auto n = testing::OpenServingNode(dir.path() / "n");
  ASSERT_TRUE(n);
  auto client = Client::Connect({testing::Address(*n)});
  ASSERT_TRUE(client.ok());
  Gtid last;
  for (int i = 0; i < 60; ++i) {
    std::vector<Mutation> ms = {Mutation::Put("a/" + std::to_string(i), std::string(i * 7, 'v')),
                                Mutation::Put("b/" + std::to_string(i), "")};
    if (i % 5 == 4) ms.push_back(Mutation::Delete("a/" + std::to_string(i - 2)));
    if (i == 30) ms.push_back(Mutation::Put("a/big", std::string(300 * 1024, 'z')));
    auto g = n->Write(ms);
    ASSERT_TRUE(g.ok()) << g.status();
    last = *g;
  }
  for (const WatchRange& range :
       {WatchRange{}, WatchRange::Prefix("a/"), WatchRange{"a/3", "b/1", ""}, WatchRange::Prefix("c/")}) {
    WatchOptions o;
    o.range = range;
    o.after = Gtid{};
    const Watched local = Collect(*n, o, Reached(last));
    ASSERT_TRUE(local.status.ok()) << local.status;
    ClientWatchOptions co;
    co.after = Gtid{};
    std::vector<WatchEvent> remote;
    absl::Status s = (*client)->Watch(range, co, [&](const WatchBatch& b) {
      for (const WatchEvent& e : b.events) remote.push_back(e);
      return b.progress.seq < last.seq;
    });
    ASSERT_TRUE(s.ok()) << s;
    const std::string name = range.prefix + "[" + range.start + "," + range.end + ")";
    EXPECT_EQ(Lines(remote), Lines(local.events)) << name;
    ASSERT_EQ(remote.size(), local.events.size()) << name;
    for (size_t i = 0; i < remote.size(); ++i) {
      EXPECT_EQ(remote[i].timestamp_us, local.events[i].timestamp_us) << name << " event " << i;
    }
    EXPECT_EQ(range.prefix == "c/", remote.empty()) << name;
  }
}

int DeletesWithAValue(const std::vector<WatchEvent>& events) {
  int n = 0;
  for (const WatchEvent& e : events) {
    for (const Mutation& m : e.changes) n += m.op == Mutation::Op::kDelete && !m.value.empty();
  }
  return n;
}

// Batches reuse their events' storage (node and client side): writes of
// shrinking and growing shapes — several changes then one, a long value then
// a delete, keys in and out of the range — over more than one batch
// (kBatchEvents is 1000) must each arrive exactly as written, nothing left
// over from the event that held the slot before.
TEST(WatchTest, EveryBatchCarriesExactlyItsChangesWhateverCameBefore) {
  TempDir dir;
  auto n = testing::OpenServingNode(dir.path() / "n");
  ASSERT_TRUE(n);
  std::vector<std::string> want;
  Gtid last;
  for (int i = 0; i < 3000; ++i) {
    const std::string k = "w/" + std::to_string(i);
    std::vector<Mutation> write;
    std::string line;
    switch (i % 4) {
      case 0:  // three changes, one outside the range
        write = {Mutation::Put(k + "a", std::string(200 + i % 7, 'a')), Mutation::Put("x/" + k, "out"),
                 Mutation::Put(k + "b", "b" + std::to_string(i))};
        line = " PUT " + k + "a=" + std::string(200 + i % 7, 'a') + " PUT " + k + "b=b" + std::to_string(i);
        break;
      case 1:  // a delete where a long value was
        write = {Mutation::Delete(k + "a")};
        line = " DEL " + k + "a";
        break;
      case 2:  // nothing in the range: not delivered
        write = {Mutation::Put("x/" + k, "out")};
        break;
      default:  // one short value
        write = {Mutation::Put(k, "v")};
        line = " PUT " + k + "=v";
    }
    auto g = n->Write(write);
    ASSERT_TRUE(g.ok()) << g.status();
    last = *g;
    if (!line.empty()) want.push_back(g->ToString() + line);
  }
  WatchOptions o;
  o.range = WatchRange::Prefix("w/");
  o.after = Gtid{};
  Watched w = Collect(*n, o, Reached(last));
  ASSERT_TRUE(w.status.ok()) << w.status;
  EXPECT_GE(w.batches.size(), 3u);  // more than one full batch
  EXPECT_EQ(Lines(w.events), want);
  EXPECT_EQ(DeletesWithAValue(w.events), 0);

  auto client = Client::Connect({testing::Address(*n)});
  ASSERT_TRUE(client.ok());
  ClientWatchOptions co;
  co.after = Gtid{};
  std::vector<WatchEvent> events;
  size_t batches = 0;
  absl::Status s = (*client)->Watch(WatchRange::Prefix("w/"), co, [&](const WatchBatch& b) {
    ++batches;
    events.insert(events.end(), b.events.begin(), b.events.end());
    return b.progress.seq < last.seq;
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_GE(batches, 3u);
  EXPECT_EQ(Lines(events), want);
  EXPECT_EQ(DeletesWithAValue(events), 0);
}

// 16 MiB of changes in 16 writes, far more than gRPC's windows hold.
void WriteSixteenMiB(Node& n) {
  const std::string value(64 * 1024, 'v');
  for (int b = 0; b < 16; ++b) {
    std::vector<Mutation> batch;
    for (int i = 0; i < 16; ++i) batch.push_back(Mutation::Put("k" + std::to_string(b * 16 + i), value));
    ASSERT_TRUE(n.Write(batch).ok());
  }
}

// Messages bigger than the client's 1 MiB parse block (each write here is
// 1 MiB of values) arrive whole, and the slots that held them are refilled
// right by the small writes that follow.
TEST(WatchTest, ClientWatchTakesMessagesBiggerThanItsParseBlock) {
  TempDir dir;
  auto n = testing::OpenServingNode(dir.path() / "n");
  ASSERT_TRUE(n);
  WriteSixteenMiB(*n);
  auto last = n->Put("small", "s");
  ASSERT_TRUE(last.ok());
  auto client = Client::Connect({testing::Address(*n)});
  ASSERT_TRUE(client.ok());
  ClientWatchOptions o;
  o.after = Gtid{};
  std::map<std::string, size_t> sizes;
  absl::Status s = (*client)->Watch(WatchRange{}, o, [&](const WatchBatch& b) {
    for (const WatchEvent& e : b.events) {
      for (const Mutation& m : e.changes) sizes[m.key] = m.value.size();
    }
    return b.progress.seq < last->seq;
  });
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_EQ(sizes.size(), 257u);
  EXPECT_EQ(sizes["k0"], 64u * 1024);
  EXPECT_EQ(sizes["k255"], 64u * 1024);
  EXPECT_EQ(sizes["small"], 1u);
}

// A raw gRPC watch of every key on `n` (a 60 s deadline as hang guard).
struct RawWatch {
  explicit RawWatch(Node& n)
      : stub(v1::ChangeStream::NewStub(
            grpc::CreateChannel(testing::Address(n), grpc::InsecureChannelCredentials()))) {
    ctx.set_deadline(std::chrono::system_clock::now() + 60s);
    reader = stub->Watch(&ctx, v1::WatchRequest());
  }
  std::unique_ptr<v1::ChangeStream::Stub> stub;
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<v1::WatchResponse>> reader;
};

// A gRPC watcher that stops reading while a lot is written: its stream is
// held by flow control (the server reads no further), and once it reads
// again it gets RESOURCE_EXHAUSTED naming the limit.
TEST(WatchTest, SlowGrpcReaderIsEndedWithResourceExhausted) {
  TempDir dir;
  auto n = testing::OpenServingNode(dir.path() / "n", {{"watch_max_lag_seconds", "1"}});
  ASSERT_TRUE(n);
  RawWatch w(*n);
  v1::WatchResponse msg;
  ASSERT_TRUE(w.reader->Read(&msg));  // the start
  ASSERT_NO_FATAL_FAILURE(WriteSixteenMiB(*n));
  std::this_thread::sleep_for(3s);  // not reading
  size_t events = 0;
  while (w.reader->Read(&msg)) events += msg.events_size();
  grpc::Status s = w.reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_NE(s.error_message().find("watch_max_lag_seconds"), std::string::npos) << s.error_message();
  EXPECT_LT(events, 16u) << "it was ended before it had everything";
}

// A gRPC watcher that stops reading altogether: its Write stays blocked, so
// Node::Watch never gets to its lag check; the service's watchdog (a task
// on the node's timer loop) cancels the call once the Write has been
// blocked for max(2 x watch_max_lag_seconds, that + 10 s) — the client then
// sees CANCELLED, not the RESOURCE_EXHAUSTED a merely slow reader gets.
TEST(WatchTest, WatcherThatStopsReadingIsCancelledByTheWatchdog) {
  TempDir dir;
  auto n = testing::OpenServingNode(dir.path() / "n", {{"watch_max_lag_seconds", "1"}});
  ASSERT_TRUE(n);
  RawWatch w(*n);
  v1::WatchResponse msg;
  ASSERT_TRUE(w.reader->Read(&msg));  // the start
  ASSERT_NO_FATAL_FAILURE(WriteSixteenMiB(*n));
  // Past the 11 s limit and the watchdog's 1 s period, with a margin.
  std::this_thread::sleep_for(14s);
  while (w.reader->Read(&msg)) {
  }
  grpc::Status s = w.reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED) << s.error_message();
}

}  // namespace
}  // namespace relaykv
