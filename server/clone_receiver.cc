#include "server/clone_receiver.h"

#include <fcntl.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "client/channel_args.h"
#include "client/channel_credentials.h"
#include "client/stall_cutoff.h"
#include "proto/clone.grpc.pb.h"
#include "server/limits.h"
#include "server/master_info.h"
#include "server/sha256.h"
#include "spdlog/spdlog.h"
#include "storage/binlog.h"
#include "storage/binlog_format.h"
#include "storage/binlog_segments.h"
#include "storage/crc32c.h"
#include "storage/file.h"
#include "storage/state_machine.h"

namespace relaykv {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr char kSessionFile[] = "session.pb";
constexpr char kReadyFile[] = "READY";
// What a staged clone moves into the data dir, in this order: master.info
// first, so a data dir holding the copy's state already names its primary
// (opened as a primary at the clone's GTID it would fork the source's
// history: review s43a L5).
constexpr const char* kMovedNames[] = {"master.info", "db", "binlog"};

absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      what + ": " + s.error_message());
}

// A failure worth another attempt from where the transfer stood.
bool Transient(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::CANCELLED ||
         code == grpc::StatusCode::DEADLINE_EXCEEDED || code == grpc::StatusCode::INTERNAL ||
         code == grpc::StatusCode::UNKNOWN || code == grpc::StatusCode::ABORTED ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED;
}

// How long to wait before attempt `failures` + 1. A source at its
// max_connections (RESOURCE_EXHAUSTED) is busy with client load, which
// passes in minutes rather than seconds: waited for longer, up to ~4 min
// over 30 attempts instead of ~40 s (review s43c L5).
std::chrono::milliseconds Backoff(int failures, grpc::StatusCode code) {
  if (code == grpc::StatusCode::RESOURCE_EXHAUSTED) {
    return std::chrono::milliseconds(std::min(1000 * failures, 10000));
  }
  return std::chrono::milliseconds(std::min(100 * failures, 2000));
}

std::string Hex(std::string_view bytes) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

// session.pb: the source's address, then the Begin answer.
std::string EncodeSession(const std::string& source, const v1::BeginCloneResponse& r) {
  return source + "\n" + r.SerializeAsString();
}
bool DecodeSession(const std::string& text, std::string* source, v1::BeginCloneResponse* r) {
  const size_t nl = text.find('\n');
  if (nl == std::string::npos) return false;
  *source = text.substr(0, nl);
  return r->ParseFromString(text.substr(nl + 1));
}

// Renames what a READY staging dir still holds into the data dir, records
// clone.done and removes the staging dir, each step durable.
absl::Status MoveIntoPlace(const fs::path& data_dir, const std::string& source, const Gtid& gtid) {
  const fs::path staging = data_dir / kCloneStagingDir;
  std::error_code ec;
  for (const char* name : kMovedNames) {
    const bool there = fs::exists(staging / name, ec);
    if (ec) {
      return absl::InternalError("cannot look at " + (staging / name).string() + ": " +
                                 ec.message());
    }
    if (!there) continue;  // moved before a crash
    fs::rename(staging / name, data_dir / name, ec);
    if (ec) {
      return absl::InternalError("cannot move " + (staging / name).string() + " into " +
                                 data_dir.string() + ": " + ec.message());
    }
  }
  // Both directories: POSIX promises a rename durable only once the one
  // it left is synced too.
  if (auto s = SyncDir(staging); !s.ok()) return s;
  if (auto s = SyncDir(data_dir); !s.ok()) return s;
  if (auto s = WriteFileAtomically(data_dir / kCloneDoneFile,
                                   "source=" + source + "\ngtid=" + gtid.ToString() + "\n");
      !s.ok()) {
    return s;
  }
  fs::remove_all(staging, ec);
  if (ec) return absl::InternalError("cannot remove " + staging.string() + ": " + ec.message());
  return SyncDir(data_dir);
}

