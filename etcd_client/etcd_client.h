// A small synchronous client for etcd's v3 API (KV, Lease, Watch) over the
// grpc++ stubs generated from Debian's etcd .proto files (relaykv_etcd_proto).
// It knows nothing of relaykv's failover: it is the transport a coordinator
// builds on (../shared/FAILOVER.md section 3).
//
// Contract:
// - Thread-safe: any thread may call any method at once; the client holds
//   no lock during an RPC.
// - Every call has a deadline: Options::call_timeout, computed once per call
//   and shared by all endpoints tried (a call never takes longer).
// - Errors are absl::Status with gRPC's code and a message naming the call and
//   the endpoint: UNAVAILABLE (no endpoint reachable), DEADLINE_EXCEEDED (an
//   endpoint accepted the connection but did not answer in time: a paused or
//   partitioned etcd), NOT_FOUND (lease unknown or expired), OUT_OF_RANGE
//   (watch start revision compacted), INVALID_ARGUMENT (etcd refused input).
// - A call waits for a connection (it fails only at its deadline when no
//   endpoint can be reached): see WaitConnected in etcd_stubs.h.
// - Endpoints: a call goes to the preferred endpoint; on UNAVAILABLE it tries
//   the next, within the same deadline. The endpoint that answered becomes
//   the preferred one; after DEADLINE_EXCEEDED the next call starts at the
//   following endpoint (the call itself is not repeated: its outcome is
//   unknown), and the endpoint's connection is replaced by a new one: a
//   connection that took a request and never answered is presumed dead
//   (an etcd that accepted it while restarting, a peer gone without a FIN),
//   and gRPC would keep using it until its keepalive gives up (~15 s).
//   Repeating a Put/Delete/Revoke is harmless; a Txn or LeaseGrant
//   is repeated on UNAVAILABLE only if the channel was not connected before
//   the call (so the request was most likely never sent). A caller that needs
//   to know whether a mutation that failed took effect reads it back.
// - Reads are linearizable (never `serializable`).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace relaykv::etcd {

// One key as etcd stores it (mvccpb.KeyValue).
struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;  // revision of the put that created it
  int64_t mod_revision = 0;     // revision of its last put
  int64_t version = 0;          // puts since it was created (1 after the first)
  int64_t lease = 0;            // 0: no lease
};

struct RangeResult {
  std::vector<KeyValue> kvs;  // sorted by key
  int64_t revision = 0;       // the store's revision the read saw
};

// A Txn guard on one key (etcdserverpb.Compare). A key that does not exist
// has create_revision, mod_revision and version 0.
struct Compare {
  enum class Target { kCreateRevision, kModRevision, kVersion, kValue };
  enum class Result { kEqual, kNotEqual, kGreater, kLess };
  std::string key;
  Target target = Target::kVersion;
  Result result = Result::kEqual;
  int64_t number = 0;  // for the revision/version targets
  std::string value;   // for kValue

  static Compare CreateRevision(std::string key, Result r, int64_t n) {
    return {std::move(key), Target::kCreateRevision, r, n, {}};
  }
  static Compare ModRevision(std::string key, Result r, int64_t n) {
    return {std::move(key), Target::kModRevision, r, n, {}};
  }
  static Compare Version(std::string key, Result r, int64_t n) {
    return {std::move(key), Target::kVersion, r, n, {}};
  }
  static Compare Value(std::string key, Result r, std::string v) {
    return {std::move(key), Target::kValue, r, 0, std::move(v)};
  }
};

// One operation of a Txn branch.
struct TxnOp {
  enum class Kind { kPut, kDelete, kRange };
  Kind kind = Kind::kRange;
  std::string key;
  std::string value;    // kPut
  int64_t lease = 0;    // kPut: attach to this lease (0: none)
  bool prefix = false;  // kDelete/kRange: every key starting with `key`

  static TxnOp Put(std::string key, std::string value, int64_t lease = 0) {
    return {Kind::kPut, std::move(key), std::move(value), lease, false};
  }
  static TxnOp Delete(std::string key, bool prefix = false) {
    return {Kind::kDelete, std::move(key), {}, 0, prefix};
  }
  static TxnOp Range(std::string key, bool prefix = false) {
    return {Kind::kRange, std::move(key), {}, 0, prefix};
  }
};

struct TxnResult {
  bool succeeded = false;    // every compare held: the `then` branch ran
  int64_t revision = 0;      // the store's revision after the Txn
  // One per op of the branch that ran, in order: kRange fills `range`,
  // kDelete fills `deleted`, kPut neither.
  struct OpResult {
    RangeResult range;
    int64_t deleted = 0;
  };
  std::vector<OpResult> results;
};

struct Lease {
  int64_t id = 0;
  int64_t ttl_s = 0;  // as granted (etcd may raise a TTL below its minimum)
};

struct WatchEvent {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  KeyValue kv;  // a delete carries the key and its mod_revision (the delete's)
};

