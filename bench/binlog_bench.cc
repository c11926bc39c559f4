// Binlog append+sync throughput with 1, 8 and 64 concurrent writers, next to
// a raw pwrite+fdatasync loop on the same file system: what group commit
// buys. Counters: ops/s (items_per_second), fsyncs/s and events per fsync.
//   build/bin/relaykv-binlog-bench [--benchmark_min_time=2]
// Files go to $RELAYKV_BENCH_DIR (default: the current directory), so the
// figures are for that file system.
#include <fcntl.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "storage/binlog.h"

namespace relaykv {
namespace {

namespace fs = std::filesystem;

fs::path BenchDir() {
  const char* d = std::getenv("RELAYKV_BENCH_DIR");
  return fs::path(d ? d : ".") / ("relaykv-binlog-bench-" + std::to_string(::getpid()));
}

std::unique_ptr<Binlog> g_binlog;  // shared by the threads of one run
BinlogStats g_start;

void SetUp(const benchmark::State&) {
  fs::remove_all(BenchDir());
  BinlogOptions o;
  o.dir = BenchDir();
  g_binlog = *Binlog::Open(o);
  g_start = g_binlog->stats();
}

void TearDown(const benchmark::State&) {
  g_binlog.reset();
  fs::remove_all(BenchDir());
}

v1::Event SmallEvent() {
  v1::Event e;
  e.set_timestamp_us(1);
  auto* m = e.add_mutations();
  m->set_key("key0000000000");
  m->set_value(std::string(100, 'v'));
  return e;
}

void BM_BinlogCommit(benchmark::State& state) {
  const v1::Event proto = SmallEvent();
  for (auto _ : state) {
    v1::Event e = proto;
    if (!g_binlog->Commit(&e).ok()) state.SkipWithError("commit failed");
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    const BinlogStats s = g_binlog->stats();
    const double syncs = static_cast<double>(s.syncs - g_start.syncs);
    const double events = static_cast<double>(s.events - g_start.events);
    state.counters["fsyncs/s"] = benchmark::Counter(syncs, benchmark::Counter::kIsRate);
    state.counters["events/fsync"] = syncs > 0 ? events / syncs : 0;
  }
}
BENCHMARK(BM_BinlogCommit)
    ->Setup(SetUp)
    ->Teardown(TearDown)
    ->Threads(1)
    ->Threads(8)
    ->Threads(64)
    ->UseRealTime()
    ->MinTime(1.0);

// The floor: one small append + fdatasync per operation, one writer.
void BM_RawWriteFdatasync(benchmark::State& state) {
  fs::create_directories(BenchDir());
  const fs::path path = BenchDir() / "raw";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const std::string record(140, 'r');  // about one framed small event
  off_t off = 0;
  for (auto _ : state) {
    if (::pwrite(fd, record.data(), record.size(), off) < 0) state.SkipWithError("pwrite failed");
    off += static_cast<off_t>(record.size());
    ::fdatasync(fd);
  }
  ::close(fd);
  fs::remove_all(BenchDir());
  state.SetItemsProcessed(state.iterations());
  state.counters["fsyncs/s"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RawWriteFdatasync)->UseRealTime()->MinTime(1.0);

}  // namespace
}  // namespace relaykv

BENCHMARK_MAIN();
