// Node::Watch: the change stream (relaykv/watch.h). Each watcher walks the
// binlog — a replica's relay log — from its position, never past what it
// may see, and cuts each event down to its range (server/watch_filter.h).
// Near the head it takes the events from the node's WatchFeed (decoded
// once for all watchers, server/watch_feed.h); behind it, from a tailing
// BinlogReader of its own (storage/binlog_reader.h). A batch is built as
// the public WatchBatch (Node::Watch) or, for the gRPC service, as the
// bytes it sends (WatchWire): then an event all in range is the feed's one
// encoding, copied, not filtered, converted and serialized per watcher.
//
// What a watcher may see (its head): with committed_only, what this node
// has applied. Only released events are applied — on a primary under
// AFTER_SYNC once a quorum ACKed them or the timeout made them async, on a
// replica what its primary made visible — so a watcher sees a change
// exactly when Get can, and waits on the applier (WaitApplied) to learn of
// more: the commit path is not touched. Otherwise: what is durable in the
// binlog (WaitForVisibleAfter).
//
// Lag (watch_max_lag_seconds, read at each check): a watch ends with
// RESOURCE_EXHAUSTED when one `deliver` took longer than the limit while
// newer changes waited, or when what it could see at some check was not
// all read within the limit (a catch-up too slow for the write rate).
//
// Memory: one batch (kBatchBytes of changes). The reader goes on only when
// `deliver` returns, so a slow consumer (gRPC flow control) holds the walk,
// never buffers. `deliver` runs outside CallScope: Close() does not wait
// for a consumer, and the next batch then finds the node closing.
#include <algorithm>
#include <mutex>
#include <thread>

#include "relaykv/node.h"
#include "server/node_impl.h"
#include "server/watch_filter.h"
#include "server/watch_wire.h"
#include "storage/binlog_reader.h"

namespace relaykv {
namespace {

using Clock = std::chrono::steady_clock;

// A batch ends at this many bytes of keys and values (for the gRPC
// service: of their encoding), or events...
constexpr size_t kBatchBytes = 256 * 1024;
constexpr size_t kBatchEvents = 1000;
// ...or once this many events were looked at, so that the lag check and a
// cancelled caller are seen while a narrow range skips a long history.
constexpr size_t kBatchScanned = 20000;
// Waits are cut into slices: a closing node, a caller gone and a due
// progress message end them.
constexpr auto kSlice = std::chrono::milliseconds(100);
// How long a woken watcher waits for more changes to send with the first.
// While changes keep coming, a watcher also looks at most once per
// watch_min_interval_ms: each look costs a wake-up, and on a 2-core
// machine 16 watchers looking every 10 ms (even with nothing in their
// range) cost AFTER_SYNC commits at 64 clients ~25% of their throughput,
// every 100 ms ~6% (relaykv-bench --watchers 16, README "Change stream").
constexpr auto kCoalesce = std::chrono::milliseconds(2);

// OUT_OF_RANGE "purged: ...", naming the oldest GTID the binlog still has.
absl::Status Purged(Binlog* binlog, const Gtid& after) {
  std::string oldest = "none (every event was purged)";
  const uint64_t first = binlog->FirstAvailableSeq();
  if (auto reader = binlog->NewReader(first); reader.ok()) {
    if (auto rec = (*reader)->Next(); rec.ok() && rec->has_value()) {
      oldest = GtidFromProto((*rec)->event.gtid()).ToString();
    }
  }
  return absl::OutOfRangeError(
      "purged: the changes after gtid " + after.ToString() +
      " are no longer in this node's binlog; the oldest still available is " + oldest +
      " (watch after " + binlog->BeforeFirstAvailable().ToString() +
      " or later, e.g. after a Scan's applied gtid, or from now)");
}

absl::Status TooSlow(std::chrono::seconds max_lag, const Gtid& progress, const Gtid& head) {
  return absl::ResourceExhaustedError(
      "watcher is too slow: it kept changes waiting for more than watch_max_lag_seconds (" +
      std::to_string(max_lag.count()) + " s); it is at gtid " + progress.ToString() +
      ", this node at " + head.ToString() + "; watch again after " + progress.ToString());
}

absl::Status NotOurs(const Gtid& want, const Gtid& ours) {
  return absl::FailedPreconditionError("watch after gtid " + want.ToString() +
                                       ": not in this node's history (it has " + ours.ToString() +
                                       " at that seq)");
}

// A watch's batches as the public WatchBatch (Node::Watch): each event cut
// down to the watcher's range, copied into slots reused batch after batch.
class StructOut {
 public:
  explicit StructOut(const WatchDeliver& deliver) : deliver_(deliver) {}
  void Clear() { taken_ = 0; }
  // Adds `event`'s changes in `bounds`, counting their keys' and values'
  // bytes into `bytes`; false when it has none. (`wire` is not needed.)
  bool Add(const v1::Event& event, const std::string* /*wire*/, const WatchBounds& bounds,
           size_t* bytes) {
    if (taken_ == batch_.events.size()) batch_.events.emplace_back();
    WatchEvent& e = batch_.events[taken_];
    if (!FilterEvent(event, bounds, &e)) return false;
    for (const Mutation& m : e.changes) *bytes += m.key.size() + m.value.size();
    ++taken_;
    return true;
  }
  bool Deliver(const Gtid& progress, const Gtid& head) {
    batch_.events.resize(taken_);
    batch_.progress = progress;
    batch_.head = head;
    return deliver_(batch_);
  }

