// Node: one relaykv server — binlog, state machine, applier and (when a
// listen address is given) the gRPC services. relaykvd is a thin main over
// it; an application can embed one (or several: a Node holds no
// process-global state).
//
// Write path (Put/Delete/Write): validate (server/limits.h) -> binlog group
// commit (durable per sync_binlog) -> release to the applier -> wait until
// applied -> return the GTID. A write is visible to Get() only once it is
// applied.
//
// Threads: all methods thread-safe. Close() stops accepting RPCs, lets
// in-flight commits finish (up to a grace period), then stops the applier
// and closes the binlog and RocksDB; later calls fail with
// FAILED_PRECONDITION. The destructor calls Close().
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/event.pb.h"
#include "storage/gtid.h"

namespace relaykv {

struct NodeOptions {
  std::filesystem::path data_dir;  // created if missing; locked while open
  // "HOST:PORT" to serve gRPC on (port 0: the OS picks; see bound_port());
  // empty: no network service (embedded use).
  std::string listen_address;
  uint32_t server_id = 1;
  uint32_t sync_binlog = 1;
  uint64_t max_binlog_size = 1ull << 30;
};

class Node {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Node>> Open(const NodeOptions& options);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  using Deadline = std::chrono::steady_clock::time_point;
  static Deadline NoDeadline() { return Deadline::max(); }

  [[nodiscard]] absl::StatusOr<Gtid> Put(std::string key, std::string value,
                                         Deadline deadline = NoDeadline());
  [[nodiscard]] absl::StatusOr<Gtid> Delete(std::string key, Deadline deadline = NoDeadline());
  // An atomic batch: all mutations or none.
  [[nodiscard]] absl::StatusOr<Gtid> Write(std::vector<v1::Mutation> mutations,
                                           Deadline deadline = NoDeadline());
  // nullopt: the key is absent.
  [[nodiscard]] absl::StatusOr<std::optional<std::string>> Get(const std::string& key);

  Gtid applied_gtid() const;
  Gtid binlog_gtid() const;
  // The port the gRPC server listens on (0 if none).
  int bound_port() const;
  const NodeOptions& options() const;

  void Close();

 private:
  class Impl;
  explicit Node(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace relaykv
