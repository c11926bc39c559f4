// Real relaykvd processes for multi-process tests: each in its own temp data
// dir, on 127.0.0.1 with an OS-chosen port (read from relaykvd.addr), with
// its stderr kept in <dir>.log and printed when a test fails, talked to
// through relaykv::Client; and the `relaykv` CLI run with a hang guard.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "relaykv/client.h"
#include "tests/common/temp_dir.h"

namespace relaykv {
// gtest prints GTIDs and checksums in failure messages as the CLI does.
inline void PrintTo(const Gtid& g, std::ostream* os) { *os << g.ToString(); }
inline void PrintTo(const KeyspaceChecksum& c, std::ostream* os) {
  *os << c.gtid.ToString() << " hash " << std::hex << c.hash << std::dec << " keys " << c.keys
      << " versions " << std::hex << c.versions_hash << std::dec;
}
}  // namespace relaykv

namespace relaykv::testing {

// build/bin, from $RELAYKV_BIN_DIR (set by ctest).
std::string BinDir();

class Relaykvd {
 public:
  // Starts relaykvd on `data_dir` with extra flags; waits for it to listen.
  // `port` 0: any free port; else that one (restarts keep their address).
  // `client` configures client() (TLS, bearer token; the timeout is kept).
  // `env`: NAME=VALUE entries added to the child's environment only (a
  // test's setenv would race with its own threads' getenv).
  static std::unique_ptr<Relaykvd> Start(const std::filesystem::path& data_dir,
                                         std::vector<std::string> flags = {}, int port = 0,
                                         ClientOptions client = {},
                                         std::vector<std::string> env = {});
  // As Start(), with exactly `args` after the binary (no --data-dir or
  // --listen added): for tests of relaykvd's own flags. `data_dir` is where
  // the args make it keep its data (relaykvd.addr is waited for there).
  static std::unique_ptr<Relaykvd> StartWithArgs(const std::filesystem::path& data_dir,
                                                 std::vector<std::string> args,
                                                 ClientOptions client = {},
                                                 std::vector<std::string> env = {});
  ~Relaykvd();  // SIGKILL if still running

  const std::string& address() const { return address_; }
  int port() const { return port_; }
  const std::filesystem::path& data_dir() const { return data_dir_; }
  // SIGKILL and reap.
  void Kill();
  // SIGTERM and wait (SIGKILL after 60 s: a test failure with the log);
  // returns the exit status (-1 if a signal ended it).
  int Terminate();
  // SIGSTOP / SIGCONT: a process that is there but silent (a dead network path).
  void Pause();
  void Resume();
  // Sends `signo` (e.g. SIGHUP: reopen the log file, re-read the roles file).
  void Signal(int signo);
  bool running() const { return pid_ > 0; }
  // The process id (/proc/<pid>/status: memory and threads), -1 once gone.
  pid_t pid() const { return pid_; }
  // Its stderr so far (the log), for tests of what it logged.
  std::string Log() const;

  // The library client every call goes through (per-call deadline 30 s);
  // the shorthands below are the calls nearly every test makes.
  Client& client() { return *client_; }
  absl::StatusOr<Gtid> Put(const std::string& key, const std::string& value) {
    return client_->Put(key, value);
  }
  absl::StatusOr<Gtid> Write(const std::vector<Mutation>& mutations) { return client_->Write(mutations); }
  absl::StatusOr<Gtid> Delete(const std::string& key) { return client_->Delete(key); }
  absl::StatusOr<std::optional<std::string>> Get(const std::string& key) { return client_->Get(key); }
  absl::StatusOr<KeyspaceChecksum> Checksum() { return client_->Checksum(); }
  // SHOW STATUS / SHOW SLAVE STATUS / SHOW MASTER STATUS's executed GTID:
  // a node that does not answer fails the test here, not in a later check
  // that an empty map or 0:0 might pass.
  std::map<std::string, std::string> Status(const std::string& like = "");
  std::map<std::string, std::string> ReplicaStatus();
  Gtid BinlogGtid();

