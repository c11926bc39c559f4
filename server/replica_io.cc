#include "server/replica_io.h"

#include "client/channel_credentials.h"

#include <algorithm>
#include <cassert>
#include <optional>
#include <string>
#include <vector>

#include "proto/replication.grpc.pb.h"
#include "server/limits.h"
#include "server/replication_messages.h"
#include "server/test_pause.h"
#include "spdlog/spdlog.h"
#include "storage/binlog_reader.h"
#include "storage/thread_name.h"

namespace relaykv {
namespace {

using Clock = std::chrono::steady_clock;

// Heartbeats come every second; this much silence means the path is dead.
constexpr std::chrono::seconds kPrimarySilence{10};

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

}  // namespace

ReplicaIo::ReplicaIo(Binlog* relay_log, Applier* applier, ReplicaIoConfig config)
    : relay_log_(relay_log), applier_(applier), config_(std::move(config)) {
  status_.retrieved = relay_log_->LastVisible();
}

ReplicaIo::~ReplicaIo() { Stop(); }

void ReplicaIo::Start() {
  std::lock_guard l(mu_);
  StartLocked();
}

bool ReplicaIo::StartIfStoppedOnError() {
  std::lock_guard l(mu_);
  if (!stopped_on_error_) return false;
  StartLocked();
  return true;
}

void ReplicaIo::StartLocked() {
  if (running_) return;
  if (thread_.joinable()) thread_.join();  // a run that ended on a permanent error
  stop_ = false;
  stopped_on_error_ = false;
  running_ = true;
  status_.state = ReplicaIoStatus::State::kConnecting;
  thread_ = std::thread([this] {
    NameThisThread("rkv-io");
    Run();
  });
}

void ReplicaIo::Stop() {
  {
    std::lock_guard l(mu_);
    stop_ = true;
    stopped_on_error_ = false;
    if (ctx_ != nullptr) ctx_->TryCancel();
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  std::lock_guard l(mu_);
  status_.state = ReplicaIoStatus::State::kNo;
  status_.semi_sync = false;
}

int64_t ReplicaIo::OldestUnappliedTimestampUs() {
  return unapplied_.OldestUnapplied(applier_->applied(), relay_log_->LastVisible().seq,
                                    applier_->applied_timestamp_us());
}

bool ReplicaIo::running() const {
  std::lock_guard l(mu_);
  return running_;
}

bool ReplicaIo::stopped_on_error() const {
  std::lock_guard l(mu_);
  return stopped_on_error_;
}

ReplicaIoStatus ReplicaIo::status() const {
  std::lock_guard l(mu_);
  ReplicaIoStatus s = status_;
  s.retrieved = relay_log_->LastVisible();
  return s;
}

void ReplicaIo::SetError(const absl::Status& s) {
  status_.last_error = s.ToString();
  status_.last_error_time_us = NowMicros();
}

absl::Status ReplicaIo::FencedError(uint64_t primary_epoch, uint64_t promised) const {
  return absl::FailedPreconditionError(
      "primary " + config_.primary_address + " is at epoch " + std::to_string(primary_epoch) +
      " but this replica has promised epoch " + std::to_string(promised) +
      " (Revoke, or events of a newer primary): refusing its events and ACKs; CHANGE MASTER TO "
      "the primary of epoch " + std::to_string(promised) + " or newer");
}

absl::Status ReplicaIo::CheckContinues(std::span<const v1::Event> events) const {
  const Gtid last = relay_log_->LastVisible();
  uint64_t want = last.seq + 1;
  uint64_t epoch = std::max(last.epoch, relay_log_->epoch());
  for (const v1::Event& ev : events) {
    if (ev.gtid().seq() != want || ev.gtid().epoch() < epoch) {
      return absl::InvalidArgumentError(
          "primary " + config_.primary_address + " sent an event with gtid " +
          GtidFromProto(ev.gtid()).ToString() + " but the relay log expects seq " +
          std::to_string(want) + " with epoch >= " + std::to_string(epoch) +
          " (gap, duplicate or epoch going back); nothing of the batch is written or promised");
    }
    ++want;
    epoch = ev.gtid().epoch();
  }
  return absl::OkStatus();
}

absl::Status ReplicaIo::CheckHeldEpochWriter(std::span<const v1::Event> events,
                                            uint64_t promised, uint32_t owner) const {
  // Every event of the epoch the relay log ends in, whatever the promise
  // (an election raises it above that epoch before the new primary's
  // stream comes: review-owner2 1). An unknown writer (its event purged)
  // checks nothing here; the primary's CheckPosition still may.
  uint64_t held_epoch = relay_log_->LastVisible().epoch;
  uint32_t writer = held_writer_;
  for (const v1::Event& ev : events) {
    if (ev.gtid().epoch() == held_epoch && writer != 0 && ev.server_id() != 0 &&
        ev.server_id() != writer) {
      return absl::FailedPreconditionError(
          "primary " + config_.primary_address + " sent " + GtidFromProto(ev.gtid()).ToString() +
          " written by server_id " + std::to_string(ev.server_id()) +
          ", but this replica holds epoch " + std::to_string(held_epoch) +
          " written by server_id " + std::to_string(writer) +
          (owner != 0 && held_epoch == promised
               ? " (promised to server_id " + std::to_string(owner) + ")"
               : "") +
          ": two nodes opened that epoch and the primary's history has the other's; refusing its "
          "events and ACKs, nothing of the batch is written or promised; CHANGE MASTER TO a "
          "primary of this replica's history");
    }
    if (ev.gtid().epoch() != held_epoch) {
      held_epoch = ev.gtid().epoch();
      writer = ev.server_id();
    } else if (writer == 0) {
      writer = ev.server_id();
    }
  }
  return absl::OkStatus();
}

absl::Status ReplicaIo::CheckFollows(uint64_t primary_epoch, uint32_t primary_server_id,
                                     uint64_t promised, uint32_t owner) const {
  if (primary_epoch < promised) return FencedError(primary_epoch, promised);
  if (primary_epoch > promised || owner == 0 || primary_server_id == 0 ||
      primary_server_id == owner) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      "primary " + config_.primary_address + " (server_id " + std::to_string(primary_server_id) +
      ") is at epoch " + std::to_string(primary_epoch) +
      ", but this replica promised that epoch to server_id " + std::to_string(owner) +
      ": two nodes opened the same epoch; refusing its events and ACKs; CHANGE MASTER TO the "
      "elected primary");
}

absl::Status ReplicaIo::MarkAckedUnsynced() {
  if (config_.acked_unsynced == nullptr) return absl::OkStatus();
  return config_.acked_unsynced->Mark();
}

absl::Status ReplicaIo::ClearAckedUnsyncedIfCovered(const Gtid& relay_end) {
  AckedUnsyncedMarker* marker = config_.acked_unsynced;
  if (marker == nullptr || !marker->set()) return absl::OkStatus();
  // Found at open: events ACKed then may be gone; covered once the relay
  // log holds all the primary had when we reconnected.
  if (marker->inherited() && !(catch_up_ && catch_up_from_primary_ && relay_end >= *catch_up_)) {
    return absl::OkStatus();
  }
  if (auto s = relay_log_->SyncVisible(); !s.ok()) return s;
  return marker->Clear();
}

void ReplicaIo::CutIfNotFollowing(uint64_t promised, uint32_t owner) {
  std::lock_guard l(mu_);
  // Not heard from yet: its first message is checked against the promise.
  if (ctx_ == nullptr || status_.primary_epoch == 0) return;
  absl::Status s =
      CheckFollows(status_.primary_epoch, status_.primary_server_id, promised, owner);
  if (s.ok()) return;
  cut_ = s;
  spdlog::warn("replica IO thread: {}", std::string(cut_.message()));
  ctx_->TryCancel();
}

void ReplicaIo::Run() {
  auto backoff = std::chrono::milliseconds(100);
  bool permanent = false;
  bool resync = false;
  for (;;) {
    permanent = false;
    resync = false;
    connected_at_.reset();
    absl::Status s = Stream(&permanent, &resync);
    // A connection that stayed up a while worked: its failure is a new
    // one, retried soon, not after the longest wait earlier failures built
    // up (a semi-sync replica kept its primary asynchronous that long).
    // Not after a short one: two replicas with one server_id replace each
    // other's stream, and a primary may accept and drop at once.
    if (connected_at_ && std::chrono::steady_clock::now() - *connected_at_ >= kWorkingConnection) {
      backoff = std::chrono::milliseconds(100);
    }
    std::unique_lock l(mu_);
    status_.semi_sync = false;
    if (stop_) break;
    if (!s.ok()) {
      SetError(s);
      spdlog::warn("replica IO thread: disconnected from {} at relay log {}: {} {}",
                   config_.primary_address, relay_log_->LastVisible().ToString(), s.ToString(),
                   permanent ? "(stopping until START SLAVE)" : "(reconnecting)");
    }
    if (permanent) break;
    status_.state = ReplicaIoStatus::State::kConnecting;
    if (resync) continue;  // a new stream for a new sync_relay_log
    cv_.wait_for(l, backoff, [&] { return stop_; });
    if (stop_) break;
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(5));
  }
  std::lock_guard l(mu_);
  running_ = false;
  stopped_on_error_ = permanent && !stop_;
  status_.state = ReplicaIoStatus::State::kNo;
}