// The clone's binlog, durable: it begins with the source's event at the
// clone's GTID when the source sent it — so the node knows who wrote its
// last event, what a primary compares to tell two nodes that opened one
// epoch apart (review s43a M3) — and is otherwise empty after that GTID.
absl::Status CreateCloneBinlog(const fs::path& dir, const std::string& source,
                               const v1::BeginCloneResponse& session) {
  const Gtid gtid = GtidFromProto(session.gtid());
  if (!session.has_gtid_event()) {
    spdlog::warn("clone: {} sent no event at {} (an older relaykvd, or its binlog no longer "
                 "holds it): this node will not know who wrote its last event, and a primary "
                 "cannot then tell another writer's equal GTID from it",
                 source, gtid.ToString());
    return CreateBinlogStartingAfter(dir, gtid);
  }
  const Gtid before = GtidFromProto(session.gtid_before());  // checked by CheckEventAtGtid
  if (auto s = CreateBinlogStartingAfter(dir, before); !s.ok()) return s;
  BinlogOptions options;
  options.dir = dir;
  auto binlog = Binlog::Open(options);
  if (!binlog.ok()) return binlog.status();
  return (*binlog)->AppendReplicated({&session.gtid_event(), 1}, /*sync=*/true);
}

// What Begin says about the event at the clone's GTID, checked before
// anything is written: it becomes the clone's binlog (review s44a L1).
absl::Status CheckEventAtGtid(const v1::BeginCloneResponse& session) {
  if (!session.has_gtid_event()) return absl::OkStatus();
  const Gtid gtid = GtidFromProto(session.gtid());
  const Gtid at = GtidFromProto(session.gtid_event().gtid());
  const Gtid before = GtidFromProto(session.gtid_before());
  if (gtid.seq == 0 || at != gtid || !session.has_gtid_before() || before.seq != gtid.seq - 1 ||
      before.epoch > gtid.epoch || (before.epoch == 0) != (before.seq == 0)) {
    return absl::InvalidArgumentError("the copy is at " + gtid.ToString() + " but its last event is " +
                                      at.ToString() + " after " + before.ToString());
  }
  if (auto s = ValidateEventMutations(session.gtid_event()); !s.ok()) {
    return absl::InvalidArgumentError("its last event: " + std::string(s.message()));
  }
  return absl::OkStatus();
}

class Receiver {
 public:
  Receiver(const CloneRequest& request, std::unique_ptr<v1::Clone::Stub> stub)
      : req_(request), stub_(std::move(stub)), staging_(request.data_dir / kCloneStagingDir) {}

  absl::StatusOr<CloneResult> Run();

 private:
  // Begin on the source, a fresh staging dir with session.pb.
  absl::Status BeginNew();
  // Finish on the source: it drops the session's checkpoint now rather than
  // at its expiry (a refused session would hold one of its few slots).
  void FinishSession();
  // Downloads `f` into staging/db (resuming a partial file), verifies it.
  // NOT_FOUND: the source lost the session.
  absl::Status FetchFile(const v1::CloneFile& f);
  absl::Status FetchFrom(const v1::CloneFile& f, File* out, uint64_t offset, Sha256* sha);

  const CloneRequest& req_;
  std::unique_ptr<v1::Clone::Stub> stub_;
  const fs::path staging_;
  v1::BeginCloneResponse session_;
  CloneResult result_;
  Clock::time_point last_log_ = Clock::now();
  // FetchCloneFileRequest::max_chunk_bytes: 0 (the source's) until a fetch
  // was cut off for slowness.
  uint32_t chunk_bytes_ = 0;
};

void Receiver::FinishSession() {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::FinishCloneRequest fr;
  fr.set_session_id(session_.session_id());
  v1::FinishCloneResponse resp;
  if (grpc::Status s = stub_->Finish(&ctx, fr, &resp); !s.ok()) {
    spdlog::warn("clone: Finish on {} failed ({}); the session expires there by itself",
                 req_.source, s.error_message());
  }
}