 private:
  Relaykvd() = default;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string address_;
  std::filesystem::path data_dir_;
  std::unique_ptr<Client> client_;
};

// Caught up with each other: the same checksum (GTID, hash and key count).
bool SameChecksum(Relaykvd& a, Relaykvd& b);

// A primary restarted after a crash under AFTER_SYNC semi-sync applies the
// binlog tail it replayed only once a replica ACKs it (or semi-sync times
// out): true once it has applied its whole binlog (no writes meanwhile).
bool WaitForReplayedTail(Relaykvd& primary);

// A replica (`--server-id`, `flags` added) of `primary` with its data in
// `dir`. A semi-sync one (rpl_semi_sync_slave_enabled) is waited for until
// the primary counts `clients` semi-sync replicas. nullptr (and a test
// failure) if it does not start or is not counted.
struct ReplicaOptions {
  int server_id = 2;
  bool semi_sync = false;
  int clients = 1;
  std::vector<std::string> flags = {};
  ClientOptions client = {};  // the replica's client() (TLS); the primary's own is used for its status
};
std::unique_ptr<Relaykvd> StartReplica(const std::filesystem::path& dir, Relaykvd& primary,
                                       ReplicaOptions options = {});
inline std::unique_ptr<Relaykvd> StartSemiSyncReplica(const std::filesystem::path& dir,
                                                      Relaykvd& primary, int server_id = 2,
                                                      int clients = 1) {
  return StartReplica(dir, primary, {.server_id = server_id, .semi_sync = true, .clients = clients});
}

// The one load generator of the process tests: client threads writing
// distinct keys (k<n>, n from a shared counter) until `total` writes were
// issued, the server stops answering, or Stop(). Every write answered OK is
// recorded as acknowledged, with the highest seq. Plain: one Put per write,
// its value padded to `value_bytes`. Mixed: as plain, but every tenth write
// deletes the key the same thread wrote last and every tenth-plus-one is a
// batch of three Puts (k<n>/0..2) — each write still one GTID. A writer
// stops at its first error, kept in first_error().
class WriteLoad {
 public:
  struct Acked {
    std::map<std::string, std::string> values;  // key -> value the client saw committed
    std::set<std::string> deleted;              // keys whose delete was acknowledged
    uint64_t max_seq = 0;
  };
  struct Options {
    int threads = 4;
    size_t value_bytes = 0;
    int total = 0;  // 0: until Stop() or the first error
    bool mixed = false;
  };

  WriteLoad(Relaykvd* server, std::atomic<int>* counter, const std::string& tag, Acked* acked,
            Options options);
  WriteLoad(Relaykvd* server, int threads, std::atomic<int>* counter, const std::string& tag,
            Acked* acked, size_t value_bytes = 0)
      : WriteLoad(server, counter, tag, acked, {.threads = threads, .value_bytes = value_bytes}) {}
  ~WriteLoad() { Stop(); }
  // Ends the load now (a write in flight finishes first).
  void Stop();
  // Waits for a bounded load to issue its `total` writes (or fail).
  void Wait();
  // OK while every write so far was answered OK.
  absl::Status first_error();

 private:
  void Record(const absl::Status& error);
  std::mutex mu_;
  absl::Status first_error_;  // GUARDED_BY(mu_)
  std::atomic<bool> stop_{false};
  std::vector<std::thread> writers_;
};

// Runs a bounded mixed load of `total` writes from 4 threads to its end;
// fails the test at the first write that is not answered OK.
void RunMixedLoad(Relaykvd& primary, int total, const std::string& tag);

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

// One run of the `relaykv` CLI: `relaykv ARGS` with `stdin_text` on its
// standard input (not a terminal: batch output), stdout and stderr kept
// apart. A run still going at `hang_guard` is killed and fails the test.
struct CliRun {
  int status = -1;  // exit status; -1: a signal (or the hang guard) ended it
  std::string out, err;
};
CliRun RunCli(const std::vector<std::string>& args, const std::string& stdin_text = "",
              std::chrono::seconds hang_guard = std::chrono::seconds(60));
// `relaykv -H <server's address> ARGS < stdin_text`.
inline CliRun RunCliOn(const Relaykvd& server, std::vector<std::string> args,
                       const std::string& stdin_text = "") {
  args.insert(args.begin(), {"-H", server.address()});
  return RunCli(args, stdin_text);
}
// As RunCli, for any binary of BinDir() ("relaykvd --version"), with
// `env` (NAME=VALUE) added to the child's environment.
CliRun RunBinary(const std::string& name, const std::vector<std::string>& args,
                 const std::string& stdin_text = "",
                 std::chrono::seconds hang_guard = std::chrono::seconds(60),
                 const std::vector<std::string>& env = {});

}  // namespace relaykv::testing
