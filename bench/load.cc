#include "bench/load.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <random>
#include <thread>

#include "proto/kv.grpc.pb.h"

namespace relaykv::bench {

using Clock = std::chrono::steady_clock;

double LoadResult::Percentile(double p) const {
  if (latency_us.empty()) return 0;
  // Nearest rank.
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(latency_us.size())));
  rank = std::clamp<size_t>(rank, 1, latency_us.size());
  return latency_us[rank - 1];
}

LoadResult RunLoad(const LoadOptions& o) {
  const Clock::time_point start = Clock::now();
  const Clock::time_point measure_from = start + std::chrono::duration_cast<Clock::duration>(
                                                     std::chrono::duration<double>(o.warmup_s));
  const Clock::time_point stop_at = measure_from + std::chrono::duration_cast<Clock::duration>(
                                                       std::chrono::duration<double>(o.duration_s));
  std::mutex mu;
  LoadResult result;
  std::vector<std::thread> threads;
  for (int t = 0; t < o.clients; ++t) {
    threads.emplace_back([&, t] {
      grpc::ChannelArguments args;
      args.SetInt("relaykv.bench.client", t);  // distinct channels, not one shared connection
      auto stub = v1::Kv::NewStub(
          grpc::CreateCustomChannel(o.target, grpc::InsecureChannelCredentials(), args));
      std::mt19937_64 rng(static_cast<uint64_t>(t) * 7919 + 1);
      std::uniform_int_distribution<uint64_t> key(0, o.keyspace - 1);
      const std::string value(o.value_size, 'v');
      std::vector<double> lat;
      uint64_t errors = 0;
      std::string first_error;
      for (;;) {
        const Clock::time_point t0 = Clock::now();
        if (t0 >= stop_at) break;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        grpc::Status s;
        const std::string k = "key" + std::to_string(key(rng));
        if (o.reads) {
          v1::GetRequest req;
          v1::GetReply reply;
          req.set_key(k);
          s = stub->Get(&ctx, req, &reply);
        } else {
          v1::PutRequest req;
          v1::WriteReply reply;
          req.set_key(k);
          req.set_value(value);
          s = stub->Put(&ctx, req, &reply);
        }
        const Clock::time_point t1 = Clock::now();
        if (t0 < measure_from) continue;
        if (!s.ok()) {
          if (errors++ == 0) first_error = s.error_message();
          continue;
        }
        lat.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      }
      std::lock_guard l(mu);
      result.latency_us.insert(result.latency_us.end(), lat.begin(), lat.end());
      result.errors += errors;
      if (result.first_error.empty()) result.first_error = first_error;
    });
  }
  while (Clock::now() < stop_at) {
    const Clock::time_point now = Clock::now();
    if (o.tick) o.tick(std::chrono::duration<double>(stop_at - now).count(), now >= measure_from);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  for (auto& th : threads) th.join();
  result.seconds = o.duration_s;
  result.ops = result.latency_us.size();
  std::sort(result.latency_us.begin(), result.latency_us.end());
  return result;
}

}  // namespace relaykv::bench
