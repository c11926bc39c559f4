// relaykv::Client with pipelined writes (ClientOptions::pipelined: one
// WriteStream per node, client/write_mux.cc) against embedded nodes over
// real gRPC on 127.0.0.1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "proto/kv.grpc.pb.h"
#include "relaykv/client.h"
#include "relaykv/node.h"
#include "tests/common/fake_grpc_server.h"
#include "tests/common/prometheus_text.h"
#include "tests/common/temp_dir.h"

namespace relaykv {
namespace {

using testing::TempDir;
using testing::WaitFor;
using Clock = std::chrono::steady_clock;

std::unique_ptr<Node> OpenNode(const std::filesystem::path& dir, NameValues vars = {},
                               std::string primary = "", std::string listen = "127.0.0.1:0") {
  NodeOptions o;
  o.data_dir = dir;
  o.listen_address = std::move(listen);
  o.replicate_from = std::move(primary);
  o.variables = std::move(vars);
  auto n = Node::Open(o);
  EXPECT_TRUE(n.ok()) << n.status();
  return n.ok() ? *std::move(n) : nullptr;
}

std::string Addr(const Node& n) { return "127.0.0.1:" + std::to_string(n.bound_port()); }

uint64_t Num(const Node& n, const std::string& suffix) {
  const std::string name = "Rpl_semi_sync_master_" + suffix;
  for (const auto& [k, v] : n.ShowStatus(name)) {
    if (k == name) return std::stoull(v);
  }
  return ~0ull;
}

ClientOptions Pipelined(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  ClientOptions o;
  o.timeout = timeout;
  o.pipelined = true;
  return o;
}

// A primary with semi-sync ON (AFTER_SYNC) whose one semi-sync replica can
// be stopped to hold every commit.
struct SemiSyncPair {
  TempDir dir;
  std::unique_ptr<Node> primary;
  std::unique_ptr<Node> replica;
  SemiSyncPair() {
    primary = OpenNode(dir.path() / "p", {{"rpl_semi_sync_master_enabled", "ON"},
                                          {"rpl_semi_sync_master_timeout", "600000"}});
    replica = OpenNode(dir.path() / "r", {{"server_id", "2"}, {"rpl_semi_sync_slave_enabled", "ON"}},
                       Addr(*primary));
    EXPECT_TRUE(WaitFor([&] { return Num(*primary, "clients") == 1; }));
  }
  void StopReplica() {
    ASSERT_TRUE(replica->StopReplica(ReplicaThreads::kIo).ok());
    ASSERT_TRUE(WaitFor([&] { return Num(*primary, "clients") == 0; }));
  }
};

TEST(ClientStreamTest, SixtyFourThreadsShareOneStreamAndEachGetsItsOwnGtid) {
  SemiSyncPair c;
  auto client = *Client::Connect({Addr(*c.primary)}, Pipelined());
  constexpr int kThreads = 64, kEach = 40;
  std::mutex mu;
  std::set<uint64_t> seqs;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string key = "t" + std::to_string(t) + "/" + std::to_string(i);
        auto g = i % 4 == 3 ? client->Write({Mutation::Put(key, key), Mutation::Put(key + "b", key)})
                            : client->Put(key, key);
        if (!g.ok()) {
          ++failures;
          continue;
        }
        {
          std::lock_guard l(mu);
          if (!seqs.insert(g->seq).second) ++failures;  // someone else's answer
        }
        // Our own answer: our write is visible at our GTID.
        auto v = c.primary->Get(key, g->seq);
        if (!v.ok() || *v != std::optional<std::string>(key)) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  ASSERT_EQ(seqs.size(), static_cast<size_t>(kThreads * kEach));
  EXPECT_EQ(*seqs.begin(), 1u);
  EXPECT_EQ(*seqs.rbegin(), static_cast<uint64_t>(kThreads * kEach)) << "dense";
  EXPECT_EQ(Num(*c.primary, "no_tx"), 0u);
  EXPECT_EQ(Num(*c.primary, "wait_sessions"), 0u);
}

// Callers woken by one message of answers write again at about the same
// time: the mux sends their writes together (the sender thread takes what
// queued while it woke), not one message each. The node counts writes per
// message (relaykv_write_stream_message_writes).
TEST(ClientStreamTest, WritesOfManyBlockingCallersLeaveTogether) {
  SemiSyncPair c;
  auto client = *Client::Connect({Addr(*c.primary)}, Pipelined());
  constexpr int kThreads = 64, kEach = 50;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        if (!client->Put("t" + std::to_string(t) + "/" + std::to_string(i), "v").ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  const std::string metrics = c.primary->MetricsText();
  const double writes = testing::SampleValue(metrics, "relaykv_write_stream_message_writes_sum").value_or(-1);
  const double messages = testing::SampleValue(metrics, "relaykv_write_stream_message_writes_count").value_or(-1);
  EXPECT_EQ(writes, kThreads * kEach);
  std::printf("%.0f writes in %.0f messages: %.2f per message\n", writes, messages, writes / messages);
  // A floor, not the figure (bench/ measures): one message per write would
  // fail it however loaded the machine.
  EXPECT_GE(writes / messages, 2.0) << "each caller sending its own write: one message (a loopback send) per write";
}

// Deadlines about as long as a commit: many answers arrive as their
// callers give up. Each call ends once, OK with a GTID nobody else got
// (and its write visible there) or DEADLINE_EXCEEDED; nothing else.
TEST(ClientStreamTest, AnswersRacingTheirDeadlinesReachOnlyTheirOwnCallers) {
  SemiSyncPair c;
  // Whatever this machine's commit latency, some of these are about it.
  std::vector<std::unique_ptr<Client>> clients;
  for (int ms = 1; ms <= 128; ms *= 2) {
    clients.push_back(*Client::Connect({Addr(*c.primary)}, Pipelined(std::chrono::milliseconds(ms))));
  }
  constexpr int kThreads = 64, kEach = 30;
  std::mutex mu;
  std::set<uint64_t> seqs;
  int ok = 0, late = 0, other = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string key = "t" + std::to_string(t) + "/" + std::to_string(i);
        auto g = clients[static_cast<size_t>(t) % clients.size()]->Put(key, key);
        std::lock_guard l(mu);
        if (g.ok()) {
          ++ok;
          if (!seqs.insert(g->seq).second) ++other;  // someone else's answer
          auto v = c.primary->Get(key, g->seq);
          if (!v.ok() || *v != std::optional<std::string>(key)) ++other;
        } else if (g.status().code() == absl::StatusCode::kDeadlineExceeded) {
          ++late;
        } else {
          ++other;
          ADD_FAILURE() << g.status();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(other, 0);
  EXPECT_EQ(ok + late, kThreads * kEach);
  std::printf("%d answered, %d past their deadline\n", ok, late);
}

// Answers come back in commit order, not send order: a write held for the
// ACK is overtaken by later bad writes' errors, each reaching its caller.
TEST(ClientStreamTest, OutOfOrderAnswersReachTheirCallersAndBadInputFailsAlone) {
  SemiSyncPair c;
  c.StopReplica();
  auto client = *Client::Connect({Addr(*c.primary)}, Pipelined());
  auto held = std::async(std::launch::async, [&] { return client->Put("held", "1"); });
  ASSERT_TRUE(WaitFor([&] { return Num(*c.primary, "wait_sessions") == 1; }));
  auto empty = client->Put("", "x");
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument) << empty.status();
  EXPECT_NE(empty.status().message().find("key is empty"), std::string::npos) << empty.status();
  auto none = client->Write({});
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument) << none.status();
  auto del = client->Write({Mutation::Delete("k"), Mutation::Put(std::string(70000, 'k'), "v")});
  EXPECT_EQ(del.status().code(), absl::StatusCode::kInvalidArgument) << del.status();
  EXPECT_NE(del.status().message().find("70000"), std::string::npos) << del.status();
  EXPECT_EQ(held.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout)
      << "answered before its ACK";
  auto later = std::async(std::launch::async, [&] { return client->Put("later", "2"); });
  ASSERT_TRUE(WaitFor([&] { return Num(*c.primary, "wait_sessions") == 2; }));
  ASSERT_TRUE(c.replica->StartReplica(ReplicaThreads::kIo).ok());
  auto g1 = held.get();
  auto g2 = later.get();
  ASSERT_TRUE(g1.ok()) << g1.status();
  ASSERT_TRUE(g2.ok()) << g2.status();
  EXPECT_EQ(g1->seq, 1u);
  EXPECT_EQ(g2->seq, 2u);
}

TEST(ClientStreamTest, EachCallKeepsItsOwnDeadlineAndTheServerStopsWaitingToo) {
  SemiSyncPair c;
  c.StopReplica();
  auto client = *Client::Connect({Addr(*c.primary)}, Pipelined(std::chrono::milliseconds(400)));
  const auto start = Clock::now();
  auto g = client->Put("slow", "v");
  EXPECT_EQ(g.status().code(), absl::StatusCode::kDeadlineExceeded) << g.status();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  // The server got the same deadline: no wait session is left behind.
  EXPECT_TRUE(WaitFor([&] { return Num(*c.primary, "wait_sessions") == 0; }, std::chrono::seconds(5)));
  EXPECT_EQ(Num(*c.primary, "yes_tx"), 0u);
}

// The node goes away under writes held for ACKs: each in-flight call fails
// with UNAVAILABLE (never OK), and once the node is back the next call
// opens a new stream and succeeds.
TEST(ClientStreamTest, ABrokenStreamFailsCallsInFlightAndTheNextCallReconnects) {
  SemiSyncPair c;
  c.StopReplica();
  const std::string addr = Addr(*c.primary);
  auto client = *Client::Connect({addr}, Pipelined());
  std::vector<std::future<absl::StatusOr<Gtid>>> inflight;
  for (int i = 0; i < 8; ++i) {
    inflight.push_back(std::async(std::launch::async,
                                  [&, i] { return client->Put("k" + std::to_string(i), "v"); }));
  }
  ASSERT_TRUE(WaitFor([&] { return Num(*c.primary, "wait_sessions") == 8; }));
  c.primary->Close();
  for (auto& f : inflight) {
    auto r = f.get();
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  }
  // Down: fails fast, UNAVAILABLE.
  EXPECT_EQ(client->Put("down", "v").status().code(), absl::StatusCode::kUnavailable);
  c.replica.reset();
  c.primary.reset();
  auto back = OpenNode(c.dir.path() / "p", {}, "", addr);
  ASSERT_NE(back, nullptr);
  absl::StatusOr<Gtid> g = absl::UnknownError("not tried");
  ASSERT_TRUE(WaitFor([&] {
    g = client->Put("again", "v");
    return g.ok();
  }, std::chrono::seconds(20))) << g.status();
  EXPECT_EQ(g->seq, back->binlog_gtid().seq);
  EXPECT_EQ(*back->Get("again"), std::optional<std::string>("v"));
}

// A TCP relay from a local port to `target_port`, whose connections Cut()
// drops at once: a network failure under a live stream.
class Relay {
 public:
  explicit Relay(int target_port) : target_port_(target_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(::listen(listen_fd_, 16), 0);
    socklen_t len = sizeof(a);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~Relay() {
    stop_ = true;
    thread_.join();
    Cut();
    ::close(listen_fd_);
  }
  int port() const { return port_; }
  void Cut() {
    std::lock_guard l(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  }
  // Stops copying bytes (either way) while the connections stay open: a
  // node that hears nothing and says nothing.
  void Pause() { paused_ = true; }

 private:
  // One thread: accepts, and copies bytes both ways for every pair.
  void Run() {
    std::vector<std::pair<int, int>> pairs;
    while (!stop_) {
      if (paused_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      std::vector<pollfd> p{{listen_fd_, POLLIN, 0}};
      for (auto [a, b] : pairs) {
        p.push_back({a, POLLIN, 0});
        p.push_back({b, POLLIN, 0});
      }
      if (::poll(p.data(), p.size(), 20) <= 0) continue;
      if (p[0].revents & POLLIN) {
        const int in = ::accept(listen_fd_, nullptr, nullptr);
        const int out = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(static_cast<uint16_t>(target_port_));
        if (in >= 0 && ::connect(out, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
          pairs.emplace_back(in, out);
          std::lock_guard l(mu_);
          fds_.push_back(in);
          fds_.push_back(out);
        }
      }
      for (size_t i = 1; i < p.size(); ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const auto [a, b] = pairs[(i - 1) / 2];
        const int from = i % 2 == 1 ? a : b, to = i % 2 == 1 ? b : a;
        char buf[65536];
        const ssize_t n = ::read(from, buf, sizeof(buf));
        if (n > 0) {
          (void)!::write(to, buf, static_cast<size_t>(n));
        } else {
          ::shutdown(to, SHUT_RDWR);
        }
      }
    }
    std::lock_guard l(mu_);
    for (int fd : fds_) ::close(fd);
    fds_.clear();
  }

  const int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> paused_{false};
  std::mutex mu_;
  std::vector<int> fds_;  // guarded by mu_
  std::thread thread_;
};

// The connection drops under writes held for ACKs: each in-flight call
// fails with UNAVAILABLE (never OK, never hangs), the node sees its client
// gone (no wait session left), and the next call opens a new stream.
TEST(ClientStreamTest, AConnectionCutFailsCallsInFlightAndLeaksNoWaitSession) {
  SemiSyncPair c;
  c.StopReplica();
  Relay relay(c.primary->bound_port());
  auto client = *Client::Connect({"127.0.0.1:" + std::to_string(relay.port())}, Pipelined());
  std::vector<std::future<absl::StatusOr<Gtid>>> inflight;
  for (int i = 0; i < 8; ++i) {
    inflight.push_back(std::async(std::launch::async,
                                  [&, i] { return client->Put("cut" + std::to_string(i), "v"); }));
  }
  ASSERT_TRUE(WaitFor([&] { return Num(*c.primary, "wait_sessions") == 8; }));
  relay.Cut();
  for (auto& f : inflight) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(20)), std::future_status::ready);
    auto r = f.get();
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  }
  EXPECT_TRUE(WaitFor([&] { return Num(*c.primary, "wait_sessions") == 0; }, std::chrono::seconds(10)));
  EXPECT_EQ(Num(*c.primary, "yes_tx"), 0u);
  ASSERT_TRUE(c.replica->StartReplica(ReplicaThreads::kIo).ok());
  absl::StatusOr<Gtid> g = absl::UnknownError("not tried");
  ASSERT_TRUE(WaitFor([&] {
    g = client->Put("after-cut", "v");
    return g.ok();
  }, std::chrono::seconds(20))) << g.status();
  EXPECT_EQ(g->seq, 9u);
}

TEST(ClientStreamTest, DestroyingAClientCancelsItsStreamCleanly) {
  SemiSyncPair c;
  {
    auto client = *Client::Connect({Addr(*c.primary)}, Pipelined());
    ASSERT_TRUE(client->Put("a", "1").ok());
  }
  // The server saw the stream end: a new client's stream works, and no
  // wait is left behind.
  auto client = *Client::Connect({Addr(*c.primary)}, Pipelined());
  auto g = client->Put("b", "2");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->seq, 2u);
  EXPECT_EQ(Num(*c.primary, "wait_sessions"), 0u);
}


// Async writes (Client::PutAsync/WriteAsync/TxnAsync): chains of writes,
// each sent from the last one's callback, with no thread per chain.
TEST(ClientStreamTest, AsyncChainsCommitEveryWriteOnceWithItsOwnGtid) {
  SemiSyncPair c;
  constexpr int kChains = 64, kEach = 30;
  // Before the client: its callbacks may still run while it is destroyed.
  std::mutex mu;
  std::condition_variable cv;
  std::set<uint64_t> seqs;
  std::map<std::string, uint64_t> seq_of;  // key -> the GTID its callback got
  int failures = 0, chains_done = 0;
  std::function<void(int, int)> next;
  auto client = *Client::Connect({Addr(*c.primary)});  // async writes need no `pipelined`
  next = [&](int chain, int i) {
    if (i == kEach) {
      std::lock_guard l(mu);
      ++chains_done;
      cv.notify_all();
      return;
    }
    const std::string key = "c" + std::to_string(chain) + "/" + std::to_string(i);
    auto done = [&, chain, i, key](absl::StatusOr<Gtid> g) {
      {
        std::lock_guard l(mu);
        if (!g.ok() || !seqs.insert(g->seq).second) ++failures;
        if (g.ok()) seq_of[key] = g->seq;
      }
      next(chain, i + 1);
    };
    if (i % 3 == 2) {
      client->WriteAsync({Mutation::Put(key, key), Mutation::Put(key + "b", key)}, done);
    } else {
      client->PutAsync(key, key, done);
    }
  };
  for (int chain = 0; chain < kChains; ++chain) next(chain, 0);
  {
    std::unique_lock l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(60), [&] { return chains_done == kChains; }));
  }
  EXPECT_EQ(failures, 0);
  ASSERT_EQ(seqs.size(), static_cast<size_t>(kChains * kEach));
  EXPECT_EQ(*seqs.begin(), 1u);
  EXPECT_EQ(*seqs.rbegin(), static_cast<uint64_t>(kChains * kEach)) << "dense";
  // Each callback got its own write's GTID: the key is visible at it, and
  // it is the key's version.
  for (const auto& [key, seq] : seq_of) {
    auto r = client->Read(key);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->value, std::optional<std::string>(key));
    EXPECT_EQ(r->version.seq, seq) << key;
  }
  EXPECT_EQ(Num(*c.primary, "no_tx"), 0u);
  EXPECT_EQ(Num(*c.primary, "wait_sessions"), 0u);
  EXPECT_TRUE(WaitFor([&] { return c.replica->Checksum()->hash == c.primary->Checksum()->hash; }));
}

