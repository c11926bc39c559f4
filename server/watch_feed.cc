#include "server/watch_feed.h"

#include <algorithm>

#include "server/watch_wire.h"

namespace relaykv {

uint64_t WatchFeed::WindowEnd() const { return window_.empty() ? 0 : front_seq_ + window_.size(); }

std::vector<WatchFeed::EventPtr> WatchFeed::CopyOut(uint64_t from, uint64_t last) const {
  std::vector<EventPtr> out;
  const uint64_t end = WindowEnd();
  for (uint64_t seq = from; seq <= last && seq < end; ++seq) {
    out.push_back(window_[seq - front_seq_].event);
  }
  return out;
}

void WatchFeed::Clear() {
  window_.clear();
  bytes_ = 0;
}

void WatchFeed::Release() {
  std::lock_guard fill(fill_mu_);
  reader_.reset();
  std::lock_guard l(window_mu_);
  Clear();
}

std::vector<WatchFeed::EventPtr> WatchFeed::Fetch(uint64_t from, uint64_t up_to, size_t max_events,
                                                  size_t max_bytes) {
  if (from == 0 || from > up_to || max_events == 0) return {};
  const uint64_t last = std::min(up_to, from + max_events - 1);
  {
    std::lock_guard l(window_mu_);
    if (!window_.empty() && from < front_seq_) return {};  // behind the window
    if (WindowEnd() > last) return CopyOut(from, last);
  }
  std::lock_guard fill(fill_mu_);
  uint64_t end = 0;
  {
    // Another caller may have filled it while this one waited.
    std::lock_guard l(window_mu_);
    if (!window_.empty() && from < front_seq_) return {};
    if (WindowEnd() > last) return CopyOut(from, last);
    end = WindowEnd();
  }
  // The reader stands at the window's end (a non-empty window has one).
  // An empty window starts at `from`; one that ends before `from` (a
  // watcher of what is durable ahead of those of what is applied, or a
  // window left behind) is dropped and the reader moves to `from`.
  const uint64_t at = reader_ ? reader_->next_seq() : 0;
  if (end == 0 || from > end) {
    {
      std::lock_guard l(window_mu_);
      Clear();
    }
    // Reading forward from where a new reader would start (ReadStartSeq)
    // costs no more than that new reader.
    if (!reader_ || at > from || at < binlog_->ReadStartSeq(from)) {
      auto r = binlog_->NewReader(from);
      if (!r.ok()) {
        reader_.reset();
        return {};
      }
      reader_ = *std::move(r);
    }
    while (reader_->next_seq() < from) {
      auto rec = reader_->Next();
      if (!rec.ok() || !rec->has_value()) {
        reader_.reset();
        return {};
      }
    }
  }
  // Read at most `max_bytes` (at least one event), what one batch may take.
  std::vector<Entry> fresh;
  size_t fresh_bytes = 0;
  bool failed = false;
  while (reader_->next_seq() <= last && (fresh.empty() || fresh_bytes < max_bytes)) {
    auto rec = reader_->Next();
    if (!rec.ok()) {
      failed = true;
      break;
    }
    if (!rec->has_value()) break;  // not visible: the caller's up_to was wrong
    auto item = std::make_shared<Item>();
    item->event = std::move((*rec)->event);
    AppendWatchEvent(item->event, nullptr, &item->wire);
    fresh_bytes += (*rec)->payload.size();
    const size_t held = (*rec)->payload.size() + item->wire.size();
    fresh.push_back({std::move(item), held});
  }
  std::lock_guard l(window_mu_);
  if (failed) {
    reader_.reset();
    Clear();
    return {};
  }
  if (fresh.empty()) return CopyOut(from, last);
  if (window_.empty()) front_seq_ = fresh.front().event->event.gtid().seq();
  for (Entry& e : fresh) {
    bytes_ += e.bytes;
    window_.push_back(std::move(e));
  }
  // Trim to max_bytes_, but keep what this caller asked for.
  while (bytes_ > max_bytes_ && front_seq_ < from) {
    bytes_ -= window_.front().bytes;
    window_.pop_front();
    ++front_seq_;
  }
  return CopyOut(from, last);
}

}  // namespace relaykv
