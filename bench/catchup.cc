#include "bench/catchup.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <vector>

#include "bench/cluster.h"
#include "proto/admin.grpc.pb.h"
#include "storage/binlog.h"

namespace relaykv::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Sequential write rate: 256 MiB in 1 MiB writes, then one fdatasync.
double DiskSeqWriteMbPerS(const fs::path& dir) {
  const fs::path path = dir / "seqwrite";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return 0;
  const std::string chunk(1 << 20, 'w');
  auto t0 = Clock::now();
  for (int i = 0; i < 256; ++i) {
    if (::write(fd, chunk.data(), chunk.size()) < 0) break;
  }
  ::fdatasync(fd);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  ::close(fd);
  fs::remove(path);
  return 256 / s;
}

uint64_t ReplicaSeq(v1::Admin::Stub& admin) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::MasterStatusReply reply;
  if (!admin.MasterStatus(&ctx, v1::MasterStatusRequest(), &reply).ok()) return 0;
  return reply.executed_gtid().seq();
}

}  // namespace

CatchupResult RunCatchup(const std::string& relaykvd, const std::string& work_dir, uint64_t events,
                         size_t value_size) {
  CatchupResult r;
  r.events = events;
  const fs::path root = fs::path(work_dir) / "catchup";
  fs::remove_all(root);
  fs::create_directories(root);
  r.disk_seq_write_mb_per_s = DiskSeqWriteMbPerS(root);

  {  // The primary's history, written straight into its binlog.
    BinlogOptions o;
    o.dir = root / "primary" / "binlog";
    o.max_binlog_size = 256 << 20;
    auto binlog = *Binlog::Open(o);
    std::vector<v1::Event> batch(1000);
    const std::string value(value_size, 'v');
    for (uint64_t seq = 1; seq <= events;) {
      batch.clear();
      for (; seq <= events && batch.size() < 1000; ++seq) {
        v1::Event& e = batch.emplace_back();
        e.mutable_gtid()->set_epoch(1);
        e.mutable_gtid()->set_seq(seq);
        e.set_timestamp_us(1);
        auto* m = e.add_mutations();
        m->set_op(v1::Mutation::PUT);
        m->set_key("key" + std::to_string(seq % 100000));
        m->set_value(value);
      }
      if (!binlog->AppendReplicated(batch, seq > events).ok()) break;
    }
    for (const auto& s : binlog->Segments()) r.binlog_bytes += s.size_bytes;
  }
  std::fprintf(stderr, "catch-up: primary binlog holds %llu events (%.1f MB); starting it\n",
               static_cast<unsigned long long>(events), r.binlog_bytes / 1e6);
  auto primary = Process::Start(relaykvd, root / "primary", {});
  if (!primary.ok()) {
    std::fprintf(stderr, "%s\n", primary.status().ToString().c_str());
    return r;
  }
  r.primary_rss_before_kb = (*primary)->rss_kb();
  const auto t0 = Clock::now();
  auto replica = Process::Start(relaykvd, root / "replica",
                                {"--server-id=2", "--replicate-from=" + (*primary)->address()});
  if (!replica.ok()) return r;
  auto admin = v1::Admin::NewStub(
      grpc::CreateChannel((*replica)->address(), grpc::InsecureChannelCredentials()));
  r.primary_rss_peak_kb = r.primary_rss_before_kb;
  while (ReplicaSeq(*admin) < events) {
    r.primary_rss_peak_kb = std::max(r.primary_rss_peak_kb, (*primary)->rss_kb());
    if (Clock::now() - t0 > std::chrono::minutes(10)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.events_per_s = events / r.seconds;
  r.mb_per_s = r.binlog_bytes / 1e6 / r.seconds;
  replica->reset();
  primary->reset();
  fs::remove_all(root);
  return r;
}

void PrintCatchup(const CatchupResult& r, std::ostream& out) {
  char line[512];
  std::snprintf(line, sizeof(line),
                "catch-up: %llu events (%.1f MB of binlog) received durably by a fresh replica in "
                "%.2f s: %.0f events/s, %.1f MB/s (disk sequential write: %.1f MB/s)\n"
                "primary RSS: %ld KB before, %ld KB peak while the replica caught up\n",
                static_cast<unsigned long long>(r.events), r.binlog_bytes / 1e6, r.seconds,
                r.events_per_s, r.mb_per_s, r.disk_seq_write_mb_per_s, r.primary_rss_before_kb,
                r.primary_rss_peak_kb);
  out << line;
}

}  // namespace relaykv::bench
