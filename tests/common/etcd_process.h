// A real etcd (Debian's etcd-server 3.4) for tests: one member or three, on
// free 127.0.0.1 ports, with its data and logs in a directory the test owns
// (tests/common/temp_dir.h). Start() returns once every member answers
// /health; the destructor stops every member (SIGTERM, SIGKILL after a
// grace period) and reaps it. A member can be stopped, killed, paused and
// restarted on the same ports and data (an etcd restart in the nemesis test).
//
// Ports come from the OS (bind to port 0, then released and handed to etcd):
// another process may take one in between, so a start that fails is retried
// on new ports a few times. Restarts keep their ports.
//
// The etcd binary: $RELAYKV_ETCD_BIN, else `etcd` on PATH. Tests call
// RELAYKV_SKIP_WITHOUT_ETCD() first: without the binary they are skipped
// with a message saying how to install it (CI installs it, so they run there).
//
// Not thread-safe: one test thread drives it. Children die with the test
// process (tests/common/spawn.h).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace relaykv::testing {

// The etcd binary's path, or "" if there is none.
std::string EtcdBinary();

#define RELAYKV_SKIP_WITHOUT_ETCD()                                                      \
  do {                                                                                   \
    if (::relaykv::testing::EtcdBinary().empty()) {                                      \
      GTEST_SKIP() << "etcd not found (install Debian's etcd-server: scripts/setup.sh, " \
                      "or set RELAYKV_ETCD_BIN)";                                        \
    }                                                                                    \
  } while (0)

class EtcdCluster {
 public:
  // Starts `members` (1 or 3 in practice) members under `dir` and waits up
  // to `timeout` until each is healthy. The error names the member and ends
  // with the tail of its log.
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> Start(
      const std::filesystem::path& dir, int members = 1,
      std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~EtcdCluster();  // StopMember() for each running member
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  int size() const { return static_cast<int>(members_.size()); }
  // "127.0.0.1:PORT" of member i's client (gRPC) listener, and all of them.
  std::string client_endpoint(int i) const;
  std::vector<std::string> client_endpoints() const;
  bool running(int i) const { return members_[i].pid > 0; }

  // SIGTERM, then SIGKILL if it has not exited after `grace`; reaped.
  void StopMember(int i, std::chrono::milliseconds grace = std::chrono::seconds(10));
  // SIGKILL and reap (a crash).
  void KillMember(int i);
  // SIGSTOP / SIGCONT: there but silent (its connections stay open).
  void PauseMember(int i);
  void ResumeMember(int i);
  // Starts a stopped member again on its ports and data; waits until healthy.
  absl::Status RestartMember(int i, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // True once member i answers GET /health with {"health":"true"} (it has
  // a leader and serves reads).
  bool Healthy(int i) const;
  // Member i's log (etcd's stderr) so far.
  std::string Log(int i) const;

 private:
  struct Member {
    std::string name;
    int client_port = 0;
    int peer_port = 0;
    std::filesystem::path data_dir;
    std::filesystem::path log;
    pid_t pid = -1;
  };
  EtcdCluster() = default;
  void Launch(int i);  // fork+exec member i (stderr appended to its log)
  absl::Status WaitHealthy(int i, std::chrono::steady_clock::time_point deadline);

  std::filesystem::path dir_;
  std::string token_;  // --initial-cluster-token: unique per cluster
  std::vector<Member> members_;
};

}  // namespace relaykv::testing
