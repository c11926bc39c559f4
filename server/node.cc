#include "server/node.h"

#include <sys/file.h>

#include <condition_variable>
#include <mutex>
#include <system_error>

#include <grpcpp/grpcpp.h>

#include "server/kv_service.h"
#include "server/limits.h"
#include "spdlog/spdlog.h"
#include "storage/applier.h"
#include "storage/binlog.h"
#include "storage/file.h"
#include "storage/state_machine.h"

namespace relaykv {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// How long Close() lets in-flight commits finish before cancelling them.
constexpr auto kCloseGrace = std::chrono::seconds(10);

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Holds an exclusive flock on <data_dir>/relaykvd.lock while alive, so two
// nodes (in one process or two) never open the same data dir.
absl::StatusOr<File> LockDataDir(const fs::path& data_dir) {
  const fs::path path = data_dir / "relaykvd.lock";
  auto file = File::Open(path, O_RDWR | O_CREAT);
  if (!file.ok()) return file.status();
  if (::flock(file->fd(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return absl::FailedPreconditionError("data dir " + data_dir.string() +
                                           " is in use by another relaykv node (" + path.string() +
                                           " is locked)");
    }
    return ErrnoError("cannot lock", path, errno);
  }
  return file;
}

}  // namespace

class Node::Impl {
 public:
  explicit Impl(NodeOptions options) : options_(std::move(options)) {}
  ~Impl() { Close(); }

  absl::Status Open(Node* node);
  absl::StatusOr<Gtid> Commit(std::vector<v1::Mutation> mutations, Deadline deadline);
  absl::StatusOr<std::optional<std::string>> Get(const std::string& key);
  void Close();

  const NodeOptions options_;
  File lock_;
  std::unique_ptr<Binlog> binlog_;
  std::unique_ptr<StateMachine> state_;
  std::unique_ptr<Applier> applier_;
  std::unique_ptr<KvService> kv_service_;
  std::unique_ptr<grpc::Server> server_;
  int bound_port_ = 0;

  // Calls inside the node; Close() waits for them before tearing down.
  std::mutex mu_;
  std::condition_variable idle_cv_;
  int in_flight_ = 0;    // GUARDED_BY(mu_)
  bool closing_ = false; // GUARDED_BY(mu_)

  // Counts the call in, or refuses it once the node is closing.
  absl::Status Enter() {
    std::lock_guard l(mu_);
    if (closing_) return absl::UnavailableError("relaykv node is shutting down");
    ++in_flight_;
    return absl::OkStatus();
  }
  void Leave() {
    std::lock_guard l(mu_);
    if (--in_flight_ == 0) idle_cv_.notify_all();
  }
};

absl::Status Node::Impl::Open(Node* node) {
  std::error_code ec;
  fs::create_directories(options_.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError("cannot create data dir " + options_.data_dir.string() +
                                         ": " + ec.message());
  }
  auto lock = LockDataDir(options_.data_dir);
  if (!lock.ok()) return lock.status();
  lock_ = *std::move(lock);

  BinlogOptions bo;
  bo.dir = options_.data_dir / "binlog";
  bo.sync_binlog = options_.sync_binlog;
  bo.max_binlog_size = options_.max_binlog_size;
  auto binlog = Binlog::Open(bo);
  if (!binlog.ok()) return binlog.status();
  binlog_ = *std::move(binlog);

  auto state = StateMachine::Open(options_.data_dir / "db");
  if (!state.ok()) return state.status();
  state_ = *std::move(state);

  // Replay: RocksDB runs without its WAL, so it may be behind the binlog.
  const Gtid applied = state_->Applied();
  const Gtid last = binlog_->LastVisible();
  if (applied.seq > last.seq) {
    return absl::DataLossError("state machine in " + options_.data_dir.string() +
                               " is at " + applied.ToString() + " but the binlog ends at " +
                               last.ToString() + ": binlog events are missing");
  }
  applier_ = std::make_unique<Applier>(binlog_.get(), state_.get());
  if (auto s = applier_->Start(); !s.ok()) return s;
  applier_->Release(last.seq);
  if (auto s = applier_->WaitApplied(last.seq, Clock::time_point::max()); !s.ok()) return s;
  if (last.seq > applied.seq) {
    spdlog::info("recovery: replayed binlog {}..{} into the state machine", applied.seq + 1,
                 last.seq);
  }

  if (!options_.listen_address.empty()) {
    kv_service_ = std::make_unique<KvService>(node);
    grpc::ServerBuilder builder;
    // One listening socket only (see BUILDING.md, port 0 gotcha).
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.AddListeningPort(options_.listen_address, grpc::InsecureServerCredentials(),
                             &bound_port_);
    builder.SetMaxReceiveMessageSize(kMaxGrpcMessageBytes);
    builder.SetMaxSendMessageSize(kMaxGrpcMessageBytes);
    builder.RegisterService(kv_service_.get());
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || bound_port_ == 0) {
      return absl::UnavailableError("cannot listen on " + options_.listen_address +
                                    " (address in use or invalid?)");
    }
  }
  spdlog::info("relaykv node {} open: data dir {}, binlog at {}, listening on {}",
               options_.server_id, options_.data_dir.string(), last.ToString(),
               server_ ? std::to_string(bound_port_) : std::string("(none)"));
  return absl::OkStatus();
}

