// Tests storage/file.h's WriteFileAtomically: what `*renamed` says about a
// failure, which Binlog::Rotate turns into "try again" or "refuse writes
// until restart" (reviews s37a F1, s38a M1, s38b M1).
#include "storage/file.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "storage/fault_injection.h"
#include "storage/rename_outcome.h"
#include "tests/common/small_fs.h"
#include "tests/common/temp_dir.h"

namespace relaykv {
namespace {

using testing::TempDir;

TEST(FileTest, ARenameErrorOutsideTheKnownRefusalsCountsAsMaybeRenamed) {
  TempDir dir;
  const auto path = dir.path() / "index";
  // A file renamed over a directory fails (EISDIR): locally a refusal, but
  // not one of those rename_outcome.h trusts, so the outcome counts as
  // unknown: the conservative side.
  std::filesystem::create_directories(path);
  bool renamed = false;
  // Starts false, the answer the function must change: it sets `*renamed`
  // to false first thing, so starting true would prove nothing either.
  const absl::Status s = WriteFileAtomically(path, "new", &renamed);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("cannot rename to"), std::string::npos) << s;
  EXPECT_TRUE(renamed) << "an unclear rename error must count as maybe renamed";
}

TEST(FileTest, AFullDiskFailsBeforeTheRenameAndLeavesTheOldFile) {
  testing::SmallFilesystem fs(1 << 20);
  if (!fs.ok()) GTEST_SKIP() << fs.why();
  const auto path = fs.path() / "index";
  ASSERT_TRUE(WriteFileAtomically(path, "old").ok());
  fs.FillLeaving(0);
  bool renamed = false;
  const absl::Status s = WriteFileAtomically(path, std::string(64 << 10, 'n'), &renamed);
  ASSERT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_FALSE(renamed);
  EXPECT_FALSE(std::filesystem::exists(fs.path() / "index.tmp")) << "its blocks are given back";
  auto old = ReadFileToString(path);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(*old, "old");
}

// Every crash point of WriteFileAtomically under a simulated power cut:
// "not renamed" is never said while the new file is in place.
TEST(FileTest, APowerCutAnywhereNeverSaysNotRenamedWhileTheNewFileIsThere) {
  TempDir dir;
  const auto path = dir.path() / "index";
  ASSERT_TRUE(WriteFileAtomically(path, "old").ok());
  bool completed = false;
  int not_renamed = 0;       // cuts before the rename: the old file stays
  int renamed_then_cut = 0;  // cuts after it
  for (int64_t ops = 0; ops < 20 && !completed; ++ops) {
    SCOPED_TRACE("power cut after " + std::to_string(ops) + " ops");
    ASSERT_TRUE(WriteFileAtomically(path, "old").ok());
    auto fi = FaultInjection::Install();
    ASSERT_TRUE(fi.ok()) << fi.status();
    ASSERT_TRUE((*fi)->TrackDir(dir.path()).ok());
    (*fi)->CutPowerAfterOps(ops);
    bool renamed = true;
    const absl::Status s = WriteFileAtomically(path, "new", &renamed);
    completed = s.ok();
    auto now = ReadFileToString(path);
    ASSERT_TRUE(now.ok()) << now.status();
    if (s.ok()) {
      EXPECT_EQ(*now, "new");
    } else if (!renamed) {
      EXPECT_EQ(*now, "old") << s;
      ++not_renamed;
    } else if (*now == "new") {
      ++renamed_then_cut;  // the cut came at the directory's fsync
    }
    fi->reset();  // uninstalls: the next round starts with the power on
  }
  EXPECT_TRUE(completed) << "the walk never reached the end";
  EXPECT_GT(not_renamed, 0);
  EXPECT_GT(renamed_then_cut, 0);
}

// Sets or clears a file's immutable flag (chattr +i / -i); false if this
// filesystem or user cannot.
bool SetImmutable(const std::filesystem::path& path, bool on) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  int flags = 0;
  bool ok = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
  if (ok) {
    flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
    ok = ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
  }
  ::close(fd);
  return ok;
}

