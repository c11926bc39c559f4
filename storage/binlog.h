// Binlog: relaykv's append-only, segmented write-ahead log of events
// (format: binlog_format.h). The same class serves as a replica's relay log.
//
// Threads: every public method is thread-safe.
//
// Group commit. Commit() and AppendReplicated() queue a writer and block;
// CommitAsync() queues one and returns, to be called back.
// The writer at the head of the queue becomes the leader: it takes every
// writer queued so far, assigns seqs in queue order, writes the group with
// one pwrite and (per sync_binlog) one fdatasync, publishes the new end, and
// wakes its followers (each on its own semaphore, after dropping the lock,
// so they return without contending for it). Writers that arrive meanwhile
// queue behind and form the next group. So many concurrent committers share
// one fdatasync. A group whose first writer is async is led by the
// committer thread: under a load of async commits it writes group after
// group without any thread waking per commit, and the callers never wait
// on the disk.
//
// Preallocation. While every group is synced (sync_binlog=1, or the relay
// log's forced syncs), the active segment is extended with zeros ahead of
// the writes (kPreallocBytes at a time, not past max_binlog_size), so a group's
// fdatasync flushes data only: appending to a growing file makes every
// fdatasync also commit the size change to the filesystem journal, ~40%
// more per sync on ext4. Recovery drops the zeros after the last record;
// rotation cuts them off before sealing a segment. Each group ends with a
// kGroupEnd record, so recovery can tell the torn last write (whose sectors
// may land in any order in preallocated space) from damage to synced data.
//
// Visibility. Readers (BinlogReader, WaitForVisibleAfter, LastVisible) see
// an event only once its group is durable; when a group is not synced
// (sync_binlog=0, or N>1 between syncs) once it is written. With
// sync_binlog=1 nothing undurable is ever visible.
//
// Seek points. A reader positioned at a seq (NewReader) reads its segment
// from the nearest known record boundary at or before it, not from the
// header: one per kSeekStride bytes, noted by the leader for the groups it
// writes and by readers for segments an earlier run wrote. So positioning
// costs at most a stride of reading once a segment is known (review s43b
// F5: every wait_for_gtid check and Watch start read up to a whole 1 GiB
// segment). A wrong point cannot go unnoticed: the reader checks each
// event's seq.
//
// Errors. A group whose write fails (ENOSPC, EDQUOT, EIO) fails with that
// status; the part of it that reached the file is cut off and its seqs go to
// the next group, so writes work again once the cause is gone (space
// freed). A failed fdatasync poisons the binlog: that group and every later
// append fail with the same status (after a failed fsync the file's
// contents are unknown; restart and let recovery decide). A failure to
// create the next segment at rotation, or to put the new index in place
// when the old one is known to stay, is retried by a group 200 ms later or
// more (sealing a format 2 segment that is not full: 5 s later). Appends
// after Close() fail with FAILED_PRECONDITION.
//
// Lock order: index_mu_ before mu_.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "storage/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/event.pb.h"
#include "storage/binlog_observer.h"
#include "storage/binlog_segments.h"
#include "storage/binlog_truncate.h"
#include "storage/file.h"
#include "storage/gtid.h"
#include "storage/log_throttle.h"

