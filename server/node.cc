#include "relaykv/node.h"

#include <sys/file.h>

#include <semaphore>
#include <set>
#include <tuple>
#include <type_traits>
#include <system_error>

#include <grpcpp/ext/proto_server_reflection_plugin.h>

#include "absl/cleanup/cleanup.h"
#include "server/admin_service.h"
#include "server/grpc_server_limits.h"
#include "server/clone_service.h"
#include "server/reply_guards.h"
#include "server/health_service.h"
#include "server/http_server.h"
#include "server/kv_service.h"
#include "server/limits.h"
#include "server/logging.h"
#include "server/master_info.h"
#include "server/node_impl.h"
#include "server/replication_service.h"
#include "server/test_pause.h"
#include "server/tls.h"
#include "server/watch_service.h"
#include "spdlog/spdlog.h"
#include "storage/binlog_reader.h"
#include "storage/thread_name.h"

namespace relaykv {

// Defaults of a node started with --etcd (README "Automatic failover").
const Settings kCoordinatedDefaults = {{"rpl_semi_sync_master_enabled", "ON"},
                                       {"rpl_semi_sync_slave_enabled", "ON"},
                                       {"rpl_semi_sync_master_timeout", "600000"}};
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// How long Close() lets in-flight commits finish before cancelling them.
constexpr auto kCloseGrace = std::chrono::seconds(10);
constexpr auto kHousekeepingPeriod = std::chrono::seconds(10);
// How often a primary whose state machine failed tries to apply again.
constexpr auto kApplierRetryPeriod = std::chrono::seconds(1);
// The watch feed's window (server/watch_feed.h): a few seconds of changes
// at a high write rate, so watchers a little behind the head share it too
// (each event counts twice: its binlog payload and its Watch encoding).
constexpr size_t kWatchFeedBytes = 16 << 20;

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

Node::Impl::Impl(NodeOptions options) : options_(std::move(options)) {}
Node::Impl::~Impl() { Close(); }

absl::Status Node::Impl::Enter() {
  std::lock_guard l(mu_);
  if (closing_) return absl::UnavailableError("relaykv node is shut down or shutting down");
  ++in_flight_;
  return absl::OkStatus();
}

void Node::Impl::Leave() {
  std::lock_guard l(mu_);
  // Only Close() waits for in_flight_.
  if (--in_flight_ == 0 && closing_) cv_.notify_all();
}

std::string Node::Impl::OwnAddress() const {
  if (options_.listen_address.empty() || bound_port_ == 0) return "";
  return options_.listen_address.substr(0, options_.listen_address.rfind(':')) + ":" +
         std::to_string(bound_port_);
}

std::string Node::Impl::primary_address() const {
  std::lock_guard l(mu_);
  return primary_;
}

std::optional<std::string> Node::Impl::IoStoppedOnError() const {
  std::lock_guard l(mu_);
  if (io_ == nullptr || !io_->stopped_on_error()) return std::nullopt;
  return io_->status().last_error;
}

bool Node::Impl::RestartIoStoppedOnError() {
  std::lock_guard l(mu_);
  if (io_ == nullptr || closing_ || promoting_) return false;
  if (!io_->StartIfStoppedOnError()) return false;
  spdlog::info("START SLAVE IO_THREAD (after it stopped by itself): relay log at {}",
               binlog_->LastVisible().ToString());
  return true;
}

void Node::Impl::MakeReplicaIo(const MasterInfo& primary) {
  const std::string& address = primary.address;
  ReplicaIoConfig c;
  c.primary_address = address;
  c.tls = primary.tls;
  // Receives what the primary sends: events up to the per-request limits,
  // whatever this node's own max_allowed_packet.
  c.channel.max_message_bytes = kMaxGrpcMessageBytes;
  c.channel.keepalive_time = std::chrono::milliseconds(vars_.GetUint("keepalive_time_ms"));
  c.channel.keepalive_timeout = std::chrono::milliseconds(vars_.GetUint("keepalive_timeout_ms"));
  c.channel.keepalive_without_calls = true;
  c.server_id = static_cast<uint32_t>(vars_.GetUint("server_id"));
  c.own_address = OwnAddress();
  c.sync_relay_log = [this] { return vars_.GetUint("sync_relay_log") != 0; };
  c.semi_sync = [this] { return vars_.GetBool("rpl_semi_sync_slave_enabled"); };
  c.promise = promise_.get();
  c.acked_unsynced = acked_unsynced_.get();
  io_ = std::make_unique<ReplicaIo>(binlog_.get(), applier_.get(), std::move(c));
  // A held tail is ended before the role changes, so that no ACK or
  // timeout resolves it in between (review s33d D1, D2; s34 F1); its
  // callback only returns. (One already being resolved, its callback past
  // the role check, is still applied: decided while this node was primary,
  // as an ACK's release of commits is.)
  if (held_tail_hold_ != 0) semisync_->EndHold(std::exchange(held_tail_hold_, 0));
  hold_replayed_tail_.store(false);  // one RESET SLAVE ALL has not armed yet: never armed
  held_tail_end_.store(0);
  primary_ = address;
  acting_primary_.store(false);
  metrics_.set_replica_role(true);
}

absl::Status Node::Impl::Open(Node* node) {
  // Created 0700: binlog and settings are for relaykvd's user only.
  if (auto s = CreatePrivateDirectory(options_.data_dir); !s.ok()) {
    return absl::FailedPreconditionError("cannot create data dir " + options_.data_dir.string() +
                                         ": " + std::string(s.message()));
  }
  auto lock = LockDataDir(options_.data_dir);
  if (!lock.ok()) return lock.status();
  lock_ = *std::move(lock);

  // Clone first: it fills the empty data dir (db, binlog starting after
  // the clone's GTID, master.info naming the source) and the open below
  // takes it from there like any replica's.
  if (!options_.clone_from.empty()) {
    CloneRequest request{options_.clone_from, options_.replicate_tls, options_.data_dir};
    auto cloned = CloneInto(request);
    if (!cloned.ok()) return cloned.status();
    clone_result_ = *cloned;
    if (!cloned->already_cloned) {
      spdlog::info("clone: done from {} at GTID {}: {} files, {} bytes received in {:.1f} s "
                   "({:.1f} MB/s), {} chunks refused, {} reconnects; replicating from {}{}",
                   cloned->source, cloned->gtid.ToString(), cloned->files, cloned->bytes,
                   cloned->seconds,
                   cloned->seconds > 0 ? cloned->bytes / 1e6 / cloned->seconds : 0.0,
                   cloned->chunks_refused, cloned->reconnects, cloned->source,
                   cloned->source_primary.empty()
                       ? std::string()
                       : " (a replica of " + cloned->source_primary + ")");
    }
  } else if (std::error_code ec; fs::exists(options_.data_dir / kCloneStagingDir, ec) || ec) {
    // Opened as it is, the half-cloned dir would be an empty primary
    // taking writes beside the source's history.
    return absl::FailedPreconditionError(
        "data dir " + options_.data_dir.string() + " holds an interrupted clone (" +
        kCloneStagingDir + "/" + (ec ? ": " + ec.message() : "") +
        "); start with the same --clone-from to finish it, or remove the data dir");
  }

  // Variables: defaults < config file and command line < SET PERSIST.
  if (!options_.etcd_endpoints.empty()) {
    // Automatic failover favours safety by default (issue 16 item 3): an
    // async cluster has no automatic failover, and MySQL's 10 s timeout
    // turns one slow replica into an async epoch.
    if (auto s = vars_.Apply(kCoordinatedDefaults); !s.ok()) return s;
  }
  if (auto s = vars_.Apply(options_.variables); !s.ok()) return s;
  persisted_ = std::make_unique<PersistedSettings>(options_.data_dir / "relaykvd-auto.cnf");
  auto persisted = persisted_->Load();
  if (!persisted.ok()) return persisted.status();
  if (auto s = vars_.Apply(*persisted); !s.ok()) {
    return absl::InvalidArgumentError("relaykvd-auto.cnf: " + std::string(s.message()));
  }

  BinlogOptions bo;
  bo.dir = options_.data_dir / "binlog";
  bo.sync_binlog = static_cast<uint32_t>(vars_.GetUint("sync_binlog"));
  bo.max_binlog_size = vars_.GetUint("max_binlog_size");
  bo.observer = &metrics_;
  auto binlog = Binlog::Open(bo);
  if (!binlog.ok()) return binlog.status();
  binlog_ = *std::move(binlog);
  auto promise = EpochPromise::Open(options_.data_dir);
  if (!promise.ok()) return promise.status();
  promise_ = *std::move(promise);
  auto acked_unsynced = AckedUnsyncedMarker::Open(options_.data_dir);
  if (!acked_unsynced.ok()) return acked_unsynced.status();
  acked_unsynced_ = *std::move(acked_unsynced);
  semisync_ = std::make_unique<SemiSyncMaster>(
      [this] { return binlog_->LastVisible(); },
      // What enough replicas hold may become visible (AFTER_SYNC), even if
      // the commit that waited for it has gone (deadline). Applied here, on
      // the ACK's thread, before the commits it releases wake up: each of
      // them then wakes once instead of twice (ACK, then applied).
      //
      // Only on the acting primary, and one not revoked: every node serves
      // Subscribe, so a replica with semi-sync replicas of its own (or an
      // old primary now following another) gets ACKs too, and what they
      // hold is no quorum of the real primary's — its applier and its
      // replicas' visibility follow its own primary alone (review s31).
      [this](uint64_t seq) {
        if (!acting_primary_.load() || revoked_.load()) return;
        AdvanceReplicaVisible(seq);
        if (applier_) applier_->ReleaseAndApply(seq);
      });
  ConfigureSemiSync();
  vars_.set_on_change([this](const std::string& name, const std::string&) {
    // Versioned (it may run commits' callbacks, so no lock is held).
    if (name.rfind("rpl_semi_sync_master_", 0) == 0) return ConfigureSemiSync();
    // The others re-read their value under one lock, so that of two
    // concurrent SETs the later stored is the one applied, whichever hook
    // runs last (review s49d M1). None of them runs a commit's callback.
    std::lock_guard l(apply_vars_mu_);
    if (name == "sync_binlog") binlog_->set_sync_binlog(static_cast<uint32_t>(vars_.GetUint(name)));
    if (name == "max_binlog_size") binlog_->set_max_binlog_size(vars_.GetUint(name));
    // Process-wide (spdlog's default logger), as the variable's row says.
    if (name == "log_level") SetLogLevel(vars_.Get(name)).IgnoreError();  // the table validated it
    caps_.Load(vars_, name);
    if (name == "max_connections" || name == "max_watchers") {
      SizeHandlerThreads(vars_, &handler_threads_);
    }
  });
  caps_.Load(vars_);

  auto state = StateMachine::Open(options_.data_dir / "db");
  if (!state.ok()) return state.status();
  state_ = *std::move(state);
  pending_keys_ = std::make_unique<PendingKeys>(state_.get());

  // Automatic failover: a tail the cluster proved never acknowledged is
  // cut now, while nothing else has the binlog (Binlog::TruncateAfter).
  const bool coordinated = !options_.etcd_endpoints.empty();
  if (coordinated) {
    if (auto s = OpenCoordinator(node, bo); !s.ok()) return s;
  }
  // A flush must never make the state machine durable past the durable
  // binlog (sync_binlog or sync_relay_log other than 1), or a power cut
  // leaves it past the binlog's end and the node cannot start (review s31
  // F5). Set once binlog_ is the one this run keeps (OpenCoordinator may
  // reopen it); state_ goes before binlog_ at close.
  state_->SetBeforeFlush([this] { return binlog_->SyncWritten(); });

  // Replay: RocksDB runs without its WAL, so it may be behind the binlog.
  const Gtid applied = state_->Applied();
  const Gtid last = binlog_->LastVisible();
  if (applied.seq > last.seq) {
    return absl::DataLossError("state machine in " + options_.data_dir.string() + " is at " +
                               applied.ToString() + " but the binlog ends at " + last.ToString() +
                               ": binlog events are missing");
  }
  // The same seq in another epoch is another history (a binlog or a state
  // machine copied in from elsewhere): replaying on top of it would mix
  // the two without a word.
  auto at_applied = ReadEventAt(*binlog_, applied.seq);  // nullopt: purged, or seq 0
  if (!at_applied.ok()) return at_applied.status();
  if (at_applied->has_value() && (*at_applied)->gtid().epoch() != applied.epoch) {
    return absl::DataLossError("state machine in " + options_.data_dir.string() + " is at " +
                               applied.ToString() + " but the binlog's event at seq " +
                               std::to_string(applied.seq) + " is " +
                               GtidFromProto((*at_applied)->gtid()).ToString() +
                               ": they hold different histories");
  }
  applier_ = std::make_unique<Applier>(binlog_.get(), state_.get());
  watch_feed_ = std::make_unique<WatchFeed>(binlog_.get(), kWatchFeedBytes);
  if (auto s = applier_->Start(); !s.ok()) return s;
  // What replicas may show: what this node had applied. The replay below
  // makes the rest visible here (as MySQL does), but whether it reached a
  // quorum is unknown: replicas wait for their ACKs (or a timeout's async
  // commit) to say so (see "Visibility on replicas").
  replica_visible_.store(applied.seq);

  // Replica role: --replicate-from (saved) or an earlier CHANGE MASTER.
  MasterInfo master{options_.clone_from.empty() ? options_.replicate_from : options_.clone_from,
                    options_.replicate_tls};
  if (!master.address.empty()) {
    // A start that names no TLS option keeps the TLS settings saved by an
    // earlier CHANGE MASTER (as CHANGE MASTER keeps the options it does not
    // name): a restart must not quietly drop a replica to plaintext.
    const TlsOptions& tls = options_.replicate_tls;
    if (!tls.enabled && tls.ca.empty() && tls.cert.empty() && tls.key.empty()) {
      auto saved = LoadMasterInfo(options_.data_dir);
      if (!saved.ok()) return saved.status();
      master.tls = saved->tls;
    }
    if (auto s = SaveMasterInfo(options_.data_dir, master); !s.ok()) return s;
  } else {
    auto saved = LoadMasterInfo(options_.data_dir);
    if (!saved.ok()) return saved.status();
    master = *saved;
  }
  const std::string primary = master.address;
  // A revoked primary (its epoch below the promise): another node may have
  // been elected without its tail. A coordinated primary's role is not
  // known until etcd was read: it keeps its tail back the same way.
  const bool revoked_at_open =
      primary.empty() && (binlog_->epoch() < promise_->value() || coordinated);
  held_.store(coordinated);
  // Replay: a primary applies its whole binlog. A replica applies only what
  // its primary says is visible (its first message tells): what its relay
  // log holds beyond may not have reached a quorum. Nor does a revoked
  // primary: its tail past what it had applied may never have been
  // acknowledged, and the new primary may not have it (it is kept, for a
  // rejoin's truncation or CHANGE MASTER's history check, not applied).
  if (revoked_at_open && last.seq > applied.seq) {
    spdlog::warn("recovery: this primary's {}: its binlog tail {}..{} is not applied (it may "
                 "never have been acknowledged)",
                 coordinated ? std::string("role is not known until etcd is read")
                             : "epoch " + std::to_string(binlog_->epoch()) +
                                   " is revoked (promised epoch " +
                                   std::to_string(promise_->value()) + ")",
                 applied.seq + 1, last.seq);
  }
  // Under AFTER_SYNC semi-sync a write is visible only once a replica holds
  // it (invariant 2), and after a crash nothing says which of the tail past
  // what the state machine had applied any replica holds: it is held back
  // as if its commits still waited — applied once replicas ACK it or
  // semi-sync times out and goes async (review s31 F4; MySQL serves it at
  // once).
  hold_replayed_tail_ =
      primary.empty() && !revoked_at_open && MustHoldReplayedTail(applied.seq, last.seq);
  if (hold_replayed_tail_) {
    spdlog::warn("recovery: binlog tail {}..{} is applied once a replica ACKs it or semi-sync "
                 "times out (after a crash nothing says a replica holds it)",
                 applied.seq + 1, last.seq);
  } else if (primary.empty() && !revoked_at_open) {
    ShowAsPrimary(last.seq);
    if (auto s = applier_->WaitApplied(last.seq, Clock::time_point::max()); !s.ok()) return s;
    if (last.seq > applied.seq) {
      spdlog::info("recovery: replayed binlog {}..{} into the state machine", applied.seq + 1,
                   last.seq);
    }
  }
  {
    // Known before the services start: a write arriving then is refused
    // (CommitAsync reads primary_), never stamped with our primary's epoch
    // at a seq the primary gives another event.
    std::lock_guard l(mu_);
    primary_ = primary;
    acting_primary_.store(primary.empty());
    metrics_.set_replica_role(!primary.empty());
  }
  // Before anything can write: the last run may have shipped events that
  // are gone from here (binlog.unsynced). Writing on in the same epoch
  // would give other events their GTIDs; a replica holding them would then
  // pass the history check. A new epoch makes it fail, naming both GTIDs.
  // A replica's relay log tail comes from its primary again if it was lost:
  // nothing to fence, but the marker must not outlive it (recovery would go
  // on cutting synced data at its first damage).
  // (A coordinated node keeps the marker until it follows or opens an
  // epoch: until then it is what tells an election its binlog may be short.)
  if (!primary.empty() && !coordinated) {
    if (auto s = binlog_->ForgetUnsyncedTail(); !s.ok()) return s;
  }
  // A revoked primary writes nothing, not even a new epoch: that epoch may
  // be the one it promised to another node. It stays fenced
  // (UpdatePrimaryFence below).
  if (revoked_at_open && binlog_->unsynced_tail_at_open()) {
    spdlog::warn("recovery: the binlog may have lost events replicas hold (unsynced tail), but "
                 "this primary's epoch {} is revoked (promised epoch {}): no new epoch is opened",
                 binlog_->epoch(), promise_->value());
  }
  if (primary.empty() && !revoked_at_open && binlog_->unsynced_tail_at_open()) {
    auto start = OpenOwnEpoch();
    if (!start.ok()) return start.status();
    spdlog::warn("recovery: the last run published events before syncing them (sync_binlog is "
                 "not 1) and did not stop cleanly, so replicas may hold events this binlog lost; "
                 "new writes start epoch {} at {} so that no GTID is reused",
                 start->epoch, start->ToString());
    if (auto s = binlog_->ForgetUnsyncedTail(); !s.ok()) return s;
  }
  HoldReplayedTail();  // the new epoch's marker too, if one was opened above

  UpdatePrimaryFence();

  if (!options_.listen_address.empty()) {
    // Transport and roles first: nothing listens that is not secured as
    // configured.
    const ServerTlsConfig tls{vars_.Get("ssl_ca"), vars_.Get("ssl_cert"), vars_.Get("ssl_key"),
                              vars_.GetBool("require_secure_transport")};
    auto credentials = MakeServerCredentials(tls);
    if (!credentials.ok()) return credentials.status();
    // Off loopback, anyone who can connect is a caller: TLS keeps them
    // from reading or changing the traffic, and only roles keep them from
    // writing, administering, or subscribing as a semi-sync replica whose
    // ACKs would release commits it never stored (invariant 1).
    if ((!tls.enabled() || options_.roles_file.empty()) && !options_.allow_insecure) {
      if (auto s = CheckLoopbackListenAddress(options_.listen_address); !s.ok()) {
        return absl::FailedPreconditionError(
            std::string(!tls.enabled() ? "refusing to serve plaintext gRPC"
                                       : "refusing to serve gRPC without --roles-file") +
            " on a non-loopback address (" + std::string(s.message()) +
            "): set ssl_cert and ssl_key and a --roles-file (README \"Security\"), or pass "
            "--allow-insecure");
      }
    }
    auto auth = Authorizer::Create(options_.roles_file);
    if (!auth.ok()) return auth.status();
    auth_ = *std::move(auth);
    // net_write_timeout, for every send a peer can stall.
    auto send_timeout = [this] { return std::chrono::seconds(caps_.net_write_timeout_s.load()); };
    reply_guards_ = std::make_unique<ReplyGuards>(
        &connections_, send_timeout,
        [this] { return caps_.max_inflight_reply_bytes.load(std::memory_order_relaxed); },
        std::set<std::string>{"/relaykv.v1.Kv/Get", "/relaykv.v1.Kv/Scan",
                              "/relaykv.v1.Replication/ReadIndex"});
    kv_service_ = std::make_unique<KvService>(node);
    replication_service_ =
        std::make_unique<ReplicationService>(binlog_.get(), &registry_, semisync_.get(),
                                             ReplicationService::NodeView{
                                                 [this] {
                                                   return static_cast<uint32_t>(
                                                       vars_.GetUint("server_id"));
                                                 },
                                                 [this](bool replica_semi_sync) {
                                                   return GateReplicaVisibility(replica_semi_sync);
                                                 },
                                                 [this] { return ReplicaVisibleSeq(); },
                                                 [this] { return binlog_->epoch(); },
                                                 [this] { return claim_epoch_.load(); },
                                                 [this]() -> uint32_t {
                                                   if (!acting_primary_.load()) return 0;
                                                   return static_cast<uint32_t>(
                                                       vars_.GetUint("server_id"));
                                                 },
                                                 [node](uint64_t epoch, uint32_t candidate) {
                                                   return node->Revoke(epoch, candidate);
                                                 },
                                                 &connections_,
                                                 [this] { return caps_.max_replicas.load(); },
                                                 [this] {
                                                   return std::chrono::seconds(
                                                       caps_.net_read_timeout_s.load());
                                                 },
                                                 send_timeout,
                                                 [this](const GetOptions& o,
                                                        const ReadIndexChain& chain)
                                                     -> absl::StatusOr<Gtid> {
                                                   CallScope scope(this);
                                                   if (!scope.ok()) return scope.status();
                                                   return ReadIndex(o, chain);
                                                 },
                                                 [this](grpc::ServerContextBase* ctx,
                                                        std::string_view what) {
                                                   return reply_guards_->Acquire(ctx, what);
                                                 }},
                                             auth_.get());
    // Before any append; the service outlives them (Close() drains commits
    // and stops the IO thread before destroying it).
    binlog_->set_group_listener(
        [svc = replication_service_.get()](uint64_t first_seq, const Gtid& last,
                                           std::span<const std::string> payloads) {
          svc->OnGroup(first_seq, last, payloads);
        });
    admin_service_ = std::make_unique<AdminService>(node, auth_.get());
    watch_service_ = std::make_unique<WatchService>(
        node, auth_.get(), reply_guards_.get(), &timers_,
        [this] { return std::chrono::seconds(vars_.GetUint("watch_max_lag_seconds")); },
        send_timeout);
    CloneServiceOptions clone_options;
    clone_options.sessions_dir = options_.data_dir / "clone-source";
    clone_options.server_id = [this] { return static_cast<uint32_t>(vars_.GetUint("server_id")); };
    clone_options.primary = [this] { return primary_address(); };
    clone_options.connections = &connections_;
    clone_options.binlog = binlog_.get();
    clone_options.max_reply_bytes =
        std::min<uint64_t>(vars_.GetUint("max_allowed_packet"), kMaxGrpcMessageBytes);
    clone_options.send_timeout = send_timeout;
    if (const char* v = std::getenv("RELAYKV_CLONE_BREAK_AT_BYTES_FOR_TESTING")) {
      clone_options.break_at_bytes_for_testing = std::strtoull(v, nullptr, 10);
    }
    clone_options.corrupt_first_chunk_for_testing =
        std::getenv("RELAYKV_CLONE_CORRUPT_CHUNK_FOR_TESTING") != nullptr;
    clone_service_ = std::make_unique<CloneService>(state_.get(), auth_.get(), &timers_, clone_options);
    health_service_ = std::make_unique<HealthService>(node);
    // Server reflection (grpc.reflection.v1alpha), so that grpcurl and
    // grpc_cli can list and call the services without the .proto files.
    // Registers a builder plugin: process-wide, idempotent.
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    // One listening socket only (see BUILDING.md, port 0 gotcha).
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.AddListeningPort(options_.listen_address, *credentials, &bound_port_);
    // Message size, keepalive, thread quota (README "Limits").
    ApplyServerLimits(vars_, &handler_threads_, &builder);
    {
      std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
      creators.push_back(reply_guards_->NewFactory());
      builder.experimental().SetInterceptorCreators(std::move(creators));
    }
    builder.RegisterService(kv_service_.get());
    std::unique_ptr<grpc::ServerCompletionQueue> write_queue = builder.AddCompletionQueue();
    builder.RegisterService(replication_service_.get());
    builder.RegisterService(admin_service_.get());
    builder.RegisterService(clone_service_.get());
    builder.RegisterService(health_service_.get());
    builder.RegisterService(watch_service_.get());
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || bound_port_ == 0) {
      return absl::UnavailableError("cannot listen on " + options_.listen_address +
                                    " (address in use or invalid?)");
    }
    kv_service_->Start(std::move(write_queue));
  }

