#include "bench/load.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "client/channel_args.h"
#include "client/channel_credentials.h"
#include "proto/kv.grpc.pb.h"

namespace relaykv::bench {
namespace {

using Clock = std::chrono::steady_clock;

// One closed-loop client: one request in flight at a time, the next sent as
// soon as the last is answered. Calls are asynchronous on a completion
// queue, so a few threads drive all clients and the generator's CPU cost
// stays small next to the servers' on a 2-core machine.
struct Slot {
  std::unique_ptr<v1::Kv::Stub> stub;
  std::mt19937_64 rng;
  std::unique_ptr<grpc::ClientContext> ctx;
  v1::PutRequest put;
  v1::GetRequest get;
  v1::WriteReply put_reply;
  v1::GetReply get_reply;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::WriteReply>> put_call;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::GetReply>> get_call;
  Clock::time_point sent;
};

}  // namespace

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
  const bool blocking = o.put_blocking && !o.put_async;
  const int threads = o.put_async || blocking ? 0 : std::min(o.clients, 2);
  std::mutex mu;
  LoadResult result;
  // One credentials object for every client's channel (each still its own
  // connection and TLS session).
  auto made = MakeChannelCredentials(o.tls);
  if (!made.ok()) {
    result.errors = 1;
    result.first_error = made.status().ToString();
    return result;
  }
  const std::shared_ptr<grpc::ChannelCredentials> credentials = *made;
  std::vector<std::thread> workers;
  // What one client measured, merged into the result.
  auto merge = [&](const std::vector<double>& lat, uint64_t errors, const std::string& first_error) {
    std::lock_guard l(mu);
    result.latency_us.insert(result.latency_us.end(), lat.begin(), lat.end());
    result.errors += errors;
    if (result.first_error.empty()) result.first_error = first_error;
  };
  // Embedded: each client a chain of writes. A chain ends at stop_at or at
  // its first error (a failed write is not retried: an immediate failure
  // would recurse). RunLoad returns once every chain has ended and no
  // thread is still inside `issue` (a callback may run before put_async
  // returns on the thread that called it).
  struct Chain {
    std::mt19937_64 rng;
    std::uniform_int_distribution<uint64_t> key;
    std::vector<double> lat;
    uint64_t errors = 0;
    std::string first_error;
    Clock::time_point sent;
  };
  std::vector<std::unique_ptr<Chain>> chains;
  std::mutex chains_mu;
  std::condition_variable chains_cv;
  int chains_running = 0;
  int issuing = 0;
  const std::string chain_value(o.value_size, 'v');
  std::function<void(Chain*)> issue = [&](Chain* ch) {
    {
      std::lock_guard l(chains_mu);
      ++issuing;
    }
    ch->sent = Clock::now();
    o.put_async("key" + std::to_string(ch->key(ch->rng)), chain_value, [&, ch](absl::Status s) {
      const Clock::time_point now = Clock::now();
      if (!s.ok()) {
        if (ch->errors++ == 0) ch->first_error = s.ToString();  // in the window or not
      } else if (ch->sent >= measure_from && now <= stop_at) {
        ch->lat.push_back(std::chrono::duration<double, std::micro>(now - ch->sent).count());
      }
      if (s.ok() && now < stop_at) return issue(ch);
      std::lock_guard l(chains_mu);
      --chains_running;
      chains_cv.notify_all();
    });
    std::lock_guard l(chains_mu);
    --issuing;
    chains_cv.notify_all();
  };
  if (o.put_async) {
    for (int c = 0; c < o.clients; ++c) {
      auto ch = std::make_unique<Chain>();
      ch->rng.seed(static_cast<uint64_t>(c) * 7919 + 1);
      ch->key = std::uniform_int_distribution<uint64_t>(0, o.keyspace - 1);
      chains.push_back(std::move(ch));
    }
    chains_running = o.clients;
    for (auto& ch : chains) issue(ch.get());
  }
  for (int c = 0; blocking && c < o.clients; ++c) {
    workers.emplace_back([&, c] {
      std::mt19937_64 rng(static_cast<uint64_t>(c) * 7919 + 1);
      std::uniform_int_distribution<uint64_t> key(0, o.keyspace - 1);
      const std::string value(o.value_size, 'v');
      std::vector<double> lat;
      uint64_t errors = 0;
      std::string first_error;
      for (;;) {
        const Clock::time_point sent = Clock::now();
        if (sent >= stop_at) break;
        absl::Status s = o.put_blocking("key" + std::to_string(key(rng)), value);
        const Clock::time_point now = Clock::now();
        if (sent >= measure_from && now <= stop_at) {
          if (s.ok()) {
            lat.push_back(std::chrono::duration<double, std::micro>(now - sent).count());
          } else if (errors++ == 0) {
            first_error = s.ToString();
          }
        }
      }
      merge(lat, errors, first_error);
    });
  }
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      grpc::CompletionQueue cq;
      const std::string value(o.value_size, 'v');
      std::uniform_int_distribution<uint64_t> key(0, o.keyspace - 1);
      std::vector<std::unique_ptr<Slot>> slots;
      auto send = [&](Slot* s) {
        s->ctx = std::make_unique<grpc::ClientContext>();
        s->ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        const std::string k = "key" + std::to_string(key(s->rng));
        s->sent = Clock::now();
        if (o.reads) {
          s->get.set_key(k);
          s->get_call = s->stub->AsyncGet(s->ctx.get(), s->get, &cq);
          s->get_call->Finish(&s->get_reply, &s->status, s);
        } else {
          s->put.set_key(k);
          s->put.set_value(value);
          s->put_call = s->stub->AsyncPut(s->ctx.get(), s->put, &cq);
          s->put_call->Finish(&s->put_reply, &s->status, s);
        }
      };
      // Clients t, t+threads, ...: each with its own channel (connection).
      for (int c = t; c < o.clients; c += threads) {
        grpc::ChannelArguments args = ClientChannelArguments();
        args.SetInt("relaykv.bench.client", c);  // distinct channels, not one shared connection
        auto slot = std::make_unique<Slot>();
        slot->stub = v1::Kv::NewStub(grpc::CreateCustomChannel(o.target, credentials, args));
        slot->rng.seed(static_cast<uint64_t>(c) * 7919 + 1);
        send(slot.get());
        slots.push_back(std::move(slot));
      }
      std::vector<double> lat;
      uint64_t errors = 0;
      std::string first_error;
      size_t in_flight = slots.size();
      void* tag;
      bool ok;
      while (in_flight > 0 && cq.Next(&tag, &ok)) {
        Slot* s = static_cast<Slot*>(tag);
        const Clock::time_point now = Clock::now();
        if (s->sent >= measure_from && now <= stop_at) {
          if (ok && s->status.ok()) {
            lat.push_back(std::chrono::duration<double, std::micro>(now - s->sent).count());
          } else if (errors++ == 0) {
            first_error = s->status.error_message();
          }
        }
        if (now >= stop_at) {
          --in_flight;
        } else {
          send(s);
        }
      }
      cq.Shutdown();
      while (cq.Next(&tag, &ok)) {
      }
      merge(lat, errors, first_error);
    });
  }
  while (Clock::now() < stop_at) {
    const Clock::time_point now = Clock::now();
    if (o.tick) o.tick(std::chrono::duration<double>(stop_at - now).count(), now >= measure_from);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  for (auto& th : workers) th.join();
  {
    std::unique_lock l(chains_mu);
    chains_cv.wait(l, [&] { return chains_running == 0 && issuing == 0; });
  }
  for (const auto& ch : chains) merge(ch->lat, ch->errors, ch->first_error);
  result.seconds = o.duration_s;
  result.ops = result.latency_us.size();
  std::sort(result.latency_us.begin(), result.latency_us.end());
  return result;
}

}  // namespace relaykv::bench
