// Which changes a watch delivers: its range (relaykv/watch.h WatchRange)
// checked and turned into bounds, and a binlog event cut down to the
// changes inside them. Pure functions, any thread.
//
// Errors: INVALID_ARGUMENT naming the problem — a prefix together with
// start or end; start after end; a bound longer than a key may be.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "proto/event.pb.h"
#include "relaykv/watch.h"

namespace relaykv {

// The keys a watch covers: [lo, hi), no upper bound when hi is empty.
struct WatchBounds {
  std::string lo;
  std::string hi;
  bool Contains(std::string_view key) const { return key >= lo && (hi.empty() || key < hi); }
};

[[nodiscard]] absl::StatusOr<WatchBounds> ResolveWatchRange(const WatchRange& range);

// Fills `out` with the event's changes inside `bounds`, in the write's
// order, reusing its storage (a watcher refills the same events batch after
// batch); false, `out` unspecified, when none is inside (marker events,
// which have no changes, never match).
bool FilterEvent(const v1::Event& event, const WatchBounds& bounds, WatchEvent* out);

}  // namespace relaykv
