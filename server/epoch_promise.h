// EpochPromise: this node's durable promised epoch (file `promised_epoch` in
// the data dir), the fencing token of failover (README "Failover",
// ../shared/FAILOVER.md section 3). A node that has promised epoch P
//   - as a replica, neither appends nor ACKs events from a primary whose
//     epoch is below P (server/replica_io.cc), and raises P itself, before
//     ACKing, when it receives events of a newer epoch;
//   - as a primary of an epoch below P, acknowledges no commit (it was
//     revoked: Node::Revoke, server/node_fence.cc).
// 0 (no file) promises nothing.
//
// Durability: Raise() writes the file atomically (temp file, fsync,
// rename, fsync of the directory: storage/file.h WriteFileAtomically)
// before it returns, so a promise survives a crash or power cut; the
// promise never goes down.
//
// Threads: all methods are thread-safe. Hold() keeps the promise from
// changing (except through the Hold) while a caller acts on its value: the
// IO thread holds it from checking a primary's epoch until its ACK is
// written, so a Raise() that returned has either been seen by that check
// or waited for that ACK — never overtaken by it.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/thread_annotations.h"

namespace relaykv {

class EpochPromise {
 public:
  // Reads <data_dir>/promised_epoch (0 if absent). DATA_LOSS naming the file
  // if it does not hold one decimal number: a damaged promise must not be
  // read as "nothing promised".
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<EpochPromise>> Open(
      const std::filesystem::path& data_dir);
  EpochPromise(const EpochPromise&) = delete;
  EpochPromise& operator=(const EpochPromise&) = delete;

  // The promise now (durable: only a durable promise is ever published).
  uint64_t value() const { return value_.load(); }

  // The promise held still; see the header comment.
  class Hold {
   public:
    uint64_t value() const { return promise_->value(); }
    // Raises to max(value, epoch), durably; returns the promise.
    [[nodiscard]] absl::StatusOr<uint64_t> Raise(uint64_t epoch);

   private:
    friend class EpochPromise;
    explicit Hold(EpochPromise* p) : promise_(p), lock_(p->mu_) {}
    EpochPromise* promise_;
    std::unique_lock<std::mutex> lock_;
  };
  Hold Lock() { return Hold(this); }
  // Lock().Raise(epoch).
  [[nodiscard]] absl::StatusOr<uint64_t> Raise(uint64_t epoch) { return Lock().Raise(epoch); }

 private:
  EpochPromise(std::filesystem::path path, uint64_t value) : path_(std::move(path)), value_(value) {}

  const std::filesystem::path path_;
  std::mutex mu_;  // serializes raises and Holds
  // Written under mu_, after the file is durable; read without it.
  std::atomic<uint64_t> value_;
};

}  // namespace relaykv
