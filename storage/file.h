// File: an owned POSIX file descriptor with the few operations the binlog
// needs, each returning a Status that names the file and the errno text.
// Not thread-safe for concurrent Close(); reads and writes at explicit
// offsets (pread/pwrite) may run concurrently from several threads.
//
// Every durable file of relaykv (binlog segments, binlog.index, master.info,
// relaykvd-auto.cnf) is written through File, SyncDir and
// WriteFileAtomically, so that tests can simulate a power cut: while a
// FaultInjection registry (storage/fault_injection.h) is installed, a File
// opened for writing in a tracked directory reports its writes, truncates
// and fdatasyncs to it, and fails them once the power is cut. Without one,
// the only cost is a relaxed atomic load per Open/SyncDir.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace relaykv {

class File {
 public:
  File() = default;
  ~File();
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // flags as for open(2), e.g. O_RDWR | O_CREAT. A created file is 0600 by
  // default: binlog, relay log, master.info and relaykvd-auto.cnf hold data
  // and settings that only relaykvd's user may read.
  [[nodiscard]] static absl::StatusOr<File> Open(const std::filesystem::path& path,
                                                 int flags, int mode = 0600);

  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  const std::filesystem::path& path() const { return path_; }

  // Writes all of `data` at `offset`; only written, not durable.
  [[nodiscard]] absl::Status WriteAt(uint64_t offset, std::string_view data);
  // Reads up to `n` bytes at `offset` into `buf`; *read < n only at EOF.
  [[nodiscard]] absl::Status ReadAt(uint64_t offset, size_t n, char* buf, size_t* read) const;
  // fdatasync: makes written data (and the size) durable.
  [[nodiscard]] absl::Status DataSync();
  [[nodiscard]] absl::Status Truncate(uint64_t size);
  [[nodiscard]] absl::StatusOr<uint64_t> Size() const;
  void Close();

 private:
  File(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  absl::Status PwriteAll(uint64_t offset, std::string_view data);
  int fd_ = -1;
  std::filesystem::path path_;
  // This file's id in the FaultInjection registry installed when it was
  // opened; 0 (the normal case) when none was or the file is not tracked.
  uint64_t fault_id_ = 0;
};

// An error Status for a failed system call: "<what> <path>: <strerror>".
absl::Status ErrnoError(std::string_view what, const std::filesystem::path& path, int err);

// fsync of a directory, so that file creations/renames/unlinks in it are durable.
[[nodiscard]] absl::Status SyncDir(const std::filesystem::path& dir);

// Replaces `path` with `contents` so that a crash leaves either the old or the
// new file, never a mix: write a temporary file, fsync it, rename, fsync dir.
// `*renamed` (if given) tells a failure that left the old file in place
// (false: writing the tmp file failed, or a local filesystem refused the
// rename — no space, permission, read-only — with both names as they were;
// the tmp file is removed and trying again is safe) from one whose outcome
// is unknown (true: the new file may or may not be in place or survive a
// crash; rename_outcome.h has the cases).
[[nodiscard]] absl::Status WriteFileAtomically(const std::filesystem::path& path,
                                               std::string_view contents,
                                               bool* renamed = nullptr);

// Whether `path` exists; UNAVAILABLE naming it when that cannot be told
// (EACCES, EIO): for marker files whose absence means "nothing to fear",
// an unreadable one must not read as absent.
[[nodiscard]] absl::StatusOr<bool> FileExists(const std::filesystem::path& path);

// Reads a whole (small) file.
[[nodiscard]] absl::StatusOr<std::string> ReadFileToString(const std::filesystem::path& path);

// Creates `dir` (and missing parents) if it does not exist; `dir` itself is
// made 0700 (owner only) when this call creates it, and the name of every
// level it creates is fsynced into its parent. An existing directory keeps
// its mode. INTERNAL naming the directory on failure; an fsync's error.
[[nodiscard]] absl::Status CreatePrivateDirectory(const std::filesystem::path& dir);

}  // namespace relaykv