  if (!primary.empty()) {
    std::lock_guard l(mu_);
    MakeReplicaIo(master);
    // A coordinated replica ACKs nothing until etcd says whom to follow.
    if (!coordinated) io_->Start();
  }
  if (coordinated) {
    coordinator_->Start(OwnAddress());
  }
  housekeeping_ = timers_.Every(kApplierRetryPeriod,
                                [this, retention_at = Clock::now() + kHousekeepingPeriod]() mutable {
                                  Housekeeping(&retention_at);
                                });

  spdlog::info("relaykv node {} open as {}: data dir {}, binlog at {}, listening on {}{}{}",
               vars_.Get("server_id"), primary.empty() ? "primary" : "replica of " + primary,
               options_.data_dir.string(), last.ToString(),
               server_ ? std::to_string(bound_port_) : std::string("(none)"),
               server_ && !vars_.Get("ssl_cert").empty()
                   ? (vars_.Get("ssl_ca").empty() ? " (TLS)" : " (TLS, client certificates verified)")
                   : "",
               auth_ && auth_->enabled() ? ", roles from " + options_.roles_file.string() : "");
  return absl::OkStatus();
}

// One commit in flight: what its callbacks share until it is answered.
struct Node::Impl::PendingCommit {
  PendingCommit(Impl* i, WriteOptions o, TxnDone d)
      : impl(i), options(std::move(o)), done(std::move(d)) {}
  // Answers the caller, then counts the call out (Close() waits for that).
  // Measured to here (metrics: lock-free).
  void Finish(absl::StatusOr<Gtid> result) {
    if (!resolve_error.ok()) result = UnresolvedConditionAnswer(resolve_error, result.status());
    // Checked at reply time: once Revoke returned, no commit of this
    // primary is answered OK (async ones included).
    // Held through done(): Revoke waits for an OK answer in progress.
    const bool gated = result.ok() && impl->EnterCommitGate(result->epoch);
    if (result.ok() && !gated) {
      result = absl::UnavailableError(
          "write " + result->ToString() +
          " not acknowledged: this primary's epoch was revoked while it committed; the write is "
          "in its binlog, outcome unknown (it survives only if the new primary has it)");
    }
    if (result.ok()) {
      impl->metrics_.ObserveCommit(wait_point, Clock::now() - start);
    } else {
      impl->metrics_.CountFailedCommit();
    }
    if (result.ok()) {
      done(TxnResult{*result, succeeded, wait_point != NodeMetrics::WaitPoint::kAsync});
    } else {
      done(result.status());
    }
    if (gated) impl->LeaveCommitGate();
    if (committing) impl->committing_.fetch_sub(1);
    impl->Leave();
  }
  Impl* const impl;
  const WriteOptions options;
  const TxnDone done;
  const Clock::time_point start = Clock::now();
  v1::Event event;
  // What decided the answer, set before an OK Finish (see NodeMetrics).
  NodeMetrics::WaitPoint wait_point = NodeMetrics::WaitPoint::kAsync;
  // A conditional write: its compares and else branch until assignment,
  // where Assigned() picks the branch (the event then holds it).
  std::optional<Condition> condition;
  // Assigned() for this commit (a binlog callback).
  Binlog::Assigned on_assigned;
  // Semi-sync's, taken at assignment (Assigned()).
  SemiSyncMaster::Registration registration = SemiSyncMaster::kNotRegistered;
  bool succeeded = true;
  bool committing = false;  // counted in Impl::committing_ until answered
  // Set at assignment if the branch could not be picked: the event went
  // out with no mutations and the caller gets this instead of OK.
  absl::Status resolve_error;
};

