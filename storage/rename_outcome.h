// Whether a rename that returned an error may have replaced its target: the
// decision behind WriteFileAtomically's `*renamed` (storage/file.h), kept
// apart so that each case can be tested without a filesystem that fails
// that way. Binlog::Rotate builds on it: "not renamed" lets it go on
// appending to the old segment and try again later, which reuses seqs after
// a crash if the new index was in place after all (reviews s37a F1, s38a
// M1, s38b M1, s38c M1, s39a F1).
#pragma once

#include <sys/types.h>

#include <cerrno>

#include <optional>

namespace relaykv {

// Which file a path names, or that it names none.
struct PathIdentity {
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const PathIdentity&) const = default;
};

struct FailedRename {
  int err = 0;  // the rename's errno
  // The directory is on a filesystem whose rename is one local, atomic
  // step (ext4, xfs, btrfs, tmpfs, f2fs, zfs, overlayfs): its refusals come
  // before anything changes. Not so on FUSE (object stores rename by copy
  // then delete, and may fail the delete), NFS (a retried or late rename)
  // or CIFS (unlink, then retry the rename).
  bool local_filesystem = false;
  // Before and after the rename; nullopt where lstat could not tell.
  std::optional<PathIdentity> target_before, target_after;
  std::optional<PathIdentity> tmp_before, tmp_after;
};

// False only for a refusal (no space, no quota, no permission, read-only,
// another filesystem) on a local filesystem, with both names still naming
// what they named before; any other failure may have renamed.
inline bool RenameMayHaveHappened(const FailedRename& r) {
  bool refusal = false;
  switch (r.err) {
    case ENOSPC:  // btrfs may refuse a rename for its metadata
    case EDQUOT:
    case EACCES:
    case EPERM:
    case EROFS:
    case EXDEV:
      refusal = true;
      break;
    default:  // EIO, ETIMEDOUT, EINTR, EISDIR, ...: unknown
      break;
  }
  const bool unchanged = r.target_before && r.target_after && *r.target_before == *r.target_after &&
                         r.tmp_before && r.tmp_after && r.tmp_after->exists &&
                         *r.tmp_before == *r.tmp_after;
  return !(refusal && r.local_filesystem && unchanged);
}

}  // namespace relaykv
