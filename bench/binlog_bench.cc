// relaykv-binlog-bench: what group commit buys. Binlog::Commit with
// sync_binlog=1 from 1, 8 and 64 concurrent writers, next to the floor: one
// writer appending a record of the same size with pwrite + fdatasync.
//
//   build/bin/relaykv-binlog-bench [--benchmark_min_time=2] [--benchmark_repetitions=5]
//
// Counters: ops/s (commits or raw appends per second, all threads),
// fsyncs/s (fdatasync calls per second) and events/fsync (commits sharing
// one fdatasync; from BinlogStats deltas over the measured run).
//
// Where: files go to a fresh directory under $RELAYKV_BENCH_DIR, or under
// the current working directory when it is unset, so the figures are for
// that file system (run it from the disk you care about; /tmp may be tmpfs,
// where fdatasync costs nothing). The directory is removed afterwards.
#include <fcntl.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "storage/binlog.h"
#include "storage/binlog_format.h"
#include "storage/record.h"

namespace relaykv {
namespace {

namespace fs = std::filesystem;

fs::path BenchDir() {
  const char* base = std::getenv("RELAYKV_BENCH_DIR");
  const fs::path root = base != nullptr && *base != '\0' ? fs::path(base) : fs::current_path();
  return fs::absolute(root) / ("relaykv-binlog-bench-" + std::to_string(::getpid()));
}

// A small write: one PUT of a 13-byte key and a 100-byte value.
v1::Event SmallEvent() {
  v1::Event e;
  e.set_timestamp_us(1700000000000000);
  auto* m = e.add_mutations();
  m->set_op(v1::Mutation::PUT);
  m->set_key("key0000000000");
  m->set_value(std::string(100, 'v'));
  return e;
}

// Bytes the binlog writes for SmallEvent() (GTID included), framed.
size_t FramedSmallEventSize() {
  v1::Event e = SmallEvent();
  e.mutable_gtid()->set_epoch(1);
  e.mutable_gtid()->set_seq(1000000);
  std::string framed;
  AppendRecord(&framed, binlog_format::RecordType::kEvent, e.SerializeAsString());
  return framed.size();
}

// One Binlog per run, shared by the run's threads. Setup() runs before the
// threads start and Teardown() after they are joined, so the threads only
// read these pointers.
std::unique_ptr<Binlog> g_binlog;
BinlogStats g_start;
std::string g_setup_error;

void SetUpBinlog(const benchmark::State&) {
  std::error_code ec;
  fs::remove_all(BenchDir(), ec);
  BinlogOptions o;
  o.dir = BenchDir();
  o.sync_binlog = 1;
  auto b = Binlog::Open(o);
  if (!b.ok()) {
    g_setup_error = b.status().ToString();
    return;
  }
  g_binlog = *std::move(b);
  g_start = g_binlog->stats();
}

void TearDownBinlog(const benchmark::State&) {
  g_binlog.reset();
  std::error_code ec;
  fs::remove_all(BenchDir(), ec);
}

void BM_BinlogCommit(benchmark::State& state) {
  if (g_binlog == nullptr) {
    state.SkipWithError(("cannot open the binlog: " + g_setup_error).c_str());
    return;  // allowed after SkipWithError
  }
  const v1::Event proto = SmallEvent();
  for (auto _ : state) {
    v1::Event e = proto;
    if (absl::Status s = g_binlog->Commit(&e); !s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  // Summed over threads, divided by the run's wall time.
  state.counters["ops/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  // The loop ends at a barrier: every thread is done committing here.
  if (state.thread_index() == 0) {
    const BinlogStats s = g_binlog->stats();
    const double syncs = static_cast<double>(s.syncs - g_start.syncs);
    const double events = static_cast<double>(s.events - g_start.events);
    state.counters["fsyncs/s"] = benchmark::Counter(syncs, benchmark::Counter::kIsRate);
    state.counters["events/fsync"] = syncs > 0 ? events / syncs : 0;
  }
}
BENCHMARK(BM_BinlogCommit)
    ->Setup(SetUpBinlog)
    ->Teardown(TearDownBinlog)
    ->Threads(1)
    ->Threads(8)
    ->Threads(64)
    ->UseRealTime()
    ->MinTime(1.0);

// The floor: one writer, one pwrite append + fdatasync per operation, of
// the size the binlog writes per small commit.
void BM_RawAppendFdatasync(benchmark::State& state) {
  const fs::path dir = BenchDir();
  std::error_code ec;
  fs::create_directories(dir, ec);
  const fs::path path = dir / "raw";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    state.SkipWithError(("open " + path.string() + ": " + std::strerror(errno)).c_str());
    return;  // allowed after SkipWithError
  }
  const std::string record(FramedSmallEventSize(), 'r');
  off_t offset = 0;
  for (auto _ : state) {
    if (::pwrite(fd, record.data(), record.size(), offset) != static_cast<ssize_t>(record.size())) {
      state.SkipWithError(("pwrite: " + std::string(std::strerror(errno))).c_str());
      break;
    }
    offset += static_cast<off_t>(record.size());
    if (::fdatasync(fd) != 0) {
      state.SkipWithError(("fdatasync: " + std::string(std::strerror(errno))).c_str());
      break;
    }
  }
  ::close(fd);
  fs::remove_all(dir, ec);
  const double ops = static_cast<double>(state.iterations());
  state.counters["ops/s"] = benchmark::Counter(ops, benchmark::Counter::kIsRate);
  state.counters["fsyncs/s"] = benchmark::Counter(ops, benchmark::Counter::kIsRate);
  state.counters["events/fsync"] = 1;
}
BENCHMARK(BM_RawAppendFdatasync)->UseRealTime()->MinTime(1.0);

}  // namespace
}  // namespace relaykv

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("bench_dir", relaykv::BenchDir().parent_path().string());
  benchmark::AddCustomContext("record_bytes", std::to_string(relaykv::FramedSmallEventSize()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
