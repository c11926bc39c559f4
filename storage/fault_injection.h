// FaultInjection: simulated power loss for tests (issue 14), in the spirit of
// LevelDB's fault-injection env and RocksDB's FaultInjectionTestFS. SIGKILL
// keeps the page cache, so only this catches a missing or misordered fsync.
//
// What it models. Once a registry is installed, File (storage/file.h) reports
// to it every open, write, truncate and fdatasync of a file in a tracked
// directory, and SyncDir() every directory fsync. The registry keeps:
//   - per file (identified at open, so a reused inode is a new file): its
//     durable image, the bytes and size as of its last successful
//     File::DataSync(), and the byte ranges written since;
//   - per tracked directory: its durable listing, name -> file, as of its
//     last successful SyncDir() (a file's own fdatasync does not make its
//     name durable).
// Unlinks and renames need no hook: the listings are read from the
// directory itself (at SyncDir() and at the cut), so an std::filesystem::
// remove() is modeled like any other name change.
//
// CutPower() is the instant the power goes: from then on every write,
// truncate, fdatasync, creating open, WriteFileAtomically() rename and
// directory fsync of a tracked path fails with INTERNAL ("the power is
// cut") and changes nothing on disk, so the code under test sees an I/O
// error and nothing more becomes durable. An fdatasync or directory fsync
// still running at the cut did not complete: it fails too, and what it
// would have made durable is not. CutPowerAfterOps(n) cuts by count instead,
// to walk a sequence through each of its crash points.
// ApplyPowerCut() then rewrites each tracked directory to a state the cut
// could have left: its durable listing (a file created, or renamed into
// place, since the last directory fsync disappears or reverts to the file the
// name had; an unlinked file comes back with its durable content), and every
// file its durable image plus, per TearMode, some of its unsynced 512-byte
// sectors (the size likewise either the durable one or the current one).
// Afterwards the power is back on and the new on-disk state counts as
// durable, so a test can cut again and again.
//
// What it does not model: a sector holding a value from an intermediate
// unsynced write (each unsynced sector is either the durable or the latest
// version); a subset of a directory's unsynced changes surviving (with
// keep_unsynced_names a directory keeps all of them or none); an unlinked
// file's unsynced data (it comes back durable only); unlinks and renames done
// outside File after the cut are not refused (they are undone by the cut
// unless keep_unsynced_names keeps them); files written outside File
// (std::ofstream, RocksDB's own files: RocksDB goes through its own Env,
// never File) -- such a file found in a tracked directory is counted in
// untracked_files() and has no durable content, and if it reuses the inode
// of an unlinked file that File made, it is taken for that file;
// subdirectories (a directory's own creation is never made durable);
// fsync errors other than the cut (EIO on one sync, then success:
// "fsyncgate").
//
// Shadow mode: power cuts of a real relaykvd process. The registry lives in
// the process, and a SIGKILL keeps the page cache, so a killed process has
// lost nothing. With StartShadow(dir) (relaykvd: the environment variable
// RELAYKV_FAULT_SHADOW=<dir>, see InstallShadowFromEnvironment) the registry
// also keeps what it knows durable ON DISK, in the append-only journal
// <dir>/journal, which a SIGKILL cannot take back (page cache):
//   - TrackDir(): the directory's path, files (content, inode) and listing;
//   - a file opened for writing (or found) in a tracked directory: its id
//     and inode (so that the names on disk can be matched to files later);
//   - each successful fdatasync of a tracked file: the size and the bytes
//     it made durable; each successful directory fsync: the durable listing.
// Each entry is appended, and the write(2) returned, before the fdatasync
// or fsync is reported successful, so anything the process acknowledged
// because of a sync is in the journal. An entry is CRC-checked: one cut
// short by the SIGKILL is ignored, like a sync the power cut interrupted.
// After the SIGKILL, ApplyShadowPowerCut(dir), in any process (no
// registry needed), rebuilds the durable state from the journal and rewrites
// the tracked directories exactly as ApplyPowerCut() would (same options,
// same model, same limits as above), then removes the journal: the process
// restarted on that data dir journals afresh, taking the disk as durable.
// relaykvd tracks its data dir (master.info, relaykvd-auto.cnf, relaykvd.addr,
// relaykvd.lock) and <data dir>/binlog (segments, binlog.index, the
// unsynced marker; a replica's relay log is its binlog). Not covered:
// RocksDB's <data dir>/db (a subdirectory, written through RocksDB's Env:
// it keeps what a SIGKILL keeps -- its memtable is lost, its SSTs and
// MANIFEST stay as RocksDB fsynced them or not) and the cut's own limits
// above. The journal grows with every synced byte (the baseline copies each
// tracked file once per start): a test tool, not for production.
//
// Threads: every method is thread-safe. The hooks are for storage/file.cc
// only. Install at most one registry at a time, before opening any File in a
// tracked directory (a File opened earlier is not tracked); destroy it only
// once no thread uses File on a tracked path any more.
//
// Cost when not installed: File's hooks do one relaxed load of a global
// pointer (and nothing at all for a File opened while none was installed).
//
// Errors: TrackDir NOT_FOUND/INTERNAL if the directory cannot be read;
// ApplyPowerCut INTERNAL naming the file it could not read or rewrite. In
// shadow mode a journal write that fails (ENOSPC...) makes every later
// fdatasync and directory fsync of a tracked path fail with INTERNAL naming
// the journal (the shadow would no longer tell the truth).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/thread_annotations.h"