void Node::Impl::CommitAsync(std::vector<v1::Mutation> mutations, WriteOptions options,
                             CommitDone done) {
  TxnAsync(std::move(mutations), std::nullopt, std::move(options),
           [done = std::move(done)](absl::StatusOr<TxnResult> r) {
             done(r.ok() ? absl::StatusOr<Gtid>(r->gtid) : r.status());
           });
}

void Node::Impl::TxnAsync(std::vector<v1::Mutation> then_mutations,
                          std::optional<Condition> condition, WriteOptions options,
                          TxnDone done) {
  if (auto s = condition ? ValidateConditional(then_mutations, *condition)
                         : ValidateMutations(then_mutations);
      !s.ok()) {
    return done(s);
  }
  // Admission (max_inflight_writes, max_inflight_write_bytes) before
  // anything else: a refused write never reaches the binlog.
  size_t bytes = 0;
  for (const v1::Mutation& m : then_mutations) bytes += m.key().size() + m.value().size();
  if (condition) {
    for (const v1::Mutation& m : condition->else_mutations) bytes += m.key().size() + m.value().size();
    for (const v1::Compare& c : condition->compares) bytes += c.key().size() + c.value().size();
  }
  const Deadline deadline = options.deadline;
  // The continuation owns what it needs; std::function wants it copyable.
  auto pending = std::make_shared<
      std::tuple<std::vector<v1::Mutation>, std::optional<Condition>, WriteOptions, TxnDone>>(
      std::move(then_mutations), std::move(condition), std::move(options), std::move(done));
  admission_.Admit(bytes, deadline, [this, pending, bytes](absl::Status admitted) {
    auto& [m, c, o, d] = *pending;
    if (!admitted.ok()) return d(admitted);
    CommitAdmitted(std::move(m), std::move(c), std::move(o), std::move(d), bytes);
  });
}