// A real refusal by the rename itself: an immutable target makes rename
// fail with EPERM before anything changes. On a filesystem whose refusals
// are trusted that is "not renamed", the old file stays and the tmp file
// is removed; elsewhere it counts as maybe renamed, and says why.
TEST(FileTest, ARenameRefusedByALocalFilesystemSaysNotRenamed) {
  TempDir dir;
  const auto path = dir.path() / "index";
  ASSERT_TRUE(WriteFileAtomically(path, "old").ok());
  if (!SetImmutable(path, true)) GTEST_SKIP() << "cannot make a file immutable here";
  // Cleared however the test ends, or TempDir could not remove it.
  struct Mutable {
    std::filesystem::path path;
    ~Mutable() { SetImmutable(path, false); }
  } clear_on_exit{path};
  bool renamed = true;
  const absl::Status s = WriteFileAtomically(path, "new", &renamed);
  ASSERT_TRUE(SetImmutable(path, false));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("cannot rename to"), std::string::npos) << s;
  auto now = ReadFileToString(path);
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_EQ(*now, "old");
  if (std::string(s.message()).find("on filesystem type") == std::string::npos) {
    EXPECT_FALSE(renamed) << s;
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "index.tmp")) << "its blocks are given back";
  } else {
    EXPECT_TRUE(renamed) << "a filesystem not on the list: " << s;
  }
}

TEST(RenameOutcomeTest, OnlyALocalRefusalWithBothNamesUnchangedIsNotRenamed) {
  const PathIdentity target{true, 1, 10};
  const PathIdentity tmp{true, 1, 11};
  FailedRename refused;
  refused.err = ENOSPC;
  refused.local_filesystem = true;
  refused.target_before = refused.target_after = target;
  refused.tmp_before = refused.tmp_after = tmp;
  EXPECT_FALSE(RenameMayHaveHappened(refused));
  for (int err : {EDQUOT, EACCES, EPERM, EROFS, EXDEV}) {
    FailedRename r = refused;
    r.err = err;
    EXPECT_FALSE(RenameMayHaveHappened(r)) << err;
  }
  for (int err : {EIO, ETIMEDOUT, EINTR, ENOENT, EISDIR, EBUSY}) {
    FailedRename r = refused;
    r.err = err;
    EXPECT_TRUE(RenameMayHaveHappened(r)) << "unknown outcome: " << err;
  }
  FailedRename remote = refused;  // FUSE, NFS, CIFS, unknown: never trusted
  remote.local_filesystem = false;
  EXPECT_TRUE(RenameMayHaveHappened(remote));
  FailedRename replaced = refused;  // the target names another file now
  replaced.target_after = tmp;
  EXPECT_TRUE(RenameMayHaveHappened(replaced));
  FailedRename gone = refused;  // the target vanished (CIFS unlink, then retry)
  gone.target_after = PathIdentity{};
  EXPECT_TRUE(RenameMayHaveHappened(gone));
  FailedRename tmp_gone = refused;
  tmp_gone.tmp_after = PathIdentity{};
  EXPECT_TRUE(RenameMayHaveHappened(tmp_gone));
  FailedRename tmp_other = refused;  // a tmp file, but not ours
  tmp_other.tmp_after = PathIdentity{true, 1, 12};
  EXPECT_TRUE(RenameMayHaveHappened(tmp_other));
  FailedRename blind = refused;  // lstat could not tell
  blind.target_after = std::nullopt;
  EXPECT_TRUE(RenameMayHaveHappened(blind));
  blind = refused;
  blind.tmp_before = std::nullopt;
  EXPECT_TRUE(RenameMayHaveHappened(blind));
  FailedRename first = refused;  // the first index: no target before or after
  first.target_before = first.target_after = PathIdentity{};
  EXPECT_FALSE(RenameMayHaveHappened(first));
}

}  // namespace
}  // namespace relaykv