// Under AFTER_SYNC an async write's callback comes only after the ACK, and
// a conditional one reports which branch ran.
TEST(ClientStreamTest, AsyncTxnIsAnsweredOnlyAfterTheAckAndReportsItsBranch) {
  SemiSyncPair c;
  std::promise<absl::StatusOr<TxnResult>> answered;
  auto client = *Client::Connect({Addr(*c.primary)});
  ASSERT_TRUE(client->Put("k", "1").ok());
  c.StopReplica();
  client->TxnAsync({{Compare::Absent("k")}, {Mutation::Put("k", "2")}, {Mutation::Put("lost", "y")}},
                   [&](absl::StatusOr<TxnResult> r) { answered.set_value(std::move(r)); });
  auto result = answered.get_future();
  ASSERT_TRUE(WaitFor([&] { return Num(*c.primary, "wait_sessions") == 1; }));
  EXPECT_EQ(result.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout)
      << "answered before its ACK";
  ASSERT_TRUE(c.replica->StartReplica(ReplicaThreads::kIo).ok());
  ASSERT_EQ(result.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  auto r = result.get();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->succeeded);  // "k" exists: the else branch
  EXPECT_EQ(r->gtid.seq, 2u);
  EXPECT_EQ(*c.primary->Get("k"), std::optional<std::string>("1"));
  EXPECT_EQ(*c.primary->Get("lost"), std::optional<std::string>("y"));
}

