// Resource limits of a running relaykvd (README "Limits"), one test per
// cap: each is reached by real clients or raw gRPC streams, and the
// refusal must be RESOURCE_EXHAUSTED naming the limit (or, for the
// timeouts, the stream ended with a log line naming it), with nothing of a
// refused write in the binlog.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "proto/kv.grpc.pb.h"
#include "proto/replication.grpc.pb.h"
#include "proto/watch.grpc.pb.h"
#include "tests/common/tcp_proxy.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::seconds;

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A raw WriteStream with one write answered: the server has accepted it
// (and it holds a max_connections slot until it ends).
class OpenStream {
 public:
  OpenStream(const std::string& address, const std::string& key) {
    stub_ = v1::Kv::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    ctx_.set_deadline(std::chrono::system_clock::now() + seconds(60));
    stream_ = stub_->WriteStream(&ctx_);
    v1::WriteStreamRequest req;
    v1::StreamWrite* w = req.add_writes();
    w->set_id(1);
    w->mutable_put()->set_key(key);
    w->mutable_put()->set_value("v");
    ok_ = stream_->Write(req) && stream_->Read(&reply_);
  }
  ~OpenStream() {
    if (done_) return;
    stream_->WritesDone();
    v1::WriteStreamReply r;
    while (stream_->Read(&r)) {
    }
    stream_->Finish().ok();  // its status does not matter here
  }
  // Whether its write was answered (and how).
  bool ok() const { return ok_ && reply_.answers_size() == 1; }
  const v1::StreamAnswer& answer() const { return reply_.answers(0); }
  // A stream refused at once: no answer, its status.
  grpc::Status Refusal() {
    v1::WriteStreamReply r;
    while (stream_->Read(&r)) {
    }
    done_ = true;
    return stream_->Finish();
  }

 private:
  std::unique_ptr<v1::Kv::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::WriteStreamRequest, v1::WriteStreamReply>> stream_;
  v1::WriteStreamReply reply_;
  bool ok_ = false;
  bool done_ = false;
};

// A raw Subscribe stream playing a replica: sends its hello (unless told
// not to) and reads only when asked.
class RawReplica {
 public:
  RawReplica(const std::string& primary, uint32_t server_id, bool send_hello = true) {
    stub_ = v1::Replication::NewStub(grpc::CreateChannel(primary, grpc::InsecureChannelCredentials()));
    ctx_.set_deadline(std::chrono::system_clock::now() + seconds(120));
    stream_ = stub_->Subscribe(&ctx_);
    if (!send_hello) return;
    v1::ReplicaMessage hello;
    hello.mutable_hello()->set_server_id(server_id);
    hello.mutable_hello()->mutable_durable_gtid();  // from the start
    stream_->Write(hello);
  }
  ~RawReplica() {
    ctx_.TryCancel();
    if (!finished_) stream_->Finish().ok();
  }
  // Reads until the primary ends the stream (or the 120 s deadline); its status.
  grpc::Status Ended() {
    v1::PrimaryMessage m;
    while (stream_->Read(&m)) {
    }
    finished_ = true;
    return stream_->Finish();
  }

 private:
  std::unique_ptr<v1::Replication::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ReplicaMessage, v1::PrimaryMessage>> stream_;
  bool finished_ = false;
};

