#include "storage/binlog.h"

#include <fcntl.h>

#include <algorithm>
#include <optional>
#include <semaphore>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "spdlog/spdlog.h"
#include "storage/binlog_format.h"
#include "storage/binlog_reader.h"
#include "storage/record.h"
#include "storage/thread_name.h"

namespace relaykv {

namespace fs = std::filesystem;

namespace {
// The tail of a throttled log line (LogThrottle): how many like it were not logged.
std::string HeldBack(uint64_t held) {
  if (held == 0) return "";
  return "; " + std::to_string(held) + " more like it since the last such line";
}

// A new binlog is created as segment 1 (header fsynced, directory fsynced),
// then binlog.index. A crash in between leaves a segment that no index lists
// and that holds no event (events are written only once the index exists):
// nothing was ever committed here, so it is removed and the binlog created
// anew. Anything more is left for recovery to refuse.
absl::Status FinishInterruptedCreation(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir / binlog_format::kIndexFileName, ec) && !ec) {
    const fs::path first = dir / SegmentFileName(1);
    uint64_t segments = 0;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      uint64_t n = 0;
      if (ParseSegmentFileName(entry.path().filename().string(), &n)) ++segments;
    }
    if (!ec && segments == 1 && fs::exists(first, ec) &&
        fs::file_size(first, ec) <= binlog_format::kSegmentHeaderSize && !ec) {
      spdlog::warn("binlog: {} has no index and no event (its creation was interrupted); "
                   "creating the binlog anew",
                   first.string());
      fs::remove(first, ec);
      if (ec) return absl::InternalError("cannot remove " + first.string() + ": " + ec.message());
      return SyncDir(dir);
    }
  }
  return absl::OkStatus();
}

// Unlinks `path` and fsyncs its directory, so the removal survives a crash.
absl::Status RemoveFileDurably(const fs::path& path) {
  std::error_code ec;
  fs::remove(path, ec);
  if (ec) return absl::InternalError("cannot remove " + path.string() + ": " + ec.message());
  return SyncDir(path.parent_path());
}

// binlog.purged (binlog_format.h): the newest purged events' GTIDs and
// writers (one or two lines); empty if absent. Only a hint — a file that
// does not parse is logged and read as "writers unknown", as before the
// file existed.
std::vector<Binlog::PurgedWriter> ReadPurgedRecords(const fs::path& dir) {
  const fs::path path = dir / binlog_format::kPurgedFileName;
  auto exists = FileExists(path);
  if (exists.ok() && !*exists) return {};
  auto text = exists.ok() ? ReadFileToString(path) : absl::StatusOr<std::string>(exists.status());
  std::vector<Binlog::PurgedWriter> records;
  bool ok = text.ok() && !text->empty() && text->back() == '\n';
  for (size_t pos = 0; ok && pos < text->size();) {
    const size_t end = text->find('\n', pos);
    const std::vector<absl::string_view> fields =
        absl::StrSplit(absl::string_view(*text).substr(pos, end - pos), ' ');
    pos = end + 1;
    uint64_t seq = 0, epoch = 0, writer = 0;
    // A purge writes the boundary's line, then the newer one (RewritePurged).
    ok = records.size() < 2 && fields.size() == 3 && absl::SimpleAtoi(fields[0], &seq) &&
         absl::SimpleAtoi(fields[1], &epoch) && absl::SimpleAtoi(fields[2], &writer) &&
         std::all_of(fields.begin(), fields.end(),
                     [](absl::string_view f) {
                       return f.find_first_not_of("0123456789") == absl::string_view::npos;
                     }) &&
         seq > (records.empty() ? 0 : records.back().at.seq) &&
         epoch <= binlog_format::kMaxEpoch && writer <= UINT32_MAX;
    if (ok) records.push_back({Gtid{epoch, seq}, static_cast<uint32_t>(writer)});
  }
  if (ok) return records;
  spdlog::warn("binlog: {} does not hold one or two lines 'seq epoch server_id' ({}); who wrote "
               "the newest purged event is unknown",
               path.string(), text.ok() ? "'" + text->substr(0, 64) + "'" : text.status().ToString());
  return {};
}
}  // namespace

// A group stops taking writers past this many payload bytes, bounding the
// leader's buffer; the rest form the next group.
constexpr size_t kMaxGroupBytes = 8u << 20;
// How often a format 2 segment that could not be sealed is tried again.
constexpr std::chrono::seconds kSealRetry{5};
// How soon a rotation that failed without harm (binlog.h Rotate) is tried
// again: short, as the active segment grows past max_binlog_size meanwhile,
// but not after every group (review s37a F2).
constexpr std::chrono::milliseconds kRotationRetry{200};
// Zeros written ahead of the active segment's end at a time (see binlog.h).
constexpr uint64_t kPreallocBytes = 1u << 20;

// A thread waiting in Commit()/AppendReplicated(). Lives on its stack.
struct Binlog::Writer {
  enum class Sync { kPolicy, kForce, kNone };

  v1::Event* assign = nullptr;              // Commit(): GTID assigned by the leader
  const Assigned* on_assigned = nullptr;  // Commit()'s callback
  std::span<const v1::Event> replicated;    // AppendReplicated(): GTIDs preassigned
  Sync sync = Sync::kPolicy;
  // CommitAsync(): called instead of releasing `wake`, by whoever completes
  // the writer, which then deletes it (async writers live on the heap).
  std::function<void(absl::Status)> on_done;

  // Set by the leader under mu_ before it releases `wake`; the semaphore's
  // release/acquire orders them, so a woken writer reads them unlocked.
  bool done = false;
  absl::Status status;
  // Released once: when done, or when this writer is to lead the next
  // group. A semaphore rather than a condition variable so the leader can
  // wake its followers after dropping mu_: they return without touching mu_.
  std::binary_semaphore wake{0};

  size_t count() const { return assign != nullptr ? 1 : replicated.size(); }
  bool async() const { return on_done != nullptr; }
};

void Binlog::Complete(const std::vector<Writer*>& writers, Writer* self) {
  for (Writer* x : writers) {
    if (x->async()) {
      x->on_done(x->status);
      delete x;
    } else if (x != self) {
      // A released writer may return (and its Writer vanish) at once:
      // nothing touches it after this.
      x->wake.release();
    }
  }
}

