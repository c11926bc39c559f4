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
// Owner: a promise is also bound to the server_id the epoch belongs to —
// the candidate whose Revoke raised it, or the primary whose events did
// (0: not known — an operator's Revoke, or a file from before owners). Two
// nodes can reach the same epoch number without coordination (a candidate
// promoted into E+1 while the old primary, never revoked, restarted and
// opened E+1 itself); the owner tells their epochs apart: a replica refuses
// a primary of its promised epoch that is not the owner, a Revoke for the
// promised epoch from another candidate is refused, and a node promoted
// while it has promised its epoch to another opens the next one. An
// unknown owner is bound by the first that claims the epoch.
//
// Durability: Raise() writes the file atomically (temp file, fsync,
// rename, fsync of the directory: storage/file.h WriteFileAtomically)
// before it returns, so a promise survives a crash or power cut; the
// promise never goes down.
//
// Bounds: an epoch comes from peers (Revoke, event GTIDs), so Raise()
// refuses, with INVALID_ARGUMENT, one above kMaxEpoch (2^32-1, what the
// binlog's segment headers hold) or more than kMaxEpochStep (2^16) above
// the current promise (or the epoch of the history the node holds, if
// higher: CheckBound's floor): a hostile or garbled epoch must not be made durable,
// after which the node could not count past it — one message must not use
// up the epoch space. Epochs grow by one per election, so the step is never
// reached honestly.
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
#include "storage/binlog_format.h"
#include "storage/thread_annotations.h"

namespace relaykv {

class EpochPromise {
 public:
  // What the binlog can hold (storage/binlog_format.h).
  static constexpr uint64_t kMaxEpoch = binlog_format::kMaxEpoch;
  // Far below kMaxEpoch: one garbled or hostile epoch cannot use up the
  // epoch space (review s31: with the step 2^32 one Revoke(2^32-1) could).
  static constexpr uint64_t kMaxEpochStep = uint64_t{1} << 16;
  // OK if `epoch` may be promised now (see "Bounds"); else INVALID_ARGUMENT
  // naming it. The step is counted from max(promise, `floor`): the epoch of
  // the history this node already holds (a clone starts with no promise
  // but its donor's epoch in its binlog).
  [[nodiscard]] absl::Status CheckBound(uint64_t epoch, uint64_t floor = 0) const;

  // Reads <data_dir>/promised_epoch (0 if absent). DATA_LOSS naming the file
  // if it does not hold one decimal epoch, optionally followed by the
  // owner's server_id: a damaged promise must not be read as "nothing
  // promised".
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<EpochPromise>> Open(
      const std::filesystem::path& data_dir);
  EpochPromise(const EpochPromise&) = delete;
  EpochPromise& operator=(const EpochPromise&) = delete;

  // The promise now (durable: only a durable promise is ever published).
  uint64_t value() const { return value_.load(); }
  // Its owner's server_id (0: unknown). Read it under a Hold when acting on
  // it together with value().
  uint32_t owner() const { return owner_.load(); }

  // The promise held still; see the header comment.
  class Hold {
   public:
    uint64_t value() const { return promise_->value(); }
    uint32_t owner() const { return promise_->owner(); }
    // Raises to max(value, epoch), durably, bound to `owner` (0: unknown)
    // when it goes up; returns the promise. For the promised epoch itself,
    // binds an unknown owner to `owner`, and refuses (FAILED_PRECONDITION
    // naming both) another owner than the one it is bound to.
    // `floor`: as CheckBound's.
    [[nodiscard]] absl::StatusOr<uint64_t> Raise(uint64_t epoch, uint32_t owner = 0,
                                                 uint64_t floor = 0);
    // OK unless `epoch` is the promised epoch and bound to another owner than
    // `server_id` (both known): the refusal names both.
    [[nodiscard]] absl::Status CheckOwner(uint64_t epoch, uint32_t server_id) const;

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
  // Lock().Raise(epoch, owner).
  [[nodiscard]] absl::StatusOr<uint64_t> Raise(uint64_t epoch, uint32_t owner = 0) {
    return Lock().Raise(epoch, owner);
  }

 private:
  EpochPromise(std::filesystem::path path, uint64_t value, uint32_t owner)
      : path_(std::move(path)), value_(value), owner_(owner) {}
  // Writes (epoch, owner) durably, then publishes it.
  absl::Status Store(uint64_t epoch, uint32_t owner);

  const std::filesystem::path path_;
  std::timed_mutex mu_;  // serializes raises and Holds
  // Written under mu_, after the file is durable; read without it.
  std::atomic<uint64_t> value_;
  std::atomic<uint32_t> owner_;
};

}  // namespace relaykv