TEST(LimitsProcessTest, MaxConnectionsRefusesCallsBeyondItNamingItButNotAdminCalls) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "p", {"--max_connections=2"});
  ASSERT_NE(s, nullptr);
  {
    OpenStream a(s->address(), "a");
    OpenStream b(s->address(), "b");
    ASSERT_TRUE(a.ok() && b.ok()) << "two streams fit in max_connections=2";
    // Both slots are held by the streams: every other client call is refused.
    auto put = s->Put("k", "v");
    ASSERT_FALSE(put.ok());
    EXPECT_EQ(put.status().code(), absl::StatusCode::kResourceExhausted) << put.status();
    EXPECT_TRUE(Contains(std::string(put.status().message()), "max_connections=2")) << put.status();
    EXPECT_TRUE(Contains(std::string(put.status().message()), "Too many connections"));
    auto get = s->Get("a");
    ASSERT_FALSE(get.ok());
    EXPECT_EQ(get.status().code(), absl::StatusCode::kResourceExhausted) << get.status();
    OpenStream c(s->address(), "c");
    const grpc::Status refused = c.Refusal();
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
    EXPECT_TRUE(Contains(refused.error_message(), "max_connections=2")) << refused.error_message();
    // Admin calls are not counted: an operator can always look and raise it.
    auto st = s->Status();
    EXPECT_EQ(st["Threads_connected"], "2");
    EXPECT_EQ(st["Connection_errors_max_connections"], "3");
    ASSERT_TRUE(s->client().SetVariable("max_connections", "3").ok());
    auto put2 = s->Put("k", "v");
    ASSERT_TRUE(put2.ok()) << put2.status();
    // Nothing refused was written: a, b, then k.
    EXPECT_EQ(put2->seq, 3u);
  }
  // The streams' slots are given back when they end.
  ASSERT_TRUE(WaitFor([&] { return s->Status()["Threads_connected"] == "0"; }, seconds(10)));
}

TEST(LimitsProcessTest, WritesPastTheInFlightLimitWaitThenAreRefusedAndNeverWritten) {
  TempDir dir;
  // Semi-sync with no replica: every commit waits (up to 60 s) for an ACK
  // that does not come, so commits stay in flight as long as the test wants.
  auto s = Relaykvd::Start(dir.path() / "p",
                           {"--max_inflight_writes=2", "--write_queue_timeout_ms=500",
                            "--rpl_semi_sync_master_enabled=ON",
                            "--rpl_semi_sync_master_timeout=60000"});
  ASSERT_NE(s, nullptr);
  auto w1 = std::async(std::launch::async, [&] { return s->Put("w1", "v"); });
  auto w2 = std::async(std::launch::async, [&] { return s->Put("w2", "v"); });
  ASSERT_TRUE(WaitFor([&] { return s->Status()["Write_admission_in_flight"] == "2"; }, seconds(10)));

  // A third waits write_queue_timeout_ms, then is refused, naming the limit.
  const auto start = Clock::now();
  auto w3 = s->Put("w3", "v");
  const auto waited = Clock::now() - start;
  ASSERT_FALSE(w3.ok());
  EXPECT_EQ(w3.status().code(), absl::StatusCode::kResourceExhausted) << w3.status();
  EXPECT_TRUE(Contains(std::string(w3.status().message()), "max_inflight_writes=2")) << w3.status();
  EXPECT_GE(waited, std::chrono::milliseconds(450)) << "refused without waiting for admission";
  EXPECT_EQ(s->BinlogGtid().seq, 2u) << "a refused write reached the binlog";

  // A queued write is admitted as soon as one in flight is answered.
  ASSERT_TRUE(s->client().SetVariable("write_queue_timeout_ms", "30000").ok());
  auto w4 = std::async(std::launch::async, [&] { return s->Put("w4", "v"); });
  ASSERT_TRUE(WaitFor([&] { return s->Status()["Write_admission_queued"] == "1"; }, seconds(10)));
  EXPECT_EQ(s->BinlogGtid().seq, 2u) << "a queued write is not written before it is admitted";
  // Semi-sync OFF releases the waiting commits (async), then w4 commits.
  ASSERT_TRUE(s->client().SetVariable("rpl_semi_sync_master_enabled", "OFF").ok());
  for (auto* w : {&w1, &w2, &w4}) {
    ASSERT_EQ(w->wait_for(seconds(30)), std::future_status::ready);
    auto g = w->get();
    EXPECT_TRUE(g.ok()) << g.status();
  }
  EXPECT_EQ(s->BinlogGtid().seq, 3u);
  auto st = s->Status();
  EXPECT_EQ(st["Write_admission_refused"], "1");
  EXPECT_EQ(st["Write_admission_waits"], "2");
  // A slot is given back right after its answer went out, so a moment
  // after the client has it.
  EXPECT_TRUE(WaitFor([&] { return s->Status()["Write_admission_in_flight"] == "0"; }, seconds(10)))
      << s->Status()["Write_admission_in_flight"];
  EXPECT_EQ(*s->Get("w3"), std::nullopt);
}

