// Soak (README "Limits"): client connections opened and dropped against a
// primary with one semi-sync replica while writes flow. Each connection is
// a new channel (its own TCP connection: distinct channel arguments keep
// gRPC from sharing one) that makes one call — a Put, a Get or a
// WriteStream of one write — and is dropped; they come in concurrent
// batches. Afterwards the primary's resident memory and thread count
// (/proc/PID/status VmRSS, Threads) must come back near the baseline taken
// after a warm-up, and no call may still hold a max_connections slot.
//
// RELAYKV_SOAK_CONNECTIONS sets how many (default 250, a few seconds, for
// the default run) and RELAYKV_SOAK_ROUNDS how many times (default 1);
// ctest's limits_soak_long (label "soak", registered with
// -DRELAYKV_SOAK_LONG=ON) runs 20 rounds of 1,000 (about 30 s).
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "proto/kv.grpc.pb.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

using Clock = std::chrono::steady_clock;

struct ProcStatus {
  long rss_kb = -1;
  long threads = -1;
};

ProcStatus ReadProcStatus(pid_t pid) {
  ProcStatus st;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") in >> st.rss_kb;
    if (key == "Threads:") in >> st.threads;
    in.ignore(1 << 12, '\n');
  }
  return st;
}

// One connection: a new channel, one call, dropped. OK if the call was
// answered (any status the server chose is fine: RESOURCE_EXHAUSTED under
// load is a correct answer); false if the server could not be reached.
bool OneConnection(const std::string& address, int n) {
  grpc::ChannelArguments args;
  args.SetInt("relaykv.soak.connection", n);  // its own connection
  auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  auto stub = v1::Kv::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  // Through a failed connection attempt to the next one, within the
  // deadline: gRPC 1.51's TCP connect (tcp_client_posix.cc) reads errno
  // after other calls that followed connect(), so now and then a connect
  // still in progress is reported failed with a stale errno ("No such file
  // or directory", seen once in 1,000s of runs). A server that cannot be
  // reached still fails the call, at the deadline.
  ctx.set_wait_for_ready(true);
  const std::string key = "soak" + std::to_string(n);
  grpc::Status status;
  switch (n % 3) {
    case 0: {
      v1::PutRequest req;
      req.set_key(key);
      req.set_value(std::string(100, 'v'));
      v1::WriteReply reply;
      status = stub->Put(&ctx, req, &reply);
      break;
    }
    case 1: {
      v1::GetRequest req;
      req.set_key(key);
      v1::GetReply reply;
      status = stub->Get(&ctx, req, &reply);
      break;
    }
    default: {
      auto stream = stub->WriteStream(&ctx);
      v1::WriteStreamRequest req;
      v1::StreamWrite* w = req.add_writes();
      w->set_id(1);
      w->mutable_put()->set_key(key);
      w->mutable_put()->set_value("s");
      v1::WriteStreamReply reply;
      if (stream->Write(req)) stream->Read(&reply);
      stream->WritesDone();
      while (stream->Read(&reply)) {
      }
      status = stream->Finish();
      break;
    }
  }
  const bool answered = status.error_code() != grpc::StatusCode::UNAVAILABLE &&
                        status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED;
  if (!answered) {
    std::fprintf(stderr, "soak connection %d: %d %s\n", n, static_cast<int>(status.error_code()),
                 status.error_message().c_str());
  }
  return answered;
}

// Runs connections [from, to) in batches of `batch` at once; returns how
// many reached the server.
int Churn(const std::string& address, int from, int to, int batch) {
  int answered = 0;
  for (int start = from; start < to; start += batch) {
    std::vector<std::future<bool>> calls;
    for (int n = start; n < std::min(to, start + batch); ++n) {
      calls.push_back(std::async(std::launch::async, [&address, n] { return OneConnection(address, n); }));
    }
    for (auto& c : calls) answered += c.get() ? 1 : 0;
  }
  return answered;
}

// RELAYKV_SOAK_ROUNDS: that many times over (default 1), RSS printed per
// round: what grows round after round is a leak, what does not is a cache.
int SoakRounds() {
  const char* env = std::getenv("RELAYKV_SOAK_ROUNDS");
  return env != nullptr ? std::max(1, std::atoi(env)) : 1;
}

