// Node::Scan: range reads (relaykv/scan.h). The request is checked and
// resolved by server/scan_request.h, the read-your-writes wait is Get's
// (Node::Impl::WaitForGtid), and the walk is the state machine's, from one
// RocksDB snapshot (storage/state_machine_scan.h).
#include <mutex>

#include "relaykv/node.h"
#include "server/node_impl.h"
#include "server/scan_request.h"

namespace relaykv {

absl::StatusOr<ScanPage> Node::Impl::Scan(const ScanRange& range, const GetOptions& read) {
  // Bad input is refused before anything waits.
  auto spec = ResolveScan(range);
  if (!spec.ok()) return spec.status();
  CallScope scope(this);
  if (!scope.ok()) return scope.status();
  if (auto s = PrepareRead(read); !s.ok()) return s;
  // A walk of millions of keys still ends with its caller or the node.
  spec->check = [this, &read]() -> absl::Status {
    if (std::chrono::steady_clock::now() >= read.deadline) {
      return absl::DeadlineExceededError("deadline passed during a scan");
    }
    if (read.cancelled && read.cancelled()) {
      return absl::CancelledError("the client went away during its scan");
    }
    std::lock_guard l(mu_);
    if (closing_) return absl::UnavailableError("relaykv node is shutting down");
    return absl::OkStatus();
  };
  // RocksDB holds only applied events, and only released events are
  // applied (under AFTER_SYNC: once a quorum ACKed them; on a replica: what
  // its primary made visible): a scan never shows a write Get could not.
  auto rows = state_->Scan(*spec);
  if (!rows.ok()) return rows.status();
  ScanPage page;
  page.rows = std::move(rows->rows);
  page.count = rows->count;
  page.applied = rows->gtid;
  if (rows->more) page.continuation = ContinuationAfter(range, rows->last_key);
  return page;
}

absl::StatusOr<ScanPage> Node::Scan(const ScanRange& range, const GetOptions& read) {
  return impl_->Scan(range, read);
}

}  // namespace relaykv