// What a watch callback receives. Events arrive in revision order. A call
// with !status.ok() is the last one: OUT_OF_RANGE (the start revision was
// compacted; compact_revision says from where to re-read), CANCELLED /
// ABORTED (etcd cancelled the watch), UNAVAILABLE (the stream broke: etcd
// died or the connection was cut). The caller re-watches from the revision
// after the last event it saw. Stop() is not reported.
struct WatchResponse {
  absl::Status status;
  int64_t revision = 0;          // header revision
  int64_t compact_revision = 0;  // with OUT_OF_RANGE
  std::vector<WatchEvent> events;
};
using WatchCallback = std::function<void(const WatchResponse&)>;

// A running watch: one gRPC stream read by a thread it owns, which runs the
// callback. Stop() (or the destructor) cancels the stream and joins the
// thread; no callback runs after it returns. Do not call Stop() or destroy
// the watch from inside its own callback (the thread would join itself).
// A watch holds its own reference to the channel: it may outlive the client.
class Watch {
 public:
  ~Watch();
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;
  void Stop();

 private:
  friend class EtcdClient;
  struct Stream;  // gRPC context, stream, request, callback (keeps gRPC out of this header)
  explicit Watch(std::unique_ptr<Stream> stream);
  void Run();  // the thread's body: create the watch, then deliver events

  std::unique_ptr<Stream> stream_;
  std::atomic<bool> stopping_{false};
  std::mutex stop_mu_;  // serializes Stop() callers
  std::thread thread_;
};

class EtcdClient {
 public:
  struct Options {
    std::vector<std::string> endpoints;  // "host:port", plain-text gRPC
    std::chrono::milliseconds call_timeout{5000};
  };
  // INVALID_ARGUMENT if there is no endpoint. Connects lazily.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Create(Options options);
  // "a:1,b:2" → {"a:1", "b:2"}; "http://" prefixes are dropped.
  static std::vector<std::string> ParseEndpoints(const std::string& list);
  ~EtcdClient();

  [[nodiscard]] absl::StatusOr<RangeResult> Get(const std::string& key);
  [[nodiscard]] absl::StatusOr<RangeResult> GetPrefix(const std::string& prefix);
  // Returns the revision of the put.
  [[nodiscard]] absl::StatusOr<int64_t> Put(const std::string& key, const std::string& value,
                                            int64_t lease = 0);
  // Returns how many keys were deleted.
  [[nodiscard]] absl::StatusOr<int64_t> Delete(const std::string& key, bool prefix = false);
  [[nodiscard]] absl::StatusOr<TxnResult> Txn(const std::vector<Compare>& compares,
                                              const std::vector<TxnOp>& then_ops,
                                              const std::vector<TxnOp>& else_ops = {});

  [[nodiscard]] absl::StatusOr<Lease> LeaseGrant(int64_t ttl_s);
  // Renews the lease once; returns its TTL after renewal in seconds.
  // NOT_FOUND if the lease expired or was revoked. One short bidi stream per
  // call: it is bounded by the call's deadline, fails over like a unary call,
  // and needs no reader thread; at one renewal every few seconds its setup
  // cost does not matter.
  [[nodiscard]] absl::StatusOr<int64_t> LeaseKeepAliveOnce(int64_t id);
  // Keys on the lease are deleted. NOT_FOUND if it does not exist (anymore).
  [[nodiscard]] absl::Status LeaseRevoke(int64_t id);

  // Watches `key` (or every key under it with `prefix`) from `start_revision`
  // (0: from now). Returns once etcd confirmed the watch (events from then on
  // reach `callback` on the watch's thread), or an error within the call's
  // deadline: OUT_OF_RANGE if start_revision is compacted.
  [[nodiscard]] absl::StatusOr<std::unique_ptr<Watch>> WatchKey(const std::string& key,
                                                                bool prefix,
                                                                int64_t start_revision,
                                                                WatchCallback callback);

 private:
  struct Stubs;
  explicit EtcdClient(Options options);

  // Runs `attempt(endpoint index, context)` on the preferred endpoint, then
  // the others while it returns UNAVAILABLE (for !repeatable, only while the
  // channel was not connected before the attempt), all within one deadline.
  absl::Status Call(const char* what, bool repeatable,
                    const std::function<absl::Status(const Stubs&, grpc::ClientContext&)>& attempt);
  // Endpoint `index`'s stubs now (a call keeps the ones it started with).
  std::shared_ptr<const Stubs> StubsAt(size_t index) const;
  // A new connection for endpoint `index`, unless another call replaced
  // `broken` already.
  void Reconnect(size_t index, const Stubs* broken);
  // Get / GetPrefix.
  absl::StatusOr<RangeResult> Range(const std::string& key, bool prefix);

  const Options options_;
  mutable std::mutex stubs_mu_;
  // One per endpoint, never resized (size() needs no lock); an entry is
  // replaced under stubs_mu_.
  std::vector<std::shared_ptr<const Stubs>> stubs_;
  std::atomic<size_t> preferred_{0};           // index of the endpoint tried first
};

// The end of the range holding every key that starts with `prefix`
// (etcd's "range_end": the prefix with its last byte incremented).
std::string PrefixRangeEnd(const std::string& prefix);

}  // namespace relaykv::etcd