TEST(LimitsProcessTest, MaxReplicasRefusesOneMoreReplicaNamingTheLimit) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p", {"--max_replicas=1"});
  ASSERT_NE(primary, nullptr);
  auto replica = StartReplica(dir.path() / "r", *primary);
  ASSERT_NE(replica, nullptr);
  // Its place is taken before the second asks (else the second gets it).
  ASSERT_TRUE(WaitFor([&] { return primary->Status()["Replicas_connected"] == "1"; }));
  RawReplica second(primary->address(), 3);
  const grpc::Status refused = second.Ended();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_TRUE(Contains(refused.error_message(), "max_replicas=1")) << refused.error_message();
  // The replica in place streams on.
  auto g = primary->Put("k", "v");
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*primary, *replica); }));
  EXPECT_EQ(primary->Status()["Replicas_connected"], "1");
}

TEST(LimitsProcessTest, AStreamThatSendsNoHelloIsEndedAfterNetReadTimeout) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p", {"--net_read_timeout=1"});
  ASSERT_NE(primary, nullptr);
  RawReplica silent(primary->address(), 3, /*send_hello=*/false);
  const auto start = Clock::now();
  const grpc::Status ended = silent.Ended();
  EXPECT_LT(Clock::now() - start, seconds(30)) << "the stream outlived its hello timeout";
  EXPECT_FALSE(ended.ok());
  EXPECT_TRUE(WaitFor([&] { return Contains(primary->Log(), "no hello within 1 s (net_read_timeout)"); },
                      seconds(10)))
      << primary->Log();
}

TEST(LimitsProcessTest, AReplicaThatNeverReadsIsEndedAfterNetWriteTimeout) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p", {"--net_write_timeout=2"});
  ASSERT_NE(primary, nullptr);
  // 32 MiB of binlog: far more than gRPC's flow-control windows hold.
  for (int i = 0; i < 64; ++i) {
    auto g = primary->Put("big" + std::to_string(i), std::string(512 * 1024, 'x'));
    ASSERT_TRUE(g.ok()) << g.status();
  }
  RawReplica stuck(primary->address(), 3);  // its hello, then it never reads
  ASSERT_TRUE(WaitFor([&] { return primary->Status()["Replicas_connected"] == "1"; }, seconds(10)));
  ASSERT_TRUE(WaitFor([&] { return primary->Status()["Replicas_connected"] == "0"; }, seconds(30)))
      << "a replica that does not read still holds its stream";
  EXPECT_TRUE(Contains(primary->Log(), "replica server_id 3")) << primary->Log();
  EXPECT_TRUE(Contains(primary->Log(), "longer than net_write_timeout")) << primary->Log();
}

