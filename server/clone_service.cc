#include "server/clone_service.h"

#include <fcntl.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <random>
#include <system_error>
#include <vector>

#include "server/grpc_status.h"
#include "server/sha256.h"
#include "spdlog/spdlog.h"
#include "storage/binlog.h"
#include "storage/binlog_reader.h"
#include "storage/crc32c.h"
#include "storage/file.h"

namespace relaykv {
namespace {

namespace fs = std::filesystem;
constexpr auto kReapPeriod = std::chrono::seconds(1);  // how late past its TTL a session may go
// The smallest chunk a receiver can ask for (FetchCloneFileRequest): what
// its stall rule counts as progress; smaller ones would only cost the
// source a message each (review s46d L3).
constexpr size_t kMinChunkBytes = 64 << 10;

std::string NewSessionId() {
  std::random_device rd;
  std::uniform_int_distribution<uint64_t> dist;
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(dist(rd)),
                static_cast<unsigned long long>(dist(rd)));
  return buf;
}

// Every regular file under `dir`, by path relative to it, with size and
// SHA-256. A checkpoint is flat today; recursing costs nothing.
absl::Status ListFiles(const fs::path& dir, v1::BeginCloneResponse* out) {
  std::error_code ec;
  std::vector<fs::path> paths;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_regular_file()) paths.push_back(it->path());
  }
  if (ec) return absl::InternalError("cannot list " + dir.string() + ": " + ec.message());
  std::sort(paths.begin(), paths.end());
  std::string buf(1 << 20, '\0');
  for (const fs::path& p : paths) {
    auto file = File::Open(p, O_RDONLY);
    if (!file.ok()) return file.status();
    Sha256 sha;
    uint64_t offset = 0;
    for (;;) {
      size_t n = 0;
      if (auto s = file->ReadAt(offset, buf.size(), buf.data(), &n); !s.ok()) return s;
      if (n == 0) break;
      sha.Update(std::string_view(buf.data(), n));
      offset += n;
    }
    v1::CloneFile* f = out->add_files();
    f->set_name(fs::relative(p, dir).string());
    f->set_size_bytes(offset);
    f->set_sha256(sha.Final());
  }
  return absl::OkStatus();
}

struct EventAtGtid {
  v1::Event event;
  Gtid before;  // the GTID of the event before it
};

// The binlog's event at the checkpoint's GTID and the GTID before it, for
// the receiver's binlog to begin with (review s43a M3); read right after
// the checkpoint, while it is at or near the binlog's end (retention holds
// nothing for it yet: review s44a M2). nullopt, said in the log, when the
// binlog no longer holds it or cannot read it (a bad record must not make
// a node that needs re-provisioning uncloneable): the clone's binlog then
// begins empty after the GTID. FAILED_PRECONDITION when the binlog's event
// there is another one.
absl::StatusOr<std::optional<EventAtGtid>> ReadEventAtGtid(Binlog& binlog, const Gtid& gtid) {
  if (gtid.seq == 0) return std::nullopt;
  auto unknown = [&](const std::string& why) {
    spdlog::warn("clone: the binlog's event at {} {}; the clone will not know who wrote its last "
                 "event (a primary cannot then tell another writer's equal GTID from it)",
                 gtid.ToString(), why);
    return std::nullopt;
  };
  auto at = ReadEventAt(binlog, gtid.seq);
  if (!at.ok()) return unknown("cannot be read (" + std::string(at.status().message()) + ")");
  if (!at->has_value()) return unknown("was purged");
  if (GtidFromProto((*at)->gtid()) != gtid) {
    return absl::FailedPreconditionError(
        "the state machine is at " + gtid.ToString() + " but the binlog's event at that seq is " +
        GtidFromProto((*at)->gtid()).ToString() +
        ": they hold different histories; refusing to be cloned");
  }
  EventAtGtid out{std::move(**at), Gtid{}};
  if (gtid.seq > 1) {
    auto prev = ReadEventAt(binlog, gtid.seq - 1);
    if (!prev.ok()) return unknown("has a predecessor that cannot be read");
    out.before = prev->has_value() ? GtidFromProto((*prev)->gtid()) : binlog.BeforeFirstAvailable();
    if (out.before.seq != gtid.seq - 1) return unknown("was purged");
  }
  return out;
}

}  // namespace

