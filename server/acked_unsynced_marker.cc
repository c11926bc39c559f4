#include "server/acked_unsynced_marker.h"

#include <cerrno>
#include <cstdio>
#include <string>

#include "spdlog/spdlog.h"
#include "storage/file.h"

namespace relaykv {
namespace {
constexpr const char* kFileName = "relay_log.acked_unsynced";
constexpr const char* kContents =
    "# relaykv: this replica ACKed relay-log events before they were on disk (sync_relay_log=0);\n"
    "# after a power cut it may lack events it acknowledged. Revoke reports it. Do not remove.\n";
}  // namespace

absl::StatusOr<std::unique_ptr<AckedUnsyncedMarker>> AckedUnsyncedMarker::Open(
    const std::filesystem::path& data_dir) {
  const std::filesystem::path path = data_dir / kFileName;
  const absl::StatusOr<bool> found = FileExists(path);
  if (!found.ok()) {
    return absl::UnavailableError(std::string(found.status().message()) + "; refusing to start");
  }
  const bool exists = *found;
  if (exists) {
    spdlog::warn("{} is present: this replica may have ACKed relay-log events it no longer "
                 "holds (sync_relay_log=0 before the last stop); Revoke reports it until it has "
                 "caught up with its primary on disk",
                 path.string());
  }
  return std::unique_ptr<AckedUnsyncedMarker>(new AckedUnsyncedMarker(path, exists));
}

absl::Status AckedUnsyncedMarker::Mark() {
  std::lock_guard l(mu_);
  if (set_.load()) return absl::OkStatus();
  if (auto s = WriteFileAtomically(path_, kContents); !s.ok()) return s;
  set_.store(true);
  spdlog::info("sync_relay_log=0: ACKing relay-log events before they are on disk; {} written "
               "(until a full sync; if this node stops before one, Revoke reports "
               "may_have_acked_unsynced after its restart)",
               path_.string());
  return absl::OkStatus();
}

absl::Status AckedUnsyncedMarker::Clear() {
  std::lock_guard l(mu_);
  if (!set_.load()) return absl::OkStatus();
  if (std::remove(path_.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError("cannot remove", path_, errno);
  }
  if (auto s = SyncDir(path_.parent_path()); !s.ok()) return s;
  set_.store(false);
  inherited_.store(false);
  spdlog::info("relay log fully on disk: {} removed", path_.string());
  return absl::OkStatus();
}

}  // namespace relaykv