// Every watcher holds a gRPC thread and no max_connections slot: with
// max_watchers watches open and every slot taken, an admin call still finds
// a thread (review s43b F3: the thread quota was max_connections + 64, so
// 64 watchers and 4 waiting reads left SET GLOBAL none), also after the
// cap was raised at runtime.
TEST(LimitsProcessTest, AdminCallsWorkWithEveryWatcherAndSlotTaken) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "p", {"--max_connections=4", "--max_watchers=64"});
  ASSERT_NE(s, nullptr);
  auto first = s->Put("k", "v");
  ASSERT_TRUE(first.ok()) << first.status();
  auto channel = grpc::CreateChannel(s->address(), grpc::InsecureChannelCredentials());
  auto watch_stub = v1::ChangeStream::NewStub(channel);
  auto kv_stub = v1::Kv::NewStub(channel);
  grpc::CompletionQueue cq;
  // The calls progress only while their queue is polled.
  std::thread poller([&cq] {
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
    }
  });
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientAsyncReader<v1::WatchResponse>>> watches;
  std::vector<std::unique_ptr<grpc::ClientAsyncResponseReader<v1::GetReply>>> gets;
  v1::WatchRequest watch;
  watch.set_prefix("k");
  for (int i = 0; i < 64; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    watches.push_back(watch_stub->AsyncWatch(contexts.back().get(), watch, &cq, nullptr));
  }
  // Reads waiting for a GTID far ahead: each holds a slot and a thread.
  v1::GetRequest get;
  get.set_key("k");
  get.mutable_wait_for_gtid()->set_epoch(first->epoch);
  get.mutable_wait_for_gtid()->set_seq(1000000);
  std::vector<v1::GetReply> replies(80);
  std::vector<grpc::Status> ends(80);
  for (int i = 0; i < 4; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    gets.push_back(kv_stub->AsyncGet(contexts.back().get(), get, &cq));
    gets.back()->Finish(&replies[i], &ends[i], &replies[i]);  // what sends it
  }
  EXPECT_TRUE(WaitFor([&] { return s->Status()["Threads_connected"] == "4"; }, seconds(20)))
      << s->Status()["Threads_connected"];
  // All 64 watch: one more is refused for max_watchers (not for want of a thread).
  std::string refusal;
  EXPECT_TRUE(WaitFor(
      [&] {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + seconds(2));
        auto reader = watch_stub->Watch(&ctx, watch);
        v1::WatchResponse r;
        while (reader->Read(&r)) {
        }
        refusal = reader->Finish().error_message();
        return Contains(refusal, "max_watchers is 64");
      },
      seconds(30)))
      << refusal;
  // Raised at runtime, the quota grows with it: the new slots filled with
  // waiting reads (80 + 64 watchers, past the 132 threads it started
  // with), an admin call still finds a thread (review s43c: the quota was
  // fixed at startup).
  absl::Status set = s->client().SetVariable("max_connections", "80");
  EXPECT_TRUE(set.ok()) << set;
  for (int i = 4; i < 80; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    gets.push_back(kv_stub->AsyncGet(contexts.back().get(), get, &cq));
    gets.back()->Finish(&replies[i], &ends[i], &replies[i]);
  }
  EXPECT_TRUE(WaitFor([&] { return s->Status()["Threads_connected"] == "80"; }, seconds(20)))
      << s->Status()["Threads_connected"];
  absl::Status again = s->client().SetVariable("max_connections", "81");
  EXPECT_TRUE(again.ok()) << again;
  for (auto& c : contexts) c->TryCancel();
  cq.Shutdown();
  poller.join();
}

// A client whose flow-control windows stay small (gRPC sizes them by its
// memory pressure; no BDP probing), taking messages of any size.
std::shared_ptr<grpc::Channel> SmallWindowChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  grpc::ResourceQuota quota("tight");
  quota.Resize(1 << 20);
  args.SetResourceQuota(quota);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

