// Real relaykvd processes for multi-process tests: each in its own temp data
// dir, on 127.0.0.1 with an OS-chosen port (read from relaykvd.addr), with
// its stderr kept in <dir>.log and printed when a test fails. Plus thin
// gRPC helpers to talk to them.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "proto/admin.grpc.pb.h"
#include "proto/kv.grpc.pb.h"
#include "tests/common/temp_dir.h"

namespace relaykv::testing {

// build/bin, from $RELAYKV_BIN_DIR (set by ctest).
std::string BinDir();

class Relaykvd {
 public:
  // Starts relaykvd on `data_dir` with extra flags; waits for it to listen.
  // `port` 0: any free port; else that one (restarts keep their address).
  static std::unique_ptr<Relaykvd> Start(const std::filesystem::path& data_dir,
                                         std::vector<std::string> flags = {}, int port = 0);
  ~Relaykvd();  // SIGKILL if still running

  const std::string& address() const { return address_; }
  int port() const { return port_; }
  const std::filesystem::path& data_dir() const { return data_dir_; }
  // SIGKILL and reap.
  void Kill();
  // SIGTERM and wait; returns the exit status (-1 if killed by a signal).
  int Terminate();
  // SIGSTOP / SIGCONT: a process that is there but silent (a dead network path).
  void Pause();
  void Resume();
  bool running() const { return pid_ > 0; }

  // gRPC helpers (deadline 30 s).
  absl::StatusOr<v1::Gtid> Put(const std::string& key, const std::string& value);
  absl::StatusOr<v1::Gtid> Write(const std::vector<v1::Mutation>& mutations);
  absl::StatusOr<v1::Gtid> Delete(const std::string& key);
  absl::StatusOr<std::optional<std::string>> Get(const std::string& key, v1::Gtid* applied = nullptr);
  std::map<std::string, std::string> Status(const std::string& like = "");
  std::map<std::string, std::string> ReplicaStatus();
  absl::StatusOr<v1::ChecksumReply> Checksum();
  absl::Status ReplicaThreads(v1::ReplicaThreadsRequest::Action action,
                              v1::ReplicaThreadsRequest::Threads threads);
  absl::Status SetVariable(const std::string& name, const std::string& value);
  absl::Status ChangeMaster(const std::string& host, uint32_t port);
  // RESET SLAVE ALL: the first GTID of the new epoch.
  absl::StatusOr<v1::Gtid> ResetReplicaAll();
  absl::StatusOr<v1::MasterStatusReply> MasterStatus();
  v1::Gtid BinlogGtid();  // SHOW MASTER STATUS's executed GTID (fails the test if it cannot)
  absl::StatusOr<int> PurgeBinaryLogsTo(const std::string& file);

 private:
  Relaykvd() = default;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string address_;
  std::filesystem::path data_dir_;
  std::unique_ptr<v1::Kv::Stub> kv_;
  std::unique_ptr<v1::Admin::Stub> admin_;
};

// A semi-sync replica (`--server-id=server_id`, rpl_semi_sync_slave_enabled)
// of `primary` with its data in `dir`, started and waited for until the
// primary counts `clients` semi-sync replicas. nullptr (and a test failure)
// if it does not start or is not counted.
std::unique_ptr<Relaykvd> StartSemiSyncReplica(const std::filesystem::path& dir, Relaykvd& primary,
                                               int server_id = 2, int clients = 1);

// Client threads putting distinct keys (k<n>, from a shared counter) until
// the server stops answering or Stop(); every write answered OK is recorded
// as acknowledged, with its value (padded to `value_bytes`) and the highest
// seq. A writer stops at its first error, kept in first_error().
class WriteLoad {
 public:
  struct Acked {
    std::map<std::string, std::string> values;  // key -> value the client saw committed
    uint64_t max_seq = 0;
  };

  WriteLoad(Relaykvd* server, int threads, std::atomic<int>* counter, const std::string& tag,
            Acked* acked, size_t value_bytes = 0);
  ~WriteLoad() { Stop(); }
  void Stop();
  // OK while every write so far was answered OK.
  absl::Status first_error();

 private:
  std::mutex mu_;
  absl::Status first_error_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> writers_;
};

// A relaykvd run that must refuse to start (a corrupt data dir, a bad
// setting): how it ended and what it logged.
struct StartupRefusal {
  bool exited = false;   // false: it listened (started after all) or outlived the hang guard
  int exit_status = -1;  // its exit status; -1 if a signal ended it
  std::string log;       // its stderr, this run only
};
// Starts relaykvd on `data_dir` with `flags` and waits, up to `hang_guard`,
// for it to exit without listening. A relaykvd that starts listening or is
// still running at the guard is killed and reported with exited=false (and
// its log). An exec failure (status 127: a concurrent build was relinking
// the binary) is retried a few times.
StartupRefusal StartExpectingRefusal(const std::filesystem::path& data_dir,
                                     std::vector<std::string> flags = {},
                                     std::chrono::seconds hang_guard = std::chrono::seconds(60));

}  // namespace relaykv::testing
