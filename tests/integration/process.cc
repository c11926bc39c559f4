#include "tests/integration/process.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>

#include "gtest/gtest.h"
#include "tests/common/spawn.h"

namespace relaykv::testing {
namespace fs = std::filesystem;
namespace {

// Reaps `pid` if it exits within `limit` (its wait status in *status);
// false at the limit or as soon as `give_up` says so, the child still running.
bool WaitForExit(pid_t pid, std::chrono::milliseconds limit, int* status,
                 const std::function<bool()>& give_up = [] { return false; }) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline && !give_up()) {
    if (::waitpid(pid, status, WNOHANG) == pid) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Printed when the test has failed, so a crash or refusal shows its log.
// The audit lines of read-only statements (a test's waits poll CHECKSUM and
// SHOW every few ms) are left out, or they would be all of the tail.
void DumpLogOnFailure(const fs::path& log) {
  if (!::testing::Test::HasFailure()) return;
  std::istringstream in(Slurp(log));
  std::string text;
  int polls = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.find("audit: CHECKSUM") != std::string::npos ||
        line.find("audit: SHOW") != std::string::npos) {
      ++polls;
      continue;
    }
    text += line + "\n";
  }
  if (text.size() > 8000) text = "..." + text.substr(text.size() - 8000);
  std::fprintf(stderr, "---- %s (%d audit lines of CHECKSUM/SHOW left out) ----\n%s\n", log.c_str(),
               polls, text.c_str());
}

}  // namespace

std::string BinDir() {
  const char* dir = std::getenv("RELAYKV_BIN_DIR");
  if (dir != nullptr) return dir;
  return (fs::canonical("/proc/self/exe").parent_path().parent_path() / "bin").string();
}

std::unique_ptr<Relaykvd> Relaykvd::Start(const fs::path& data_dir, std::vector<std::string> flags,
                                          int port, ClientOptions client_options,
                                          std::vector<std::string> env) {
  std::vector<std::string> args = {"--data-dir", data_dir.string(), "--listen",
                                   "127.0.0.1:" + std::to_string(port)};
  args.insert(args.end(), flags.begin(), flags.end());
  return StartWithArgs(data_dir, std::move(args), std::move(client_options), std::move(env));
}