void Node::Impl::CommitAdmitted(std::vector<v1::Mutation> then_mutations,
                                std::optional<Condition> condition, WriteOptions options,
                                TxnDone done, size_t bytes) {
  // Released when the caller has its answer, whatever it is.
  done = [this, bytes, done = std::move(done)](absl::StatusOr<TxnResult> r) {
    done(std::move(r));
    admission_.Release(bytes);
  };
  if (auto s = Enter(); !s.ok()) return done(s);
  auto c = std::make_shared<PendingCommit>(this, std::move(options), std::move(done));
  if (std::string primary = primary_address(); !primary.empty()) {
    return c->Finish(absl::FailedPreconditionError(
        "this node is a read-only replica; send writes to its primary at " + primary));
  }
  if (vars_.GetBool("read_only")) {
    return c->Finish(absl::FailedPreconditionError(
        "The server is running with read_only=ON so it cannot execute this write"));
  }
  // Epochs only rise, so a node found new enough here stays so.
  if (const uint64_t epoch = binlog_->epoch(); epoch < c->options.min_epoch) {
    return c->Finish(absl::FailedPreconditionError(
        "this node's epoch " + std::to_string(epoch) + " is older than epoch " +
        std::to_string(c->options.min_epoch) +
        " the client has already seen: it is no longer the primary (a failover happened); "
        "nothing was written"));
  }
  // Held until the binlog has it queued: once Revoke set the flag, no
  // commit that passed this check is still to be appended.
  if (!EnterCommitGate()) return c->Finish(CheckNotRevoked());
  committing_.fetch_add(1);  // before the gate is left: a drained gate sees it
  c->committing = true;
  PauseHereForTesting("commit:in-gate");
  if (auto s = CheckApplier(); !s.ok()) {
    LeaveCommitGate();
    return c->Finish(s);
  }
  c->event.set_timestamp_us(NowMicros());
  c->event.set_server_id(static_cast<uint32_t>(vars_.GetUint("server_id")));
  for (auto& m : then_mutations) *c->event.add_mutations() = std::move(m);
  if (condition) {
    // Refused early while RocksDB is still applying writes PendingKeys
    // never saw (after a restart or a promotion) or that came before a
    // group whose write failed: checked again at assignment, where it
    // decides.
    if (!pending_keys_->CaughtUp(binlog_->LastVisible().seq)) {
      LeaveCommitGate();
      return c->Finish(absl::UnavailableError(
          "the primary is still applying its binlog (after a restart or promotion, once a "
          "replica ACKs the replayed tail or semi-sync times out; after a failed write, once the "
          "writes before it are applied), so a compare cannot be checked yet; nothing was "
          "written; retry"));
    }
    c->condition = std::move(condition);
  }
  // `c` owns this function and outlives the call (the binlog's done holds
  // `c`); a raw pointer avoids a cycle (and fits std::function's own
  // storage: no allocation).
  auto assigned = [this, p = c.get()](v1::Event& event) { Assigned(p, event); };
  static_assert(sizeof(assigned) <= 2 * sizeof(void*) &&
                    std::is_trivially_copyable_v<decltype(assigned)>,
                "kept inside std::function: no allocation per commit");
  c->on_assigned = assigned;
  binlog_->CommitAsync(&c->event, &c->on_assigned, [this, c](absl::Status s) { Durable(c, s); });
  LeaveCommitGate();
}

