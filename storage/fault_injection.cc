#include "storage/fault_injection.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <set>
#include <system_error>

#include "storage/crc32c.h"
#include "storage/fault_injection_internal.h"
#include "storage/file.h"

namespace relaykv {

namespace fs = std::filesystem;
using namespace fault_internal;  // NOLINT: this file's own internals

namespace {

std::atomic<FaultInjection*> g_active{nullptr};

constexpr uint64_t kSector = 512;  // binlog_format::kSectorSize: what a disk writes whole
// Dirty ranges kept per file before they are merged into one.
constexpr size_t kMaxDirtyRanges = 32;

fs::path ParentOf(const fs::path& path) {
  return path.has_parent_path() ? path.parent_path() : fs::path(".");
}


absl::Status WriteAll(const fs::path& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("fault injection: cannot create", path, errno);
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return ErrnoError("fault injection: cannot write", path, err);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  ::close(fd);
  return absl::OkStatus();
}

// Sector `k` of `s` (shorter at the end, empty past it).
std::string_view SectorOf(const std::string& s, uint64_t k) {
  if (k * kSector >= s.size()) return {};
  return std::string_view(s).substr(k * kSector, kSector);
}

// What a power cut leaves of a file whose durable image is `durable` and
// whose latest (unsynced) content is `current`: see TearMode.
std::string CutContent(const std::string& durable, const std::string& current, TearMode mode,
                       std::mt19937_64& rng, PowerCutReport* report) {
  if (mode == TearMode::kNone || durable == current) return durable;
  const uint64_t sectors = (std::max(durable.size(), current.size()) + kSector - 1) / kSector;
  std::vector<uint64_t> unsynced;  // sectors whose durable and latest versions differ
  for (uint64_t k = 0; k < sectors; ++k) {
    if (SectorOf(durable, k) != SectorOf(current, k)) unsynced.push_back(k);
  }
  // Vary how much lands, so that "nothing", "everything" and the mixes in
  // between all come up often.
  double p = 0;
  switch (rng() % 4) {
    case 0: p = 0; break;
    case 1: p = 1; break;
    case 2: p = 0.5; break;
    default: p = std::uniform_real_distribution<double>(0, 1)(rng); break;
  }
  std::vector<bool> landed(unsynced.size());
  if (mode == TearMode::kPrefix) {
    const size_t n = static_cast<size_t>(p * static_cast<double>(unsynced.size()) + 0.5);
    for (size_t i = 0; i < n; ++i) landed[i] = true;
  } else {
    std::bernoulli_distribution coin(p);
    for (size_t i = 0; i < unsynced.size(); ++i) landed[i] = coin(rng);
  }
  // The size is metadata: either the durable one or the latest. A grown file
  // also reaches at least as far as its last landed sector (the data is
  // there, so the size that covers it was written too).
  uint64_t size = durable.size();
  if (current.size() > durable.size()) {
    for (size_t i = 0; i < unsynced.size(); ++i) {
      if (landed[i] && (unsynced[i] + 1) * kSector > durable.size()) {
        size = std::max<uint64_t>(size, std::min<uint64_t>((unsynced[i] + 1) * kSector,
                                                           current.size()));
      }
    }
  }
  if (current.size() != durable.size() && rng() % 2 == 0) size = current.size();
  std::string out = durable;
  out.resize(size, '\0');  // grown but not landed: zeros
  for (size_t i = 0; i < unsynced.size(); ++i) {
    const uint64_t begin = unsynced[i] * kSector;
    const uint64_t end = std::min<uint64_t>({begin + kSector, size, current.size()});
    if (landed[i]) {
      ++report->sectors_landed;
      if (begin < end) out.replace(begin, end - begin, current, begin, end - begin);
    } else {
      ++report->sectors_lost;
    }
  }
  return out;
}


}  // namespace

namespace fault_internal {

absl::StatusOr<std::string> ReadAll(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("fault injection: cannot open", path, errno);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return ErrnoError("fault injection: cannot read", path, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace fault_internal


std::string PowerCutReport::ToString() const {
  return "files changed " + std::to_string(files_changed) + ", unsynced sectors landed " +
         std::to_string(sectors_landed) + " lost " + std::to_string(sectors_lost) +
         ", names removed " + std::to_string(names_removed) + " restored " +
         std::to_string(names_restored);
}

FaultInjection* ActiveFaultInjection() { return g_active.load(std::memory_order_relaxed); }

absl::StatusOr<std::unique_ptr<FaultInjection>> FaultInjection::Install() {
  std::unique_ptr<FaultInjection> fi(new FaultInjection());
  FaultInjection* expected = nullptr;
  if (!g_active.compare_exchange_strong(expected, fi.get())) {
    return absl::FailedPreconditionError("a fault injection registry is installed already");
  }
  return fi;
}

FaultInjection::~FaultInjection() {
  FaultInjection* self = this;
  g_active.compare_exchange_strong(self, nullptr);
  std::lock_guard l(mu_);
  if (shadow_fd_ >= 0) ::close(shadow_fd_);
}

absl::Status FaultInjection::PowerCutError(std::string_view what, const fs::path& path) {
  return absl::InternalError("cannot " + std::string(what) + " " + path.string() +
                             ": the power is cut (fault injection)");
}

bool FaultInjection::CreatesOrTruncates(int flags) { return (flags & (O_CREAT | O_TRUNC)) != 0; }

bool FaultInjection::InTrackedDir(const fs::path& path) const {
  struct stat st;
  if (::stat(ParentOf(path).c_str(), &st) != 0) return false;
  std::lock_guard l(mu_);
  return dirs_.count({st.st_dev, st.st_ino}) != 0;
}

int FaultInjection::untracked_files() const {
  std::lock_guard l(mu_);
  return untracked_files_;
}

absl::StatusOr<std::map<std::string, FaultInjection::InodeKey>> FaultInjection::List(
    const fs::path& dir) {
  std::map<std::string, InodeKey> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    struct stat st;
    if (::lstat(entry.path().c_str(), &st) != 0) continue;  // removed meanwhile
    if (!S_ISREG(st.st_mode)) continue;
    names[entry.path().filename().string()] = {st.st_dev, st.st_ino};
  }
  if (ec) {
    return ec == std::errc::no_such_file_or_directory
               ? absl::NotFoundError("fault injection: cannot list " + dir.string())
               : absl::InternalError("fault injection: cannot list " + dir.string() + ": " +
                                     ec.message());
  }
  return names;
}

uint64_t FaultInjection::NewFile(const InodeKey& dir, std::string durable) {
  const uint64_t id = next_id_++;
  files_[id] = std::make_shared<FileState>(dir, std::move(durable));
  return id;
}

uint64_t FaultInjection::IdForInode(const InodeKey& inode, const InodeKey& dir) {
  if (auto it = ids_by_inode_.find(inode); it != ids_by_inode_.end() && files_.count(it->second)) {
    return it->second;
  }
  // Made without File (or before tracking began): nothing of it is known durable.
  ++untracked_files_;
  const uint64_t id = NewFile(dir, "");
  files_[id]->dirty.push_back({0, kToEnd});
  ids_by_inode_[inode] = id;
  ShadowNewFile(id, dir, inode);
  return id;
}

absl::Status FaultInjection::TrackDir(const fs::path& dir) {
  std::lock_guard l(mu_);
  return TrackDirLocked(dir);
}

absl::Status FaultInjection::TrackDirLocked(const fs::path& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return ErrnoError("fault injection: cannot track", dir, errno);
  const InodeKey key{st.st_dev, st.st_ino};
  auto names = List(dir);
  if (!names.ok()) return names.status();
  DirState state{dir, {}, next_listing_++};
  std::string entry;  // the journal's kTrack entry (shadow mode)
  if (shadow_fd_ >= 0) {
    entry.push_back(static_cast<char>(kTrack));
    PutU64(&entry, key.first);
    PutU64(&entry, key.second);
    PutBytes(&entry, fs::absolute(dir).string());
    PutU64(&entry, names->size());
  }
  for (const auto& [name, inode] : *names) {
    auto content = ReadAll(dir / name);
    if (!content.ok()) return content.status();
    if (shadow_fd_ >= 0) {
      PutBytes(&entry, name);
      PutU64(&entry, next_id_);  // the id NewFile() gives it
      PutU64(&entry, inode.first);
      PutU64(&entry, inode.second);
      PutBytes(&entry, *content);
    }
    const uint64_t id = NewFile(key, *std::move(content));
    ids_by_inode_[inode] = id;
    state.durable_names[name] = id;
  }
  dirs_[key] = std::move(state);
  if (shadow_fd_ >= 0) {
    ShadowAppend(entry);
    return shadow_error_;
  }
  return absl::OkStatus();
}

uint64_t FaultInjection::OnOpen(const fs::path& path, int fd, int flags, bool existed) {
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  struct stat dst;
  if (::stat(ParentOf(path).c_str(), &dst) != 0) return 0;
  const InodeKey dir{dst.st_dev, dst.st_ino};
  const InodeKey inode{st.st_dev, st.st_ino};
  std::lock_guard l(mu_);
  if (dirs_.count(dir) == 0) return 0;
  uint64_t id;
  if (!existed) {
    // A new file, even if its inode number was some unlinked file's.
    id = NewFile(dir, "");
    ids_by_inode_[inode] = id;
    ShadowNewFile(id, dir, inode);
  } else {
    id = IdForInode(inode, dir);
  }
  if ((flags & O_TRUNC) != 0) files_[id]->dirty.push_back({0, kToEnd});
  return id;
}

void FaultInjection::NoteDirty(uint64_t id, uint64_t begin, uint64_t end) {
  std::lock_guard l(mu_);
  auto it = files_.find(id);
  if (it == files_.end()) return;
  auto& dirty = it->second->dirty;
  dirty.push_back({begin, end});
  if (dirty.size() > kMaxDirtyRanges) {
    uint64_t lo = kToEnd, hi = 0;
    for (const auto& [b, e] : dirty) {
      lo = std::min(lo, b);
      hi = std::max(hi, e);
    }
    dirty.assign(1, {lo, hi});
  }
}

absl::Status FaultInjection::SyncFile(uint64_t id, int fd, const fs::path& path) {
  std::shared_ptr<FileState> f;
  {
    std::lock_guard l(mu_);
    if (auto it = files_.find(id); it != files_.end()) f = it->second;
  }
  if (f == nullptr) {  // no longer tracked (a power cut was applied since it was opened)
    if (::fdatasync(fd) != 0) return ErrnoError("cannot fdatasync", path, errno);
    return absl::OkStatus();
  }
  std::lock_guard sync(f->sync_mu);
  // What this fdatasync makes durable: the bytes and size as of its start,
  // taken before the cut or not at all.
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  std::vector<std::pair<uint64_t, std::string>> bytes;
  uint64_t size = 0;
  {
    std::shared_lock power(power_mu_);
    if (PowerFailsNow()) return PowerCutError("fdatasync", path);
    {
      std::lock_guard l(mu_);
      ranges.swap(f->dirty);
    }
    if (failing_syncs_.load() > 0 && failing_syncs_.fetch_sub(1) > 0) {
      return ErrnoError("cannot fdatasync", path, EIO);  // `ranges` forgotten
    }
    auto snapshot = [&]() -> absl::Status {
      struct stat st;
      if (::fstat(fd, &st) != 0) return ErrnoError("cannot stat", path, errno);
      size = static_cast<uint64_t>(st.st_size);
      if (ranges.empty()) return absl::OkStatus();
      // `fd` may be write-only: read the same open file through /proc.
      const std::string self = "/proc/self/fd/" + std::to_string(fd);
      int rfd = ::open(self.c_str(), O_RDONLY | O_CLOEXEC);
      if (rfd < 0) return ErrnoError("fault injection: cannot reopen", path, errno);
      for (const auto& [b, e] : ranges) {
        const uint64_t end = std::min(e, size);
        if (b >= end) continue;
        std::string data(end - b, '\0');
        ssize_t n = ::pread(rfd, data.data(), data.size(), static_cast<off_t>(b));
        if (n < 0) {
          const int err = errno;
          ::close(rfd);
          return ErrnoError("fault injection: cannot read", path, err);
        }
        data.resize(static_cast<size_t>(n));
        bytes.emplace_back(b, std::move(data));
      }
      ::close(rfd);
      return absl::OkStatus();
    };
    if (absl::Status s = snapshot(); !s.ok()) {
      std::lock_guard l(mu_);
      f->dirty.insert(f->dirty.end(), ranges.begin(), ranges.end());
      return s;
    }
  }
  // Without the power lock: a cut while the fdatasync runs means it did not
  // complete before the power went.
  const int rc = ::fdatasync(fd);
  const int err = errno;
  std::shared_lock power(power_mu_);
  std::lock_guard l(mu_);
  if (rc != 0 || power_cut_.load()) {
    f->dirty.insert(f->dirty.end(), ranges.begin(), ranges.end());
    return rc != 0 ? ErrnoError("cannot fdatasync", path, err) : PowerCutError("fdatasync", path);
  }
  f->durable.resize(size, '\0');
  for (const auto& [b, data] : bytes) f->durable.replace(b, data.size(), data);
  if (shadow_fd_ >= 0) {
    // In the journal before the caller hears of the sync (shadow mode).
    std::string entry(1, static_cast<char>(kSync));
    PutU64(&entry, id);
    PutU64(&entry, size);
    PutU64(&entry, bytes.size());
    for (const auto& [b, data] : bytes) {
      PutU64(&entry, b);
      PutBytes(&entry, data);
    }
    ShadowAppend(entry);
    return shadow_error_;
  }
  return absl::OkStatus();
}

absl::Status FaultInjection::SyncDir(const fs::path& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return ErrnoError("cannot open", dir, errno);
  const InodeKey key{st.st_dev, st.st_ino};
  bool tracked;
  {
    std::lock_guard l(mu_);
    tracked = dirs_.count(key) != 0;
  }
  // Listed before the fsync (and before any cut): every name listed is
  // covered by it.
  absl::StatusOr<std::map<std::string, InodeKey>> names;
  uint64_t first_unlisted_id = 0;  // files opened from here on may be missing from `names`
  uint64_t listing = 0;
  if (tracked) {
    std::shared_lock power(power_mu_);
    if (PowerFailsNow()) return PowerCutError("fsync directory", dir);
    {
      std::lock_guard l(mu_);
      first_unlisted_id = next_id_;
      listing = next_listing_++;
    }
    names = List(dir);
    if (!names.ok()) return names.status();
  }
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", dir, errno);
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoError("cannot fsync directory", dir, err);
  }
  ::close(fd);
  if (!tracked) return absl::OkStatus();
  // readdir can miss a file being renamed under both its names (ext4,
  // tmpfs): a file the first listing missed is still known if this one
  // sees it, so that it is not forgotten below with its durable content
  // (review s40a L5: a segment renamed into place while another thread
  // synced the directory).
  // The fsync succeeded whatever this listing says; without it nothing is
  // forgotten this time (review s40c L5).
  std::map<std::string, InodeKey> seen_after;
  bool may_forget = false;
  if (auto listed = List(dir); listed.ok()) {
    seen_after = *std::move(listed);
    may_forget = true;
  }

  std::shared_lock power(power_mu_);
  // The power went while the fsync ran: it did not complete.
  if (power_cut_.load()) return PowerCutError("fsync directory", dir);
  std::lock_guard l(mu_);
  auto it = dirs_.find(key);
  if (it == dirs_.end() || it->second.listed_at > listing) return absl::OkStatus();
  DirState& state = it->second;
  state.listed_at = listing;
  state.durable_names.clear();
  for (const auto& [name, inode] : *names) state.durable_names[name] = IdForInode(inode, key);
  // Files of this directory that are neither durably named anywhere nor
  // newer than the listing can never come back: forget them (and their
  // inodes, which may be reused).
  std::set<uint64_t> live;
  for (const auto& [k, d] : dirs_) {
    for (const auto& [name, id] : d.durable_names) live.insert(id);
  }
  for (const auto& [name, inode] : seen_after) {
    if (auto found = ids_by_inode_.find(inode); found != ids_by_inode_.end()) {
      live.insert(found->second);
    }
  }
  for (auto f = files_.begin(); f != files_.end();) {
    if (may_forget && f->second->dir == key && f->first < first_unlisted_id &&
        !live.count(f->first)) {
      f = files_.erase(f);
    } else {
      ++f;
    }
  }
  std::erase_if(ids_by_inode_, [this](const auto& entry) { return !files_.count(entry.second); });
  if (shadow_fd_ >= 0) {
    // In the journal before the caller hears of the fsync (shadow mode).
    std::string entry(1, static_cast<char>(kListing));
    PutU64(&entry, key.first);
    PutU64(&entry, key.second);
    PutU64(&entry, state.durable_names.size());
    for (const auto& [name, id] : state.durable_names) {
      PutBytes(&entry, name);
      PutU64(&entry, id);
    }
    ShadowAppend(entry);
    return shadow_error_;
  }
  return absl::OkStatus();
}

void FaultInjection::CutPower() {
  std::unique_lock power(power_mu_);
  power_cut_.store(true);
}

absl::StatusOr<PowerCutReport> FaultInjection::ApplyPowerCut(const PowerCutOptions& options) {
  std::unique_lock power(power_mu_);
  power_cut_.store(true);
  ops_until_cut_.store(-1);
  std::lock_guard l(mu_);
  auto report = RewriteToCutLocked(options);
  if (!report.ok()) return report;

  // Power back on: what is on disk now is durable.
  files_.clear();
  ids_by_inode_.clear();
  std::vector<fs::path> paths;
  for (const auto& [key, dir] : dirs_) paths.push_back(dir.path);
  dirs_.clear();
  for (const fs::path& p : paths) {
    if (auto s = TrackDirLocked(p); !s.ok()) return s;
  }
  power_cut_.store(false);
  return report;
}

absl::StatusOr<PowerCutReport> FaultInjection::RewriteToCutLocked(const PowerCutOptions& options) {
  std::mt19937_64 rng(options.seed);
  PowerCutReport report;

  struct Plan {
    fs::path path;
    std::map<std::string, uint64_t> current;  // name -> file id, now
    std::map<std::string, uint64_t> after;    // name -> file id, after the cut
  };
  std::vector<Plan> plans;
  std::map<uint64_t, std::string> latest;  // file id -> its content now (if it has a name)
  for (auto& [key, dir] : dirs_) {
    auto names = List(dir.path);
    if (!names.ok()) return names.status();
    Plan plan{dir.path, {}, dir.durable_names};
    for (const auto& [name, inode] : *names) {
      const uint64_t id = IdForInode(inode, key);
      plan.current[name] = id;
      if (!latest.count(id)) {
        auto content = ReadAll(dir.path / name);
        if (!content.ok()) return content.status();
        latest[id] = *std::move(content);
      }
    }
    if (std::uniform_real_distribution<double>(0, 1)(rng) < options.keep_unsynced_names) {
      plan.after = plan.current;
    }
    plans.push_back(std::move(plan));
  }

  // Every file's content after the cut, decided before anything is rewritten.
  std::map<uint64_t, std::string> cut;
  for (const Plan& plan : plans) {
    for (const auto& [name, id] : plan.after) {
      if (cut.count(id)) continue;
      auto f = files_.find(id);
      const std::string durable = f == files_.end() ? std::string() : f->second->durable;
      auto it = latest.find(id);
      // An unlinked file's unsynced data is not known: it comes back durable.
      cut[id] = it == latest.end() ? durable
                                   : CutContent(durable, it->second, options.tear, rng, &report);
    }
  }

  for (const Plan& plan : plans) {
    for (const auto& [name, id] : plan.current) {
      if (plan.after.count(name)) continue;
      if (::unlink((plan.path / name).c_str()) != 0) {
        return ErrnoError("fault injection: cannot remove", plan.path / name, errno);
      }
      ++report.names_removed;
    }
    for (const auto& [name, id] : plan.after) {
      auto now = plan.current.find(name);
      const bool same_file = now != plan.current.end() && now->second == id;
      if (same_file && latest.at(id) == cut.at(id)) continue;
      if (!same_file) ++report.names_restored;
      ++report.files_changed;
      if (auto s = WriteAll(plan.path / name, cut.at(id)); !s.ok()) return s;
    }
  }
  return report;
}

}  // namespace relaykv