// Review s47b L2: every answer says whether semi-sync replicas held the
// write before it (TxnResult::semi_sync, WriteReply.replication): the
// embedded node, a unary call and the write stream alike. Once semi-sync
// timed out, it is false (the write may be on the primary alone).
TEST(ClientStreamTest, EveryAnswerSaysWhetherSemiSyncReplicasHeldTheWrite) {
  SemiSyncPair c;
  ASSERT_TRUE(c.primary->SetVariable("rpl_semi_sync_master_timeout", "300", false).ok());
  auto unary = Client::Connect({Addr(*c.primary)});
  auto stream = Client::Connect({Addr(*c.primary)}, Pipelined());
  ASSERT_TRUE(unary.ok() && stream.ok());
  const relaykv::Txn plain{{}, {Mutation::Put("k", "v")}, {}};
  for (const bool replica_up : {true, false}) {
    if (!replica_up) c.StopReplica();
    const absl::StatusOr<TxnResult> answers[] = {c.primary->Txn(plain), (*unary)->Txn(plain),
                                                 (*stream)->Txn(plain)};
    for (const auto& r : answers) {
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_TRUE(r->succeeded);
      EXPECT_EQ(r->semi_sync, replica_up) << r->gtid.ToString();
    }
  }
  EXPECT_EQ(Num(*c.primary, "yes_tx"), 3u);
  EXPECT_EQ(Num(*c.primary, "no_tx"), 3u);
}