void Node::Impl::Assigned(PendingCommit* c, v1::Event& event) {
  if (c->condition) {
    auto holds = CompareAll(c->condition->compares, pending_keys_.get(), event.gtid().seq());
    if (!holds.ok()) {
      // Nothing of it may be applied: an event with no mutations.
      c->resolve_error = absl::Status(holds.status().code(),
                                      std::string(holds.status().message()) +
                                          " (nothing was written)");
      event.clear_mutations();
    } else if (!*holds) {
      c->succeeded = false;
      event.clear_mutations();
      for (auto& m : c->condition->else_mutations) *event.add_mutations() = std::move(m);
    }
    c->condition.reset();
  }
  pending_keys_->Record(event);
  c->registration = semisync_->Register(event.gtid().seq());
}

void Node::Impl::Durable(const std::shared_ptr<PendingCommit>& c, const absl::Status& written) {
  if (!written.ok()) {
    if (c->event.gtid().seq() != 0) semisync_->Unregister(c->event.gtid().seq(), c->registration);
    return c->Finish(written);
  }
  // Durable in our binlog (per sync_binlog).
  const Gtid gtid = GtidFromProto(c->event.gtid());
  const Deadline deadline = c->options.deadline;
  auto apply = [this, gtid, deadline]() -> absl::StatusOr<Gtid> {
    AdvanceReplicaVisible(gtid.seq);
    applier_->ReleaseAndApply(gtid.seq);
    if (auto s = applier_->WaitApplied(gtid.seq, deadline); !s.ok()) {
      // Never OK, and never an invitation to retry: the write is durable
      // and replicates; it becomes visible once the state machine applies.
      // INTERNAL, not UNAVAILABLE: clients retry that, and this write must
      // not be written twice.
      const auto code = absl::IsDeadlineExceeded(s) || absl::IsCancelled(s)
                            ? s.code()
                            : absl::StatusCode::kInternal;
      return absl::Status(code, "write " + gtid.ToString() +
                                    " is in the binlog and replicates, but is not applied yet (" +
                                    std::string(s.message()) +
                                    "); it is applied once the state machine can: do not retry it");
    }
    return gtid;
  };
  bool made_after_sync = false;
  if (WaitsAfterSync(gtid.seq, &made_after_sync)) {
    // Lossless: nobody may read it before enough replicas hold it. (An ACK
    // applies what it releases before calling back, so `apply` finds it
    // done.) Labelled by the wait point it was made under, though one made
    // under AFTER_COMMIT waits as AFTER_SYNC here (review s47d F3).
    const NodeMetrics::WaitPoint point = made_after_sync ? NodeMetrics::WaitPoint::kAfterSync
                                                         : NodeMetrics::WaitPoint::kAfterCommit;
    semisync_->WaitAsync(gtid.seq, c->registration, deadline, c->options.cancelled,
                         [c, apply, point](SemiSyncMaster::Result w) {
                           if (w.ok() && *w == SemiSyncMaster::Outcome::kAcked) {
                             c->wait_point = point;
                           }
                           c->Finish(w.ok() ? apply() : w.status());
                         });
    return;
  }
  // AFTER_COMMIT: visible now; the caller still waits for the ACK.
  absl::StatusOr<Gtid> applied = apply();
  if (!applied.ok()) {
    semisync_->Unregister(gtid.seq, c->registration);  // registered at assignment: not waiting any more
    return c->Finish(applied.status());
  }
  semisync_->WaitAsync(gtid.seq, c->registration, deadline, c->options.cancelled,
                       [c, gtid](SemiSyncMaster::Result w) {
                         if (w.ok() && *w == SemiSyncMaster::Outcome::kAcked) {
                           c->wait_point = NodeMetrics::WaitPoint::kAfterCommit;
                         }
                         c->Finish(w.ok() ? absl::StatusOr<Gtid>(gtid) : w.status());
                       });
}