namespace relaykv {

class BinlogReader;

struct BinlogOptions {
  std::filesystem::path dir;
  uint64_t max_binlog_size = 1ull << 30;  // rotate once a segment reaches this
  uint32_t sync_binlog = 1;               // fdatasync every N groups; 0 = never
  // Told each group's size and each fdatasync's latency (metrics); may be
  // null. Borrowed: must outlive the Binlog (binlog_observer.h).
  BinlogObserver* observer = nullptr;
  // Tests only: called by each group's leader, seqs assigned, before it
  // writes; a test holds a leader here to queue writers behind it.
  std::function<void()> before_group_write_for_testing;
};

struct SegmentInfo {
  std::string name;  // "binlog.000042"
  uint64_t first_seq = 0;
  uint64_t size_bytes = 0;  // visible bytes
};

struct BinlogStats {
  uint64_t groups = 0;  // group writes (one pwrite each)
  uint64_t syncs = 0;   // fdatasync calls on segment files
  uint64_t events = 0;  // events appended since Open
  // Since Open: groups whose write failed (nothing of them visible; a full
  // disk), and rotations that failed and were tried again later (the active
  // segment then grows past max_binlog_size). Each is logged too, throttled.
  uint64_t failed_groups = 0;
  uint64_t failed_rotations = 0;
};

class Binlog {
 public:
  // Opens (creating if needed) the binlog in options.dir and recovers it:
  // a torn tail is truncated and logged; corruption fails with DATA_LOSS
  // naming the file and offset.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Binlog>> Open(const BinlogOptions& options);
  ~Binlog();
  Binlog(const Binlog&) = delete;
  Binlog& operator=(const Binlog&) = delete;

  // Primary path. Assigns *event the next GTID (current epoch, next seq),
  // appends it in a group and returns once it is visible (durable under
  // sync_binlog=1). On error *event's GTID is meaningless.
  // `on_assigned(event)`, if given, runs on the leader's thread once the
  // GTID is assigned and before the event is encoded or visible to any
  // reader, outside the binlog's lock, for the writers of one group in seq
  // order and for the groups one after another. It may change the event's
  // mutations (a conditional write resolves its branch there; semi-sync
  // registers its waiter there), not its GTID.
  using Assigned = std::function<void(v1::Event& event)>;
  [[nodiscard]] absl::Status Commit(v1::Event* event, const Assigned& on_assigned = {});
  // Commit() without blocking: `done(status)` is called exactly once, when
  // the event is visible or its append failed, on the binlog's committer
  // thread, which writes every group whose first writer is async, and calls
  // back in seq order (or on this thread, before CommitAsync returns, if
  // the binlog is closed or failed: then with no seq, and perhaps before
  // earlier writers' callbacks). *event and *on_assigned (may be null) must stay valid until
  // `done`; `done` must not block for long (it holds up the next group).
  void CommitAsync(v1::Event* event, const Assigned* on_assigned,
                   std::function<void(absl::Status)> done);

  // Relay-log path. Appends events that already carry their GTIDs: the first
  // must have seq LastVisible().seq+1 (or the next one queued), seqs dense,
  // epochs never decreasing; otherwise INVALID_ARGUMENT and nothing is
  // written. `sync` forces an fdatasync of the group (sync_relay_log=1);
  // returns once the events are visible.
  [[nodiscard]] absl::Status AppendReplicated(std::span<const v1::Event> events, bool sync);
  // fdatasync of everything visible (a relay log written with sync=false
  // before its replica claims it durable). Returns once synced.
  [[nodiscard]] absl::Status SyncVisible();
  // Makes everything visible durable like SyncVisible(), but on the calling
  // thread without joining the group queue: for a RocksDB flush thread,
  // which must not wait behind a group whose callbacks may be stalled on a
  // RocksDB write waiting for that very flush. No I/O when every visible
  // group was synced already (sync_binlog=1). A failed fdatasync poisons
  // the binlog as a leader's does.
  [[nodiscard]] absl::Status SyncWritten() EXCLUDES(index_mu_, mu_);

  // Called by each group's leader, on its own thread with no binlog lock
  // held, once the group is visible and its followers are released: the
  // group's event payloads (as stored) in seq order from `first_seq` up to
  // `last`. Lets
  // a replication stream that is caught up send the group at once instead
  // of waking its sender thread. Set before the first append; the listener
  // must outlive every append.
  using GroupListener =
      std::function<void(uint64_t first_seq, const Gtid& last, std::span<const std::string> payloads)>;
  void set_group_listener(GroupListener listener) { group_listener_ = std::move(listener); }