int SoakConnections() {
  const char* env = std::getenv("RELAYKV_SOAK_CONNECTIONS");
  return env != nullptr ? std::atoi(env) : 250;
}

TEST(LimitsSoakTest, ConnectionsOpenedAndDroppedLeaveMemoryAndThreadsAtTheirBaseline) {
  const int connections = SoakConnections();
  constexpr int kBatch = 50;
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p", {"--rpl_semi_sync_master_enabled=ON",
                                                    "--rpl_semi_sync_master_timeout=10000"});
  ASSERT_NE(primary, nullptr);
  auto replica = StartSemiSyncReplica(dir.path() / "r", *primary);
  ASSERT_NE(replica, nullptr);

  std::atomic<int> counter{0};
  WriteLoad::Acked acked;
  WriteLoad load(primary.get(), &counter, "load", &acked, {.threads = 2, .value_bytes = 100});

  // Warm-up: gRPC's and the allocator's lazily made threads and arenas,
  // RocksDB's memtable, the binlog's buffers are there before the baseline.
  ASSERT_EQ(Churn(primary->address(), 0, 2 * kBatch, kBatch), 2 * kBatch);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const ProcStatus base = ReadProcStatus(primary->pid());
  ASSERT_GT(base.rss_kb, 0);

  const auto start = Clock::now();
  int answered = 0;
  ProcStatus peak;
  for (int round = 0; round < SoakRounds(); ++round) {
    const int from = 2 * kBatch + round * connections;
    answered += Churn(primary->address(), from, from + connections, kBatch);
    peak = ReadProcStatus(primary->pid());
    std::cerr << "soak round " << round << ": RSS " << peak.rss_kb << " kB, threads "
              << peak.threads << "\n";
  }
  const double churn_s = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_EQ(answered, connections * SoakRounds()) << "connections that could not reach the primary";

  load.Stop();
  EXPECT_TRUE(load.first_error().ok()) << load.first_error();
  // Threads: gRPC ends the handler threads it started for concurrent calls
  // once idle; a few may stay as pollers (3 measured). Memory: what the
  // connections and calls held is freed, but glibc keeps some in its arenas
  // and RocksDB's memtable grows with the writes that flow meanwhile (about
  // 110 bytes each, 0.5 MB per 1,000 connections' worth of time). Measured:
  // +0.4 MB after 250 connections, +1.9 MB after 1,000, +9 MB after 30,000
  // in six rounds, growing less each round (a cache and the memtable, not a
  // leak). Tolerances: 4 threads and 16 MiB — a leak of 16 KB per
  // connection fails the 1,000 run.
  constexpr long kThreadSlack = 4;
  constexpr long kRssSlackKb = 16 * 1024;
  ProcStatus after;
  const bool settled = WaitFor(
      [&] {
        after = ReadProcStatus(primary->pid());
        return after.threads <= base.threads + kThreadSlack &&
               after.rss_kb <= base.rss_kb + kRssSlackKb;
      },
      std::chrono::seconds(30));
  std::cerr << "soak: " << connections * SoakRounds() << " connections in " << churn_s << " s; primary RSS "
            << base.rss_kb << " kB at baseline, " << peak.rss_kb << " kB right after, "
            << after.rss_kb << " kB settled; threads " << base.threads << " / " << peak.threads
            << " / " << after.threads << "; writes acked " << acked.max_seq << "\n";
  EXPECT_TRUE(settled) << "RSS " << after.rss_kb << " kB (baseline " << base.rss_kb
                       << " kB) or threads " << after.threads << " (baseline " << base.threads
                       << ") did not come back";
  // The last calls' slots are given back when the server has deleted
  // them, a moment after their clients had their answers.
  EXPECT_TRUE(WaitFor([&] { return primary->Status()["Threads_connected"] == "1"; },
                      std::chrono::seconds(10)))
      << primary->Status()["Threads_connected"] << " slots held; only the replica's stream should be";
  // The replica kept up through it all.
  ASSERT_TRUE(WaitFor([&] { return SameChecksum(*primary, *replica); }));
}

}  // namespace
}  // namespace relaykv::testing