CloneService::CloneService(const StateMachine* state, const Authorizer* auth, TimerLoop* timers,
                           CloneServiceOptions options)
    : state_(state), auth_(auth), options_(std::move(options)) {
  // Checkpoints of an earlier run (a crash) are of no use: no receiver
  // can resume a session the source no longer knows.
  std::error_code ec;
  fs::remove_all(options_.sessions_dir, ec);
  if (ec) spdlog::warn("clone: cannot remove {}: {}", options_.sessions_dir.string(), ec.message());
  reaper_ = timers->Every(kReapPeriod, [this] { Reap(); });
}

CloneService::~CloneService() {
  {
    std::lock_guard l(mu_);
    stop_ = true;
  }
  reaper_.Cancel();  // returns once no reaping round runs
  // The gRPC server is shut down before us: no call uses a session now.
  std::error_code ec;
  fs::remove_all(options_.sessions_dir, ec);
}

grpc::Status CloneService::CheckRole(const grpc::ServerContext* ctx, std::string_view op) const {
  grpc::Status s = auth_->Check(ctx, Role::kReplication, op);
  if (s.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    grpc::Status admin = auth_->Check(ctx, Role::kAdmin, op);
    if (admin.ok()) return admin;
  }
  return s;
}

grpc::Status CloneService::Begin(grpc::ServerContext* ctx, const v1::BeginCloneRequest* request,
                                 v1::BeginCloneResponse* response) {
  if (auto s = CheckRole(ctx, "CLONE (Begin)"); !s.ok()) return s;
  // A receiver that cannot open this checkpoint would swap its data dir
  // for it and then not start (review s39b L2: a rolling upgrade that
  // clones a not-yet-upgraded node from an upgraded one).
  if (const uint32_t opens = std::max<uint32_t>(request->max_state_format(), 1);
      opens < kStateMachineFormat) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "the clone source's state machine is format " +
                            std::to_string(kStateMachineFormat) +
                            " (versions stored in the values) and the receiving relaykvd opens "
                            "formats up to " + std::to_string(opens) +
                            ": upgrade the receiving node before it clones from this one");
  }
  response->set_state_format(kStateMachineFormat);
  const std::string id = NewSessionId();
  {
    std::lock_guard l(mu_);
    if (stop_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "node is shutting down");
    if (sessions_.size() + beginning_ >= options_.max_sessions) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "this node already serves " + std::to_string(options_.max_sessions) +
                              " clone sessions (the limit); retry once one finishes or expires");
    }
    ++beginning_;
  }
  struct Unreserve {
    CloneService* self;
    ~Unreserve() {
      std::lock_guard l(self->mu_);
      --self->beginning_;
    }
  } unreserve{this};

  auto session = std::make_shared<Session>();
  session->id = id;
  session->dir = options_.sessions_dir / id;
  if (auto s = CreatePrivateDirectory(options_.sessions_dir); !s.ok()) return ToGrpcStatus(s);
  auto gtid = state_->CreateCheckpoint(session->dir);
  std::error_code ec;
  if (!gtid.ok()) {
    fs::remove_all(session->dir, ec);
    return ToGrpcStatus(gtid.status());
  }
  session->gtid = *gtid;
  absl::StatusOr<std::optional<EventAtGtid>> at_gtid = std::nullopt;
  if (options_.binlog != nullptr) at_gtid = ReadEventAtGtid(*options_.binlog, session->gtid);
  if (!at_gtid.ok()) {
    fs::remove_all(session->dir, ec);
    return ToGrpcStatus(at_gtid.status());
  }
  if (auto s = ListFiles(session->dir, response); !s.ok()) {
    fs::remove_all(session->dir, ec);
    return ToGrpcStatus(s);
  }
  // The event only if the answer can carry it: a replica holds events up
  // to what its primary took, whatever its own max_allowed_packet (review
  // s44a M1: such a node could not be cloned any more).
  if (at_gtid->has_value()) {
    const size_t bytes = response->ByteSizeLong() + (*at_gtid)->event.ByteSizeLong() + 4096;
    if (bytes <= options_.max_reply_bytes) {
      *response->mutable_gtid_event() = std::move((*at_gtid)->event);
      GtidToProto((*at_gtid)->before, response->mutable_gtid_before());
    } else {
      spdlog::warn("clone: the binlog's event at {} does not fit a Begin answer ({} bytes, "
                   "max_allowed_packet {}); the clone will not know who wrote its last event",
                   session->gtid.ToString(), bytes, options_.max_reply_bytes);
    }
  }
  for (const v1::CloneFile& f : response->files()) session->sizes[f.name()] = f.size_bytes();
  response->set_session_id(id);
  GtidToProto(session->gtid, response->mutable_gtid());
  if (options_.server_id) response->set_source_server_id(options_.server_id());
  if (options_.primary) response->set_source_primary(options_.primary());
  response->set_session_ttl_ms(static_cast<uint64_t>(options_.ttl.count()));
  uint64_t total = 0;
  for (const v1::CloneFile& f : response->files()) total += f.size_bytes();
  {
    std::lock_guard l(mu_);
    session->created = session->last_used = Clock::now();
    sessions_[id] = session;
    ++stats_.started;
  }
  spdlog::info("clone: session {} for {}: checkpoint at {} ({} files, {} bytes)", id, ctx->peer(),
               session->gtid.ToString(), response->files_size(), total);
  return grpc::Status::OK;
}