 private:
  const WatchDeliver& deliver_;
  WatchBatch batch_;
  size_t taken_ = 0;  // events in this batch: batch_.events' first ones
};

// A watch's batches as the bytes of a WatchResponse (server/watch_wire.h):
// an event whose changes are all in range is copied from the feed's one
// encoding; any other is encoded here with the changes in range.
class WireOut {
 public:
  explicit WireOut(const WatchWireDeliver& deliver) : deliver_(deliver) {}
  void Clear() { out_.clear(); }
  // As StructOut::Add, counting the bytes of the encoding.
  bool Add(const v1::Event& event, const std::string* wire, const WatchBounds& bounds,
           size_t* bytes) {
    const size_t before = out_.size();
    if (wire != nullptr && AllInside(event, bounds)) {
      out_.append(*wire);
    } else if (!AppendWatchEvent(event, &bounds, &out_)) {
      return false;
    }
    *bytes += out_.size() - before;
    return true;
  }
  bool Deliver(const Gtid& progress, const Gtid& head) {
    AppendWatchPosition(progress, head, &out_);
    const bool more = deliver_(out_);
    // Reused batch after batch, but not holding on to one big value.
    if (out_.capacity() > kKeepBytes) std::string().swap(out_);
    return more;
  }

 private:
  // Above a batch's size (kBatchBytes): one big event's bytes are let go.
  static constexpr size_t kKeepBytes = 1 << 20;
  const WatchWireDeliver& deliver_;
  std::string out_;
};

}  // namespace

absl::Status Node::Impl::Watch(const WatchOptions& o, const WatchDeliver& deliver) {
  StructOut out(deliver);
  return WatchInto(o, out);
}

absl::Status Node::Impl::WatchWire(const WatchOptions& o, const WatchWireDeliver& deliver) {
  WireOut out(deliver);
  return WatchInto(o, out);
}

template <class Out>
absl::Status Node::Impl::WatchInto(const WatchOptions& o, Out& out) {
  auto bounds = ResolveWatchRange(o.range);
  if (!bounds.ok()) return bounds.status();
  if (o.progress_interval <= std::chrono::milliseconds(0)) {
    return absl::InvalidArgumentError("watch progress interval must be positive");
  }
  // One slot of max_watchers, held until this returns. The last watcher
  // out lets the feed go (its reader may hold a purged segment open).
  struct Slot {
    Impl* impl;
    ~Slot() {
      CallScope scope(impl);  // a closing node drops the feed itself
      if (impl->watchers_.fetch_sub(1) == 1 && scope.ok()) impl->watch_feed_->Release();
    }
  };
  const uint64_t max_watchers = vars_.GetUint("max_watchers");
  if (static_cast<uint64_t>(watchers_.fetch_add(1)) >= max_watchers) {
    Slot refused{this};  // may be the last out, if the others left meanwhile
    return absl::ResourceExhaustedError("too many watchers: max_watchers is " +
                                        std::to_string(max_watchers) +
                                        " (SET GLOBAL max_watchers to allow more)");
  }
  Slot slot{this};

  // What the watcher may see (see the file comment).
  auto head = [&] { return o.committed_only ? state_->Applied() : binlog_->LastVisible(); };
  auto gone = [&]() -> absl::Status {
    if (o.cancelled && o.cancelled()) return absl::CancelledError("the watcher went away");
    std::lock_guard l(mu_);
    if (closing_) return absl::UnavailableError("relaykv node is shutting down");
    return absl::OkStatus();
  };

  std::unique_ptr<BinlogReader> reader;
  Gtid progress;  // the last event looked at (or the starting point)
  {
    CallScope scope(this);
    if (!scope.ok()) return scope.status();
    if (!o.after) {
      progress = head();
      auto r = binlog_->NewReader(progress.seq + 1);
      if (!r.ok()) return r.status();
      reader = *std::move(r);
    } else {
      const Gtid after = *o.after;
      // A fenced or held primary (role unknown) cannot speak for the
      // cluster's history: a newer primary may have the GTID, so a client
      // is told to try elsewhere (UNAVAILABLE: relaykv::Client moves on),
      // not that the GTID is nowhere (review s35-watch F2).
      auto fenced_primary = [&] { return primary_address().empty() && GateClosedForReads(); };
      auto not_here = [&](bool fenced, absl::Status refusal) {
        if (!fenced) return refusal;
        return absl::UnavailableError(
            std::string(refusal.message()) +
            "; but this primary is fenced or its role is not known, so a newer primary may "
            "have it: watch the cluster's primary");
      };
      // Beyond this node's binlog: a primary never gets there in this
      // history; a replica may still receive it.
      while (binlog_->LastVisible().seq < after.seq) {
        if (primary_address().empty()) {
          const Gtid end = binlog_->LastVisible();
          const bool fenced = GateClosedForReads();
          // A node that began to follow a primary meanwhile (its role
          // changes before its gate opens) waits as a replica does: the
          // demotion must not make this answer final (review s36 F4).
          if (!fenced && !primary_address().empty()) continue;
          if (end.seq >= after.seq) continue;  // it arrived meanwhile
          return not_here(fenced, absl::FailedPreconditionError(
              "watch after gtid " + after.ToString() + ": this node's binlog ends at " +
              end.ToString() + ", so that gtid is not in its history"));
        }
        binlog_->WaitForVisibleAfter(after.seq - 1, Clock::now() + kSlice);
        if (auto s = gone(); !s.ok()) return s;
      }
      const Gtid before_first = binlog_->BeforeFirstAvailable();
      if (after.seq < before_first.seq) return Purged(binlog_.get(), after);
      progress = after;
      if (after.seq == 0 || after.seq == before_first.seq) {
        // The purge boundary's GTID comes from the oldest segment's header.
        if (after.epoch != 0 && after.seq != 0 && after != before_first) {
          return not_here(fenced_primary(), NotOurs(after, before_first));
        }
        auto r = binlog_->NewReader(after.seq + 1);
        if (!r.ok()) return absl::IsOutOfRange(r.status()) ? Purged(binlog_.get(), after) : r.status();
        reader = *std::move(r);
      } else {
        // Read the event at `after` itself: it must be the one named.
        auto r = binlog_->NewReader(after.seq);
        if (!r.ok()) return absl::IsOutOfRange(r.status()) ? Purged(binlog_.get(), after) : r.status();
        reader = *std::move(r);
        auto rec = reader->Next();
        if (!rec.ok()) return absl::IsOutOfRange(rec.status()) ? Purged(binlog_.get(), after) : rec.status();
        if (!rec->has_value()) return absl::InternalError("binlog event vanished while starting a watch");
        const Gtid ours = GtidFromProto((*rec)->event.gtid());
        if (after.epoch != 0 && ours != after) {
          return not_here(fenced_primary(), NotOurs(after, ours));
        }
        progress = ours;
      }
    }
  }

  // Lag: everything the watcher could see at target_time (up to
  // target_seq) must be read within watch_max_lag_seconds.
  uint64_t target_seq = 0;
  auto target_time = Clock::now();
  uint64_t next_seq = reader->next_seq();  // the next event to look at
  bool first = true;  // the first batch goes at once: it names the start
  bool last_full = false;  // the last batch ended at a size limit (catching up)
  Clock::time_point looked_at{};  // when the last look found changes
  Clock::duration deliver_took{0};  // how long the last `deliver` took
  auto MaxLag = [&] { return std::chrono::seconds(vars_.GetUint("watch_max_lag_seconds")); };
  auto delivered_at = Clock::now();
  Gtid head_at_look;  // the head the last look read up to
  for (;;) {
    size_t taken = 0;  // events in this batch
    out.Clear();
    {
      CallScope scope(this);
      if (!scope.ok()) return scope.status();
      if (auto s = gone(); !s.ok()) return s;
      // A caught-up watcher (its last batch was not full) that found
      // changes at its last look looks again at most once per
      // watch_min_interval_ms (one wake-up per look), and no later than
      // its next progress message is due.
      if (!first && !last_full) {
        const auto until =
            std::min(looked_at + std::chrono::milliseconds(vars_.GetUint("watch_min_interval_ms")),
                     delivered_at + o.progress_interval);
        if (until > Clock::now()) {
          {
            std::unique_lock l(mu_);
            cv_.wait_until(l, until, [&] { return closing_; });
          }
          if (auto s = gone(); !s.ok()) return s;
        }
      }
      Gtid h = head();
      if (first) target_seq = h.seq;
      // A consumer that took longer than the limit over one batch while
      // newer changes waited has kept them waiting that long.
      if (const auto max_lag = MaxLag(); deliver_took > max_lag && next_seq <= h.seq) {
        return TooSlow(max_lag, progress, h);
      }
      deliver_took = Clock::duration{0};
      if (!first && next_seq > h.seq) {
        // Nothing new: wait for it, or until a progress message is due.
        const auto until = std::min(delivered_at + o.progress_interval, Clock::now() + kSlice);
        if (o.committed_only) {
          absl::Status s = applier_->WaitApplied(next_seq, until);
          if (!s.ok() && !absl::IsDeadlineExceeded(s)) {
            // Not applying (STOP SLAVE SQL_THREAD, an apply error): nothing
            // becomes visible; sleep the slice instead of spinning.
            std::unique_lock l(mu_);
            cv_.wait_until(l, until, [&] { return closing_; });
          }
        } else {
          binlog_->WaitForVisibleAfter(next_seq - 1, until);
        }
        // Woken by new changes: let a few more commit groups join them.
        if (head().seq >= next_seq) std::this_thread::sleep_for(kCoalesce);
        h = head();
      }
      size_t bytes = 0, scanned = 0;
      auto full = [&] {
        return bytes >= kBatchBytes || taken >= kBatchEvents || scanned >= kBatchScanned;
      };
      auto take = [&](const v1::Event& event, const std::string* wire) {
        ++scanned;
        progress = GtidFromProto(event.gtid());
        next_seq = progress.seq + 1;
        if (out.Add(event, wire, *bounds, &bytes)) ++taken;
      };
      auto failed = [&](const absl::Status& s) {
        return absl::IsOutOfRange(s) ? Purged(binlog_.get(), progress) : s;
      };
      bool stalled = false;  // the binlog ended before h: not expected, h is visible
      while (next_seq <= h.seq && !full() && !stalled) {
        // At the head: the events all watchers share (server/watch_feed.h).
        auto shared = watch_feed_->Fetch(next_seq, h.seq, kBatchEvents, kBatchBytes);
        if (!shared.empty()) {
          for (size_t i = 0; i < shared.size() && !full(); ++i) take(shared[i]->event, &shared[i]->wire);
          continue;
        }
        // Behind it: this watcher's own reader, read forward from where it
        // was left if that costs no more than a new reader (which starts at
        // ReadStartSeq); any trouble on the way: a new one.
        if (reader && reader->next_seq() < next_seq &&
            reader->next_seq() >= binlog_->ReadStartSeq(next_seq)) {
          while (reader && reader->next_seq() < next_seq) {
            auto rec = reader->Next();
            if (!rec.ok() || !rec->has_value()) reader.reset();
          }
        }
        if (!reader || reader->next_seq() != next_seq) {
          auto r = binlog_->NewReader(next_seq);
          if (!r.ok()) return failed(r.status());
          reader = *std::move(r);
        }
        for (size_t n = 0; n < kBatchEvents && next_seq <= h.seq && !full(); ++n) {
          auto rec = reader->Next();
          if (!rec.ok()) return failed(rec.status());
          if (!rec->has_value()) {
            stalled = true;
            break;
          }
          take((*rec)->event, nullptr);
        }
      }
      last_full = full();
      if (scanned > 0) looked_at = Clock::now();
      const auto now = Clock::now();
      if (next_seq > target_seq) {
        target_seq = head().seq;  // what waits now, read or not
        target_time = now;
      } else if (now - target_time > MaxLag()) {
        return TooSlow(MaxLag(), progress, h);
      }
      head_at_look = h;
    }
    if (first || taken > 0 || Clock::now() >= delivered_at + o.progress_interval) {
      first = false;
      const auto before = Clock::now();
      if (!out.Deliver(progress, head_at_look)) return absl::OkStatus();
      delivered_at = Clock::now();
      deliver_took = delivered_at - before;
    }
  }
}

absl::Status Node::Watch(const WatchOptions& options, const WatchDeliver& deliver) {
  return impl_->Watch(options, deliver);
}

}  // namespace relaykv