// Gets whose replies the client does not read hold their max_connections
// slots and their replies' bytes (max_inflight_reply_bytes) until the reply
// is sent, and are ended after net_write_timeout (review s43b F2: the slot
// went back when the handler returned, while gRPC's thread and the reply
// stayed for as long as the client liked; s43d R1: bytes too). Keepalive
// is far off, so only net_write_timeout can end them.
TEST(LimitsProcessTest, ReadsWhoseRepliesAreNotReadHoldTheirSlotsAndBytesAndAreEnded) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "p",
                           {"--max_connections=4", "--net_write_timeout=15",
                            "--keepalive_time_ms=600000", "--keepalive_timeout_ms=600000",
                            "--max_inflight_reply_bytes=67108864"});
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->Put("big", std::string(12 << 20, 'x')).ok());
  ASSERT_TRUE(s->Put("small", "v").ok());
  auto proxy = TcpProxy::Start(s->address());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  // Behind a proxy that stops passing the replies on: the server's sends
  // wait for a window that never comes.
  auto stub = v1::Kv::NewStub(SmallWindowChannel((*proxy)->address()));
  v1::GetRequest small;
  small.set_key("small");
  {
    grpc::ClientContext ctx;
    v1::GetReply reply;
    grpc::Status st = stub->Get(&ctx, small, &reply);  // the connection is up
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  (*proxy)->StallReplies();
  grpc::CompletionQueue cq;
  std::thread poller([&cq] {  // the calls progress only while their queue is polled
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
    }
  });
  v1::GetRequest big;
  big.set_key("big");
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientAsyncResponseReader<v1::GetReply>>> calls;
  std::vector<v1::GetReply> replies(4);
  std::vector<grpc::Status> ends(4);
  auto start_get = [&](const v1::GetRequest& get) {
    const size_t i = calls.size();
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    calls.push_back(stub->AsyncGet(contexts.back().get(), get, &cq));
    calls.back()->Finish(&replies[i], &ends[i], &replies[i]);
  };
  // Two 12 MiB replies stalled, each counted in memory and encoded: ~48 MiB
  // of the 64 MiB budget.
  start_get(big);
  start_get(big);
  EXPECT_TRUE(WaitFor([&] { return s->Status()["Threads_connected"] == "2"; }, seconds(10)))
      << "Threads_connected " << s->Status()["Threads_connected"];
  // The slot is taken before the read, the bytes after it: wait for both
  // replies to be counted (CI stop 40 looked between the two).
  EXPECT_TRUE(WaitFor(
      [&] { return std::stoull(s->Status()["Reply_bytes_waiting"]) > (48u << 20); }, seconds(10)))
      << "Reply_bytes_waiting " << s->Status()["Reply_bytes_waiting"];
  auto third = s->client().Get("big");
  EXPECT_FALSE(third.ok());
  EXPECT_TRUE(Contains(std::string(third.status().message()),
                       "max_inflight_reply_bytes=67108864"))
      << third.status();
  auto fits = s->client().Get("small");
  EXPECT_TRUE(fits.ok()) << fits.status();
  // Two small ones behind them, stalled too: every slot taken.
  start_get(small);
  start_get(small);
  EXPECT_TRUE(WaitFor([&] { return s->Status()["Threads_connected"] == "4"; }, seconds(10)))
      << "Threads_connected " << s->Status()["Threads_connected"];
  auto fifth = s->client().Get("small");
  EXPECT_FALSE(fifth.ok());
  EXPECT_TRUE(Contains(std::string(fifth.status().message()), "max_connections=4"))
      << fifth.status();
  EXPECT_TRUE(WaitFor(
      [&] {
        auto st = s->Status();
        return st["Threads_connected"] == "0" && st["Reply_bytes_waiting"] == "0";
      },
      seconds(40)))
      << "the unread replies still hold their slots or bytes";
  EXPECT_TRUE(Contains(s->Log(), "its reply was not sent within net_write_timeout")) << s->Log();
  auto after = s->client().Get("big");
  ASSERT_TRUE(after.ok()) << after.status();
  for (auto& c : contexts) c->TryCancel();
  (*proxy)->Stop();
  cq.Shutdown();
  poller.join();
}