TEST(ClientStreamTest, AsyncWriteFailsAtItsDeadlineAndTheServerStopsWaitingToo) {
  SemiSyncPair c;
  c.StopReplica();
  std::promise<absl::Status> answered;
  ClientOptions o;
  o.timeout = std::chrono::milliseconds(400);
  auto client = *Client::Connect({Addr(*c.primary)}, o);
  const auto start = Clock::now();
  client->PutAsync("slow", "v", [&](absl::StatusOr<Gtid> g) { answered.set_value(g.status()); });
  auto f = answered.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  const absl::Status s = f.get();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(350));
  EXPECT_TRUE(WaitFor([&] { return Num(*c.primary, "wait_sessions") == 0; }, std::chrono::seconds(5)));
  EXPECT_EQ(Num(*c.primary, "yes_tx"), 0u);
}

// Review-async N5: opening a stream waited, under the mux's lock, for the
// connection — 20 s (gRPC's connect timeout) when the node accepts TCP and
// never answers — so PutAsync blocked its caller. It returns at once now,
// and the write ends at its deadline.
TEST(ClientStreamTest, AsyncWriteReturnsAtOnceWhileTheConnectionHangs) {
  SemiSyncPair c;
  Relay relay(c.primary->bound_port());
  relay.Pause();  // TCP connects (the backlog), nothing more
  ClientOptions o;
  o.timeout = std::chrono::milliseconds(500);
  auto client = *Client::Connect({"127.0.0.1:" + std::to_string(relay.port())}, o);
  std::promise<absl::Status> answer;
  const auto start = Clock::now();
  client->PutAsync("k", "v", [&](absl::StatusOr<Gtid> g) { answer.set_value(g.status()); });
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));  // hang guard: was ~20 s
  auto f = answer.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(f.get().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Num(*c.primary, "yes_tx"), 0u);
}