absl::Status Receiver::BeginNew() {
  std::error_code ec;
  fs::remove_all(staging_, ec);
  if (ec) return absl::InternalError("cannot remove " + staging_.string() + ": " + ec.message());
  grpc::Status s;
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    session_.Clear();
    v1::BeginCloneRequest begin;
    begin.set_max_state_format(kStateMachineFormat);
    s = stub_->Begin(&ctx, begin, &session_);
    if (s.ok() || !Transient(s.error_code()) || attempt >= req_.max_attempts) break;
    spdlog::warn("clone: Begin on {} failed ({}); retrying", req_.source, s.error_message());
    std::this_thread::sleep_for(std::max(Backoff(attempt, s.error_code()),
                                         std::chrono::milliseconds(std::min(200 * attempt, 5000))));
  }
  if (!s.ok()) return FromGrpc(s, "clone from " + req_.source + " cannot begin");
  if (session_.state_format() > kStateMachineFormat) {  // a source that did not refuse us
    FinishSession();
    return absl::FailedPreconditionError(
        "clone from " + req_.source + ": its state machine is format " +
        std::to_string(session_.state_format()) + " and this relaykvd opens formats up to " +
        std::to_string(kStateMachineFormat) + ": upgrade this node before it clones from that one");
  }
  // The GTID becomes the clone's binlog start (review s43a L7).
  if (const Gtid gtid = GtidFromProto(session_.gtid());
      gtid.seq == UINT64_MAX || gtid.epoch > binlog_format::kMaxEpoch ||
      (gtid.epoch == 0 && gtid.seq > 0)) {
    FinishSession();
    return absl::InvalidArgumentError("clone source " + req_.source +
                                      " announced an impossible GTID " + gtid.ToString());
  }
  if (auto e = CheckEventAtGtid(session_); !e.ok()) {
    FinishSession();
    return absl::InvalidArgumentError("clone source " + req_.source + " announced an impossible "
                                      "event: " + std::string(e.message()));
  }
  for (const v1::CloneFile& f : session_.files()) {
    // Names become paths here: nothing may climb out of the staging dir,
    // and a NUL would cut the name short.
    const fs::path p(f.name());
    if (f.name().empty() || p.is_absolute() || f.name().find('\0') != std::string::npos ||
        std::any_of(p.begin(), p.end(),
                    [](const fs::path& c) { return c == ".." || c == "." || c.empty(); }) ||
        f.sha256().size() != 32) {
      FinishSession();
      return absl::InvalidArgumentError("clone source " + req_.source + " lists a bad file '" +
                                        f.name() + "'");
    }
  }
  // What the source announced must fit: a clone that fills the disk fails
  // late and leaves it full (a hostile source's sizes are never checked
  // otherwise: review s44c C1).
  uint64_t total = 0;
  for (const v1::CloneFile& f : session_.files()) {
    total = f.size_bytes() > UINT64_MAX - total ? UINT64_MAX : total + f.size_bytes();
  }
  std::error_code space_ec;
  const fs::space_info space = fs::space(req_.data_dir, space_ec);
  if (space_ec) {
    spdlog::warn("clone: cannot tell the free space of {} ({}); not checking that {} bytes fit",
                 req_.data_dir.string(), space_ec.message(), total);
  } else if (total > space.available) {
    FinishSession();
    return absl::ResourceExhaustedError(
        "clone from " + req_.source + " needs " + std::to_string(total) + " bytes but " +
        req_.data_dir.string() + " has " + std::to_string(space.available) +
        " free: free space there, or clone into another data dir");
  }
  if (auto s2 = CreatePrivateDirectory(staging_ / "db"); !s2.ok()) return s2;
  return WriteFileAtomically(staging_ / kSessionFile, EncodeSession(req_.source, session_));
}

// A fetch must bring at least this much per stall timeout (or end): a
// source trickling a byte now and then kept Node::Open waiting for ever,
// each trickle counting as progress (review s43c).
constexpr uint64_t kMinBytesPerStallTimeout = 64 * 1024;