namespace relaykv {

// Which unsynced sectors of a file reach the disk in ApplyPowerCut().
enum class TearMode {
  kNone,           // none: every file is exactly its durable image
  kPrefix,         // the unsynced sectors in file order up to a random one
  kRandomSectors,  // any random subset of them (disks reorder writes)
};

struct PowerCutOptions {
  uint64_t seed = 0;
  TearMode tear = TearMode::kRandomSectors;
  // Chance that a tracked directory keeps its current names (every unsynced
  // create, rename and unlink reached the journal) instead of reverting to
  // its durable listing. The files' contents are cut either way.
  double keep_unsynced_names = 0.0;
};

// What ApplyPowerCut() did (for test logs).
struct PowerCutReport {
  int files_changed = 0;     // files whose content differs from before the cut
  int sectors_landed = 0;    // unsynced sectors kept
  int sectors_lost = 0;      // unsynced sectors reverted to their durable bytes
  int names_removed = 0;     // unsynced creates/renames undone
  int names_restored = 0;    // unsynced unlinks/renames undone
  std::string ToString() const;
};

class FaultInjection {
 public:
  // Installs a new registry as the process's one; FAILED_PRECONDITION if one
  // is installed already. Destroying it uninstalls it.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<FaultInjection>> Install();
  ~FaultInjection();
  FaultInjection(const FaultInjection&) = delete;
  FaultInjection& operator=(const FaultInjection&) = delete;

  // Models `dir` (its regular files, not subdirectories); what is in it now
  // counts as durable.
  [[nodiscard]] absl::Status TrackDir(const std::filesystem::path& dir) EXCLUDES(power_mu_, mu_);

  // The power goes off now (see above). Waits for writes already running
  // (they happened before the cut); syncs running fail. Idempotent.
  void CutPower() EXCLUDES(power_mu_);
  bool power_is_cut() const { return power_cut_.load(); }
  // Arms a cut by count: the power goes off by itself once `ops` more
  // operations on tracked files (creating open, write, truncate, fdatasync,
  // WriteFileAtomically's rename, directory fsync) have started, so the
  // next one fails. Walks a sequence through every crash point: ops = 0, 1,
  // 2, ... until it completes.
  // A negative `ops` disarms it.
  void CutPowerAfterOps(int64_t ops) { ops_until_cut_.store(ops); }
  // The next `n` fdatasyncs of tracked files fail with EIO and what they
  // would have made durable is forgotten, as Linux marks the pages clean
  // after a failed writeback ("fsyncgate"): a later fdatasync succeeds
  // without making it durable, and a power cut takes it.
  void FailNextSyncs(int n) { failing_syncs_.store(n); }