  // The last visible event's GTID ({0,0} if none ever).
  Gtid LastVisible() const EXCLUDES(mu_);
  // The seq of the oldest event still in the binlog (after purges); equals
  // LastVisible().seq + 1 when the binlog holds no event.
  uint64_t FirstAvailableSeq() const EXCLUDES(mu_);
  // Where NewReader(seq) starts reading: the seq of the last seek point at
  // or before `seq` in its segment, else the first seq of the live segment
  // that holds (or will hold) it; 0 if `seq` was purged. A reader at or
  // after it (and before `seq`) reaches `seq` reading no more than
  // NewReader(seq) would.
  uint64_t ReadStartSeq(uint64_t seq) const EXCLUDES(mu_);
  // The GTID of the event just before FirstAvailableSeq() — purged, or
  // {0,0} if there was none — from the oldest segment's header, so a
  // history check at the purge boundary still has a GTID to compare.
  Gtid BeforeFirstAvailable() const EXCLUDES(mu_);
  // The same, and the server_id that wrote that event (0: unknown — no
  // event, or purged by a relaykv that did not record it), from
  // binlog.purged (binlog_format.h): equal GTIDs of two nodes that opened
  // one epoch are told apart at the purge boundary too.
  Gtid BeforeFirstAvailable(uint32_t* writer) const EXCLUDES(mu_);
  // A line of binlog.purged: a purged event's GTID and writer.
  struct PurgedWriter {
    Gtid at;
    uint32_t writer = 0;
  };
  // The epoch new Commit()s are stamped with; SetEpoch() raises it
  // (promotion). It never goes down.
  uint64_t epoch() const EXCLUDES(mu_);
  void SetEpoch(uint64_t epoch) EXCLUDES(mu_);

  // Blocks until an event with seq > `seq` is visible, `deadline` passes or
  // the binlog is closed; returns the last visible seq. No polling.
  uint64_t WaitForVisibleAfter(uint64_t seq, std::chrono::steady_clock::time_point deadline)
      EXCLUDES(mu_);
  // Blocks until the last visible seq reaches `want` — re-read at every
  // check, so a caller whose need is met elsewhere meanwhile (a replication
  // stream that a leader sent the group to itself) is not woken at all —
  // or `deadline` passes; CANCELLED once the binlog is closed. Returns the
  // last visible seq.
  absl::StatusOr<uint64_t> WaitUntilVisible(const std::atomic<uint64_t>& want,
                                            std::chrono::steady_clock::time_point deadline)
      EXCLUDES(mu_);

  // A reader positioned at `from_seq` (FirstAvailableSeq() <= from_seq <=
  // LastVisible().seq + 1). OUT_OF_RANGE if the event was purged or lies
  // beyond the end. The Binlog must outlive the reader.
  [[nodiscard]] absl::StatusOr<std::unique_ptr<BinlogReader>> NewReader(uint64_t from_seq);

  // Seek points are at least this far apart (see "Seek points").
  static constexpr uint64_t kSeekStride = 1 << 20;

  std::vector<SegmentInfo> Segments() const EXCLUDES(mu_);

  // Retention. Each removes whole segments from the oldest on, never the
  // active one, and never a segment holding any seq >= keep_from_seq (what
  // replicas or the state machine still need). Return how many were removed.
  //   PurgeTo: segments before `segment_name` (PURGE BINARY LOGS TO).
  //   PurgeUpToSeq: segments whose events all have seq < `seq`.
  //   PurgeOlderThan: segments last written before `cutoff`.
  [[nodiscard]] absl::StatusOr<int> PurgeTo(const std::string& segment_name,
                                            uint64_t keep_from_seq) EXCLUDES(index_mu_, mu_);
  [[nodiscard]] absl::StatusOr<int> PurgeUpToSeq(uint64_t seq, uint64_t keep_from_seq)
      EXCLUDES(index_mu_, mu_);
  [[nodiscard]] absl::StatusOr<int> PurgeOlderThan(std::filesystem::file_time_type cutoff,
                                                   uint64_t keep_from_seq)
      EXCLUDES(index_mu_, mu_);
  //   PurgeToTotalSize: oldest segments while all of them exceed `max_bytes`.
  [[nodiscard]] absl::StatusOr<int> PurgeToTotalSize(uint64_t max_bytes, uint64_t keep_from_seq)
      EXCLUDES(index_mu_, mu_);

