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

std::optional<WatchEvent> FilterEvent(const v1::Event& event, const WatchBounds& bounds) {
  std::optional<WatchEvent> out;
  for (const v1::Mutation& m : event.mutations()) {
    if (!bounds.Contains(m.key())) continue;
    if (!out) {
      out.emplace();
      out->gtid = {event.gtid().epoch(), event.gtid().seq()};
      out->timestamp_us = event.timestamp_us();
    }
    out->changes.push_back(m.op() == v1::Mutation::DELETE ? Mutation::Delete(m.key())
                                                          : Mutation::Put(m.key(), m.value()));
  }
  return out;
}

}  // namespace relaykv
