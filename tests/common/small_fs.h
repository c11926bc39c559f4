// A small filesystem of the test's own (a size-limited tmpfs mounted on a
// temp dir), to run a component into ENOSPC and free space again. Mounting
// needs root (CAP_SYS_ADMIN): where it is not allowed, ok() is false and
// why() says so, for a GTEST_SKIP with that message.
#pragma once

#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/common/temp_dir.h"

namespace relaykv::testing {

class SmallFilesystem {
 public:
  explicit SmallFilesystem(size_t bytes) {
    const std::string options = "size=" + std::to_string(bytes);
    if (::mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, options.c_str()) != 0) {
      why_ = "cannot mount a " + std::to_string(bytes) + "-byte tmpfs on " + dir_.path().string() +
             " (" + std::strerror(errno) + "); this test needs root";
      return;
    }
    mounted_ = true;
  }
  ~SmallFilesystem() {
    if (mounted_) ::umount2(dir_.path().c_str(), MNT_DETACH);
  }
  SmallFilesystem(const SmallFilesystem&) = delete;
  SmallFilesystem& operator=(const SmallFilesystem&) = delete;

  bool ok() const { return mounted_; }
  const std::string& why() const { return why_; }
  const std::filesystem::path& path() const { return dir_.path(); }

  // Takes all the free space but about `leave` bytes, in a file the test
  // removes again with Free().
  void FillLeaving(size_t leave) {
    const auto filler = dir_.path() / "filler";
    std::ofstream out(filler, std::ios::binary);
    const std::string block(4096, 'f');
    while (std::filesystem::space(dir_.path()).available > leave + block.size() && out.write(block.data(), block.size())) {
    }
    out.close();
  }
  void Free() { std::filesystem::remove(dir_.path() / "filler"); }

 private:
  TempDir dir_;
  bool mounted_ = false;
  std::string why_;
};

}  // namespace relaykv::testing