absl::StatusOr<std::unique_ptr<Binlog>> Binlog::Open(const BinlogOptions& options) {
  if (auto s = FinishInterruptedCreation(options.dir); !s.ok()) return s;
  auto recovered = RecoverBinlogDir(
      options.dir, fs::exists(options.dir / binlog_format::kUnsyncedMarkerName));
  if (!recovered.ok()) return recovered.status();
  const SegmentState& active = recovered->segments.back();
  auto file = File::Open(options.dir / SegmentFileName(active.number), O_RDWR);
  if (!file.ok()) return file.status();
  std::unique_ptr<Binlog> b(new Binlog(options, *std::move(recovered), *std::move(file)));
  {
    std::vector<PurgedWriter> purged = ReadPurgedRecords(options.dir);
    std::lock_guard l(b->mu_);
    b->purged_ = std::move(purged);
  }
  if (b->active_key_ == 0) {
    // A format 2 segment (payloads as they are): sealed now, so that every
    // event written from here on is whitened (format 3), not only after the
    // next rotation. Recovery has just synced it.
    uint64_t next_seq;
    {
      std::lock_guard l(b->mu_);
      next_seq = b->next_seq_;
    }
    bool sticky = false;
    if (auto s = b->Rotate(next_seq, /*active_synced=*/true, &sticky); !s.ok()) {
      // A full or read-only disk must not keep the node from starting
      // (review s32-late F4): it appends to the format 2 segment, as
      // before, and seals it after the next group that succeeds. Only a
      // rotation whose outcome on disk is unknown fails the open.
      if (sticky) return s;
      spdlog::warn("binlog: could not seal the format 2 segment at open ({}); tried again after "
                   "the next group",
                   s.ToString());
    }
  }
  return b;
}

Binlog::Binlog(BinlogOptions options, RecoveredBinlog recovered, File active)
    : dir_(options.dir),
      unsynced_tail_at_open_(fs::exists(options.dir / binlog_format::kUnsyncedMarkerName)),
      sync_binlog_(options.sync_binlog),
      max_binlog_size_(options.max_binlog_size),
      segments_(std::move(recovered.segments)),
      next_seq_(recovered.next_seq),
      epoch_(std::max<uint64_t>(recovered.last.epoch, 1)),
      last_visible_(recovered.last),
      synced_through_(recovered.last.seq),
      active_(std::move(active)),
      active_size_(segments_.back().end_offset),
      active_key_(segments_.back().key),
      allocated_end_(active_size_),  // recovery cut the file at its last record
      before_group_write_for_testing_(options.before_group_write_for_testing),
      observer_(options.observer),
      committer_([this] {
        NameThisThread("rkv-committer");
        CommitterLoop();
      }) {}

Binlog::~Binlog() {
  Close();
  {
    std::lock_guard l(mu_);
    stop_committer_ = true;
  }
  committer_cv_.notify_all();
  committer_.join();
  // A clean close: what this run published unsynced is made durable, so
  // the next open has nothing to fear from it. (No leader is left: the
  // owner stopped appending before destroying us.)
  bool failed;
  {
    std::lock_guard l(mu_);
    failed = !error_.ok();
  }
  // Only a marker of this run's: one found at open stays until the node
  // has fenced it (ForgetUnsyncedTail), even if it closes before.
  if (unsynced_marked_ && !inherited_marker_pending_ && !failed && SyncActive().ok()) {
    if (auto s = RemoveFileDurably(dir_ / binlog_format::kUnsyncedMarkerName); !s.ok()) {
      spdlog::warn("binlog: {}", s.ToString());
    }
  }
}

absl::Status Binlog::MarkUnsyncedTail() {
  if (unsynced_marked_) return absl::OkStatus();
  std::lock_guard m(marker_mu_);
  auto s = WriteFileAtomically(dir_ / binlog_format::kUnsyncedMarkerName,
                               "events were published here before they were synced\n");
  if (s.ok()) unsynced_marked_ = true;
  return s;
}

void Binlog::UnmarkUnsyncedTail() {
  if (!unsynced_marked_) return;
  std::lock_guard m(marker_mu_);
  if (inherited_marker_pending_) return;  // ForgetUnsyncedTail's to remove
  const fs::path marker = dir_ / binlog_format::kUnsyncedMarkerName;
  std::error_code ec;
  fs::remove(marker, ec);
  if (ec) {
    spdlog::warn("binlog: cannot remove {}: {} (kept: the next recovery cuts at the first damage)",
                 marker.string(), ec.message());
    return;
  }
  // Gone from here on, durably or not: a later unsynced group must write
  // it again (review s33b F1), not trust an old write.
  unsynced_marked_ = false;
  if (auto s = SyncDir(dir_); !s.ok()) {
    spdlog::warn("binlog: {} (the removal of {} may not be durable: harmless)", s.ToString(),
                 marker.string());
  }
}

absl::Status Binlog::ForgetUnsyncedTail() {
  if (!unsynced_tail_at_open_) return absl::OkStatus();
  // Serialized with the leader's marking: a marker of this run written
  // meanwhile must not be removed here.
  std::lock_guard m(marker_mu_);
  if (!inherited_marker_pending_) return absl::OkStatus();
  if (!unsynced_marked_) {
    // What recovery kept may still sit only in the page cache (the last
    // run was killed, not powered off): durable first, then the marker can
    // go, so a later recovery judges these groups as synced ones. (Leaders
    // may be rotating: index_mu_ keeps active_ in place.)
    {
      std::lock_guard il(index_mu_);
      if (auto s = SyncActive(); !s.ok()) return s;
    }
    if (auto s = RemoveFileDurably(dir_ / binlog_format::kUnsyncedMarkerName); !s.ok()) return s;
  }
  // Else the file is this run's marker now: it stays while this run's
  // unsynced groups need it (UnmarkUnsyncedTail, the clean close).
  inherited_marker_pending_ = false;
  return absl::OkStatus();
}

