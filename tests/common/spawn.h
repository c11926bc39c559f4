// fork + execv for tests that run real processes (relaykvd, relaykv, etcd):
// the child's stdio goes to files and it dies with the test (PR_SET_PDEATHSIG:
// no orphan keeps a port or a data dir when a test crashes).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>
#include <string>
#include <string_view>
#include <vector>

namespace relaykv::testing {

// fork + execv of `argv` (built before fork(): the child of a threaded
// process may only make system calls until execv) with stdin, stdout and
// stderr from/to the given files ("" leaves that one alone); the child dies
// with the test. Exit status 127: the exec failed.
inline pid_t Spawn(std::vector<std::string> args, const std::string& in, const std::string& out,
                   const std::string& err, bool append_err,
                   std::vector<std::string> env = {}) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (!env.empty()) {
    // The given ones replace the inherited ones of the same name.
    for (auto& e : env) envp.push_back(e.data());
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view inherited(*e);
      const bool replaced = std::any_of(env.begin(), env.end(), [&](const std::string& mine) {
        return inherited.substr(0, inherited.find('=') + 1) == mine.substr(0, mine.find('=') + 1);
      });
      if (!replaced) envp.push_back(*e);
    }
    envp.push_back(nullptr);
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // no orphans if the test dies
    auto redirect = [](const std::string& path, int target, int flags) {
      if (path.empty()) return;
      const int fd = ::open(path.c_str(), flags, 0644);
      if (fd >= 0) ::dup2(fd, target);
    };
    redirect(in, 0, O_RDONLY);
    redirect(out, 1, O_WRONLY | O_CREAT | O_TRUNC);
    redirect(err, 2, O_WRONLY | O_CREAT | (append_err ? O_APPEND : O_TRUNC));
    if (envp.empty()) {
      ::execv(argv[0], argv.data());
    } else {
      ::execve(argv[0], argv.data(), envp.data());
    }
    ::_exit(127);
  }
  return pid;
}

// SIGSTOP, then waits (up to 5 s) until the kernel shows every thread of
// `pid` stopped ("t"/"T" in /proc/<pid>/task/*/stat): a reply already being
// written when the signal was sent must not pass for one from a paused
// process.
inline void StopAndWaitStopped(pid_t pid) {
  if (pid <= 0 || ::kill(pid, SIGSTOP) != 0) return;
  const auto all_stopped = [pid] {
    std::error_code ec;
    for (const auto& task :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
      std::ifstream stat(task.path() / "stat");
      std::string line;
      std::getline(stat, line);
      const auto close = line.rfind(')');
      if (close == std::string::npos || close + 2 >= line.size()) continue;  // gone
      const char state = line[close + 2];
      if (state != 'T' && state != 't') return false;
    }
    return true;
  };
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < until && !all_stopped()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace relaykv::testing