absl::Status ReplicaIo::Stream(bool* permanent, bool* resync) {
  // Keepalive: a primary that is gone without closing the connection ends
  // the stream within keepalive_time_ms + keepalive_timeout_ms (the
  // heartbeat watchdog below covers a primary that answers pings but sends
  // nothing).
  if (FailOnceHereForTesting("replica-io:stream")) {
    *permanent = true;
    return absl::InternalError("test fault: this stream fails as if for good");
  }
  grpc::ChannelArguments args = ClientChannelArguments(config_.channel);
  auto credentials = MakeChannelCredentials(config_.tls);
  if (!credentials.ok()) {
    // A missing or bad PEM file is not fixed by reconnecting.
    *permanent = true;
    return absl::FailedPreconditionError("cannot connect to the primary over TLS: " +
                                         std::string(credentials.status().message()) +
                                         " (fix it with CHANGE MASTER TO ... MASTER_SSL_CA=...)");
  }
  auto channel = grpc::CreateCustomChannel(config_.primary_address, *credentials, args);
  auto stub = v1::Replication::NewStub(channel);
  grpc::ClientContext ctx;
  {
    std::lock_guard l(mu_);
    if (stop_) return absl::OkStatus();
    ctx_ = &ctx;
    cut_ = absl::OkStatus();
    status_.primary_epoch = 0;
    status_.primary_server_id = 0;
  }
  catch_up_.reset();
  struct ClearCtx {
    ReplicaIo* self;
    ~ClearCtx() {
      std::lock_guard l(self->mu_);
      self->ctx_ = nullptr;
    }
  } clear_ctx{this};

  // sync_relay_log is read once per stream: the hello tells the primary
  // whether this stream's ACKs are on disk (only then does it count them,
  // DESIGN.md invariant 1), and a change of it ends the stream (below).
  const bool sync = config_.sync_relay_log ? config_.sync_relay_log() : true;
  // The hello's GTID counts as this replica's first ACK: with
  // sync_relay_log=1 it must be on disk, though a run with 0 (or a crash
  // before a sync) may have left it only written.
  if (sync) {
    if (auto s = relay_log_->SyncVisible(); !s.ok()) {
      *permanent = !absl::IsResourceExhausted(s);  // a full disk heals; a failed sync does not
      return s;
    }
    // Everything this run ACKed is on disk now.
    if (auto s = ClearAckedUnsyncedIfCovered(relay_log_->LastVisible()); !s.ok()) {
      *permanent = !absl::IsResourceExhausted(s);
      return s;
    }
  } else if (auto s = MarkAckedUnsynced(); !s.ok()) {
    // The hello's position may be only written, and counts as an ACK.
    *permanent = !absl::IsResourceExhausted(s);
    return s;
  }
  // Who wrote the last event: the primary compares it with its own event
  // at that GTID (equal GTIDs of two nodes that opened one epoch).
  // Read from disk only when the relay log's end moved since it was known
  // (a retry while the primary is down reads nothing: review-owner2 3).
  const Gtid held = relay_log_->LastVisible();
  if (held != held_writer_at_ || held_writer_ == 0) {
    auto held_event = ReadEventAt(*relay_log_, held.seq);
    if (!held_event.ok()) {
      *permanent = !absl::IsResourceExhausted(held_event.status());
      return held_event.status();
    }
    uint32_t boundary_writer = 0;  // the relay log's last event may be purged
    const bool at_boundary = relay_log_->BeforeFirstAvailable(&boundary_writer) == held;
    held_writer_ = *held_event && GtidFromProto((*held_event)->gtid()) == held
                       ? (*held_event)->server_id()
                       : (at_boundary ? boundary_writer : 0);
    held_writer_at_ = held;
  }
  auto stream = stub->Subscribe(&ctx);
  const bool semi_sync = config_.semi_sync ? config_.semi_sync() : false;
  v1::ReplicaMessage hello;
  hello.mutable_hello()->set_server_id(config_.server_id);
  GtidToProto(held, hello.mutable_hello()->mutable_durable_gtid());
  hello.mutable_hello()->set_durable_writer(held_writer_);
  hello.mutable_hello()->set_semi_sync(semi_sync);
  hello.mutable_hello()->set_relay_log_synced(sync);
  hello.mutable_hello()->set_address(config_.own_address);
  // A primary older than our promise refuses us; one that does not know
  // the field is refused at its first message (below).
  if (config_.promise != nullptr) {
    auto hold = config_.promise->Lock();  // the epoch and its owner, together
    hello.mutable_hello()->set_promised_epoch(hold.value());
    hello.mutable_hello()->set_promised_owner(hold.owner());
  }
  stream->Write(hello);

  v1::PrimaryMessage msg;
  std::vector<v1::Event> events;
  v1::ReplicaMessage ack;
  // ApplyProgress: at every heartbeat, and after batches at most this often
  // (the primary's per-replica lag in seconds; not on the ACK path's clock).
  constexpr auto kProgressPeriod = std::chrono::milliseconds(250);
  auto progress_sent_at = Clock::time_point{};
  auto send_progress = [&] {
    v1::ReplicaMessage progress;
    GtidToProto(applier_->applied_gtid(),
                progress.mutable_progress()->mutable_applied_gtid());
    progress.mutable_progress()->set_oldest_unapplied_timestamp_us(OldestUnappliedTimestampUs());
    progress_sent_at = Clock::now();
    return stream->Write(progress);
  };
  bool connected = false;
  absl::Status error;  // set when we end the stream ourselves

  // The primary heartbeats every second: silence means a dead network path
  // that TCP may not report for minutes. The watchdog cancels the stream so
  // the IO thread reconnects.
  std::mutex watch_mu;
  std::condition_variable watch_cv;
  bool stream_done = false;                      // guarded by watch_mu
  auto last_message = Clock::now();             // guarded by watch_mu
  bool silent = false;                           // guarded by watch_mu
  std::thread watchdog([&] {
    NameThisThread("rkv-io-watch");
    std::unique_lock l(watch_mu);
    while (!stream_done) {
      watch_cv.wait_for(l, std::chrono::seconds(1));
      if (!stream_done && Clock::now() - last_message > kPrimarySilence) {
        silent = true;
        ctx.TryCancel();
        break;
      }
    }
  });
  struct JoinWatchdog {
    std::mutex& mu;
    std::condition_variable& cv;
    bool& done;
    std::thread& t;
    ~JoinWatchdog() {
      {
        std::lock_guard l(mu);
        done = true;
      }
      cv.notify_all();
      t.join();
    }
  } join_watchdog{watch_mu, watch_cv, stream_done, watchdog};

  while (error.ok() && stream->Read(&msg)) {
    {
      std::lock_guard l(watch_mu);
      last_message = Clock::now();
    }
    if (!connected) {
      connected = true;
      connected_at_ = std::chrono::steady_clock::now();
      std::lock_guard l(mu_);
      status_.state = ReplicaIoStatus::State::kYes;
      status_.semi_sync = semi_sync && sync;  // the primary counts an unsynced stream as async
      spdlog::info("replica IO thread: connected to {} from {}", config_.primary_address,
                   relay_log_->LastVisible().ToString());
    }
    // The primary counts this stream's ACKs by what the hello said: a new
    // sync_relay_log takes effect with a new stream, made at once.
    if (config_.sync_relay_log && config_.sync_relay_log() != sync) {
      *resync = true;
      break;
    }
    // The primary's epoch: stated, or (an older relaykvd) its last GTID's.
    const auto epoch_of = [](uint64_t stated, const v1::Gtid& primary_last) {
      return stated != 0 ? stated : primary_last.epoch();
    };
    const uint64_t primary_epoch =
        msg.has_heartbeat()
            ? epoch_of(msg.heartbeat().primary_epoch(), msg.heartbeat().primary_last_gtid())
            : epoch_of(msg.batch().primary_epoch(), msg.batch().primary_last_gtid());
    const uint32_t primary_server_id = msg.has_heartbeat() ? msg.heartbeat().primary_server_id()
                                                           : msg.batch().primary_server_id();
    if (!catch_up_) {
      catch_up_ = GtidFromProto(msg.has_heartbeat() ? msg.heartbeat().primary_last_gtid()
                                                    : msg.batch().primary_last_gtid());
      // Only a primary's end covers what we ACKed to it: a relaying replica
      // (server_id 0 here) may lag it (review s4 finding 3).
      catch_up_from_primary_ = primary_server_id != 0;
    }
    {
      std::lock_guard l(mu_);
      status_.primary_epoch = primary_epoch;
      status_.primary_server_id = primary_server_id;
    }
    if (msg.has_heartbeat()) {
      // Nothing to ACK, but nothing of a fenced primary is applied either.
      if (config_.promise != nullptr) {
        auto hold = config_.promise->Lock();
        error = CheckFollows(primary_epoch, primary_server_id, hold.value(), hold.owner());
        if (!error.ok()) break;
      }
      // Caught up and synced: an inherited marker may go.
      if (sync) {
        error = ClearAckedUnsyncedIfCovered(relay_log_->LastVisible());
        if (!error.ok()) break;
      }
      if (msg.heartbeat().has_visible_seq()) {
        applier_->Release(std::min(relay_log_->LastVisible().seq, msg.heartbeat().visible_seq()));
      }
      {
        std::lock_guard l(mu_);
        status_.primary_last = GtidFromProto(msg.heartbeat().primary_last_gtid());
        status_.primary_time_us = msg.heartbeat().primary_time_us();
      }
      send_progress();  // a failed write ends the stream at the next Read
      continue;
    }
    // Every message is checked before anything is written: a primary that
    // breaks the protocol stops this thread with the reason, never makes it
    // guess (DESIGN.md invariant 5).
    error = DecodeEventBatch(msg, config_.primary_address, &events);
    if (!error.ok()) break;
    // Held from the epoch check until the ACK is written: a Revoke that
    // returned has either been seen here or waited for this ACK.
    std::optional<EpochPromise::Hold> hold;
    if (config_.promise != nullptr) {
      hold.emplace(config_.promise->Lock());
      PauseHereForTesting("replica-io:promise-held");
      error = CheckFollows(primary_epoch, primary_server_id, hold->value(), hold->owner());
      if (!error.ok()) break;
      // Events of a newer epoch: promised (durably) before they are
      // appended, so that the relay log never holds an epoch above the
      // promise, and before they are ACKed. Only a batch the relay log
      // would take raises it: a refused batch leaves no promise behind.
      if (auto s = CheckContinues(events); !s.ok()) {
        error = s;
        break;
      }
      if (auto s = CheckHeldEpochWriter(events, hold->value(), hold->owner()); !s.ok()) {
        error = s;
        break;
      }
      // Bound to the server that wrote the newest epoch's first event (its
      // primary). Owners are checked against a primary that claims the
      // promised epoch itself; a newer primary re-sending that epoch's
      // history has settled who wrote it (this replica may have promised it
      // to a candidate whose election never finished) — unless the relay
      // log holds some of it already (CheckHeldEpochWriter above).
      const v1::Event* newest = nullptr;
      for (const v1::Event& ev : events) {
        if (newest == nullptr || ev.gtid().epoch() > newest->gtid().epoch()) newest = &ev;
      }
      const bool claims_promised = primary_epoch == hold->value();
      if (newest->gtid().epoch() > hold->value() ||
          (claims_promised && newest->gtid().epoch() == hold->value())) {
        // (The promised epoch itself: binds an unknown owner, refuses another.)
        if (auto raised =
                hold->Raise(newest->gtid().epoch(), newest->server_id(), relay_log_->epoch());
            !raised.ok()) {
          error = raised.status();
          break;
        }
      }
      if (primary_epoch == hold->value()) {
        for (const v1::Event& ev : events) {
          if (ev.gtid().epoch() != hold->value()) continue;  // older epochs: history
          error = CheckFollows(ev.gtid().epoch(), ev.server_id(), hold->value(), hold->owner());
          if (!error.ok()) break;
        }
        if (!error.ok()) break;
      }
    }
    const v1::EventBatch& batch = msg.batch();
    // Gap, duplicate or epoch going back: INVALID_ARGUMENT, nothing written.
    if (auto s = relay_log_->AppendReplicated(events, sync); !s.ok()) {
      error = s;
      break;
    }
    // Not empty: an empty batch was refused above.
    assert(!events.empty());
    // The last known writer of the epoch the relay log now ends in: an
    // event without one (server_id 0) keeps it (review-last F2).
    {
      const uint64_t end_epoch = events.back().gtid().epoch();
      uint32_t writer = held_writer_at_.epoch == end_epoch ? held_writer_ : 0;
      for (const v1::Event& ev : events) {
        if (ev.gtid().epoch() != end_epoch) continue;
        if (ev.server_id() != 0) writer = ev.server_id();
      }
      held_writer_ = writer;
      held_writer_at_ = GtidFromProto(events.back().gtid());
    }
    const Gtid last = GtidFromProto(events.back().gtid());
    // The relay log holds [.., last]: on disk if `sync`, else written —
    // and then the marker says so, durably, before the ACK claims it.
    if (!sync) {
      if (auto s = MarkAckedUnsynced(); !s.ok()) {
        error = s;
        break;
      }
    }
    ack.mutable_ack()->Clear();
    GtidToProto(last, ack.mutable_ack()->mutable_durable_gtid());
    stream->Write(ack);
    hold.reset();
    unapplied_.Received(events);
    if (sync) {
      if (auto s = ClearAckedUnsyncedIfCovered(last); !s.ok()) {
        error = s;
        break;
      }
    }
    // What the primary has made visible, if it says (see "Visibility on
    // replicas" in server/replication_service.h); else all it sent.
    applier_->Release(batch.has_visible_seq() ? std::min(last.seq, batch.visible_seq()) : last.seq);
    {
      std::lock_guard l(mu_);
      status_.primary_last = GtidFromProto(batch.primary_last_gtid());
      status_.primary_time_us = batch.primary_time_us();
    }
    if (Clock::now() - progress_sent_at >= kProgressPeriod) send_progress();
  }
  if (*resync) {
    spdlog::info("replica IO thread: sync_relay_log is now {}: reconnecting to {} so that it "
                 "{} this replica's ACKs as semi-sync ACKs",
                 sync ? 0 : 1, config_.primary_address, sync ? "stops counting" : "counts");
    ctx.TryCancel();
    stream->Finish().ok();
    return absl::OkStatus();
  }
  if (!error.ok()) {
    // A full disk (the relay log's append failed and was cut off) heals by
    // itself once space is freed, as MySQL's IO thread waits for disk
    // space: reconnect and try again. Anything else a peer sent is not
    // fixed by retrying.
    *permanent = !absl::IsResourceExhausted(error);
    ctx.TryCancel();
    stream->Finish().ok();  // reaps the cancelled call; its status is ours
    return error;
  }
  grpc::Status st = stream->Finish();
  {
    std::lock_guard l(mu_);
    if (stop_) return absl::OkStatus();
    if (!cut_.ok()) {  // Revoke ended it (CutIfOlder)
      *permanent = true;
      return cut_;
    }
  }
  {
    std::lock_guard l(watch_mu);
    if (silent) {
      return absl::UnavailableError("no message from primary " + config_.primary_address + " for " +
                                    std::to_string(kPrimarySilence.count()) + " s; reconnecting");
    }
  }
  absl::Status s = FromGrpc(st);
  // The primary refusing our position is not fixed by retrying.
  if (absl::IsOutOfRange(s) || absl::IsFailedPrecondition(s)) *permanent = true;
  if (s.ok()) s = absl::UnavailableError("primary " + config_.primary_address + " ended the stream");
  return absl::Status(s.code(), "error reading from primary " + config_.primary_address + ": " +
                                    std::string(s.message()));
}

}  // namespace relaykv