void Binlog::CommitterLoop() {
  std::unique_lock l(mu_);
  for (;;) {
    // A turn handed over before the stop is still taken: it completes (or
    // fails, once closed) the async writers queued.
    committer_cv_.wait(
        l, [&] { return committer_turn_ || !completions_.empty() || stop_committer_; });
    if (!completions_.empty()) {  // a blocked leader's group's
      l.unlock();
      RunCompletions();
      l.lock();
      continue;
    }
    if (!committer_turn_) return;
    committer_turn_ = false;
    LeadGroup(l, nullptr);
    l.lock();
  }
}

void Binlog::Close() {
  std::lock_guard l(mu_);
  closed_ = true;
  visible_cv_.notify_all();
  for (VisibleWaiter* w : visible_waiters_) w->cv.notify_one();
}

absl::Status Binlog::Commit(v1::Event* event, const Assigned& on_assigned) {
  Writer w;
  w.assign = event;
  if (on_assigned) w.on_assigned = &on_assigned;
  return Enqueue(&w);
}

void Binlog::CommitAsync(v1::Event* event, const Assigned* on_assigned,
                         std::function<void(absl::Status)> done) {
  auto* w = new Writer;
  w->assign = event;
  w->on_assigned = on_assigned;
  w->on_done = std::move(done);
  Enqueue(w).IgnoreError();  // reported through on_done
}

absl::Status Binlog::AppendReplicated(std::span<const v1::Event> events, bool sync) {
  if (events.empty()) return absl::OkStatus();
  Writer w;
  w.replicated = events;
  w.sync = sync ? Writer::Sync::kForce : Writer::Sync::kNone;
  return Enqueue(&w);
}

absl::Status Binlog::SyncVisible() {
  Writer w;  // no events: its group only syncs
  w.sync = Writer::Sync::kForce;
  return Enqueue(&w);
}

absl::Status Binlog::SyncWritten() {
  uint64_t through;
  {
    std::lock_guard l(mu_);
    // Durable already (a binlog that refuses writes included): nothing to do.
    if (synced_through_ >= last_visible_.seq) return absl::OkStatus();
    if (!error_.ok()) return error_;
    through = last_visible_.seq;
  }
  // The events up to `through` are in the active segment, or in one sealed
  // since, which Rotate() synced before it let go of it.
  absl::Status s;
  {
    std::lock_guard il(index_mu_);
    s = SyncActive();
  }
  std::lock_guard l(mu_);
  if (s.ok()) {
    synced_through_ = std::max(synced_through_, through);
    return s;
  }
  if (error_.ok()) {
    error_ = absl::InternalError("binlog refuses writes until restart after: " +
                                 std::string(s.message()));
    spdlog::error("binlog: {} (syncing before a state machine flush; the binlog refuses writes "
                  "until restart)",
                  s.ToString());
  }
  return error_;
}

absl::Status Binlog::Enqueue(Writer* w) {
  std::unique_lock l(mu_);
  if (closed_ || !error_.ok()) {
    w->status = closed_ ? absl::FailedPreconditionError("binlog " + dir_.string() + " is closed")
                        : error_;
    l.unlock();
    const absl::Status s = w->status;
    Complete({w}, w);
    return s;
  }
  writers_.push_back(w);
  if (w->async()) {
    // Never written on the caller's thread (it may be a gRPC queue thread
    // that must go back to taking requests): the committer leads its group,
    // now if the binlog is idle, else after the group being written.
    if (w == writers_.front()) {
      committer_turn_ = true;
      committer_cv_.notify_one();
    }
    return absl::OkStatus();
  }
  if (w != writers_.front()) {
    l.unlock();
    w->wake.acquire();
    if (w->done) return w->status;  // our group was written by its leader
    l.lock();                       // else: we lead the next group
  }
  LeadGroup(l, w);
  return w->status;
}