  // Cuts the binlog in request.binlog_dir right after request.end, copying
  // the removed events to a quarantine file first; crash-safe, logged, and
  // refused when end is not in this history or the state machine applied
  // past it (binlog_truncate.h). Static: no Binlog may have the directory
  // open; Open() it afterwards.
  [[nodiscard]] static absl::StatusOr<TruncationReport> TruncateAfter(
      const TruncateRequest& request) {
    return TruncateBinlogAfter(request);
  }

  // Whether the last run published events before syncing them (sync_binlog
  // or sync_relay_log other than 1) and did not close cleanly (binlog_format.h,
  // binlog.unsynced): events a replica received may be gone from here, so
  // their GTIDs must not be reused. ForgetUnsyncedTail() (syncs what
  // recovery kept, then removes the marker — unless this run has published
  // unsynced groups of its own, whose marker it now is) once the node has
  // made that impossible (a new epoch, durably) or need not (a replica);
  // call it before any append. Until then the marker stays, clean close
  // included.
  bool unsynced_tail_at_open() const { return unsynced_tail_at_open_; }
  [[nodiscard]] absl::Status ForgetUnsyncedTail();

  void set_sync_binlog(uint32_t n) { sync_binlog_.store(n); }
  void set_max_binlog_size(uint64_t bytes) { max_binlog_size_.store(bytes); }
  BinlogStats stats() const;
  // OK, or why the binlog refuses every write until restart (a failed
  // fdatasync or rotation, whose outcome on disk is unknown).
  absl::Status WriteError() const EXCLUDES(mu_);
  const std::filesystem::path& dir() const { return dir_; }

  // Fails later appends, wakes every waiter. Idempotent; the destructor calls it.
  void Close() EXCLUDES(mu_);

 private:
  friend class BinlogReader;
  struct Writer;

  // What a reader may read of segment `number`: [header, end_offset).
  struct ReadLimit {
    bool purged = false;          // the segment is gone (purged)
    uint64_t end_offset = 0;      // visible bytes
    bool has_next = false;        // a later segment exists: this one is sealed
  };
  ReadLimit LimitFor(uint64_t number) const EXCLUDES(mu_);
  // Where a reader of `seq` starts: its segment and the seek point before
  // it (the header, at the segment's first seq, if none). `seq` must not
  // be purged.
  struct ReadStart {
    uint64_t number = 0;
    SegmentState::SeekPoint at;
  };
  ReadStart ReadStartFor(uint64_t seq) const REQUIRES(mu_);
  // The offset of the segment's last seek point (its header if none).
  static uint64_t LastSeekPoint(const SegmentState& segment);
  // A reader of segment `number` passed a record boundary: `offset`, where
  // the event `seq` (or a group end before it) begins. Kept if no seek
  // point lies within kSeekStride of it.
  void NoteSeekPoint(uint64_t number, uint64_t seq, uint64_t offset) EXCLUDES(mu_);

  Binlog(BinlogOptions options, RecoveredBinlog recovered, File active);

