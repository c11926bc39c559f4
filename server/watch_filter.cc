#include "server/watch_filter.h"

#include <initializer_list>
#include <utility>

#include "server/limits.h"
#include "server/scan_request.h"

namespace relaykv {

absl::StatusOr<WatchBounds> ResolveWatchRange(const WatchRange& range) {
  using Bound = std::pair<const char*, const std::string*>;
  for (const auto& [name, bound] : std::initializer_list<Bound>{
           {"start", &range.start}, {"end", &range.end}, {"prefix", &range.prefix}}) {
    if (bound->size() > kMaxKeyBytes) {
      return absl::InvalidArgumentError(std::string("watch ") + name + " is " +
                                        std::to_string(bound->size()) +
                                        " bytes; a key is at most " + std::to_string(kMaxKeyBytes));
    }
  }
  if (!range.prefix.empty()) {
    if (!range.start.empty() || !range.end.empty()) {
      return absl::InvalidArgumentError("watch takes a prefix or a start/end range, not both");
    }
    return WatchBounds{range.prefix, PrefixEnd(range.prefix)};
  }
  if (!range.end.empty() && range.start > range.end) {
    return absl::InvalidArgumentError("watch start '" + range.start + "' is after its end '" +
                                      range.end + "'");
  }
  return WatchBounds{range.start, range.end};
}

namespace {

// Assigns reusing `to`'s bytes, but gives back what one big value left
// behind: a watcher's slots would otherwise keep the largest value each
// ever held (up to 1000 slots of up to 16 MiB).
void AssignReusing(std::string* to, const std::string& from) {
  to->assign(from);
  if (to->capacity() > 4096 && to->capacity() > 2 * to->size()) to->shrink_to_fit();
}

}  // namespace

bool FilterEvent(const v1::Event& event, const WatchBounds& bounds, WatchEvent* out) {
  size_t n = 0;
  for (const v1::Mutation& m : event.mutations()) {
    if (!bounds.Contains(m.key())) continue;
    if (n == out->changes.size()) out->changes.emplace_back();
    Mutation& c = out->changes[n++];
    c.op = m.op() == v1::Mutation::DELETE ? Mutation::Op::kDelete : Mutation::Op::kPut;
    AssignReusing(&c.key, m.key());
    static const std::string kNone;  // a delete's value
    AssignReusing(&c.value, c.op == Mutation::Op::kPut ? m.value() : kNone);
  }
  if (n == 0) return false;
  out->changes.resize(n);
  out->gtid = {event.gtid().epoch(), event.gtid().seq()};
  out->timestamp_us = event.timestamp_us();
  return true;
}

}  // namespace relaykv