std::shared_ptr<CloneService::Session> CloneService::Find(const std::string& id) {
  std::lock_guard l(mu_);
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second;
}

grpc::Status CloneService::FetchFile(grpc::ServerContext* ctx,
                                     const v1::FetchCloneFileRequest* request,
                                     grpc::ServerWriter<v1::CloneChunk>* writer) {
  if (auto s = CheckRole(ctx, "CLONE (FetchFile)"); !s.ok()) return s;
  std::shared_ptr<Session> session = Find(request->session_id());
  if (session == nullptr) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "clone session '" + request->session_id() +
                            "' is unknown here (finished, expired or the source restarted); "
                            "begin a new clone");
  }
  // Only names Begin listed: never a path of the caller's choosing.
  auto size_it = session->sizes.find(request->name());
  if (size_it == session->sizes.end()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "clone session " + session->id + " has no file '" + request->name() + "'");
  }
  const uint64_t size = size_it->second;
  if (request->offset() > size) {
    return grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                        "offset " + std::to_string(request->offset()) + " is past the end of " +
                            request->name() + " (" + std::to_string(size) + " bytes)");
  }
  std::optional<ConnectionSlot> slot;
  if (options_.connections != nullptr) {
    slot.emplace(options_.connections, "clone FetchFile");
    if (!slot->status().ok()) return ToGrpcStatus(slot->status());
  }
  auto file = File::Open(session->dir / request->name(), O_RDONLY);
  if (!file.ok()) return ToGrpcStatus(file.status());
  {
    std::lock_guard l(mu_);
    if (session->fetching >= kMaxFetchesPerSession) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "clone session " + session->id + " already has " +
                              std::to_string(kMaxFetchesPerSession) +
                              " FetchFile calls running (the limit); retry once one ends");
    }
    ++session->fetching;
  }
  struct Done {
    CloneService* self;
    Session* s;
    ~Done() {
      std::lock_guard l(self->mu_);
      --s->fetching;
    }
  } done{this, session.get()};

  const std::chrono::seconds send_timeout =
      options_.send_timeout ? options_.send_timeout() : std::chrono::seconds(60);
  // What the receiver asked for, within [kMinChunkBytes, chunk_bytes].
  const size_t floor = std::min(kMinChunkBytes, options_.chunk_bytes);
  const size_t chunk_bytes =
      request->max_chunk_bytes() == 0
          ? options_.chunk_bytes
          : std::clamp<size_t>(request->max_chunk_bytes(), floor, options_.chunk_bytes);
  std::string buf(chunk_bytes, '\0');
  v1::CloneChunk chunk;
  for (uint64_t offset = request->offset(); offset < size;) {
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "receiver went away");
    size_t n = 0;
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - offset));
    if (auto s = file->ReadAt(offset, want, buf.data(), &n); !s.ok()) return ToGrpcStatus(s);
    if (n != want) {
      return grpc::Status(grpc::StatusCode::DATA_LOSS,
                          "checkpoint file " + request->name() + " shrank while being cloned");
    }
    chunk.set_offset(offset);
    chunk.set_crc32c(Crc32c(std::string_view(buf.data(), n)));
    chunk.mutable_data()->assign(buf.data(), n);
    bool break_now = false;
    {
      std::lock_guard l(mu_);
      if (options_.corrupt_first_chunk_for_testing && !session->corrupted_for_testing) {
        session->corrupted_for_testing = true;
        (*chunk.mutable_data())[n / 2] ^= 0x10;
        spdlog::warn("clone: test hook: corrupted the chunk of {} at offset {}", request->name(),
                     offset);
      }
      if (options_.break_at_bytes_for_testing > 0 && !session->broke_for_testing &&
          session->bytes_sent >= options_.break_at_bytes_for_testing) {
        session->broke_for_testing = true;
        break_now = true;
      }
    }
    if (break_now) {
      spdlog::warn("clone: test hook: breaking the stream of {} at offset {}", request->name(),
                   offset);
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "test hook: connection broken");
    }
    bool sent;
    {
      StallWatchdog::Watch w(&watchdog_, ctx, send_timeout,
                             "clone: ending FetchFile of " + request->name() + " for session " +
                                 session->id + " (" + ctx->peer() +
                                 "): a send has been blocked longer than net_write_timeout "
                                 "(the receiver does not read)");
      sent = writer->Write(chunk);
    }
    if (!sent) return grpc::Status(grpc::StatusCode::CANCELLED, "receiver went away");
    offset += n;
    std::lock_guard l(mu_);
    session->bytes_sent += n;
    session->last_used = Clock::now();
    stats_.bytes_sent += n;
    if (session->dropped) {
      return grpc::Status(grpc::StatusCode::ABORTED,
                          "clone session " + session->id + " expired: it is older than its " +
                              std::to_string(options_.max_lifetime.count() / 1000) +
                              " s lifetime; begin a new clone");
    }
  }
  return grpc::Status::OK;
}