  // Queues `w`; a blocked writer returns its status, an async one OK (its
  // status goes to its callback).
  absl::Status Enqueue(Writer* w) EXCLUDES(mu_);
  // Writes the group at the head of writers_ (l locked on entry, unlocked
  // on return) and completes its writers; `self` is the calling writer, if
  // any (not released: it is running).
  void LeadGroup(std::unique_lock<std::mutex>& l, Writer* self) REQUIRES(mu_);
  static void Complete(const std::vector<Writer*>& writers, Writer* self);
  // The committer thread: leads the groups whose first writer is async, and
  // runs every async writer's callback (completions_).
  void CommitterLoop() EXCLUDES(mu_);
  // The committer (after a group it led, or woken by a blocked leader):
  // the callbacks queued so far, until none is left.
  void RunCompletions() EXCLUDES(mu_);
  // Leader only: write (and maybe sync) the group's encoded records. On
  // failure *sticky says whether the file's state is unknown (a failed
  // fdatasync, or a failed write that could not be cut off): then every
  // later append fails too. Otherwise the segment is as before the group.
  absl::Status WriteGroup(const std::string& records, bool sync, bool preallocate, bool* sticky);
  // active_.DataSync(), counted and timed for the observer; by the leader,
  // or under index_mu_ (SyncWritten, ForgetUnsyncedTail). Serialized, and
  // once one has failed every later one fails too: Linux reports a failed
  // writeback to one fdatasync only and marks the pages clean, so a second
  // sync would "succeed" without them (review s32).
  absl::Status SyncActive() EXCLUDES(sync_mu_);
  // Leader only: after a failed write, cuts the file back to active_size_.
  absl::Status UndoWrite(const absl::Status& failed, bool* sticky);
  // Leader only: zeros from `need` on, so the file reaches past `need`.
  absl::Status Preallocate(uint64_t need);
  // Leader only: cuts the file back to the last record.
  absl::Status DropPreallocated();
  // Leader only: binlog.unsynced, durably, before the first group of our own
  // events is published unsynced.
  absl::Status MarkUnsyncedTail();
  // Leader only, after a synced group (of our own under sync_binlog=1, or
  // one whose sync was asked for: a synced relay-log append, SyncVisible):
  // nothing visible is unsynced any more, so this run's marker goes (unless
  // one inherited from the last run still waits for ForgetUnsyncedTail),
  // and recovery judges later groups as synced ones again (review s31 L1,
  // s48a N7).
  void UnmarkUnsyncedTail();
  // Leader only: seal the active segment and start the next. *sticky as
  // for WriteGroup: not for a failure to create the next segment or to
  // write the index before it replaces the old one (review s37b 5).
  absl::Status Rotate(uint64_t next_first_seq, bool active_synced, bool* sticky) EXCLUDES(mu_);
  absl::Status WriteIndex(const std::vector<uint64_t>& numbers, bool* renamed = nullptr)
      REQUIRES(index_mu_);
  template <typename Pred>
  absl::StatusOr<int> PurgeWhile(uint64_t keep_from_seq, Pred removable)
      EXCLUDES(index_mu_, mu_);
  // Before a purge takes event `seq` (the newest it drops): its GTID and
  // writer. False if it cannot be read (logged: the purge goes on, and the
  // new boundary's writer is then unknown).
  bool ReadPurged(uint64_t seq, Gtid* gtid, uint32_t* writer) EXCLUDES(index_mu_, mu_);
  // Before a purge moves the boundary: binlog.purged rewritten to the
  // current boundary's line (if known: it stays until the index has moved,
  // so a crash in between leaves it known, review s45b L2), then `next`'s
  // (the purge's newest event, if read). Nothing else is kept: a line a
  // purge wrote before it crashed short of its index could, once a rejoin
  // truncation replaced that event with another node's, name the new
  // boundary's GTID with the wrong writer (review s45d). If that cannot be
  // written: the boundary's line alone, else the file removed (logged); an
  // error if none of these could be done: the purge must stop.
  absl::Status RewritePurged(const std::optional<PurgedWriter>& next, bool* recorded)
      REQUIRES(index_mu_);

  const std::filesystem::path dir_;
  const bool unsynced_tail_at_open_;
  std::atomic<uint32_t> sync_binlog_;
  std::atomic<uint64_t> max_binlog_size_;

  // Serializes rewrites of binlog.index (rotation vs purge).
  std::mutex index_mu_;
  std::mutex sync_mu_;  // after index_mu_; held around active_'s fdatasync
  absl::Status sync_error_ GUARDED_BY(sync_mu_);  // the first failed one's