std::unique_ptr<Relaykvd> Relaykvd::StartWithArgs(const fs::path& data_dir,
                                                  std::vector<std::string> flags,
                                                  ClientOptions client_options,
                                                  std::vector<std::string> env) {
  std::unique_ptr<Relaykvd> p(new Relaykvd());
  p->data_dir_ = data_dir;
  fs::create_directories(data_dir);
  const fs::path addr = data_dir / "relaykvd.addr";
  fs::remove(addr);
  std::vector<std::string> args = {BinDir() + "/relaykvd"};
  args.insert(args.end(), flags.begin(), flags.end());
  const std::string log = data_dir.string() + ".log";
  const pid_t pid = Spawn(std::move(args), "", "", log, /*append_err=*/true, std::move(env));
  p->pid_ = pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(addr);
    std::string line;
    if (in && std::getline(in, line) && !line.empty()) {
      p->address_ = line;
      p->port_ = std::stoi(line.substr(line.rfind(':') + 1));
      auto client = Client::Connect({line}, client_options);
      if (!client.ok()) {
        ADD_FAILURE() << "relaykvd wrote an address the client refuses: " << client.status();
        return nullptr;
      }
      p->client_ = std::move(*client);
      return p;
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      p->pid_ = -1;
      ADD_FAILURE() << "relaykvd exited during startup: "
                    << (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                          : "signal " + std::to_string(WTERMSIG(status)));
      DumpLogOnFailure(log);
      return nullptr;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "relaykvd did not start within 30 s";
  return nullptr;
}

Relaykvd::~Relaykvd() {
  if (pid_ > 0) Kill();
  DumpLogOnFailure(data_dir_.string() + ".log");
}

std::string Relaykvd::Log() const { return Slurp(data_dir_.string() + ".log"); }

void Relaykvd::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void Relaykvd::Signal(int signo) {
  if (pid_ > 0) ::kill(pid_, signo);
}

void Relaykvd::Pause() {
  StopAndWaitStopped(pid_);
}

void Relaykvd::Resume() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

int Relaykvd::Terminate() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int status = 0;
  if (!WaitForExit(pid_, std::chrono::seconds(60), &status)) {
    ADD_FAILURE() << "relaykvd on " << address_ << " did not exit within 60 s of SIGTERM";
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::map<std::string, std::string> Relaykvd::Status(const std::string& like) {
  auto rows = client_->ShowStatus(like);
  EXPECT_TRUE(rows.ok()) << "SHOW STATUS on " << address_ << ": " << rows.status();
  return rows.ok() ? *rows : std::map<std::string, std::string>();
}

std::map<std::string, std::string> Relaykvd::ReplicaStatus() {
  auto fields = client_->ShowReplicaStatus();
  EXPECT_TRUE(fields.ok()) << "SHOW SLAVE STATUS on " << address_ << ": " << fields.status();
  return fields.ok() ? *fields : std::map<std::string, std::string>();
}

Gtid Relaykvd::BinlogGtid() {
  auto reply = client_->ShowMasterStatus();
  EXPECT_TRUE(reply.ok()) << "SHOW MASTER STATUS on " << address_ << ": " << reply.status();
  return reply.ok() ? reply->executed : Gtid();
}

bool SameChecksum(Relaykvd& a, Relaykvd& b) {
  auto x = a.Checksum();
  auto y = b.Checksum();
  return x.ok() && y.ok() && *x == *y;
}

bool WaitForReplayedTail(Relaykvd& primary) {
  return WaitFor([&] {
    auto status = primary.Status();
    return !status["Applied_gtid"].empty() && status["Applied_gtid"] == status["Binlog_gtid"];
  });
}

std::unique_ptr<Relaykvd> StartReplica(const fs::path& dir, Relaykvd& primary, ReplicaOptions options) {
  std::vector<std::string> flags = {"--server-id=" + std::to_string(options.server_id),
                                    "--replicate-from=" + primary.address()};
  if (options.semi_sync) flags.push_back("--rpl_semi_sync_slave_enabled=ON");
  flags.insert(flags.end(), options.flags.begin(), options.flags.end());
  auto r = Relaykvd::Start(dir, flags, 0, options.client);
  if (r == nullptr || !options.semi_sync) return r;
  const bool counted = WaitFor([&] {
    return primary.Status()["Rpl_semi_sync_master_clients"] == std::to_string(options.clients);
  });
  EXPECT_TRUE(counted) << "the primary never counted semi-sync replica server_id " << options.server_id;
  return counted ? std::move(r) : nullptr;
}

WriteLoad::WriteLoad(Relaykvd* server, std::atomic<int>* counter, const std::string& tag,
                     Acked* acked, Options options) {
  const int first = counter->load();
  for (int t = 0; t < options.threads; ++t) {
    writers_.emplace_back([=, this] {
      std::string last_key;  // this thread's last acknowledged Put, for a delete
      while (!stop_) {
        const int i = (*counter)++;
        if (options.total > 0 && i - first >= options.total) break;
        const std::string key = "k" + std::to_string(i);
        std::string value = "v" + std::to_string(i) + "-" + tag;
        if (value.size() < options.value_bytes) value.resize(options.value_bytes, 'x');
        std::vector<Mutation> write;
        if (options.mixed && i % 10 == 0 && !last_key.empty()) {
          write.push_back(Mutation::Delete(last_key));
        } else if (options.mixed && i % 10 == 1) {
          for (int j = 0; j < 3; ++j) write.push_back(Mutation::Put(key + "/" + std::to_string(j), value));
        } else {
          write.push_back(Mutation::Put(key, value));
        }
        auto g = server->Write(write);
        if (!g.ok()) {
          // The server is gone or going (the test killed or stopped it);
          // kept for the test to tell that from a refusal it did not expect.
          Record(g.status());
          break;
        }
        std::lock_guard l(mu_);
        for (const Mutation& m : write) {
          if (m.op == Mutation::Op::kDelete) {
            acked->values.erase(m.key);
            acked->deleted.insert(m.key);
            last_key.clear();
          } else {
            acked->values[m.key] = m.value;
            last_key = m.key;
          }
        }
        acked->max_seq = std::max<uint64_t>(acked->max_seq, g->seq);
      }
    });
  }
}

void WriteLoad::Record(const absl::Status& error) {
  std::lock_guard l(mu_);
  if (first_error_.ok()) first_error_ = error;
}

void WriteLoad::Wait() {
  for (auto& w : writers_) {
    if (w.joinable()) w.join();
  }
}

void WriteLoad::Stop() {
  stop_ = true;
  Wait();
}

void RunMixedLoad(Relaykvd& primary, int total, const std::string& tag) {
  std::atomic<int> counter{0};
  WriteLoad::Acked acked;
  WriteLoad load(&primary, &counter, tag, &acked, {.total = total, .mixed = true});
  load.Wait();
  EXPECT_TRUE(load.first_error().ok()) << "a write of the load failed: " << load.first_error();
}

absl::Status WriteLoad::first_error() {
  std::lock_guard l(mu_);
  return first_error_;
}

StartupRefusal StartExpectingRefusal(const fs::path& data_dir, std::vector<std::string> flags,
                                     std::chrono::seconds hang_guard) {
  const std::string binary = BinDir() + "/relaykvd";
  std::vector<std::string> args = {binary, "--data-dir", data_dir.string(), "--listen",
                                   "127.0.0.1:0"};
  args.insert(args.end(), flags.begin(), flags.end());
  const fs::path addr = data_dir / "relaykvd.addr";
  const std::string log = data_dir.string() + ".refusal.log";
  StartupRefusal out;
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::error_code ec;
    fs::remove(addr, ec);
    const pid_t pid = Spawn(args, "", "", log, /*append_err=*/false);
    int status = 0;
    const bool done = WaitForExit(pid, hang_guard, &status, [&] { return fs::exists(addr); });
    if (!done) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    out.log = Slurp(log);
    out.exited = done;
    out.exit_status = done && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (!(out.exited && out.exit_status == 127)) break;
    std::this_thread::sleep_for(std::chrono::seconds(2));  // a relink in progress
  }
  return out;
}

CliRun RunCli(const std::vector<std::string>& args, const std::string& stdin_text,
              std::chrono::seconds hang_guard) {
  return RunBinary("relaykv", args, stdin_text, hang_guard);
}

CliRun RunBinary(const std::string& name, const std::vector<std::string>& args,
                 const std::string& stdin_text, std::chrono::seconds hang_guard,
                 const std::vector<std::string>& env) {
  const TempDir dir;
  const fs::path in = dir.path() / "stdin", out = dir.path() / "stdout", err = dir.path() / "stderr";
  std::ofstream(in) << stdin_text;
  std::vector<std::string> argv = {BinDir() + "/" + name};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = Spawn(argv, in, out, err, /*append_err=*/false, env);
  int status = 0;
  CliRun r;
  if (!WaitForExit(pid, hang_guard, &status)) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    ADD_FAILURE() << name << " " << ::testing::PrintToString(args) << " did not finish within "
                  << hang_guard.count() << " s";
  } else if (WIFEXITED(status)) {
    r.status = WEXITSTATUS(status);
  }
  r.out = Slurp(out);
  r.err = Slurp(err);
  return r;
}

}  // namespace relaykv::testing