grpc::Status CloneService::Finish(grpc::ServerContext* ctx, const v1::FinishCloneRequest* request,
                                  v1::FinishCloneResponse*) {
  if (auto s = CheckRole(ctx, "CLONE (Finish)"); !s.ok()) return s;
  std::shared_ptr<Session> session;
  {
    std::lock_guard l(mu_);
    auto it = sessions_.find(request->session_id());
    if (it == sessions_.end()) return grpc::Status::OK;  // already gone: nothing to do
    session = it->second;
    sessions_.erase(it);
    ++stats_.finished;
  }
  // Open files of a FetchFile still running keep their data (POSIX).
  std::error_code ec;
  fs::remove_all(session->dir, ec);
  spdlog::info("clone: session {} finished ({} bytes sent)", session->id, session->bytes_sent);
  return grpc::Status::OK;
}

void CloneService::Reap() {
  const auto now = Clock::now();
  std::vector<std::pair<std::shared_ptr<Session>, bool>> expired;  // and whether for its age
  {
    std::lock_guard l(mu_);
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      Session& s = *it->second;
      const bool too_old = now - s.created > options_.max_lifetime;
      if (too_old || (s.fetching == 0 && now - s.last_used > options_.ttl)) {
        s.dropped = true;  // a fetch still running ends at its next chunk
        expired.emplace_back(it->second, too_old);
        it = sessions_.erase(it);
        ++stats_.expired;
      } else {
        ++it;
      }
    }
  }
  // Outside the lock: removing a checkpoint may take a while.
  for (const auto& [s, too_old] : expired) {
    std::error_code ec;
    fs::remove_all(s->dir, ec);
    if (too_old) {
      spdlog::warn("clone: session {} expired: older than its {} s lifetime; its checkpoint is "
                   "removed",
                   s->id, options_.max_lifetime.count() / 1000);
    } else {
      spdlog::warn("clone: session {} expired after {} ms without a byte sent; its checkpoint is "
                   "removed",
                   s->id, options_.ttl.count());
    }
  }
}

uint64_t CloneService::MinNeededSeq() const {
  std::lock_guard l(mu_);
  uint64_t min = std::numeric_limits<uint64_t>::max();
  for (const auto& [id, s] : sessions_) min = std::min(min, s->gtid.seq + 1);
  return min;
}

CloneSourceStats CloneService::stats() const {
  std::lock_guard l(mu_);
  CloneSourceStats out = stats_;
  out.sessions = sessions_.size();
  return out;
}

}  // namespace relaykv
