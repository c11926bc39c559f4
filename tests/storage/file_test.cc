// Tests storage/file.h's WriteFileAtomically: what `*renamed` says about a
// failure, which Binlog::Rotate turns into "try again" or "refuse writes
// until restart" (reviews s37a F1, s38a M1, s38b M1).
#include "storage/file.h"

#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "tests/common/small_fs.h"
#include "tests/common/temp_dir.h"

namespace relaykv {
namespace {

using testing::TempDir;

TEST(FileTest, ARenameErrorOutsideTheKnownRefusalsCountsAsMaybeRenamed) {
  TempDir dir;
  const auto path = dir.path() / "index";
  // A rename over a non-empty directory fails (EISDIR): locally a refusal,
  // but not one of those storage/file.cc trusts (ENOSPC, EDQUOT, EACCES,
  // EPERM, EROFS, EXDEV), so the outcome counts as unknown: the
  // conservative side.
  std::filesystem::create_directories(path / "inside");
  bool renamed = false;
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

}  // namespace
}  // namespace relaykv