  mutable std::mutex mu_;
  std::condition_variable visible_cv_;  // signalled when last_visible_ grows or on Close
  // WaitUntilVisible callers, each woken only once its `want` is visible.
  struct VisibleWaiter {
    const std::atomic<uint64_t>* want;
    std::condition_variable cv;
  };
  std::vector<VisibleWaiter*> visible_waiters_ GUARDED_BY(mu_);
  std::deque<Writer*> writers_ GUARDED_BY(mu_);  // front() is the leader
  std::vector<SegmentState> segments_ GUARDED_BY(mu_);  // live, oldest first; back() active
  uint64_t next_seq_ GUARDED_BY(mu_);    // seq the next queued event gets
  uint64_t epoch_ GUARDED_BY(mu_);
  Gtid last_visible_ GUARDED_BY(mu_);
  // binlog.purged: the newest purged events and who wrote them.
  std::vector<PurgedWriter> purged_ GUARDED_BY(mu_);
  // Every visible event up to this seq is durable (synced group, sealed
  // segment, or SyncWritten); recovery syncs the last segment at open.
  uint64_t synced_through_ GUARDED_BY(mu_);
  absl::Status error_ GUARDED_BY(mu_);   // sticky write/sync failure
  bool closed_ GUARDED_BY(mu_) = false;
  // Set by a leader that leaves an async writer at the head of the queue.
  bool committer_turn_ GUARDED_BY(mu_) = false;
  // The async writers of the groups done (written or failed), queued by
  // each group's leader in group order. Only the committer runs their
  // callbacks, one after the other: so they run in seq order even when a
  // blocked writer leads a group while the committer is still calling back
  // an earlier one, and the node decides each commit's wait point in seq
  // order (a SET of it relies on that; review s47d F1).
  std::deque<Writer*> completions_ GUARDED_BY(mu_);
  bool stop_committer_ GUARDED_BY(mu_) = false;
  std::condition_variable committer_cv_;

  // Touched only by the current leader (leadership is exclusive); except
  // that SyncWritten() syncs active_ under index_mu_, which Rotate() holds
  // while it replaces it.
  File active_;
  uint64_t active_size_ = 0;         // bytes written to the active segment
  uint32_t active_key_ = 0;          // its key: whitens its event payloads
  uint64_t allocated_end_ = 0;       // the active segment's file size (>= active_size_)
  uint32_t groups_since_sync_ = 0;
  // When a format 2 active segment is next tried to be sealed (Open).
  std::chrono::steady_clock::time_point next_seal_attempt_;
  // When a full segment is next tried to be rotated after a failed try:
  // each try costs syncs, and a full disk would have every group pay them.
  std::chrono::steady_clock::time_point next_rotation_attempt_;
  uint64_t failed_rotations_ = 0;  // since the last one that succeeded
  // A full disk fails every group (and every rotation): one line per 5 s.
  LogThrottle failed_group_log_{std::chrono::seconds(5)};
  LogThrottle failed_rotation_log_{std::chrono::seconds(5)};
  uint64_t failed_groups_ GUARDED_BY(mu_) = 0;  // since the last one written
  std::atomic<bool> unsynced_marked_{false};  // binlog.unsynced written by this run
  // The last run's binlog.unsynced, until ForgetUnsyncedTail().
  std::atomic<bool> inherited_marker_pending_{unsynced_tail_at_open_};
  // Serializes writing and removing binlog.unsynced (the leader's marking,
  // ForgetUnsyncedTail on the node's thread).
  std::mutex marker_mu_;
  std::string scratch_;              // the group's encoded records
  std::vector<std::string> payloads_;  // the group's event payloads, for group_listener_
  GroupListener group_listener_;
  const std::function<void()> before_group_write_for_testing_;
  BinlogObserver* const observer_;  // may be null; borrowed (BinlogOptions)

  std::atomic<uint64_t> stat_groups_{0};
  std::atomic<uint64_t> stat_syncs_{0};
  std::atomic<uint64_t> stat_events_{0};
  std::atomic<uint64_t> stat_failed_groups_{0};
  std::atomic<uint64_t> stat_failed_rotations_{0};
  std::thread committer_;  // last: starts once everything above is set up
};

}  // namespace relaykv