// The same for a blocking write, the first on its stream: it is not sent
// by its caller (who would wait in the send for the connection, ~20 s)
// but by the sender thread, and ends at its deadline (review s27 LOW).
TEST(ClientStreamTest, ABlockingWriteEndsAtItsDeadlineWhileTheConnectionHangs) {
  SemiSyncPair c;
  Relay relay(c.primary->bound_port());
  relay.Pause();  // TCP connects (the backlog), nothing more
  auto client = *Client::Connect({"127.0.0.1:" + std::to_string(relay.port())},
                                 Pipelined(std::chrono::milliseconds(500)));
  const auto start = Clock::now();
  EXPECT_EQ(client->Put("k", "v").status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));  // hang guard: was ~20 s
  EXPECT_EQ(Num(*c.primary, "yes_tx"), 0u);
}

// `writes` async writes of `value_bytes` each to a node that stopped
// answering altogether (the connection open, nothing flowing), then
// blocking writes from 8 threads (queued behind them, left to the sender
// thread): the client's own deadline (500 ms) ends each one with
// DEADLINE_EXCEEDED, long before keepalive would notice.
void ExpectAsyncWritesEndAtTheirDeadlineWhenTheNodeSaysNothing(size_t writes, size_t value_bytes) {
  SemiSyncPair c;
  Relay relay(c.primary->bound_port());
  std::mutex mu;
  std::vector<absl::Status> answers;
  ClientOptions o;
  o.timeout = std::chrono::milliseconds(500);
  auto client = *Client::Connect({"127.0.0.1:" + std::to_string(relay.port())}, o);
  ASSERT_TRUE(client->Put("warm", "v").ok());  // the connection is up
  relay.Pause();
  const auto start = Clock::now();
  const std::string value(value_bytes, 'v');
  for (size_t i = 0; i < writes; ++i) {
    client->PutAsync("k" + std::to_string(i), value, [&](absl::StatusOr<Gtid> g) {
      std::lock_guard l(mu);
      answers.push_back(g.status());
    });
  }
  std::vector<std::thread> blocking;
  for (int t = 0; t < 8; ++t) {
    blocking.emplace_back([&, t] {
      absl::Status s = client->Put("b" + std::to_string(t), "v").status();
      std::lock_guard l(mu);
      answers.push_back(s);
    });
  }
  for (auto& t : blocking) t.join();
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard l(mu);
    return answers.size() == writes + blocking.size();
  }, std::chrono::seconds(10)));
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  std::lock_guard l(mu);
  for (const absl::Status& s : answers) EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
}