absl::Status Receiver::FetchFrom(const v1::CloneFile& f, File* out, uint64_t offset, Sha256* sha) {
  int failures = 0;
  while (offset < f.size_bytes()) {
    grpc::ClientContext ctx;
    v1::FetchCloneFileRequest fr;
    fr.set_session_id(session_.session_id());
    fr.set_name(f.name());
    fr.set_offset(offset);
    fr.set_max_chunk_bytes(chunk_bytes_);
    StallCutoff cutoff(&ctx, req_.stall_timeout, kMinBytesPerStallTimeout);
    auto reader = stub_->FetchFile(&ctx, fr);
    v1::CloneChunk chunk;
    const uint64_t fetch_start = offset;
    std::string refused;
    while (reader->Read(&chunk)) {
      cutoff.Received(chunk.data().size());
      if (chunk.offset() != offset || chunk.data().empty() ||
          chunk.data().size() > f.size_bytes() - offset) {
        refused = "a chunk at offset " + std::to_string(chunk.offset()) + " of " +
                  std::to_string(chunk.data().size()) + " bytes (expected offset " +
                  std::to_string(offset) + ")";
        break;
      }
      if (Crc32c(chunk.data()) != chunk.crc32c()) {
        ++result_.chunks_refused;
        refused = "the chunk at offset " + std::to_string(offset) + ": CRC32C mismatch";
        break;
      }
      if (auto s = out->WriteAt(offset, chunk.data()); !s.ok()) return s;
      sha->Update(chunk.data());
      offset += chunk.data().size();
      result_.bytes += chunk.data().size();
      if (Clock::now() - last_log_ > std::chrono::seconds(5)) {
        last_log_ = Clock::now();
        spdlog::info("clone: {} of {} bytes received from {}", result_.bytes,
                     result_.total_bytes, req_.source);
      }
    }
    if (!refused.empty()) {
      ctx.TryCancel();
      spdlog::error("clone: refused {} of {} from {}; fetching it again", refused, f.name(),
                    req_.source);
    }
    grpc::Status s = reader->Finish();
    if (refused.empty() && s.error_code() == grpc::StatusCode::CANCELLED && cutoff.fired()) {
      s = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                       "less than " + std::to_string(kMinBytesPerStallTimeout / 1024) +
                           " KiB received in " + std::to_string(req_.stall_timeout.count()) +
                           " ms (the source stopped sending, or this node could not keep up)");
      // Progress is seen per chunk: a link too slow for the source's
      // chunks gets ones the stall rule measures (review s44c C2).
      if (chunk_bytes_ != kMinBytesPerStallTimeout) {
        chunk_bytes_ = static_cast<uint32_t>(kMinBytesPerStallTimeout);
        spdlog::warn("clone: asking {} for {} KiB chunks from now on", req_.source,
                     kMinBytesPerStallTimeout / 1024);
      }
    }
    // A trickle is no progress: it must not reset the count of failures.
    const bool progressed =
        offset - fetch_start >= kMinBytesPerStallTimeout || offset == f.size_bytes();
    if (refused.empty() && s.ok()) {
      if (offset == f.size_bytes()) break;
      s = grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream ended early");
    }
    if (refused.empty() && !Transient(s.error_code())) {
      return FromGrpc(s, "clone from " + req_.source + ": fetching " + f.name());
    }
    failures = progressed ? 1 : failures + 1;
    if (failures >= req_.max_attempts) {
      return absl::UnavailableError("clone from " + req_.source + ": fetching " + f.name() +
                                    " failed " + std::to_string(failures) +
                                    " times in a row at offset " + std::to_string(offset) +
                                    "; last: " + (refused.empty() ? s.error_message() : refused));
    }
    ++result_.reconnects;
    if (refused.empty()) {
      spdlog::warn("clone: stream of {} from {} broke at offset {} ({}); resuming there",
                   f.name(), req_.source, offset, s.error_message());
    }
    std::this_thread::sleep_for(Backoff(failures, refused.empty() ? s.error_code()
                                                                  : grpc::StatusCode::DATA_LOSS));
  }
  return absl::OkStatus();
}

absl::Status Receiver::FetchFile(const v1::CloneFile& f) {
  const fs::path path = staging_ / "db" / f.name();
  if (auto s = CreatePrivateDirectory(path.parent_path()); !s.ok()) return s;
  for (int pass = 0;; ++pass) {
    auto out = File::Open(path, O_RDWR | O_CREAT);
    if (!out.ok()) return out.status();
    auto have = out->Size();
    if (!have.ok()) return have.status();
    uint64_t offset = pass == 0 ? *have : 0;
    if (offset > f.size_bytes()) offset = 0;
    if (offset < *have) {
      if (auto s = out->Truncate(offset); !s.ok()) return s;
    }
    // The bytes an earlier run left are hashed again: a crash may have
    // torn them, and the file's digest is what is trusted.
    Sha256 sha;
    std::string buf(1 << 20, '\0');
    for (uint64_t at = 0; at < offset;) {
      size_t n = 0;
      if (auto s = out->ReadAt(at, std::min<uint64_t>(buf.size(), offset - at), buf.data(), &n);
          !s.ok()) {
        return s;
      }
      if (n == 0) break;
      sha.Update(std::string_view(buf.data(), n));
      at += n;
    }
    if (offset > 0) result_.resumed = true;
    if (auto s = FetchFrom(f, &*out, offset, &sha); !s.ok()) return s;
    if (auto s = out->DataSync(); !s.ok()) return s;
    const std::string digest = sha.Final();
    if (digest == f.sha256()) return absl::OkStatus();
    if (pass == 0 && offset > 0) {
      spdlog::warn("clone: {} resumed at offset {} does not check out; fetching it whole",
                   f.name(), offset);
      continue;
    }
    return absl::DataLossError("clone from " + req_.source + ": " + f.name() +
                               " has SHA-256 " + Hex(digest) + " but the source announced " +
                               Hex(f.sha256()) + "; nothing was moved into " +
                               req_.data_dir.string());
  }
}