absl::StatusOr<Gtid> Node::Impl::Commit(std::vector<v1::Mutation> mutations, Deadline deadline) {
  if (auto s = ValidateMutations(mutations); !s.ok()) return s;
  if (auto s = Enter(); !s.ok()) return s;
  v1::Event event;
  event.set_timestamp_us(NowMicros());
  event.set_server_id(options_.server_id);
  for (auto& m : mutations) *event.add_mutations() = std::move(m);

  absl::StatusOr<Gtid> result;
  if (auto s = binlog_->Commit(&event); !s.ok()) {
    result = s;
  } else {
    // Durable (per sync_binlog): may become visible now.
    const Gtid gtid = GtidFromProto(event.gtid());
    applier_->Release(gtid.seq);
    if (auto s = applier_->WaitApplied(gtid.seq, deadline); !s.ok()) {
      result = s;
    } else {
      result = gtid;
    }
  }
  Leave();
  return result;
}

absl::StatusOr<std::optional<std::string>> Node::Impl::Get(const std::string& key) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  if (auto s = Enter(); !s.ok()) return s;
  auto value = state_->Get(key);
  Leave();
  return value;
}

void Node::Impl::Close() {
  {
    std::unique_lock l(mu_);
    if (closing_) return;
    closing_ = true;
    // Let in-flight commits finish normally...
    idle_cv_.wait_until(l, Clock::now() + kCloseGrace, [&] { return in_flight_ == 0; });
  }
  // ...then cancel whatever still waits, so nothing below blocks forever.
  if (applier_) applier_->Stop();
  if (binlog_) binlog_->Close();
  {
    std::unique_lock l(mu_);
    idle_cv_.wait(l, [&] { return in_flight_ == 0; });
  }
  if (server_) server_->Shutdown();  // handlers now return at once
  server_.reset();
  kv_service_.reset();
  applier_.reset();
  if (state_) {
    if (auto s = state_->Flush(); !s.ok()) spdlog::warn("close: {}", s.ToString());
  }
  state_.reset();
  binlog_.reset();
  lock_.Close();
  spdlog::info("relaykv node {} closed", options_.server_id);
}

absl::StatusOr<std::unique_ptr<Node>> Node::Open(const NodeOptions& options) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("data dir is not set");
  if (options.sync_binlog > 1000000) {
    return absl::InvalidArgumentError("sync_binlog must be 0..1000000");
  }
  if (options.max_binlog_size < 4096 || options.max_binlog_size > (1ull << 40)) {
    return absl::InvalidArgumentError("max_binlog_size must be 4096..1099511627776 bytes");
  }
  std::unique_ptr<Node> node(new Node(std::make_unique<Impl>(options)));
  if (auto s = node->impl_->Open(node.get()); !s.ok()) return s;
  return node;
}

Node::Node(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Node::~Node() { Close(); }

absl::StatusOr<Gtid> Node::Put(std::string key, std::string value, Deadline deadline) {
  std::vector<v1::Mutation> m(1);
  m[0].set_op(v1::Mutation::PUT);
  m[0].set_key(std::move(key));
  m[0].set_value(std::move(value));
  return impl_->Commit(std::move(m), deadline);
}

absl::StatusOr<Gtid> Node::Delete(std::string key, Deadline deadline) {
  std::vector<v1::Mutation> m(1);
  m[0].set_op(v1::Mutation::DELETE);
  m[0].set_key(std::move(key));
  return impl_->Commit(std::move(m), deadline);
}

absl::StatusOr<Gtid> Node::Write(std::vector<v1::Mutation> mutations, Deadline deadline) {
  return impl_->Commit(std::move(mutations), deadline);
}

absl::StatusOr<std::optional<std::string>> Node::Get(const std::string& key) {
  return impl_->Get(key);
}

Gtid Node::applied_gtid() const {
  if (!impl_->Enter().ok()) return Gtid{};
  Gtid g = impl_->state_->Applied();
  impl_->Leave();
  return g;
}
Gtid Node::binlog_gtid() const {
  if (!impl_->Enter().ok()) return Gtid{};
  Gtid g = impl_->binlog_->LastVisible();
  impl_->Leave();
  return g;
}
int Node::bound_port() const { return impl_->bound_port_; }
const NodeOptions& Node::options() const { return impl_->options_; }
void Node::Close() { impl_->Close(); }

}  // namespace relaykv