// More queued than the connection's flow-control window lets out (~400 KB
// past a 64 KB window).
TEST(ClientStreamTest, AsyncWriteFailsAtItsDeadlineWhenTheNodeSaysNothing) {
  ExpectAsyncWritesEndAtTheirDeadlineWhenTheNodeSaysNothing(3000, 100);
}

// Review-async N1: 48 MiB, far more than gRPC's windows and both sockets'
// buffers hold, so the sender thread stays blocked in a send: deadlines are
// kept by the expiry thread, which never sends (were they checked by the
// sender, every write would wait for that send). Destroying the client
// then takes ~10 s: a cancelled call's send stays blocked until keepalive
// declares the connection dead (see client/write_mux.h).
TEST(ClientStreamTest, AsyncWritesEndAtTheirDeadlineWhileTheSenderIsStuckInASend) {
  ExpectAsyncWritesEndAtTheirDeadlineWhenTheNodeSaysNothing(48, size_t{1} << 20);
}

// `kWrites` async writes issued at once to `c`'s primary: every one is
// answered OK, none twice, and they took dense seqs.
void ExpectEveryAsyncWriteAnsweredOnce(SemiSyncPair& c, int kWrites) {
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, int> seqs;
  int answered = 0, failed = 0;
  const uint64_t before = c.primary->binlog_gtid().seq;
  auto client = *Client::Connect({Addr(*c.primary)});
  for (int i = 0; i < kWrites; ++i) {
    client->PutAsync("k" + std::to_string(i), std::string(100, 'v'), [&](absl::StatusOr<Gtid> g) {
      std::lock_guard l(mu);
      if (g.ok()) {
        seqs[g->seq]++;
      } else {
        ++failed;
        ADD_FAILURE() << g.status();
      }
      ++answered;
      cv.notify_all();
    });
  }
  std::unique_lock l(mu);
  ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(60), [&] { return answered == kWrites; }));
  EXPECT_EQ(failed, 0);
  ASSERT_EQ(seqs.size(), static_cast<size_t>(kWrites));
  EXPECT_EQ(seqs.rbegin()->first, before + static_cast<uint64_t>(kWrites)) << "dense";
  for (const auto& [seq, n] : seqs) EXPECT_EQ(n, 1) << seq;
}

// More async writes in flight than one message may carry and than the node
// reads ahead (max_write_stream_inflight, 1024), issued faster than they
// are sent: every one is answered, none twice, none refused.
TEST(ClientStreamTest, ThousandsOfAsyncWritesInFlightAreAllAnsweredOnce) {
  SemiSyncPair c;
  ExpectEveryAsyncWriteAnsweredOnce(c, 5000);
}

// Review-async N3: the client sends up to 256 writes per message; a node
// whose max_write_stream_inflight is lower refused every such message and
// so every async write. It now takes them and reads no further until below
// its cap.
TEST(ClientStreamTest, AsyncWritesWorkAgainstANodeWithASmallInFlightCap) {
  SemiSyncPair c;
  ASSERT_TRUE(c.primary->SetVariable("max_write_stream_inflight", "8", false).ok());
  ExpectEveryAsyncWriteAnsweredOnce(c, 2000);
}

// Destroying the client answers every pending async write (UNAVAILABLE,
// never OK), and a callback that writes again then fails at once instead
// of touching a client being torn down.
TEST(ClientStreamTest, DestroyingAClientAnswersPendingAsyncWrites) {
  SemiSyncPair c;
  c.StopReplica();
  std::mutex mu;
  std::vector<absl::Status> first, again;
  auto client = *Client::Connect({Addr(*c.primary)});
  Client* raw = client.get();  // `client` is null while it is destroyed
  for (int i = 0; i < 8; ++i) {
    client->PutAsync("k" + std::to_string(i), "v", [&, i](absl::StatusOr<Gtid> g) {
      {
        std::lock_guard l(mu);
        first.push_back(g.status());
      }
      raw->PutAsync("again" + std::to_string(i), "v", [&](absl::StatusOr<Gtid> g2) {
        std::lock_guard l(mu);
        again.push_back(g2.status());
      });
    });
  }
  ASSERT_TRUE(WaitFor([&] { return Num(*c.primary, "wait_sessions") == 8; }));
  client.reset();
  ASSERT_EQ(first.size(), 8u);
  ASSERT_EQ(again.size(), 8u);
  for (const absl::Status& s : first) EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  for (const absl::Status& s : again) EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_TRUE(WaitFor([&] { return Num(*c.primary, "wait_sessions") == 0; }));
}

