// Cluster: real relaykvd processes on 127.0.0.1 for the bench — a primary
// and N replicas in temporary data dirs, removed when the Cluster goes.
// Each process gets --listen 127.0.0.1:0 and is found via <dir>/relaykvd.addr.
// Or (StartEmbedded) the primary is a relaykv::Node inside this process,
// serving its replicas on 127.0.0.1:0 like relaykvd does.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "relaykv/node.h"

namespace relaykv::bench {

class Process {
 public:
  // Starts `binary` with `args`; waits (up to 30 s) for <data_dir>/relaykvd.addr.
  static absl::StatusOr<std::unique_ptr<Process>> Start(const std::string& binary,
                                                        const std::filesystem::path& data_dir,
                                                        std::vector<std::string> args);
  ~Process();  // SIGTERM, wait; SIGKILL after 10 s
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }
  // Resident set size now, from /proc (0 if unknown).
  long rss_kb() const;

 private:
  Process(pid_t pid, std::string address) : pid_(pid), address_(std::move(address)) {}
  pid_t pid_;
  std::string address_;
};

class Cluster {
 public:
  // primary_flags/replica_flags: extra --name=value flags.
  static absl::StatusOr<std::unique_ptr<Cluster>> Start(const std::string& relaykvd,
                                                        const std::filesystem::path& root,
                                                        int replicas,
                                                        const std::vector<std::string>& primary_flags,
                                                        const std::vector<std::string>& replica_flags);
  // primary_variables: the embedded node's variables (name, value).
  static absl::StatusOr<std::unique_ptr<Cluster>> StartEmbedded(
      const std::string& relaykvd, const std::filesystem::path& root, int replicas,
      const std::vector<std::pair<std::string, std::string>>& primary_variables,
      const std::vector<std::string>& replica_flags);
  ~Cluster();

  const std::string& primary_address() const { return primary_address_; }
  // The primary's process; nullptr when it is embedded.
  const Process* primary_process() const { return primary_.get(); }
  // The embedded primary; nullptr when it is a process.
  Node* embedded() const { return embedded_.get(); }
  const std::vector<std::unique_ptr<Process>>& replicas() const { return replicas_; }

 private:
  absl::Status StartReplicas(const std::string& relaykvd, int replicas,
                             const std::vector<std::string>& replica_flags);

  std::filesystem::path root_;
  std::string primary_address_;
  std::unique_ptr<Process> primary_;
  std::unique_ptr<Node> embedded_;
  std::vector<std::unique_ptr<Process>> replicas_;
};

}  // namespace relaykv::bench