absl::StatusOr<CloneResult> Receiver::Run() {
  const auto start = Clock::now();
  result_.source = req_.source;
  // Resume the session an interrupted run left, if the source still has it.
  bool from_disk = false;
  if (auto text = ReadFileToString(staging_ / kSessionFile); text.ok()) {
    std::string source;
    // A session begun by a binary that opens a newer format than this one
    // (a downgrade mid-clone) is not resumed: Begin again, which that
    // source refuses if its format is too new (review s40b L1).
    if (DecodeSession(*text, &source, &session_) && source == req_.source) {
      if (session_.state_format() <= kStateMachineFormat) {
        from_disk = true;
        spdlog::info("clone: resuming the interrupted clone from {} (session {}, GTID {})",
                     req_.source, session_.session_id(),
                     GtidFromProto(session_.gtid()).ToString());
      } else {
        FinishSession();  // its slot on the source is freed now (review s40c L4)
      }
    }
  }
  if (!from_disk) {
    if (auto s = BeginNew(); !s.ok()) return s;
  }
  // A source that restarts loses its sessions: begin anew, a few times.
  constexpr int kMaxRestarts = 3;
  for (int restarts = 0;; ++restarts) {
    result_.total_bytes = 0;
    for (const auto& f : session_.files()) result_.total_bytes += f.size_bytes();
    result_.files = session_.files_size();
    spdlog::info("clone: from {} at GTID {}: {} files, {} bytes", req_.source,
                 GtidFromProto(session_.gtid()).ToString(), result_.files, result_.total_bytes);
    absl::Status s;
    for (const auto& f : session_.files()) {
      s = FetchFile(f);
      if (!s.ok()) break;
    }
    if (s.ok()) break;
    if (absl::IsNotFound(s) && restarts < kMaxRestarts) {
      spdlog::warn("clone: the source no longer has session {} ({}); starting anew",
                   session_.session_id(), std::string(s.message()));
      if (auto b = BeginNew(); !b.ok()) return b;
      continue;
    }
    return s;
  }
  FinishSession();
  result_.gtid = GtidFromProto(session_.gtid());
  result_.source_primary = session_.source_primary();
  // The staged state must itself say it holds exactly that GTID. If not,
  // the copy is useless: removed, so that the next run begins anew instead
  // of failing the same way on the same files (review s43a L3).
  // Only a copy proven wrong goes, not one a lack of file descriptors or
  // memory kept from being read (review s44a L3).
  auto staged = StateMachine::ReadAppliedGtid(staging_ / "db");
  if (!staged.ok() && !absl::IsDataLoss(staged.status()) && !absl::IsNotFound(staged.status()) &&
      !absl::IsInvalidArgument(staged.status())) {
    return staged.status();
  }
  if (!staged.ok() || *staged != result_.gtid) {
    std::error_code ec;
    fs::remove_all(staging_, ec);
    return absl::DataLossError(
        "clone from " + req_.source + ": the copied state " +
        (staged.ok() ? "is at " + staged->ToString()
                     : "cannot be read (" + std::string(staged.status().message()) + ")") +
        " but the source announced " + result_.gtid.ToString() +
        (ec ? "; removing the copy failed (" + ec.message() + "): remove " + staging_.string() +
                  " by hand"
            : "; the copy was removed, the next run begins anew"));
  }
  if (auto s = SyncDir(staging_ / "db"); !s.ok()) return s;
  std::error_code ec;
  fs::remove_all(staging_ / "binlog", ec);  // an earlier run's, before READY
  if (auto s = CreateCloneBinlog(staging_ / "binlog", req_.source, session_); !s.ok()) return s;
  if (auto s = SaveMasterInfo(staging_, MasterInfo{req_.source, req_.tls}); !s.ok()) return s;
  if (auto s = SyncDir(staging_); !s.ok()) return s;
  if (auto s = WriteFileAtomically(staging_ / kReadyFile, result_.gtid.ToString() + "\n");
      !s.ok()) {
    return s;
  }
  if (auto s = MoveIntoPlace(req_.data_dir, req_.source, result_.gtid); !s.ok()) return s;
  result_.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result_;
}

}  // namespace