void Node::Impl::RaiseAfterSyncUpto(uint64_t seq) {
  uint64_t w = after_sync_upto_.load();
  while (w < seq && !after_sync_upto_.compare_exchange_weak(w, seq)) {
  }
}

bool Node::Impl::WaitsAfterSync(uint64_t seq, bool* made_after_sync) {
  // Commits decide one after the other in seq order (the binlog calls
  // them back so), so of two commits on either side of a SET the later one
  // sees the earlier one's decision in the watermark. Decided out of
  // order, a later AFTER_COMMIT commit could show an earlier one that then
  // read AFTER_SYNC and waited (review s47d F1).
  const bool after_sync = vars_.Get("rpl_semi_sync_master_wait_point") == "AFTER_SYNC";
  *made_after_sync = after_sync;
  if (after_sync) {
    RaiseAfterSyncUpto(seq);
    return true;
  }
  // AFTER_COMMIT shows this write now, and with it every seq below (the
  // state machine applies in order): not while a commit made under
  // AFTER_SYNC is not released yet (ACKed, or gone async) — a SET GLOBAL
  // ...wait_point=AFTER_COMMIT would show it before its ACK, which then
  // answers it as lossless (review s47a M1). Such a commit waits as they
  // do; it does not hold the next ones back itself (review s47c F1).
  const uint64_t upto = after_sync_upto_.load();
  if (upto == 0) return false;  // the steady AFTER_COMMIT case
  if (semisync_->released_seq() >= upto) {
    uint64_t expected = upto;  // unless a held tail raised it meanwhile
    after_sync_upto_.compare_exchange_strong(expected, 0);
    return false;
  }
  return true;
}

uint32_t Node::Impl::TailWriter(uint64_t shown, uint64_t end) {
  const uint32_t self = static_cast<uint32_t>(vars_.GetUint("server_id"));
  // Newest first, past this node's own epoch markers only (a RESET SLAVE
  // ALL that a CHANGE MASTER undid). A write of its own there (taken as
  // primary before that CHANGE MASTER) never went to the old primary, and
  // an event without a writer (an older relaykvd) names nobody: then its
  // own copy is not known to be a second one, and no credit is given
  // (review s48c T1). So the walk passes markers only: a few events.
  for (uint64_t seq = end; seq > shown; --seq) {
    auto event = ReadEventAt(*binlog_, seq);
    if (!event.ok() || !*event) return 0;  // unreadable or purged: unknown
    const v1::Event& e = **event;
    if (e.server_id() == self && e.mutations_size() == 0) continue;  // own marker
    return e.server_id() == self ? 0 : e.server_id();
  }
  return 0;
}

absl::StatusOr<Gtid> Node::Impl::Promote() {
  if (!applier_->running()) {
    if (auto s = applier_->Start(); !s.ok()) return s;
  }
  const auto forever = Clock::time_point::max();
  // The relay log first: if it cannot be applied, nothing has changed and
  // the node is still a replica of its old primary. Only what the old
  // primary made visible, though: the tail past it may be on this node
  // alone (no quorum ACKed it), and is held as a restarted primary's
  // replayed tail is — shown once replicas ACK it (one fewer than
  // wait_for_slave_count, its own copy counting, but at least one) or
  // semi-sync times out (review s47a H2, s47d F4). The new epoch's marker
  // waits with it (StartEpoch).
  const Gtid relay_end = binlog_->LastVisible();
  const uint64_t shown = std::min(applier_->released(), relay_end.seq);
  const bool hold = MustHoldReplayedTail(shown, relay_end.seq);
  // Its own copy counts as one ACK only with the tail's writer known: the
  // old primary, whose ACK (should it follow this node) is no copy besides
  // the ones the credit stands for (s47e F4, s48b S2).
  const uint32_t writer = hold ? TailWriter(shown, relay_end.seq) : 0;
  // Before the flag: HoldReplayedTail reads them after it.
  held_tail_credited_ = writer != 0;
  held_tail_writer_ = writer;
  hold_replayed_tail_ = hold;
  absl::Cleanup unhold = [this] {
    hold_replayed_tail_ = false;  // still a replica: its primary's visibility governs
    held_tail_credited_ = false;
    held_tail_writer_ = 0;
    held_tail_end_.store(0);
  };
  const uint64_t apply_to = hold_replayed_tail_ ? shown : relay_end.seq;
  ShowAsPrimary(apply_to);
  if (auto s = applier_->WaitApplied(apply_to, forever); !s.ok()) return s;
  PauseHereForTesting("promote:relay-log-applied");
  // Then the new epoch, before master.info goes: without it a restart could
  // stamp our writes with the old primary's epoch, and its events at the
  // same seqs would pass for ours. (A crash in between leaves a replica
  // holding an event its old primary does not have: refused by it, and
  // RESET SLAVE ALL can run again.)
  auto start = OpenOwnEpoch();
  if (!start.ok()) return start.status();
  if (hold_replayed_tail_) HeldTailEndsAt(start->seq);
  PauseHereForTesting("promote:marker-written");
  if (auto s = ClearMasterInfo(options_.data_dir); !s.ok()) return s;
  PauseHereForTesting("promote:master-info-cleared");
  std::move(unhold).Cancel();  // armed by HoldReplayedTail once the node acts as the primary
  return start;
}

void Node::Impl::ShowAsPrimary(uint64_t seq) {
  AdvanceReplicaVisible(seq);  // first: a replica never waits for what shows here
  applier_->Release(seq);
}

absl::StatusOr<Gtid> Node::Impl::StartEpoch(uint64_t min_epoch) {
  // A marker event (no mutations) carries the new epoch, fsynced whatever
  // sync_binlog says: the epoch is durable before anything is stamped with it.
  const Gtid end = binlog_->LastVisible();
  v1::Event marker;
  marker.set_timestamp_us(NowMicros());
  marker.set_server_id(static_cast<uint32_t>(vars_.GetUint("server_id")));
  const uint64_t newest = std::max(binlog_->epoch(), end.epoch);
  // Never wraps: a wrapped epoch would reuse GTIDs. Peers cannot get an
  // epoch this high into the binlog (EpochPromise's bounds), so this is
  // damage.
  if (newest >= EpochPromise::kMaxEpoch || min_epoch > EpochPromise::kMaxEpoch) {
    return absl::FailedPreconditionError(
        "cannot open a new epoch: the binlog's epoch " + std::to_string(newest) +
        " (or the promised " + std::to_string(min_epoch) + ") is at the largest epoch " +
        std::to_string(EpochPromise::kMaxEpoch));
  }
  const Gtid start{std::max(newest + 1, min_epoch), end.seq + 1};
  GtidToProto(start, marker.mutable_gtid());
  if (auto s = binlog_->AppendReplicated({&marker, 1}, /*sync=*/true); !s.ok()) return s;
  if (hold_replayed_tail_) return start;  // applied with the held tail (HoldReplayedTail)
  ShowAsPrimary(start.seq);
  if (auto s = applier_->WaitApplied(start.seq, Clock::time_point::max()); !s.ok()) return s;
  return start;
}