// Review-async F5: a callback that retries every failure, once the client
// is closing, is refused on its own thread at once — and used to recurse,
// one stack frame chain per retry, until the stack overflowed. Past 16
// nested refusals the next runs after the outermost returns: the retries loop.
TEST(ClientStreamTest, ACallbackRetryingEveryRefusalLoopsInsteadOfRecursing) {
  SemiSyncPair c;
  c.StopReplica();
  constexpr int kRetries = 200000;  // recursing this deep overflows an 8 MiB stack
  int depth = 0, deepest = 0, retries = 0;
  absl::Status last;
  auto client = *Client::Connect({Addr(*c.primary)});
  Client* raw = client.get();
  std::function<void(absl::StatusOr<Gtid>)> retry = [&](absl::StatusOr<Gtid> g) {
    ++depth;
    deepest = std::max(deepest, depth);
    last = g.status();
    if (!g.ok() && ++retries < kRetries) raw->PutAsync("k", "v", retry);
    --depth;
  };
  client->PutAsync("k", "v", retry);
  ASSERT_TRUE(WaitFor([&] { return Num(*c.primary, "wait_sessions") == 1; }));
  client.reset();  // fails the pending write; each retry is refused at once
  EXPECT_EQ(retries, kRetries);
  EXPECT_EQ(last.code(), absl::StatusCode::kUnavailable) << last;
  // The pending write's callback, and at most 16 refusals nested in it
  // (WriteMux::kMaxNestedRefusals).
  EXPECT_LE(deepest, 17);
}

// A blocking write inside a callback would wait behind its own answer (on
// the stream) or hold every answer up: refused, nothing sent; an async one
// from the same callback goes through.
TEST(ClientStreamTest, ABlockingWriteFromACallbackIsRefusedAndAnAsyncOneWorks) {
  SemiSyncPair c;
  std::promise<std::pair<absl::Status, absl::StatusOr<Gtid>>> answered;
  ClientOptions o = Pipelined();
  auto client = *Client::Connect({Addr(*c.primary)}, o);
  Client* raw = client.get();
  client->PutAsync("first", "1", [&, raw](absl::StatusOr<Gtid>) {
    const absl::Status blocking = raw->Put("blocking", "2").status();
    raw->PutAsync("second", "3", [&, blocking](absl::StatusOr<Gtid> g) {
      answered.set_value({blocking, std::move(g)});
    });
  });
  auto f = answered.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  auto [blocking, second] = f.get();
  EXPECT_EQ(blocking.code(), absl::StatusCode::kFailedPrecondition) << blocking;
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->seq, 2u);  // "blocking" never reached the binlog
  EXPECT_EQ(*c.primary->Get("blocking"), std::nullopt);
  // Outside a callback the same client writes blocking as ever.
  ASSERT_TRUE(client->Put("after", "4").ok());
}