  // Cuts the power if still on, rewrites every tracked directory to what the
  // cut could leave (seeded: the same options on the same history give the
  // same result), then powers back on with that state durable. Files of
  // tracked directories should be closed by then; a File still open is no
  // longer tracked.
  [[nodiscard]] absl::StatusOr<PowerCutReport> ApplyPowerCut(const PowerCutOptions& options)
      EXCLUDES(power_mu_, mu_);

  // Files found in a tracked directory that were not created through File.
  int untracked_files() const EXCLUDES(mu_);

  // --- Shadow mode (see above). ---
  // The environment variable that turns shadow mode on in relaykvd.
  static constexpr char kShadowEnv[] = "RELAYKV_FAULT_SHADOW";
  // Journals what becomes durable to <shadow_dir>/journal (created, or
  // truncated: an unapplied earlier journal is dropped). Call before
  // TrackDir(); FAILED_PRECONDITION otherwise or if already started.
  [[nodiscard]] absl::Status StartShadow(const std::filesystem::path& shadow_dir)
      EXCLUDES(mu_);
  // If $RELAYKV_FAULT_SHADOW names a directory: Install(), StartShadow() on
  // it, then create (if missing) and TrackDir() each of `dirs`. Null if the
  // variable is unset or empty (the normal case: no registry, no cost).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<FaultInjection>>
  InstallShadowFromEnvironment(const std::vector<std::filesystem::path>& dirs);
  // After the process that journaled to `shadow_dir` is gone (SIGKILL):
  // rewrites the directories it tracked to what a power cut at that moment
  // could leave (see ApplyPowerCut; seeded the same way), then removes the
  // journal. Needs no installed registry and never touches one.
  // NOT_FOUND if there is no journal (nothing started, or already applied);
  // INTERNAL naming a file it could not read or rewrite.
  [[nodiscard]] static absl::StatusOr<PowerCutReport> ApplyShadowPowerCut(
      const std::filesystem::path& shadow_dir, const PowerCutOptions& options);

  // --- Hooks for storage/file.cc only. `id` 0 means "not tracked". ---
  // Runs `op` (an open(2) for writing, which calls OnOpen() on success)
  // unless the power is cut and it would create or truncate a tracked file.
  template <typename Op>
  absl::Status GuardOpen(const std::filesystem::path& path, int flags, Op op) EXCLUDES(mu_) {
    std::shared_lock power(power_mu_);
    if (CreatesOrTruncates(flags) && InTrackedDir(path) && PowerFailsNow()) {
      return PowerCutError("create", path);
    }
    return op();
  }
  // Runs `op` (a rename(2) into `path`) unless the power is cut and `path`
  // is in a tracked directory.
  template <typename Op>
  absl::Status GuardRename(const std::filesystem::path& path, Op op) EXCLUDES(mu_) {
    std::shared_lock power(power_mu_);
    if (InTrackedDir(path) && PowerFailsNow()) return PowerCutError("rename to", path);
    return op();
  }
  // After a successful open(2) for writing: the file's id (0 if untracked).
  // `existed`: the path named a file just before the open.
  uint64_t OnOpen(const std::filesystem::path& path, int fd, int flags, bool existed)
      EXCLUDES(mu_);
  // Runs `op` (a pwrite/ftruncate) unless the power is cut, then notes the
  // bytes [begin, end) it may have changed.
  template <typename Op>
  absl::Status Mutate(uint64_t id, const std::filesystem::path& path, uint64_t begin,
                      uint64_t end, Op op) EXCLUDES(mu_) {
    std::shared_lock power(power_mu_);
    if (PowerFailsNow()) return PowerCutError("write", path);
    absl::Status s = op();
    NoteDirty(id, begin, end);
    return s;
  }
  // fdatasync(fd) and, on success, the file's unsynced bytes become durable.
  [[nodiscard]] absl::Status SyncFile(uint64_t id, int fd, const std::filesystem::path& path)
      EXCLUDES(mu_);
  // fsync of directory `dir` and, on success, its listing becomes durable.
  [[nodiscard]] absl::Status SyncDir(const std::filesystem::path& dir) EXCLUDES(mu_);