void Binlog::LeadGroup(std::unique_lock<std::mutex>& l, Writer* self) {
  if (closed_ || !error_.ok()) {
    // A previous group failed (or Close() came): fail everyone queued.
    absl::Status s = closed_ ? absl::FailedPreconditionError("binlog " + dir_.string() + " is closed")
                             : error_;
    std::vector<Writer*> blocked;
    for (Writer* x : writers_) {
      x->status = s;
      x->done = true;
      if (x->async()) {
        completions_.push_back(x);
      } else {
        blocked.push_back(x);
      }
    }
    writers_.clear();
    const bool calls_back = !completions_.empty();
    l.unlock();
    Complete(blocked, self);
    if (self == nullptr) {
      RunCompletions();
    } else if (calls_back) {
      committer_cv_.notify_one();
    }
    return;
  }

  // This thread leads the group: the writers queued now, in order, up to
  // about kMaxGroupBytes (at least one).
  // Invariant: only the leader touches active_, active_size_, scratch_.
  std::vector<Writer*> group;
  size_t group_bytes = 0;
  for (Writer* x : writers_) {
    if (!group.empty() && group_bytes >= kMaxGroupBytes) break;
    group.push_back(x);
    if (x->assign != nullptr) {
      group_bytes += x->assign->ByteSizeLong();
    } else {
      for (const v1::Event& ev : x->replicated) group_bytes += ev.ByteSizeLong();
    }
  }
  scratch_.clear();
  uint64_t first_seq = next_seq_;
  uint64_t epoch = epoch_;
  bool sync = false;
  size_t events = 0;
  Gtid last = last_visible_;
  for (Writer* x : group) {
    if (x->assign != nullptr) {
      // The group's running epoch: a replicated event earlier in this group
      // may have raised it, and epochs never go down along the history.
      GtidToProto(Gtid{epoch, next_seq_}, x->assign->mutable_gtid());
      ++next_seq_;
    } else {
      // Preassigned GTIDs must continue the history exactly.
      uint64_t want = next_seq_;
      uint64_t e = epoch;
      for (const v1::Event& ev : x->replicated) {
        if (ev.gtid().epoch() > binlog_format::kMaxEpoch) {
          x->status = absl::InvalidArgumentError(
              "replicated event has gtid " + GtidFromProto(ev.gtid()).ToString() +
              ": its epoch is above " + std::to_string(binlog_format::kMaxEpoch) +
              ", the largest a binlog holds");
          break;
        }
        if (ev.gtid().seq() != want || ev.gtid().epoch() < e) {
          x->status = absl::InvalidArgumentError(
              "replicated event has gtid " + GtidFromProto(ev.gtid()).ToString() +
              " but the relay log expects seq " + std::to_string(want) + " with epoch >= " +
              std::to_string(e) + " (gap, duplicate or epoch going back)");
          break;
        }
        ++want;
        e = ev.gtid().epoch();
      }
      if (!x->status.ok()) continue;
      next_seq_ = want;
      epoch = std::max(epoch, e);
    }
    events += x->count();
    if (x->sync == Writer::Sync::kForce) sync = true;
  }
  const bool forced = sync;
  const uint64_t epoch_before = epoch_;
  epoch_ = std::max(epoch_, epoch);
  const uint64_t end_seq = next_seq_;  // group covers [first_seq, end_seq)
  // The group's seek points, published with it (readers note points only
  // below the visible end, so none lands inside the group meanwhile).
  uint64_t last_point = LastSeekPoint(segments_.back());
  std::vector<SegmentState::SeekPoint> points;
  l.unlock();

  // Seqs are assigned; nothing of the group is visible yet.
  for (Writer* x : group) {
    if (x->assign != nullptr && x->on_assigned != nullptr) (*x->on_assigned)(*x->assign);
  }

  if (before_group_write_for_testing_) before_group_write_for_testing_();
  // Encode outside the lock; writers queued meanwhile wait for the next group.
  payloads_.clear();
  auto encode = [&](const v1::Event& ev) {
    // One point a stride, inside a large group too (one AppendReplicated
    // call may hold 8 MiB).
    if (const uint64_t at = active_size_ + scratch_.size(); at >= last_point + kSeekStride) {
      points.push_back({ev.gtid().seq(), at});
      last_point = at;
    }
    std::string payload;
    ev.SerializeToString(&payload);
    // The group goes to active_size_ (WriteGroup), whitened for its segment.
    AppendEventRecord(&scratch_, payload, active_key_, active_size_);
    if (group_listener_) payloads_.push_back(std::move(payload));
    last = GtidFromProto(ev.gtid());
  };
  bool policy_sync = false;
  for (Writer* x : group) {
    if (!x->status.ok()) continue;
    if (x->assign != nullptr) {
      encode(*x->assign);
      if (x->sync == Writer::Sync::kPolicy) policy_sync = true;
    } else {
      for (const v1::Event& ev : x->replicated) encode(ev);
    }
  }
  if (events > 0) AppendGroupEnd(&scratch_, first_seq, last.seq);  // encoded: [first_seq, last.seq]
  if (policy_sync) {
    uint32_t n = sync_binlog_.load();
    if (n != 0 && ++groups_since_sync_ >= n) sync = true;
  }
  // Preallocated space only for a binlog whose every group is synced (see
  // binlog.h): not sync_binlog=N>1, where it would be cut and rewritten.
  const bool preallocate = sync && (forced || sync_binlog_.load() == 1);
  absl::Status status = absl::OkStatus();
  // Events about to be visible (and shipped, or ACKed) before they are synced.
  if (events > 0 && !sync) status = MarkUnsyncedTail();
  bool sticky = false;
  if (events > 0 && status.ok()) status = WriteGroup(scratch_, sync, preallocate, &sticky);
  if (events == 0 && forced && status.ok()) {
    status = SyncActive();  // SyncVisible(): earlier groups become durable
    sticky = !status.ok();
  }
  if (sync) groups_since_sync_ = 0;
  // Everything visible is durable now. The marker goes where that was
  // asked for (a replica's synced relay groups and the SyncVisible() that
  // makes its hello's position an ACK, under sync_relay_log=1; a stream
  // with 0 marks again), and under sync_binlog=1 (else a group of ours
  // would write it again a few groups later). A relay log kept lenient
  // here would cut ACKed, counted groups at their first damage instead of
  // refusing it (review s48a N7, s49a M1).
  if (status.ok() && sync && ((policy_sync && sync_binlog_.load() == 1) || forced)) {
    UnmarkUnsyncedTail();
  }

  // A format 2 segment left unsealed at open (binlog.cc Open) is sealed
  // after the next group that succeeds: its payloads are not whitened.
  const auto now = std::chrono::steady_clock::now();
  const bool seal = active_key_ == 0 && now >= next_seal_attempt_;
  const bool full = active_size_ >= max_binlog_size_.load() && now >= next_rotation_attempt_;
  bool rotate = status.ok() && (full || seal);
  l.lock();
  const bool published = status.ok() && events > 0;
  if (published) {
    // The group is written (and synced if `sync`): visible to readers.
    // They are woken below, after the direct send to replicas.
    last_visible_ = last;
    SegmentState& active = segments_.back();
    active.end_offset = active_size_;
    for (const SegmentState::SeekPoint& p : points) {
      if (p.offset >= LastSeekPoint(active) + kSeekStride) active.seek_points.push_back(p);
    }
    if (sync) synced_through_ = last.seq;
    if (failed_groups_ > 0) {  // the end of what the throttled lines hid
      spdlog::info("binlog: groups are written again from seq {}, after {} failed",
                   first_seq, failed_groups_);
      failed_groups_ = 0;
      failed_group_log_.Reset();
    }
  } else if (status.ok() && forced) {
    synced_through_ = last_visible_.seq;  // SyncVisible()
  } else if (!status.ok() && sticky) {
    // Later appends fail with INTERNAL, not the cause's code: retrying
    // (RESOURCE_EXHAUSTED, UNAVAILABLE) cannot help before a restart.
    error_ = absl::InternalError("binlog refuses writes until restart after: " +
                                 std::string(status.message()));
    spdlog::error("binlog: {} (seqs {}..{} not committed; the binlog refuses writes until restart)",
                  status.ToString(), first_seq, end_seq - 1);
  } else if (!status.ok()) {
    // Nothing of the group is on disk or visible: its seqs (and an epoch a
    // replicated event raised) go to the next group, so the history stays
    // dense. No other group has taken any since: leadership is exclusive.
    next_seq_ = first_seq;
    epoch_ = epoch_before;
    ++failed_groups_;
    stat_failed_groups_.fetch_add(1);
    if (uint64_t held = 0; failed_group_log_.ShouldLog(&held)) {
      spdlog::error("binlog: {} (seqs {}..{} not written; later writes are tried again){}",
                    status.ToString(), first_seq, end_seq - 1, HeldBack(held));
    }
  }
  l.unlock();

  if (rotate) {
    bool rotate_sticky = false;
    absl::Status r = Rotate(end_seq, sync, &rotate_sticky);
    if (r.ok() && failed_rotations_ > 0) {
      spdlog::info("binlog: rotated to a new segment from seq {}, after {} failed tries", end_seq,
                   failed_rotations_);
      failed_rotations_ = 0;
      failed_rotation_log_.Reset();
    } else if (!r.ok()) {
      // Tried again in a while, not after every group: each try costs
      // syncs (review s33b F2 for the seal of a format 2 segment).
      ++failed_rotations_;
      if (!rotate_sticky) stat_failed_rotations_.fetch_add(1);  // a sticky one: Binlog_error
      next_rotation_attempt_ = std::chrono::steady_clock::now() + kRotationRetry;
      if (active_key_ == 0) next_seal_attempt_ = std::chrono::steady_clock::now() + kSealRetry;
      if (uint64_t held = 0; rotate_sticky || failed_rotation_log_.ShouldLog(&held)) {
        spdlog::error("binlog: rotation failed: {}{}{}", r.ToString(),
                      rotate_sticky ? "; the binlog refuses writes until restart"
                                    : "; tried again in a while",
                      HeldBack(held));
      }
      if (rotate_sticky) {
        l.lock();
        error_ = absl::InternalError("binlog refuses writes until restart after: " +
                                     std::string(r.message()));
        l.unlock();
      }
    }
  }

  l.lock();
  // The async writers go to the committer (completions_), in group order:
  // from the unlock on, one may be called back and gone at any time.
  std::vector<Writer*> blocked;
  for (Writer* x : group) {
    if (x->status.ok()) x->status = status;
    x->done = true;
    writers_.pop_front();
    if (x->async()) {
      completions_.push_back(x);
    } else {
      blocked.push_back(x);
    }
  }
  const bool calls_back = !completions_.empty();
  // The next group's leader: a blocked writer leads it itself; async ones
  // have no thread of their own, so the committer does. Either way this
  // thread leads at most one group and returns to its caller.
  Writer* next = nullptr;
  if (!writers_.empty()) {
    if (writers_.front()->async()) {
      committer_turn_ = true;
      committer_cv_.notify_one();
    } else {
      next = writers_.front();
    }
  }
  stat_groups_.fetch_add(events > 0 ? 1 : 0);
  stat_events_.fetch_add(events);
  // Leader-only state belongs to the next leader from the unlock on: a
  // writer arriving at an empty queue leads at once.
  std::vector<std::string> payloads;
  if (status.ok()) payloads.swap(payloads_);
  l.unlock();
  // After the unlock, so woken writers need not wait for mu_. The blocked
  // first, then the replicas (the group's network leg starts before the
  // callbacks' work), then the async writers' callbacks.
  if (next != nullptr) next->wake.release();
  if (observer_ != nullptr && events > 0) observer_->OnGroup(events);
  Complete(blocked, self);
  if (!payloads.empty()) group_listener_(first_seq, last, payloads);
  // Only now: a replication stream's sender woken earlier could take the
  // stream first, and the group would wait for that thread to be scheduled
  // instead of going out from here. (last_visible_ was set under mu_, so a
  // reader that checked before is already waiting: no wake-up is lost.)
  if (published) {
    visible_cv_.notify_all();
    std::lock_guard g(mu_);
    for (VisibleWaiter* w : visible_waiters_) {
      if (last_visible_.seq >= w->want->load()) w->cv.notify_one();
    }
  }
  // The committer calls back now, after this group's network leg has
  // started; a blocked leader leaves them to it (which may call them back
  // before this thread has sent the group: no ordering depends on that).
  if (self == nullptr) {
    RunCompletions();
  } else if (calls_back) {
    committer_cv_.notify_one();
  }
}

