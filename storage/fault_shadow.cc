// FaultInjection's shadow mode (see storage/fault_injection.h): the
// journal a real relaykvd process appends what it made durable to, and the
// power cut rebuilt from it after a SIGKILL.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <limits>

#include "storage/crc32c.h"
#include "storage/fault_injection.h"
#include "storage/fault_injection_internal.h"
#include "storage/file.h"

namespace relaykv {

namespace fs = std::filesystem;
using namespace fault_internal;  // NOLINT: FaultInjection's own internals

absl::Status FaultInjection::StartShadow(const fs::path& shadow_dir) {
  std::error_code ec;
  fs::create_directories(shadow_dir, ec);
  if (ec) {
    return absl::InternalError("fault injection: cannot create shadow dir " +
                               shadow_dir.string() + ": " + ec.message());
  }
  const fs::path journal = fs::absolute(shadow_dir / kJournalName);
  std::lock_guard l(mu_);
  if (shadow_fd_ >= 0 || !dirs_.empty()) {
    return absl::FailedPreconditionError(
        "fault injection: start the shadow once, before tracking any directory");
  }
  const int fd = ::open(journal.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("fault injection: cannot create", journal, errno);
  shadow_fd_ = fd;
  shadow_path_ = journal;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<FaultInjection>> FaultInjection::InstallShadowFromEnvironment(
    const std::vector<fs::path>& dirs) {
  const char* shadow = std::getenv(kShadowEnv);
  if (shadow == nullptr || *shadow == '\0') return nullptr;
  auto fi = Install();
  if (!fi.ok()) return fi.status();
  if (auto s = (*fi)->StartShadow(shadow); !s.ok()) return s;
  for (const fs::path& dir : dirs) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
      return absl::InternalError("fault injection: cannot create " + dir.string() + ": " +
                                 ec.message());
    }
    if (auto s = (*fi)->TrackDir(dir); !s.ok()) return s;
  }
  return fi;
}

void FaultInjection::ShadowAppend(const std::string& body) {
  if (shadow_fd_ < 0 || !shadow_error_.ok()) return;
  if (body.size() > std::numeric_limits<uint32_t>::max()) {
    shadow_error_ = absl::InternalError("fault injection: shadow journal entry of " +
                                        std::to_string(body.size()) + " bytes is too large for " +
                                        shadow_path_.string());
    return;
  }
  std::string entry;
  entry.reserve(kEntryHeader + body.size());
  const uint32_t header[2] = {static_cast<uint32_t>(body.size()), Crc32c(body)};
  entry.append(reinterpret_cast<const char*>(header), sizeof(header));
  entry.append(body);
  std::string_view rest = entry;
  while (!rest.empty()) {
    const ssize_t n = ::write(shadow_fd_, rest.data(), rest.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      shadow_error_ = ErrnoError("fault injection: cannot append to shadow journal",
                                 shadow_path_, errno);
      return;
    }
    rest.remove_prefix(static_cast<size_t>(n));
  }
}

void FaultInjection::ShadowNewFile(uint64_t id, const InodeKey& dir, const InodeKey& inode) {
  if (shadow_fd_ < 0) return;
  std::string entry(1, static_cast<char>(kFile));
  for (uint64_t v : {id, static_cast<uint64_t>(dir.first), static_cast<uint64_t>(dir.second),
                     static_cast<uint64_t>(inode.first), static_cast<uint64_t>(inode.second)}) {
    PutU64(&entry, v);
  }
  ShadowAppend(entry);
}

absl::StatusOr<int> FaultInjection::ReplayJournalLocked(std::string_view journal) {
  int entries = 0;
  while (journal.size() >= kEntryHeader) {
    uint32_t header[2];
    std::memcpy(header, journal.data(), sizeof(header));
    if (journal.size() - kEntryHeader < header[0]) break;  // cut short by the kill
    const std::string_view body = journal.substr(kEntryHeader, header[0]);
    if (body.empty() || Crc32c(body) != header[1]) break;
    journal.remove_prefix(kEntryHeader + header[0]);
    BodyReader in(body.substr(1));
    auto key = [&in]() -> InodeKey {
      const auto dev = static_cast<dev_t>(in.U64());
      return {dev, static_cast<ino_t>(in.U64())};
    };
    switch (static_cast<uint8_t>(body[0])) {
      case kTrack: {
        const InodeKey dir = key();
        DirState state{fs::path(std::string(in.Bytes())), {}, next_listing_++};
        for (uint64_t n = in.U64(); in.ok() && n > 0; --n) {
          const std::string name(in.Bytes());
          const uint64_t id = in.U64();
          const InodeKey inode = key();
          std::string content(in.Bytes());
          if (!in.ok()) break;
          files_[id] = std::make_shared<FileState>(dir, std::move(content));
          ids_by_inode_[inode] = id;
          next_id_ = std::max(next_id_, id + 1);
          state.durable_names[name] = id;
        }
        dirs_[dir] = std::move(state);
        break;
      }
      case kFile: {
        const uint64_t id = in.U64();
        const InodeKey dir = key();
        const InodeKey inode = key();
        if (!in.ok()) break;
        files_[id] = std::make_shared<FileState>(dir, "");
        ids_by_inode_[inode] = id;  // a later file with this inode number replaces it
        next_id_ = std::max(next_id_, id + 1);
        break;
      }
      case kSync: {
        const uint64_t id = in.U64();
        const uint64_t size = in.U64();
        auto f = files_.find(id);
        if (f == files_.end()) break;
        std::string& durable = f->second->durable;
        durable.resize(size, '\0');
        for (uint64_t n = in.U64(); in.ok() && n > 0; --n) {
          const uint64_t offset = in.U64();
          const std::string_view data = in.Bytes();
          if (in.ok() && offset <= durable.size()) durable.replace(offset, data.size(), data);
        }
        break;
      }
      case kListing: {
        const InodeKey dir = key();
        auto d = dirs_.find(dir);
        if (d == dirs_.end()) break;
        std::map<std::string, uint64_t> names;
        for (uint64_t n = in.U64(); in.ok() && n > 0; --n) {
          const std::string name(in.Bytes());
          names[name] = in.U64();
        }
        d->second.durable_names = std::move(names);
        d->second.listed_at = next_listing_++;
        break;
      }
      default:
        return absl::InternalError("fault injection: shadow journal entry " +
                                   std::to_string(entries) + " has unknown kind " +
                                   std::to_string(static_cast<int>(body[0])));
    }
    if (!in.ok()) {
      return absl::InternalError("fault injection: shadow journal entry " +
                                 std::to_string(entries) + " is malformed (CRC matches)");
    }
    ++entries;
  }
  return entries;
}

absl::StatusOr<PowerCutReport> FaultInjection::ApplyShadowPowerCut(
    const fs::path& shadow_dir, const PowerCutOptions& options) {
  const fs::path journal = shadow_dir / kJournalName;
  auto bytes = ReadAll(journal);  // NOT_FOUND if there is none
  if (!bytes.ok()) return bytes.status();
  FaultInjection model;  // never installed: only its state and the cut logic
  absl::StatusOr<PowerCutReport> report;
  {
    std::lock_guard l(model.mu_);
    auto entries = model.ReplayJournalLocked(*bytes);
    if (!entries.ok()) return entries.status();
    report = model.RewriteToCutLocked(options);
  }
  if (!report.ok()) return report;
  if (::unlink(journal.c_str()) != 0) {
    return ErrnoError("fault injection: cannot remove", journal, errno);
  }
  return report;
}

}  // namespace relaykv