 private:
  using InodeKey = std::pair<dev_t, ino_t>;
  struct FileState;
  struct DirState {
    std::filesystem::path path;
    std::map<std::string, uint64_t> durable_names;  // name -> file id
    uint64_t listed_at = 0;  // durable_names' listing, in next_listing_ order
  };

  FaultInjection() = default;
  static absl::Status PowerCutError(std::string_view what, const std::filesystem::path& path);
  static bool CreatesOrTruncates(int flags);
  // Whether an operation starting now fails: the power is cut, or this is
  // the operation CutPowerAfterOps() cuts it before.
  bool PowerFailsNow() {
    if (ops_until_cut_.load() >= 0 && ops_until_cut_.fetch_sub(1) == 0) power_cut_.store(true);
    return power_cut_.load();
  }
  bool InTrackedDir(const std::filesystem::path& path) const EXCLUDES(mu_);
  void NoteDirty(uint64_t id, uint64_t begin, uint64_t end) EXCLUDES(mu_);
  // The id of the file at `inode` in directory `dir`, registering one found
  // there that File did not create (no durable content).
  uint64_t IdForInode(const InodeKey& inode, const InodeKey& dir) REQUIRES(mu_);
  uint64_t NewFile(const InodeKey& dir, std::string durable) REQUIRES(mu_);
  // Rewrites the tracked directories to a cut state (ApplyPowerCut's work
  // without powering back on).
  absl::StatusOr<PowerCutReport> RewriteToCutLocked(const PowerCutOptions& options)
      REQUIRES(mu_);
  // Shadow journal entries (no-ops without a shadow). A failed append is
  // kept in shadow_error_.
  void ShadowAppend(const std::string& body) REQUIRES(mu_);
  void ShadowNewFile(uint64_t id, const InodeKey& dir, const InodeKey& inode) REQUIRES(mu_);
  // Rebuilds the registry's state from a journal's entries (the intact
  // prefix). Returns the number of entries read.
  absl::StatusOr<int> ReplayJournalLocked(std::string_view journal) REQUIRES(mu_);
  // The regular files in `dir`: name -> inode.
  static absl::StatusOr<std::map<std::string, InodeKey>> List(const std::filesystem::path& dir);
  absl::Status TrackDirLocked(const std::filesystem::path& dir) REQUIRES(mu_);

  // Writes hold it shared for their whole operation, syncs while they take
  // their snapshot and while they record it (not during the fsync); CutPower
  // takes it exclusively, so a write is either before the cut or fails.
  // Lock order: a FileState's sync_mu, then power_mu_, then mu_.
  mutable std::shared_mutex power_mu_;
  std::atomic<bool> power_cut_{false};
  std::atomic<int64_t> ops_until_cut_{-1};  // CutPowerAfterOps(); -1: not armed
  std::atomic<int> failing_syncs_{0};       // FailNextSyncs()

  mutable std::mutex mu_;  // the maps below and each FileState's fields
  uint64_t next_id_ GUARDED_BY(mu_) = 1;
  // Orders directory listings, so that of two concurrent SyncDir() calls the
  // later listing wins.
  uint64_t next_listing_ GUARDED_BY(mu_) = 1;
  // shared: a SyncFile() running keeps its FileState alive while GC drops it.
  std::map<uint64_t, std::shared_ptr<FileState>> files_ GUARDED_BY(mu_);
  std::map<InodeKey, uint64_t> ids_by_inode_ GUARDED_BY(mu_);  // live files
  std::map<InodeKey, DirState> dirs_ GUARDED_BY(mu_);           // tracked dirs
  int untracked_files_ GUARDED_BY(mu_) = 0;
  // Shadow mode: the journal's fd (O_APPEND; -1 without a shadow), its path,
  // and the first append that failed (then every later sync fails).
  int shadow_fd_ GUARDED_BY(mu_) = -1;
  std::filesystem::path shadow_path_ GUARDED_BY(mu_);
  absl::Status shadow_error_ GUARDED_BY(mu_);
};

// The installed registry, or null. One relaxed atomic load.
FaultInjection* ActiveFaultInjection();

}  // namespace relaykv