TEST(ClientStreamTest, AsyncWriteToAReplicaFollowsItsHintToThePrimary) {
  SemiSyncPair c;
  std::promise<absl::StatusOr<Gtid>> answered;
  std::promise<absl::Status> refused;
  ClientOptions o;
  o.follow_primary = true;
  auto client = *Client::Connect({Addr(*c.replica)}, o);
  client->PutAsync("k", "v", [&](absl::StatusOr<Gtid> g) { answered.set_value(std::move(g)); });
  auto f = answered.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  auto g = f.get();
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(*c.primary->Get("k"), std::optional<std::string>("v"));
  // Without follow_primary the replica's refusal is the answer.
  auto strict = *Client::Connect({Addr(*c.replica)});
  strict->PutAsync("k2", "v", [&](absl::StatusOr<Gtid> g2) { refused.set_value(g2.status()); });
  auto rf = refused.get_future();
  ASSERT_EQ(rf.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(rf.get().code(), absl::StatusCode::kFailedPrecondition);
}


// Review s44e L4: a WriteStream answer for an id never sent, or a success
// without a GTID, was reported as a write's outcome (made-up success). The
// stream is ended instead, and the write's outcome is unknown.
class MisansweringKv final : public v1::Kv::Service {
 public:
  explicit MisansweringKv(bool wrong_id) : wrong_id_(wrong_id) {}
  grpc::Status WriteStream(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::WriteStreamReply, v1::WriteStreamRequest>* stream) override {
    v1::WriteStreamRequest req;
    if (!stream->Read(&req) || req.writes_size() == 0) return grpc::Status::OK;
    v1::WriteStreamReply reply;
    v1::StreamAnswer* a = reply.add_answers();
    a->set_id(req.writes(0).id() + (wrong_id_ ? 1 : 0));
    if (wrong_id_) {
      a->mutable_gtid()->set_epoch(1);
      a->mutable_gtid()->set_seq(7);
    }
    a->set_succeeded(true);
    stream->Write(reply);
    while (!ctx->IsCancelled() && stream->Read(&req)) {
    }
    return grpc::Status::OK;
  }

 private:
  const bool wrong_id_;
};

TEST(ClientStreamTest, AnAnswerNoWriteCouldHaveHadIsNotAnOutcome) {
  for (const bool wrong_id : {true, false}) {
    MisansweringKv kv(wrong_id);
    testing::FakeGrpcServer server(&kv);
    auto client = Client::Connect({server.address()}, Pipelined(std::chrono::seconds(10)));
    ASSERT_TRUE(client.ok()) << client.status();
    auto put = (*client)->Put("k", "v");
    EXPECT_TRUE(absl::IsUnavailable(put.status())) << put.status();
    EXPECT_NE(put.status().message().find(wrong_id ? "never sent" : "OK without a GTID"),
              std::string::npos)
        << put.status();
    EXPECT_NE(put.status().message().find("outcome is unknown"), std::string::npos) << put.status();
    client->reset();
  }
}

// A node that is up (it answers pings, so keepalive never ends the
// connection) but stopped reading its WriteStream: a wedged disk behind a
// full in-flight cap, or a hostile server. Review s44e M3: once the first
// writes timed out, each later blocking write was sent by its own caller,
// and once the stream's flow-control window was full that caller stayed
// in the send past its deadline, for good, and so did ~Client.
// With `answer_first`, it reads and answers the stream's first message
// before it stops reading.
class UnreadStreamKv final : public v1::Kv::Service {
 public:
  explicit UnreadStreamKv(bool answer_first = false) : answer_first_(answer_first) {}
  grpc::Status WriteStream(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::WriteStreamReply, v1::WriteStreamRequest>* stream) override {
    v1::WriteStreamRequest req;
    if (answer_first_ && stream->Read(&req)) {
      v1::WriteStreamReply reply;
      for (const v1::StreamWrite& w : req.writes()) {
        v1::StreamAnswer* a = reply.add_answers();
        a->set_id(w.id());
        a->mutable_gtid()->set_epoch(1);
        a->mutable_gtid()->set_seq(w.id());
        a->set_succeeded(true);
      }
      stream->Write(reply);
    }
    while (!ctx->IsCancelled() && !released_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return grpc::Status::OK;
  }
  void Release() { released_.store(true); }

 private:
  const bool answer_first_;
  std::atomic<bool> released_{false};
};

TEST(ClientStreamTest, BlockingWritesEndAtTheirDeadlineWhenTheNodeStopsReadingItsStream) {
  UnreadStreamKv kv;
  testing::FakeGrpcServer server(&kv);
  auto client = Client::Connect({server.address()}, Pipelined(std::chrono::milliseconds(100)));
  ASSERT_TRUE(client.ok()) << client.status();
  const std::string value(256 << 10, 'v');  // far past any window gRPC grants
  const auto start = Clock::now();
  std::atomic<bool> finished{false};
  std::thread writer([&] {
    for (int i = 0; i < 60; ++i) {
      const auto before = Clock::now();
      const absl::Status s = (*client)->Put("k" + std::to_string(i), value).status();
      EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << i << ": " << s;
      EXPECT_LT(Clock::now() - before, std::chrono::seconds(2)) << "write " << i;
    }
    finished.store(true);
  });
  // Hang guard: 60 writes of 100 ms each (the window was full after 15).
  const bool in_time = WaitFor([&] { return finished.load(); }, std::chrono::seconds(30));
  if (!in_time) kv.Release();  // lets the stuck send finish, so the test ends
  writer.join();
  EXPECT_TRUE(in_time) << "a blocking write stayed in its send past its deadline";
  const auto destroy = Clock::now();
  client->reset();
  EXPECT_LT(Clock::now() - destroy, std::chrono::seconds(5)) << "~Client waited for a send";
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(30));
  kv.Release();
}

// Review s45b M2: every write so far answered, then the node stops
// reading. A blocking write far larger than the stream's window, sent by
// its own caller (nothing outstanding), stayed in that send past its
// deadline. Such a write is left to the sender thread.
TEST(ClientStreamTest, ALargeWriteEndsAtItsDeadlineWhenTheNodeStopsReadingAfterAnswering) {
  UnreadStreamKv kv(/*answer_first=*/true);
  testing::FakeGrpcServer server(&kv);
  auto client = Client::Connect({server.address()}, Pipelined(std::chrono::milliseconds(300)));
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->Put("small", "v").ok());  // answered: the stream is up
  std::atomic<bool> finished{false};
  absl::Status big;
  std::thread writer([&] {
    big = (*client)->Put("big", std::string(8 << 20, 'v')).status();
    finished.store(true);
  });
  const bool in_time = WaitFor([&] { return finished.load(); }, std::chrono::seconds(10));
  if (!in_time) kv.Release();
  writer.join();
  EXPECT_TRUE(in_time) << "the large write stayed in its send past its deadline";
  EXPECT_EQ(big.code(), absl::StatusCode::kDeadlineExceeded) << big;
  const auto destroy = Clock::now();
  client->reset();
  EXPECT_LT(Clock::now() - destroy, std::chrono::seconds(5)) << "~Client waited for a send";
  kv.Release();
}

}  // namespace
}  // namespace relaykv