// Watchers that do not read each held a batch — up to a 32 MiB event —
// with nothing bounding their sum (review s43b F8): their batches now count
// against max_inflight_reply_bytes while they are written. A batch that
// does not fit waits for room (review s44c W1: a reading watcher was ended
// for good), and after watch_max_lag_seconds ends its stream with
// UNAVAILABLE, which relaykv::Client resumes from its last GTID. Batches
// together hold at most half the budget, so that reads keep the other half
// (review s44d L2: a fan-out of a large change to slow watchers refused
// every large read until it ended).
TEST(LimitsProcessTest, WatchBatchesNotReadCountAgainstTheReplyBudget) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "p",
                           {"--keepalive_time_ms=600000", "--keepalive_timeout_ms=600000",
                            "--max_inflight_reply_bytes=67108864", "--watch_max_lag_seconds=4"});
  ASSERT_NE(s, nullptr);
  auto before = s->Put("a", "v");
  ASSERT_TRUE(before.ok()) << before.status();
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(s->Put("w/" + std::to_string(i), std::string(12 << 20, 'x')).ok());
  }
  auto proxy = TcpProxy::Start(s->address());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto stalled_stub = v1::ChangeStream::NewStub(SmallWindowChannel((*proxy)->address()));
  (*proxy)->StallReplies();
  grpc::CompletionQueue cq;
  std::thread poller([&cq] {
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
    }
  });
  v1::WatchRequest watch;
  watch.set_prefix("w/");
  watch.mutable_after()->set_epoch(before->epoch);
  watch.mutable_after()->set_seq(before->seq);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientAsyncReader<v1::WatchResponse>>> watches;
  // Two blocked in the write of one 12 MiB change each (24 MiB: a third
  // would pass the watchers' half), three waiting for room.
  for (int i = 0; i < 5; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    watches.push_back(stalled_stub->AsyncWatch(contexts.back().get(), watch, &cq, nullptr));
  }
  EXPECT_TRUE(WaitFor(
      [&] { return std::stoull(s->Status()["Reply_bytes_waiting"]) >= (24u << 20); }, seconds(20)))
      << "Reply_bytes_waiting " << s->Status()["Reply_bytes_waiting"];
  grpc::ChannelArguments big;
  big.SetMaxReceiveMessageSize(-1);
  {
    // A read of that change still fits beside them (before, five watchers held 60 MiB).
    auto kv = v1::Kv::NewStub(
        grpc::CreateCustomChannel(s->address(), grpc::InsecureChannelCredentials(), big));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(20));
    v1::GetRequest get;
    get.set_key("w/0");
    v1::GetReply got;
    const grpc::Status read = kv->Get(&ctx, get, &got);
    EXPECT_TRUE(read.ok()) << read.error_message();
    EXPECT_EQ(got.value().size(), 12u << 20);
    EXPECT_LT(std::stoull(s->Status()["Reply_bytes_waiting"]), 48u << 20);
  }
  auto stub = v1::ChangeStream::NewStub(
      grpc::CreateCustomChannel(s->address(), grpc::InsecureChannelCredentials(), big));
  // A watcher that reads: its batch does not fit what the others hold; it
  // waits watch_max_lag_seconds, then is told to resume.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(20));
    auto reader = stub->Watch(&ctx, watch);
    v1::WatchResponse r;
    while (reader->Read(&r)) {
    }
    const grpc::Status end = reader->Finish();
    EXPECT_EQ(end.error_code(), grpc::StatusCode::UNAVAILABLE) << end.error_message();
    EXPECT_TRUE(Contains(end.error_message(), "max_inflight_reply_bytes=67108864"))
        << end.error_message();
  }
  // Batches waiting for room are built already: they may hold no more than
  // the budget again (review s44d M1). Six readers of the 12 MiB change at
  // once: five wait (60 MiB), the sixth is told to resume at once.
  {
    std::vector<std::thread> readers;
    std::vector<std::chrono::steady_clock::duration> took(6);
    std::vector<grpc::Status> ends(6);
    for (int i = 0; i < 6; ++i) {
      readers.emplace_back([&, i] {
        const auto start = std::chrono::steady_clock::now();
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + seconds(20));
        auto reader = stub->Watch(&ctx, watch);
        v1::WatchResponse r;
        while (reader->Read(&r)) {
        }
        ends[i] = reader->Finish();
        took[i] = std::chrono::steady_clock::now() - start;
      });
    }
    for (auto& t : readers) t.join();
    const auto fastest = *std::min_element(took.begin(), took.end());
    EXPECT_LT(fastest, std::chrono::milliseconds(1500)) << "every batch waited";
    for (const grpc::Status& end : ends) {
      EXPECT_EQ(end.error_code(), grpc::StatusCode::UNAVAILABLE) << end.error_message();
    }
  }
  // Another one gets its changes once the room it waits for is freed.
  int changes = 0;
  grpc::Status ended;
  std::thread reading([&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(20));
    auto reader = stub->Watch(&ctx, watch);
    v1::WatchResponse r;
    while (changes < 2 && reader->Read(&r)) changes += r.events_size();
    ctx.TryCancel();
    ended = reader->Finish();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  for (auto& c : contexts) c->TryCancel();
  reading.join();
  EXPECT_EQ(changes, 2) << "the waiting watcher did not get the changes: " << ended.error_message();
  EXPECT_TRUE(WaitFor([&] { return s->Status()["Reply_bytes_waiting"] == "0"; }, seconds(20)))
      << "cancelled watchers still hold " << s->Status()["Reply_bytes_waiting"];
  (*proxy)->Stop();
  cq.Shutdown();
  poller.join();
}

