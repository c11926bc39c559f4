// Internals of FaultInjection shared by storage/fault_injection.cc (the
// registry and the power cut) and storage/fault_shadow.cc (shadow mode):
// the shadow journal's format and a file's tracked state. Nothing outside
// those two files may include this.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/fault_injection.h"

namespace relaykv {
namespace fault_internal {

constexpr uint64_t kToEnd = UINT64_MAX;  // a dirty range that runs to the end of the file

// The whole file (INTERNAL naming it on an error).
absl::StatusOr<std::string> ReadAll(const std::filesystem::path& path);

// --- The shadow journal (shadow mode) ---
// A sequence of entries, each: length (4 bytes) | CRC32C of the body (4) |
// body. A body starts with its kind (1 byte); its numbers are 8 bytes and
// its strings an 8-byte length then the bytes (host order: the journal is
// read back on the machine that wrote it). Entries:
//   kTrack:   dir dev, dir ino, path, count, then per file: name, id,
//             inode dev, inode ino, content (TrackDir: all of it durable)
//   kFile:    id, dir dev, dir ino, inode dev, inode ino (a new file, nothing
//             durable yet)
//   kSync:    id, size, count, then per range: offset, bytes (an fdatasync)
//   kListing: dir dev, dir ino, count, then per name: name, id (a directory
//             fsync: its durable listing)
// Reading stops at the first entry that is short or fails its CRC: the
// SIGKILL interrupted its append, so its sync was never reported done.
inline constexpr char kJournalName[] = "journal";
enum JournalKind : uint8_t { kTrack = 1, kFile = 2, kSync = 3, kListing = 4 };
constexpr size_t kEntryHeader = 8;

inline void PutU64(std::string* out, uint64_t v) { out->append(reinterpret_cast<const char*>(&v), 8); }
inline void PutBytes(std::string* out, std::string_view b) {
  PutU64(out, b.size());
  out->append(b);
}

// Reads one body's fields in order; ok() turns false past its end.
class BodyReader {
 public:
  explicit BodyReader(std::string_view body) : in_(body) {}
  uint64_t U64() {
    uint64_t v = 0;
    if (in_.size() < 8) {
      ok_ = false;
      return 0;
    }
    std::memcpy(&v, in_.data(), 8);
    in_.remove_prefix(8);
    return v;
  }
  std::string_view Bytes() {
    const uint64_t n = U64();
    if (!ok_ || in_.size() < n) {
      ok_ = false;
      return {};
    }
    std::string_view b = in_.substr(0, n);
    in_.remove_prefix(n);
    return b;
  }
  bool ok() const { return ok_; }

 private:
  std::string_view in_;
  bool ok_ = true;
};

}  // namespace fault_internal

struct FaultInjection::FileState {
  const InodeKey dir;  // the directory it was created or found in
  // Both guarded by FaultInjection::mu_.
  std::string durable;  // bytes and size as of the last fdatasync
  // Byte ranges [begin, end) changed since the last sync (end may be kToEnd).
  std::vector<std::pair<uint64_t, uint64_t>> dirty;
  // Serializes SyncFile() of this file, so syncs apply in order.
  std::mutex sync_mu;

  FileState(InodeKey d, std::string content) : dir(d), durable(std::move(content)) {}
};

}  // namespace relaykv
