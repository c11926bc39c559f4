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
// Bounds: an epoch comes from peers (Revoke, event GTIDs), so Raise()
// refuses, with INVALID_ARGUMENT, one above kMaxEpoch or more than
// kMaxEpochStep above the current promise: a hostile or garbled epoch
// (2^64-1) must not be made durable, after which the node could not count
// past it. Epochs grow by one per election, so the step is never reached
// honestly.
//
// Threads: all methods are thread-safe. Hold() keeps the promise from
// changing (except through the Hold) while a caller acts on its value: the
// IO thread holds it from checking a primary's epoch until its ACK is
// written, so a Raise() that returned has either been seen by that check
// or waited for that ACK — never overtaken by it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/thread_annotations.h"

namespace relaykv {

class EpochPromise {
 public:
  static constexpr uint64_t kMaxEpoch = (uint64_t{1} << 63) - 1;
  static constexpr uint64_t kMaxEpochStep = uint64_t{1} << 32;
  // OK if `epoch` may be promised now (see "Bounds"); else INVALID_ARGUMENT
  // naming it.
  [[nodiscard]] absl::Status CheckBound(uint64_t epoch) const;

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
    Hold(EpochPromise* p, std::unique_lock<std::timed_mutex> lock)
        : promise_(p), lock_(std::move(lock)) {}
    EpochPromise* promise_;
    std::unique_lock<std::timed_mutex> lock_;
  };
  Hold Lock() { return Hold(this, std::unique_lock(mu_)); }
  // Lock(), waiting at most `wait`: nullopt if the lock stayed taken (a
  // Raise stuck on a slow disk, or an IO thread holding it for its ACK).
  std::optional<Hold> TryLockFor(std::chrono::milliseconds wait) {
    std::unique_lock l(mu_, wait);
    if (!l.owns_lock()) return std::nullopt;
    return Hold(this, std::move(l));
  }
  // Lock().Raise(epoch).
  [[nodiscard]] absl::StatusOr<uint64_t> Raise(uint64_t epoch) { return Lock().Raise(epoch); }

 private:
  EpochPromise(std::filesystem::path path, uint64_t value) : path_(std::move(path)), value_(value) {}

  const std::filesystem::path path_;
  std::timed_mutex mu_;  // serializes raises and Holds
  // Written under mu_, after the file is durable; read without it.
  std::atomic<uint64_t> value_;
};

}  // namespace relaykv