// A watcher that stops reading holds its batch's bytes of the reply budget
// no longer than net_write_timeout, as a unary reply does — not twice
// watch_max_lag_seconds (120 s by default: review s44c W2).
TEST(LimitsProcessTest, AWatcherThatStopsReadingIsCutAtNetWriteTimeout) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "p",
                           {"--keepalive_time_ms=600000", "--keepalive_timeout_ms=600000",
                            "--watch_max_lag_seconds=60", "--net_write_timeout=3"});
  ASSERT_NE(s, nullptr);
  auto before = s->Put("a", "v");
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_TRUE(s->Put("w/0", std::string(4 << 20, 'x')).ok());
  auto proxy = TcpProxy::Start(s->address());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto stalled_stub = v1::ChangeStream::NewStub(SmallWindowChannel((*proxy)->address()));
  (*proxy)->StallReplies();
  v1::WatchRequest watch;
  watch.set_prefix("w/");
  watch.mutable_after()->set_epoch(before->epoch);
  watch.mutable_after()->set_seq(before->seq);
  grpc::ClientContext ctx;
  grpc::CompletionQueue cq;
  auto stalled = stalled_stub->AsyncWatch(&ctx, watch, &cq, nullptr);
  ASSERT_TRUE(WaitFor(
      [&] { return std::stoull(s->Status()["Reply_bytes_waiting"]) >= (4u << 20); }, seconds(20)))
      << "Reply_bytes_waiting " << s->Status()["Reply_bytes_waiting"];
  const auto start = Clock::now();
  // 3 s and a watchdog round; the bound is a hang guard (the old cut came at 120 s).
  EXPECT_TRUE(WaitFor([&] { return s->Status()["Reply_bytes_waiting"] == "0"; }, seconds(40)))
      << "the stalled watcher still holds " << s->Status()["Reply_bytes_waiting"];
  std::cerr << "stalled watcher cut after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count()
            << " ms\n";
  EXPECT_TRUE(Contains(s->Log(), "stopped reading")) << s->Log();
  ctx.TryCancel();
  (*proxy)->Stop();
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
}