absl::StatusOr<CloneResult> CloneInto(const CloneRequest& request) {
  if (auto s = ValidateHostPort(request.source); !s.ok()) {
    return absl::InvalidArgumentError("--clone-from: " + std::string(s.message()));
  }
  const fs::path& dir = request.data_dir;
  const fs::path staging = dir / kCloneStagingDir;
  std::error_code ec;
  if (auto s = CreatePrivateDirectory(dir); !s.ok()) return s;
  // An interrupted move: only renames remain.
  if (auto text = ReadFileToString(staging / kReadyFile); text.ok()) {
    auto session = ReadFileToString(staging / kSessionFile);
    std::string source;
    v1::BeginCloneResponse r;
    if (session.ok() && DecodeSession(*session, &source, &r)) {
      // The node then follows request.source: a copy of another node's
      // history must not be put in place under it (review s43a L2).
      if (source != request.source) {
        return absl::FailedPreconditionError(
            dir.string() + " holds a finished clone of " + source + " not yet moved into place, "
            "but --clone-from names " + request.source + ": start with --clone-from " + source +
            " to finish it, or move the directory aside");
      }
      spdlog::info("clone: finishing the interrupted clone from {} (moving it into place)", source);
      if (auto s = MoveIntoPlace(dir, source, GtidFromProto(r.gtid())); !s.ok()) return s;
      CloneResult done;
      done.gtid = GtidFromProto(r.gtid());
      done.source = source;
      done.resumed = true;
      return done;
    }
  }
  std::vector<std::string> held;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name == "relaykvd.lock" || name == kCloneStagingDir || name == kCloneDoneFile) continue;
    held.push_back(name);
  }
  if (ec) return absl::InternalError("cannot list " + dir.string() + ": " + ec.message());
  std::sort(held.begin(), held.end());
  if (!held.empty()) {
    // A restart with the same flags after a finished clone: open as is.
    if (auto done = ReadFileToString(dir / kCloneDoneFile);
        done.ok() && done->rfind("source=" + request.source + "\n", 0) == 0) {
      spdlog::info("clone: {} already holds a clone of {}; not cloning again", dir.string(),
                   request.source);
      // What a crash in the final removal left (clone.done says the clone
      // is complete); it would make every start without --clone-from
      // refuse the dir as an interrupted clone (review s43a L6).
      fs::remove_all(staging, ec);
      if (ec) return absl::InternalError("cannot remove " + staging.string() + ": " + ec.message());
      CloneResult r;
      r.source = request.source;
      r.already_cloned = true;
      return r;
    }
    std::string list;
    for (const auto& n : held) list += (list.empty() ? "" : ", ") + n;
    return absl::FailedPreconditionError(
        "refusing to clone into " + dir.string() + ": it is not empty (holds " + list +
        "); --clone-from needs an empty data dir (or one holding an interrupted clone, which it "
        "resumes). Stop the node, move the directory aside, and start again");
  }

  // Keepalive as every relaykv client: a source that vanishes or stops
  // answering (a dead host, a stopped process) fails the fetch in ~20 s,
  // which is then retried, instead of leaving Node::Open waiting forever.
  ChannelLimits limits;
  limits.max_message_bytes = kMaxGrpcMessageBytes;
  limits.keepalive_without_calls = true;
  grpc::ChannelArguments args = ClientChannelArguments(limits);
  auto credentials = MakeChannelCredentials(request.tls);
  if (!credentials.ok()) return credentials.status();
  auto channel = grpc::CreateCustomChannel(request.source, *credentials, args);
  Receiver receiver(request, v1::Clone::NewStub(channel));
  auto result = receiver.Run();
  if (!result.ok()) {
    spdlog::error("clone from {} failed: {} (start again with the same --clone-from to resume)",
                  request.source, std::string(result.status().message()));
  }
  return result;
}

}  // namespace relaykv