void Binlog::RunCompletions() {
  std::unique_lock l(mu_);
  while (!completions_.empty()) {
    std::vector<Writer*> batch(completions_.begin(), completions_.end());
    completions_.clear();
    l.unlock();
    Complete(batch, nullptr);
    l.lock();
  }
}

absl::Status Binlog::Preallocate(uint64_t need) {
  // Not past where the segment rotates: no zeros to write and cut off again.
  const uint64_t end = std::min(need + kPreallocBytes, std::max(need, max_binlog_size_.load()));
  if (end > need) {
    const std::string zeros(end - need, '\0');
    if (auto s = active_.WriteAt(need, zeros); !s.ok()) return s;
  }
  allocated_end_ = end;
  return absl::OkStatus();
}

absl::Status Binlog::DropPreallocated() {
  if (allocated_end_ == active_size_) return absl::OkStatus();
  if (auto s = active_.Truncate(active_size_); !s.ok()) return s;
  allocated_end_ = active_size_;
  return absl::OkStatus();
}

absl::Status Binlog::WriteGroup(const std::string& records, bool sync, bool preallocate,
                                bool* sticky) {
  *sticky = false;
  const uint64_t end = active_size_ + records.size();
  absl::Status s;
  if (preallocate) {
    // The first sync after this carries the new size; the ones after it don't.
    if (end > allocated_end_) s = Preallocate(end);
  } else {
    // Unsynced groups only append: in preallocated space their sectors could
    // reach the disk in any order across groups, leaving a hole in a group
    // that later groups follow, which recovery must refuse as damage.
    s = DropPreallocated();
  }
  if (s.ok()) s = active_.WriteAt(active_size_, records);
  if (!s.ok()) return UndoWrite(s, sticky);
  active_size_ = end;
  allocated_end_ = std::max(allocated_end_, end);
  if (sync) {
    // After a failed fdatasync what the disk holds is unknown (the kernel
    // may have dropped the dirty pages): only a restart's recovery can tell.
    if (s = SyncActive(); !s.ok()) {
      *sticky = true;
      // Those pages may be marked clean yet never written: a restart
      // without a reboot would find this group whole in the page cache and
      // publish it though no disk holds it (review s31 L4). It was never
      // visible, so it goes (best effort: if this fails too, recovery
      // decides, as before).
      const uint64_t begin = end - records.size();
      if (auto t = active_.Truncate(begin); t.ok()) {
        active_size_ = begin;
        allocated_end_ = begin;
      } else {
        spdlog::error("binlog: could not cut off the group whose fdatasync failed: {}", t.ToString());
      }
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status Binlog::SyncActive() {
  std::lock_guard sl(sync_mu_);
  if (!sync_error_.ok()) return sync_error_;
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = active_.DataSync();
  if (!s.ok()) {
    sync_error_ = s;
    return s;
  }
  stat_syncs_.fetch_add(1);
  if (observer_ != nullptr) observer_->OnSync(std::chrono::steady_clock::now() - start);
  return s;
}

absl::Status Binlog::UndoWrite(const absl::Status& failed, bool* sticky) {
  // A write that failed (ENOSPC, EDQUOT, EIO) left at most part of the group
  // past active_size_, never visible. Cutting it off (and making the cut
  // durable) leaves the segment as it was before the group, so later groups
  // can be written once the cause is gone. Truncating frees space: it works
  // on a full disk.
  absl::Status cut = active_.Truncate(active_size_);
  if (cut.ok()) cut = SyncActive();
  if (!cut.ok()) {
    *sticky = true;
    return absl::Status(failed.code(), std::string(failed.message()) +
                                           "; and the partial group could not be cut off: " +
                                           std::string(cut.message()));
  }
  allocated_end_ = active_size_;
  return failed;
}

absl::Status Binlog::Rotate(uint64_t next_first_seq, bool active_synced, bool* sticky) {
  // A sealed segment ends at its last record (readers and recovery take its
  // size as its end) and is durable. A failure here leaves the file's state
  // unknown; one in creating the next segment or in writing the index
  // before it replaces the old one leaves the active segment as it was
  // (recovery removes an unlisted new file), so a group tries again later
  // (kRotationRetry).
  *sticky = true;
  if (allocated_end_ > active_size_) {
    if (auto s = DropPreallocated(); !s.ok()) return s;
    active_synced = false;  // the new size must be durable too
  }
  if (!active_synced) {
    if (auto s = SyncActive(); !s.ok()) return s;
    // Only the leader rotates, after its group: all that is visible is in
    // the file just synced, so SyncWritten() need not sync it again.
    std::lock_guard l(mu_);
    synced_through_ = last_visible_.seq;
  }
  *sticky = false;
  std::lock_guard il(index_mu_);
  uint64_t number;
  uint64_t epoch;
  std::vector<uint64_t> numbers;
  {
    std::lock_guard l(mu_);
    number = segments_.back().number + 1;
    epoch = last_visible_.epoch;
    for (const SegmentState& s : segments_) numbers.push_back(s.number);
  }
  const uint32_t key = NewSegmentKey();
  auto file = CreateSegment(dir_, number, next_first_seq, epoch, key);
  if (!file.ok()) return file.status();
  numbers.push_back(number);
  // A failure whose outcome is unknown — a rename that may have happened,
  // or a directory not synced after it — is sticky: a restart may or may
  // not list the new segment, and would start the next events at
  // next_first_seq while we kept writing them into this one. One that left
  // the index as it was (a full disk writing binlog.index.tmp, or refusing
  // the rename) is not: the new file is unlisted, recovery removes it, and
  // a group tries again later.
  bool renamed = false;
  if (auto s = WriteIndex(numbers, &renamed); !s.ok()) {
    *sticky = renamed;
    return s;
  }
  active_ = *std::move(file);
  active_key_ = key;
  active_size_ = binlog_format::kSegmentHeaderSize;
  allocated_end_ = active_size_;
  std::lock_guard l(mu_);
  segments_.push_back({number, next_first_seq, active_size_, epoch, key, {}});
  return absl::OkStatus();
}

absl::Status Binlog::WriteIndex(const std::vector<uint64_t>& numbers, bool* renamed) {
  return WriteBinlogIndex(dir_, numbers, renamed);
}

Gtid Binlog::LastVisible() const {
  std::lock_guard l(mu_);
  return last_visible_;
}

uint64_t Binlog::FirstAvailableSeq() const {
  std::lock_guard l(mu_);
  return segments_.front().first_seq;
}

uint64_t Binlog::LastSeekPoint(const SegmentState& segment) {
  return segment.seek_points.empty() ? binlog_format::kSegmentHeaderSize
                                     : segment.seek_points.back().offset;
}

Binlog::ReadStart Binlog::ReadStartFor(uint64_t seq) const {
  // The last segment whose first_seq <= seq holds it...
  auto it = std::upper_bound(segments_.begin(), segments_.end(), seq,
                             [](uint64_t s, const SegmentState& seg) { return s < seg.first_seq; });
  const SegmentState& segment = *std::prev(it);
  ReadStart start{segment.number, {segment.first_seq, binlog_format::kSegmentHeaderSize}};
  // ...and its last seek point at or before it, if any.
  auto point = std::upper_bound(
      segment.seek_points.begin(), segment.seek_points.end(), seq,
      [](uint64_t s, const SegmentState::SeekPoint& p) { return s < p.seq; });
  if (point != segment.seek_points.begin()) start.at = *std::prev(point);
  return start;
}

uint64_t Binlog::ReadStartSeq(uint64_t seq) const {
  std::lock_guard l(mu_);
  if (seq < segments_.front().first_seq) return 0;
  return ReadStartFor(seq).at.seq;
}

Gtid Binlog::BeforeFirstAvailable() const {
  uint32_t writer = 0;
  return BeforeFirstAvailable(&writer);
}

Gtid Binlog::BeforeFirstAvailable(uint32_t* writer) const {
  std::lock_guard l(mu_);
  const SegmentState& first = segments_.front();
  *writer = 0;
  if (first.first_seq <= 1) return Gtid{};
  const Gtid before{first.prev_epoch, first.first_seq - 1};
  for (const PurgedWriter& p : purged_) {
    if (p.at == before) *writer = p.writer;
  }
  return before;
}

bool Binlog::ReadPurged(uint64_t seq, Gtid* gtid, uint32_t* writer) {
  auto event = ReadEventAt(*this, seq);
  if (!event.ok()) {
    spdlog::warn("binlog: cannot read event seq {} before purging it ({}); who wrote it is not "
                 "recorded",
                 seq, event.status().ToString());
    return false;
  }
  if (!event->has_value()) return false;  // a purge running meanwhile took it: it records
  *gtid = GtidFromProto((*event)->gtid());
  *writer = (*event)->server_id();
  return true;
}

absl::Status Binlog::RewritePurged(const std::optional<PurgedWriter>& next, bool* recorded) {
  const auto line = [](const PurgedWriter& p) {
    return std::to_string(p.at.seq) + " " + std::to_string(p.at.epoch) + " " +
           std::to_string(p.writer) + "\n";
  };
  const fs::path path = dir_ / binlog_format::kPurgedFileName;
  *recorded = false;
  std::string current;
  uint32_t current_writer = 0;
  const Gtid boundary = BeforeFirstAvailable(&current_writer);
  if (current_writer != 0) current = line({boundary, current_writer});
  // What is kept, most first, down to nothing (a file that cannot be
  // written may still be removed: a full disk must not stop purges).
  std::vector<std::string> choices;
  if (next) choices.push_back(current + line(*next));
  if (!current.empty()) choices.push_back(current);
  choices.push_back("");
  std::string errors;
  for (size_t i = 0; i < choices.size(); ++i) {
    const absl::Status s =
        choices[i].empty() ? RemoveFileDurably(path) : WriteFileAtomically(path, choices[i]);
    if (s.ok()) {
      *recorded = next.has_value() && i == 0;
      if (i > 0) {
        spdlog::warn("binlog: cannot record who wrote purged event {} in {} ({}); {}; a history "
                     "check at the purge boundary cannot compare writers",
                     next ? next->at.ToString() : boundary.ToString(),
                     binlog_format::kPurgedFileName, errors,
                     choices[i].empty() ? "removed it" : "kept the current boundary's line");
      }
      return s;
    }
    errors += (errors.empty() ? "" : "; ") + s.ToString();
  }
  return absl::InternalError("binlog: purge refused: cannot rewrite or remove " + path.string() +
                             " (" + errors +
                             "), whose lines could name the wrong writer of the event the purge "
                             "would leave at its boundary; fix the binlog directory "
                             "(permissions, a file system error), then purge again");
}

uint64_t Binlog::epoch() const {
  std::lock_guard l(mu_);
  return epoch_;
}

void Binlog::SetEpoch(uint64_t epoch) {
  std::lock_guard l(mu_);
  epoch_ = std::max(epoch_, epoch);
}

uint64_t Binlog::WaitForVisibleAfter(uint64_t seq, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock l(mu_);
  visible_cv_.wait_until(l, deadline, [&] { return closed_ || last_visible_.seq > seq; });
  return last_visible_.seq;
}

absl::StatusOr<uint64_t> Binlog::WaitUntilVisible(const std::atomic<uint64_t>& want,
                                                  std::chrono::steady_clock::time_point deadline) {
  std::unique_lock l(mu_);
  VisibleWaiter w{&want, {}};
  visible_waiters_.push_back(&w);
  w.cv.wait_until(l, deadline, [&] { return closed_ || last_visible_.seq >= want.load(); });
  std::erase(visible_waiters_, &w);
  if (closed_) return absl::CancelledError("binlog " + dir_.string() + " was closed");
  return last_visible_.seq;
}

BinlogStats Binlog::stats() const {
  return {stat_groups_.load(), stat_syncs_.load(), stat_events_.load(),
          stat_failed_groups_.load(), stat_failed_rotations_.load()};
}

absl::Status Binlog::WriteError() const {
  std::lock_guard l(mu_);
  return error_;
}

std::vector<SegmentInfo> Binlog::Segments() const {
  std::lock_guard l(mu_);
  std::vector<SegmentInfo> out;
  for (const SegmentState& s : segments_) {
    out.push_back({SegmentFileName(s.number), s.first_seq, s.end_offset});
  }
  return out;
}

void Binlog::NoteSeekPoint(uint64_t number, uint64_t seq, uint64_t offset) {
  std::lock_guard l(mu_);
  if (segments_.empty() || number < segments_.front().number) return;  // purged
  const size_t i = number - segments_.front().number;
  if (i >= segments_.size()) return;
  std::vector<SegmentState::SeekPoint>& points = segments_[i].seek_points;
  auto at = std::lower_bound(
      points.begin(), points.end(), offset,
      [](const SegmentState::SeekPoint& p, uint64_t o) { return p.offset < o; });
  const uint64_t before = at == points.begin() ? binlog_format::kSegmentHeaderSize
                                               : std::prev(at)->offset;
  if (offset < before + kSeekStride) return;
  if (at != points.end() && at->offset < offset + kSeekStride) return;
  points.insert(at, {seq, offset});
}

Binlog::ReadLimit Binlog::LimitFor(uint64_t number) const {
  std::lock_guard l(mu_);
  ReadLimit limit;
  if (segments_.empty() || number < segments_.front().number) {
    limit.purged = true;
    return limit;
  }
  size_t i = number - segments_.front().number;
  if (i >= segments_.size()) return limit;  // not created yet: nothing to read
  limit.end_offset = segments_[i].end_offset;
  limit.has_next = i + 1 < segments_.size();
  return limit;
}

absl::StatusOr<std::unique_ptr<BinlogReader>> Binlog::NewReader(uint64_t from_seq) {
  ReadStart start;
  {
    std::lock_guard l(mu_);
    if (from_seq < segments_.front().first_seq || from_seq > last_visible_.seq + 1) {
      return absl::OutOfRangeError(
          "binlog " + dir_.string() + " has seqs [" + std::to_string(segments_.front().first_seq) +
          ", " + std::to_string(last_visible_.seq + 1) + "); seq " + std::to_string(from_seq) +
          (from_seq < segments_.front().first_seq ? " was purged" : " is beyond its end"));
    }
    start = ReadStartFor(from_seq);
  }
  std::unique_ptr<BinlogReader> reader(
      new BinlogReader(this, start.number, File(), binlog_format::kSegmentHeaderSize, 0));
  if (auto s = reader->OpenSegment(start.number); !s.ok()) return s;
  if (start.at.offset != binlog_format::kSegmentHeaderSize) reader->Seek(start.at.offset, start.at.seq);
  if (auto s = reader->SkipTo(from_seq); !s.ok()) return s;
  return reader;
}

template <typename Pred>
absl::StatusOr<int> Binlog::PurgeWhile(uint64_t keep_from_seq, Pred removable) {
  // Which segments go, none past segment `up_to` (`removable` is copied:
  // each plan starts afresh); returns the first seq kept, 0 if none goes.
  const auto plan = [&](Pred removable_now, uint64_t up_to, std::vector<uint64_t>* keep,
                        std::vector<uint64_t>* drop) {
    std::lock_guard l(mu_);
    for (size_t i = 0; i < segments_.size(); ++i) {
      const SegmentState& s = segments_[i];
      // Never the active segment; never one holding a seq >= keep_from_seq;
      // only a prefix (the log stays contiguous).
      bool can = drop->size() == i && i + 1 < segments_.size() && s.number <= up_to &&
                 segments_[i + 1].first_seq <= keep_from_seq &&
                 removable_now(s, segments_[i + 1]);
      (can ? drop : keep)->push_back(s.number);
    }
    return drop->empty() ? uint64_t{0} : segments_[drop->size()].first_seq;
  };
  std::vector<uint64_t> keep;
  std::vector<uint64_t> drop;
  // Who wrote the newest event the purge takes is read before index_mu_:
  // a segment an earlier run sealed has no seek points, and reading it
  // whole under index_mu_ would hold rotations, and so commits, back
  // (review s45b M1). Recorded only if the plan still ends there.
  const uint64_t planned = plan(removable, UINT64_MAX, &keep, &drop);
  if (planned == 0) return 0;
  // The second plan takes no segment the first did not (one rotated in
  // meanwhile, the active one then: review s45c L2).
  const uint64_t last_planned = drop.back();
  Gtid purged;
  uint32_t purged_writer = 0;
  // Only empty segments going leave the boundary where it is.
  const bool read =
      planned > FirstAvailableSeq() && ReadPurged(planned - 1, &purged, &purged_writer);
  std::lock_guard il(index_mu_);
  keep.clear();
  drop.clear();
  const uint64_t first_kept_seq = plan(removable, last_planned, &keep, &drop);
  if (first_kept_seq == 0) return 0;
  const bool moves = first_kept_seq != FirstAvailableSeq();
  // Before the index: a crash after this leaves a record whose new line
  // the boundary does not match yet (unused).
  bool recorded = false;
  if (moves) {
    std::optional<PurgedWriter> next;
    if (read && first_kept_seq == planned) next = PurgedWriter{purged, purged_writer};
    if (auto s = RewritePurged(next, &recorded); !s.ok()) return s;
  }
  // Index first: a crash after it leaves unlisted files that recovery removes.
  if (auto s = WriteIndex(keep); !s.ok()) return s;
  {
    std::lock_guard l(mu_);
    segments_.erase(segments_.begin(), segments_.begin() + static_cast<long>(drop.size()));
    if (recorded) {
      purged_ = {{purged, purged_writer}};
    } else if (moves) {
      purged_.clear();
    }
  }
  for (uint64_t n : drop) {
    std::error_code ec;
    fs::remove(dir_ / SegmentFileName(n), ec);
    if (ec) spdlog::warn("binlog: cannot remove purged {}: {}", SegmentFileName(n), ec.message());
  }
  spdlog::info("binlog: purged {} segment(s) up to {}; the binlog now starts at seq {}", drop.size(),
               SegmentFileName(drop.back()), first_kept_seq);
  return static_cast<int>(drop.size());
}

absl::StatusOr<int> Binlog::PurgeTo(const std::string& segment_name, uint64_t keep_from_seq) {
  uint64_t target = 0;
  if (!ParseSegmentFileName(segment_name, &target)) {
    return absl::InvalidArgumentError("'" + segment_name + "' is not a binlog file name");
  }
  {
    std::lock_guard l(mu_);
    if (target < segments_.front().number || target > segments_.back().number) {
      return absl::NotFoundError("binlog file '" + segment_name + "' is not in the index");
    }
  }
  return PurgeWhile(keep_from_seq,
                    [target](const SegmentState& s, const SegmentState&) { return s.number < target; });
}

absl::StatusOr<int> Binlog::PurgeUpToSeq(uint64_t seq, uint64_t keep_from_seq) {
  return PurgeWhile(keep_from_seq, [seq](const SegmentState&, const SegmentState& next) {
    return next.first_seq <= seq;  // every event of s has seq < next.first_seq
  });
}

absl::StatusOr<int> Binlog::PurgeToTotalSize(uint64_t max_bytes, uint64_t keep_from_seq) {
  // Counted by each plan of PurgeWhile (under mu_, a copy each) from the
  // segments it sees: a purge between its two plans is not counted twice
  // (review s45c L3).
  return PurgeWhile(keep_from_seq, [this, max_bytes, total = std::optional<uint64_t>()](
                                       const SegmentState& s, const SegmentState&) mutable {
    if (!total) {
      total = 0;
      for (const SegmentState& live : segments_) *total += live.end_offset;
    }
    if (*total <= max_bytes) return false;
    *total -= s.end_offset;
    return true;
  });
}

absl::StatusOr<int> Binlog::PurgeOlderThan(fs::file_time_type cutoff, uint64_t keep_from_seq) {
  return PurgeWhile(keep_from_seq, [this, cutoff](const SegmentState& s, const SegmentState&) {
    std::error_code ec;
    auto t = fs::last_write_time(dir_ / SegmentFileName(s.number), ec);
    return !ec && t < cutoff;
  });
}

}  // namespace relaykv