absl::StatusOr<TxnResult> Node::Impl::Txn(std::vector<v1::Mutation> then_mutations,
                                          std::optional<Condition> condition,
                                          const WriteOptions& options) {
  std::binary_semaphore finished{0};
  absl::StatusOr<TxnResult> result = absl::UnknownError("commit never finished");
  TxnAsync(std::move(then_mutations), std::move(condition), options,
           [&](absl::StatusOr<TxnResult> r) {
             result = std::move(r);
             finished.release();  // last: `result` and `finished` may be gone right after
           });
  finished.acquire();
  return result;
}

absl::StatusOr<Gtid> Node::Impl::Commit(std::vector<v1::Mutation> mutations,
                                        const WriteOptions& options) {
  std::binary_semaphore finished{0};
  absl::StatusOr<Gtid> result = absl::UnknownError("commit never finished");
  CommitAsync(std::move(mutations), options, [&](absl::StatusOr<Gtid> r) {
    result = std::move(r);
    finished.release();  // last: `result` and `finished` may be gone right after
  });
  finished.acquire();
  return result;
}

void Node::Impl::ConfigureSemiSync() {
  SemiSyncSettings s;
  const std::vector<std::string> v =
      vars_.GetAll({"rpl_semi_sync_master_enabled", "rpl_semi_sync_master_timeout",
                    "rpl_semi_sync_master_wait_for_slave_count", "rpl_semi_sync_master_wait_no_slave"},
                   &s.variables_version);
  s.enabled = v[0] == "ON";
  s.timeout_ms = std::stoull(v[1]);
  s.wait_for_slave_count = std::stoull(v[2]);
  s.wait_no_slave = v[3] == "ON";
  semisync_->Configure(s);
}

absl::StatusOr<std::optional<std::string>> Node::Impl::Get(const std::string& key,
                                                           const GetOptions& options) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  CallScope scope(this);
  if (!scope.ok()) return scope.status();
  if (auto s = PrepareRead(options); !s.ok()) return s;
  return state_->Get(key);
}

absl::StatusOr<std::optional<VersionedValue>> Node::Impl::GetVersioned(const std::string& key,
                                                                       const GetOptions& options) {
  if (auto s = ValidateKey(key); !s.ok()) return s;
  CallScope scope(this);
  if (!scope.ok()) return scope.status();
  if (auto s = PrepareRead(options); !s.ok()) return s;
  auto v = state_->GetVersioned(key);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return std::nullopt;
  return VersionedValue{std::move((*v)->value), (*v)->version};
}

absl::Status Node::Impl::WaitForGtid(const GetOptions& options) {
  const Gtid want = options.wait_for;
  auto not_ours = [&](const Gtid& ours) {
    return absl::FailedPreconditionError("gtid " + want.ToString() +
                                         " is not in this node's history (it has " +
                                         ours.ToString() + " at that seq)");
  };
  // A primary stamps new writes with its own epoch: a newer one never comes.
  if (primary_address().empty() && want.epoch > binlog_->epoch() &&
      want.seq > binlog_->LastVisible().seq) {
    return not_ours(binlog_->LastVisible());
  }
  // In slices, so that a caller gone and a shutdown end the wait too.
  constexpr auto kSlice = std::chrono::milliseconds(100);
  while (state_->Applied().seq < want.seq) {
    const Deadline slice = std::min(options.deadline, Clock::now() + kSlice);
    absl::Status s = applier_->WaitApplied(want.seq, slice);
    if (s.ok()) break;
    if (absl::IsCancelled(s)) {
      return absl::FailedPreconditionError("seq " + std::to_string(want.seq) +
                                           " is not applied here and the SQL thread is stopped");
    }
    if (!absl::IsDeadlineExceeded(s)) return s;
    if (Clock::now() >= options.deadline) {
      return absl::DeadlineExceededError("deadline passed waiting for gtid " + want.ToString() +
                                         " (applied here: " + state_->Applied().ToString() + ")");
    }
    if (options.cancelled && options.cancelled()) {
      return absl::CancelledError("the client went away while its read waited for gtid " +
                                  want.ToString());
    }
    std::lock_guard l(mu_);
    if (closing_) return absl::UnavailableError("relaykv node is shutting down");
  }
  if (want.epoch == 0 || want.seq < binlog_->FirstAvailableSeq()) return absl::OkStatus();
  // Applied here: the event at that seq must be the one asked for.
  auto reader = binlog_->NewReader(want.seq);
  if (!reader.ok()) return absl::OkStatus();  // purged meanwhile: nothing left to compare
  auto rec = (*reader)->Next();
  if (!rec.ok()) return rec.status();
  if (rec->has_value()) {
    const Gtid ours = GtidFromProto((*rec)->event.gtid());
    if (ours != want) return not_ours(ours);
  }
  return absl::OkStatus();
}

void Node::Impl::AdvanceReplicaVisible(uint64_t seq) {
  uint64_t v = replica_visible_.load();
  while (v < seq && !replica_visible_.compare_exchange_weak(v, seq)) {
  }
}

uint64_t Node::Impl::ReplicaVisibleSeq() const {
  // A replica serving replicas of its own passes on what it may apply.
  if (!acting_primary_.load()) return applier_->released();  // lock-free, as above
  return replica_visible_.load();
}

bool Node::Impl::GateReplicaVisibility(bool replica_semi_sync) const {
  // A replica's replicas see no more than it may show itself. (Lock-free:
  // called by the binlog's group leader, which may be the IO thread.)
  if (!acting_primary_.load()) return true;
  // A replica shows what this primary made visible (replica_visible_, which
  // every path that shows a write here advances), whatever semi-sync's
  // variables say now: they change before semi-sync itself does (a SET's
  // hook runs after the store; an OFF the async gate refuses waits for
  // etcd), and commits that waited under the old values are still answered
  // as those say — as lossless, once an ACK comes (review s47a H1, M1).
  // Only a semi-sync replica whose ACKs count, while one replica is the
  // quorum, shows what it holds at once: its copy completes the quorum by
  // itself, whether semi-sync is on or not.
  return !replica_semi_sync || vars_.GetUint("rpl_semi_sync_master_wait_for_slave_count") >= 2;
}

absl::Status Node::Impl::CheckApplier() {
  if (applier_->running()) return absl::OkStatus();
  return absl::UnavailableError("writes are refused: the state machine stopped applying after " +
                                state_->Applied().ToString() + ": " +
                                applier_->last_error().ToString() +
                                " (they resume by themselves once it applies again)");
}

void Node::Impl::RetryApplier() {
  if (applier_->running() || applier_->last_error().ok()) return;
  absl::Status s = state_->Recover();
  if (s.ok()) s = applier_->Start();  // from the applied GTID: nothing twice
  // Writes are taken again as soon as the applier runs (they queue behind
  // its catch-up); this wait only tells whether it really applies again,
  // for the log line (a failure stops it, and the next tick retries).
  if (s.ok()) s = applier_->WaitApplied(applier_->released(), Clock::now() + std::chrono::seconds(10));
  if (!s.ok()) {
    spdlog::error("state machine: still cannot apply after {}: {}", state_->Applied().ToString(),
                  s.ToString());
    return;
  }
  // Nothing beyond what was released: under AFTER_SYNC the rest waits for
  // its ACKs as before.
  spdlog::info("state machine: applying again at {} (binlog at {}); writes are taken again",
               state_->Applied().ToString(), binlog_->LastVisible().ToString());
}

