#include "tests/integration/process.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <thread>

#include "gtest/gtest.h"

namespace relaykv::testing {
namespace fs = std::filesystem;
namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  return s.ok() ? absl::OkStatus()
                : absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
}

// Printed when the test fails, so a crash or refusal shows its log.
class LogOnFailure {
 public:
  static void Dump(const fs::path& log) {
    if (!::testing::Test::HasFailure()) return;
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    if (text.size() > 8000) text = "..." + text.substr(text.size() - 8000);
    std::fprintf(stderr, "---- %s ----\n%s\n", log.c_str(), text.c_str());
  }
};

}  // namespace

std::string BinDir() {
  const char* dir = std::getenv("RELAYKV_BIN_DIR");
  if (dir != nullptr) return dir;
  return (fs::canonical("/proc/self/exe").parent_path().parent_path() / "bin").string();
}

std::unique_ptr<Relaykvd> Relaykvd::Start(const fs::path& data_dir, std::vector<std::string> flags,
                                          int port) {
  std::unique_ptr<Relaykvd> p(new Relaykvd());
  p->data_dir_ = data_dir;
  fs::create_directories(data_dir);
  const fs::path addr = data_dir / "relaykvd.addr";
  fs::remove(addr);
  const std::string binary = BinDir() + "/relaykvd";
  std::vector<std::string> args = {binary, "--data-dir", data_dir.string(), "--listen",
                                   "127.0.0.1:" + std::to_string(port)};
  args.insert(args.end(), flags.begin(), flags.end());
  const std::string log = data_dir.string() + ".log";
  // Built before fork(): the child of a threaded process may only make
  // system calls until execv.
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // no orphaned relaykvd if the test dies
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) ::dup2(fd, 2);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  p->pid_ = pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(addr);
    std::string line;
    if (in && std::getline(in, line) && !line.empty()) {
      p->address_ = line;
      p->port_ = std::stoi(line.substr(line.rfind(':') + 1));
      grpc::ChannelArguments ca;
      ca.SetMaxReceiveMessageSize(48 << 20);
      ca.SetMaxSendMessageSize(48 << 20);
      auto channel = grpc::CreateCustomChannel(line, grpc::InsecureChannelCredentials(), ca);
      p->kv_ = v1::Kv::NewStub(channel);
      p->admin_ = v1::Admin::NewStub(channel);
      return p;
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      p->pid_ = -1;
      ADD_FAILURE() << "relaykvd exited during startup: "
                    << (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                          : "signal " + std::to_string(WTERMSIG(status)));
      LogOnFailure::Dump(log);
      return nullptr;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "relaykvd did not start within 30 s";
  return nullptr;
}

Relaykvd::~Relaykvd() {
  if (pid_ > 0) Kill();
  LogOnFailure::Dump(data_dir_.string() + ".log");
}

void Relaykvd::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void Relaykvd::Pause() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void Relaykvd::Resume() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

int Relaykvd::Terminate() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

absl::StatusOr<v1::Gtid> Relaykvd::Put(const std::string& key, const std::string& value) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  v1::WriteReply reply;
  auto s = FromGrpc(kv_->Put(&ctx, req, &reply));
  if (!s.ok()) return s;
  return reply.gtid();
}

absl::StatusOr<v1::Gtid> Relaykvd::Write(const std::vector<v1::Mutation>& mutations) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::WriteRequest req;
  for (const auto& m : mutations) *req.add_mutations() = m;
  v1::WriteReply reply;
  auto s = FromGrpc(kv_->Write(&ctx, req, &reply));
  if (!s.ok()) return s;
  return reply.gtid();
}

absl::StatusOr<v1::Gtid> Relaykvd::Delete(const std::string& key) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::DeleteRequest req;
  req.set_key(key);
  v1::WriteReply reply;
  auto s = FromGrpc(kv_->Delete(&ctx, req, &reply));
  if (!s.ok()) return s;
  return reply.gtid();
}

absl::StatusOr<std::optional<std::string>> Relaykvd::Get(const std::string& key, v1::Gtid* applied) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::GetRequest req;
  req.set_key(key);
  v1::GetReply reply;
  auto s = FromGrpc(kv_->Get(&ctx, req, &reply));
  if (!s.ok()) return s;
  if (applied != nullptr) *applied = reply.applied_gtid();
  if (!reply.found()) return std::nullopt;
  return reply.value();
}

std::map<std::string, std::string> Relaykvd::Status(const std::string& like) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::ShowRequest req;
  req.set_like(like);
  v1::ShowReply reply;
  std::map<std::string, std::string> out;
  // A node that does not answer fails the test here, not in a later check
  // that an empty map might pass.
  const grpc::Status s = admin_->ShowStatus(&ctx, req, &reply);
  EXPECT_TRUE(s.ok()) << "SHOW STATUS on " << address_ << ": " << s.error_message();
  for (const auto& r : reply.rows()) out[r.name()] = r.value();
  return out;
}

std::map<std::string, std::string> Relaykvd::ReplicaStatus() {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::ReplicaStatusReply reply;
  std::map<std::string, std::string> out;
  const grpc::Status s = admin_->ReplicaStatus(&ctx, v1::ReplicaStatusRequest(), &reply);
  EXPECT_TRUE(s.ok()) << "SHOW SLAVE STATUS on " << address_ << ": " << s.error_message();
  for (const auto& r : reply.fields()) out[r.name()] = r.value();
  return out;
}