TEST(LimitsProcessTest, KeepaliveEndsTheStreamOfAStoppedReplicaWithinSeconds) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p",
                                 {"--keepalive_time_ms=1000", "--keepalive_timeout_ms=1000"});
  ASSERT_NE(primary, nullptr);
  auto replica = StartReplica(dir.path() / "r", *primary);
  ASSERT_NE(replica, nullptr);
  // An async replica is not waited for by StartReplica: its stream may
  // still be on its way.
  ASSERT_TRUE(WaitFor([&] { return primary->Status()["Replicas_connected"] == "1"; }, seconds(30)));
  // SIGSTOP: its kernel still ACKs TCP, but nothing answers the pings.
  replica->Pause();
  const auto start = Clock::now();
  // keepalive 1 s + 1 s; the bound is a generous hang guard.
  const bool dropped =
      WaitFor([&] { return primary->Status()["Replicas_connected"] == "0"; }, seconds(20));
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  replica->Resume();
  ASSERT_TRUE(dropped) << "the primary still holds a stopped replica's stream after 20 s";
  std::cerr << "stopped replica's stream ended after " << took.count() << " ms\n";
  // Back: it reconnects and catches up.
  ASSERT_TRUE(primary->Put("after", "v").ok());
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*primary, *replica); }));
}

TEST(LimitsProcessTest, AMessageOverMaxAllowedPacketIsRefusedAndNotWritten) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "p", {"--max_allowed_packet=1048576"});
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->Put("small", std::string(512 * 1024, 's')).ok());
  auto big = s->Put("big", std::string(2 * 1024 * 1024, 'b'));
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted) << big.status();
  // gRPC's own words, with the limit: "... larger than max (N vs. 1048576)".
  EXPECT_TRUE(Contains(std::string(big.status().message()), "1048576")) << big.status();
  EXPECT_EQ(s->BinlogGtid().seq, 1u);
  auto v = s->client().ShowVariables("max_allowed_packet");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)["max_allowed_packet"], "1048576");
}

// binlog_expire_logs_seconds / max_binlog_total_size win over a replica
// that is connected but stuck: the disk is not filled for it, a warning
// names it, and once back it is refused as purged (to be rebuilt).
TEST(LimitsProcessTest, TheBinlogSizeLimitWinsOverAStuckReplicaAndNamesIt) {
  TempDir dir;
  // Keepalive long enough that the stopped replica stays connected.
  auto primary = Relaykvd::Start(dir.path() / "p", {"--max_binlog_size=65536",
                                                    "--keepalive_time_ms=300000"});
  ASSERT_NE(primary, nullptr);
  auto replica = StartReplica(dir.path() / "r", *primary);
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(primary->Put("k0", "v").ok());
  ASSERT_TRUE(WaitFor([&] { return replica->BinlogGtid().seq == 1; }));
  replica->Pause();
  // 4.8 MB: more than a send batch (1 MiB) and the stream's flow-control
  // window hold, so the primary cannot have read it all for the replica
  // before it stopped reading.
  for (int i = 1; i < 600; ++i) {
    ASSERT_TRUE(primary->Put("k" + std::to_string(i), std::string(8000, 'a')).ok());
  }
  ASSERT_EQ(primary->Status()["Replicas_connected"], "1");
  const uint64_t limit = 262144;
  ASSERT_TRUE(primary->client().SetVariable("max_binlog_total_size", std::to_string(limit)).ok());
  auto total = [&] {
    uint64_t t = 0;
    auto logs = primary->client().ShowBinaryLogs();
    if (logs.ok()) {
      for (const auto& l : *logs) t += l.size_bytes;
    }
    return t;
  };
  // The housekeeper runs every 10 s.
  ASSERT_TRUE(WaitFor([&] { return total() <= limit; }, seconds(60)))
      << "the size limit kept segments for a stuck replica: " << total() << " bytes";
  EXPECT_TRUE(WaitFor([&] {
    const std::string log = primary->Log();
    return Contains(log, "still needs: it has acked") && Contains(log, "replica server_id 2");
  }, seconds(10))) << primary->Log();
  replica->Resume();
  ASSERT_TRUE(WaitFor([&] { return Contains(replica->ReplicaStatus()["Last_IO_Error"], "purged"); },
                      seconds(60)))
      << replica->ReplicaStatus()["Last_IO_Error"];
}

}  // namespace
}  // namespace relaykv::testing