void Node::Impl::Housekeeping(Clock::time_point* retention_at) {
  bool primary;
  {
    std::lock_guard l(mu_);
    if (closing_) return;
    primary = primary_.empty() && !promoting_;
  }
  // A primary's failed state machine: tried again here, not on a
  // committing thread (RocksDB's Resume may wait for a flush).
  if (primary) RetryApplier();
  if (Clock::now() >= *retention_at) {
    *retention_at = Clock::now() + kHousekeepingPeriod;
    ApplyRetention();
  }
}

void Node::Impl::Close() {
  // First: it acts on the node (and releases a leader lease, so that a
  // replica takes over at once).
  if (coordinator_) coordinator_->Stop();
  std::unique_ptr<ReplicaIo> io;
  {
    std::unique_lock l(mu_);
    if (closing_) return;
    closing_ = true;
    cv_.notify_all();
    io = std::move(io_);
  }
  // Writes waiting for admission are refused (UNAVAILABLE), not held.
  admission_.Close();
  {
    std::unique_lock l(mu_);
    // Let in-flight commits finish normally...
    cv_.wait_until(l, Clock::now() + kCloseGrace, [&] { return in_flight_ == 0; });
  }
  if (semisync_) semisync_->Close();  // waiters for ACKs get UNAVAILABLE, never OK
  timers_.Stop();  // waits for a housekeeping round in progress
  io.reset();  // stops the IO thread
  // ...then cancel whatever still waits, so nothing below blocks forever.
  if (applier_) applier_->Stop();
  // No semi-sync callback (nor its applying of what ACKs released) runs on
  // another thread past here (review s33c F5; after Stop(): a commit's
  // callback may be waiting for the applier).
  if (semisync_) semisync_->WaitIdle();
  if (binlog_) binlog_->Close();  // also ends the replication streams
  {
    std::unique_lock l(mu_);
    cv_.wait(l, [&] { return in_flight_ == 0; });
  }
  if (health_service_) health_service_->Shutdown();  // its Watch calls would hold up the server's
  // Open WriteStreams send their last answers and end (UNAVAILABLE) rather
  // than hold the server's shutdown for its whole grace period.
  if (kv_service_) kv_service_->EndStreams();
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (kv_service_) kv_service_->Stop();  // after the server's shutdown, before its end
  server_.reset();
  kv_service_.reset();
  replication_service_.reset();
  admin_service_.reset();
  clone_service_.reset();  // removes its checkpoints
  health_service_.reset();
  watch_service_.reset();
  applier_.reset();
  watch_feed_.reset();
  if (state_) {
    if (auto s = state_->Flush(); !s.ok()) spdlog::warn("close: {}", s.ToString());
  }
  state_.reset();
  binlog_.reset();
  lock_.Close();
}

absl::StatusOr<std::unique_ptr<Node>> Node::Open(const NodeOptions& options) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("data dir is not set");
  std::unique_ptr<Node> node(new Node(std::make_unique<Impl>(options)));
  if (auto s = node->impl_->Open(node.get()); !s.ok()) return s;
  return node;
}

Node::Node(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Node::~Node() { Close(); }

absl::StatusOr<Gtid> Node::Put(std::string key, std::string value, const WriteOptions& options) {
  std::vector<v1::Mutation> m(1);
  m[0].set_op(v1::Mutation::PUT);
  m[0].set_key(std::move(key));
  m[0].set_value(std::move(value));
  return impl_->Commit(std::move(m), options);
}

absl::StatusOr<Gtid> Node::Delete(std::string key, const WriteOptions& options) {
  std::vector<v1::Mutation> m(1);
  m[0].set_op(v1::Mutation::DELETE);
  m[0].set_key(std::move(key));
  return impl_->Commit(std::move(m), options);
}

namespace {
std::vector<v1::Mutation> ToProto(std::vector<Mutation> mutations) {
  std::vector<v1::Mutation> m(mutations.size());
  for (size_t i = 0; i < mutations.size(); ++i) {
    m[i].set_op(mutations[i].op == Mutation::Op::kDelete ? v1::Mutation::DELETE : v1::Mutation::PUT);
    m[i].set_key(std::move(mutations[i].key));
    m[i].set_value(std::move(mutations[i].value));
  }
  return m;
}
}  // namespace

absl::StatusOr<Gtid> Node::Write(std::vector<Mutation> mutations, const WriteOptions& options) {
  return impl_->Commit(ToProto(std::move(mutations)), options);
}

void Node::WriteAsync(std::vector<Mutation> mutations, WriteOptions options, WriteDone done) {
  impl_->CommitAsync(ToProto(std::move(mutations)), std::move(options), std::move(done));
}

namespace {
// Without compares or an else branch a Txn is a plain write, as a
// WriteRequest is (server/kv_calls.h ConditionOf).
std::optional<Condition> ToCondition(std::vector<Compare> compares, std::vector<Mutation> else_ops) {
  if (compares.empty() && else_ops.empty()) return std::nullopt;
  Condition c;
  c.compares.resize(compares.size());
  for (size_t i = 0; i < compares.size(); ++i) {
    v1::Compare& p = c.compares[i];
    switch (compares[i].target) {
      case Compare::Target::kVersion: p.set_target(v1::Compare::VERSION); break;
      case Compare::Target::kValue: p.set_target(v1::Compare::VALUE); break;
      case Compare::Target::kAbsent: p.set_target(v1::Compare::ABSENT); break;
    }
    p.set_key(std::move(compares[i].key));
    GtidToProto(compares[i].version, p.mutable_version());
    p.set_value(std::move(compares[i].value));
  }
  c.else_mutations = ToProto(std::move(else_ops));
  return c;
}
}  // namespace

absl::StatusOr<TxnResult> Node::Txn(relaykv::Txn txn, const WriteOptions& options) {
  return impl_->Txn(ToProto(std::move(txn.then_ops)),
                    ToCondition(std::move(txn.compares), std::move(txn.else_ops)), options);
}

void Node::TxnAsync(relaykv::Txn txn, WriteOptions options, TxnDone done) {
  impl_->TxnAsync(ToProto(std::move(txn.then_ops)),
                  ToCondition(std::move(txn.compares), std::move(txn.else_ops)),
                  std::move(options), std::move(done));
}

absl::StatusOr<std::optional<VersionedValue>> Node::GetVersioned(const std::string& key,
                                                                 const GetOptions& options) {
  return impl_->GetVersioned(key, options);
}

absl::StatusOr<std::optional<std::string>> Node::Get(const std::string& key, uint64_t min_seq,
                                                     Deadline deadline) {
  GetOptions options;
  options.wait_for.seq = min_seq;
  options.deadline = deadline;
  return impl_->Get(key, options);
}

absl::StatusOr<std::optional<std::string>> Node::Get(const std::string& key,
                                                     const GetOptions& options) {
  return impl_->Get(key, options);
}

Gtid Node::applied_gtid() const {
  CallScope scope(impl_.get());
  return scope.ok() ? impl_->state_->Applied() : Gtid{};
}

Gtid Node::binlog_gtid() const {
  CallScope scope(impl_.get());
  return scope.ok() ? impl_->binlog_->LastVisible() : Gtid{};
}

bool Node::is_replica() const { return !impl_->primary_address().empty(); }
int Node::bound_port() const { return impl_->bound_port_; }
const NodeOptions& Node::options() const { return impl_->options_; }
void Node::Close() { impl_->Close(); }

}  // namespace relaykv