absl::StatusOr<v1::ChecksumReply> Relaykvd::Checksum() {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::ChecksumReply reply;
  auto s = FromGrpc(admin_->Checksum(&ctx, v1::ChecksumRequest(), &reply));
  if (!s.ok()) return s;
  return reply;
}

absl::Status Relaykvd::ReplicaThreads(v1::ReplicaThreadsRequest::Action action,
                                      v1::ReplicaThreadsRequest::Threads threads) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::ReplicaThreadsRequest req;
  req.set_action(action);
  req.set_threads(threads);
  v1::ReplicaThreadsReply reply;
  return FromGrpc(admin_->ReplicaThreads(&ctx, req, &reply));
}

absl::Status Relaykvd::SetVariable(const std::string& name, const std::string& value) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::SetVariableRequest req;
  req.set_name(name);
  req.set_value(value);
  v1::SetVariableReply reply;
  return FromGrpc(admin_->SetVariable(&ctx, req, &reply));
}

absl::Status Relaykvd::ChangeMaster(const std::string& host, uint32_t port) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::ChangeMasterRequest req;
  req.set_host(host);
  req.set_port(port);
  v1::ChangeMasterReply reply;
  return FromGrpc(admin_->ChangeMaster(&ctx, req, &reply));
}

absl::StatusOr<v1::Gtid> Relaykvd::ResetReplicaAll() {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::ResetReplicaReply reply;
  auto s = FromGrpc(admin_->ResetReplica(&ctx, v1::ResetReplicaRequest(), &reply));
  if (!s.ok()) return s;
  return reply.epoch_start();
}

absl::StatusOr<v1::MasterStatusReply> Relaykvd::MasterStatus() {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::MasterStatusReply reply;
  auto s = FromGrpc(admin_->MasterStatus(&ctx, v1::MasterStatusRequest(), &reply));
  if (!s.ok()) return s;
  return reply;
}

v1::Gtid Relaykvd::BinlogGtid() {
  auto reply = MasterStatus();
  EXPECT_TRUE(reply.ok()) << "SHOW MASTER STATUS on " << address_ << ": " << reply.status();
  return reply.ok() ? reply->executed_gtid() : v1::Gtid();
}

absl::StatusOr<int> Relaykvd::PurgeBinaryLogsTo(const std::string& file) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::PurgeBinaryLogsRequest req;
  req.set_to_file(file);
  v1::PurgeBinaryLogsReply reply;
  auto s = FromGrpc(admin_->PurgeBinaryLogs(&ctx, req, &reply));
  if (!s.ok()) return s;
  return reply.purged();
}

std::unique_ptr<Relaykvd> StartSemiSyncReplica(const fs::path& dir, Relaykvd& primary,
                                               int server_id, int clients) {
  auto r = Relaykvd::Start(dir, {"--server-id=" + std::to_string(server_id),
                                 "--rpl_semi_sync_slave_enabled=ON",
                                 "--replicate-from=" + primary.address()});
  if (r == nullptr) return r;
  const bool counted = WaitFor([&] {
    return primary.Status()["Rpl_semi_sync_master_clients"] == std::to_string(clients);
  });
  EXPECT_TRUE(counted) << "the primary never counted semi-sync replica server_id " << server_id;
  return counted ? std::move(r) : nullptr;
}

WriteLoad::WriteLoad(Relaykvd* server, int threads, std::atomic<int>* counter,
                     const std::string& tag, Acked* acked, size_t value_bytes) {
  for (int t = 0; t < threads; ++t) {
    writers_.emplace_back([=, this] {
      while (!stop_) {
        const int i = (*counter)++;
        const std::string key = "k" + std::to_string(i);
        std::string value = "v" + std::to_string(i) + "-" + tag;
        if (value.size() < value_bytes) value.resize(value_bytes, 'x');
        auto g = server->Put(key, value);
        if (!g.ok()) {
          // The server is gone or going (the test killed or stopped it);
          // kept for the test to tell that from a refusal it did not expect.
          std::lock_guard l(mu_);
          if (first_error_.ok()) first_error_ = g.status();
          break;
        }
        std::lock_guard l(mu_);
        acked->values[key] = value;
        acked->max_seq = std::max<uint64_t>(acked->max_seq, g->seq());
      }
    });
  }
}

void WriteLoad::Stop() {
  stop_ = true;
  for (auto& w : writers_) {
    if (w.joinable()) w.join();
  }
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
    std::vector<char*> argv;  // built before fork(), as in Relaykvd::Start
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) ::dup2(fd, 2);
      ::execv(binary.c_str(), argv.data());
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + hang_guard;
    int status = 0;
    bool done = false;
    while (!done && std::chrono::steady_clock::now() < deadline && !fs::exists(addr)) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        done = true;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    if (!done) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    std::ifstream in(log);
    out.log.assign(std::istreambuf_iterator<char>(in), {});
    out.exited = done;
    out.exit_status = done && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (!(out.exited && out.exit_status == 127)) break;
    std::this_thread::sleep_for(std::chrono::seconds(2));  // a relink in progress
  }
  return out;
}

}  // namespace relaykv::testing
