// CloneService: the source side of clone provisioning (proto/clone.proto).
//
// Begin takes a RocksDB checkpoint of the state machine into
// <sessions_dir>/<session id>/ (hard links, after one flush), reads from
// it the GTID whose effects it holds (StateMachine::CreateCheckpoint) and
// hashes every file (SHA-256). FetchFile streams one file of a session from
// any offset in chunks of `chunk_bytes`, each with its CRC32C, so a receiver
// whose connection dropped resumes where it broke. Finish drops the session.
//
// Which GTID. Under AFTER_SYNC the state machine holds only what is visible
// (replicated, or committed async); its applied GTID is written in the same
// WriteBatch as the data, so the checkpoint's own copy names exactly the
// events it contains — not the binlog's end, which may be ahead.
//
// Sessions are bounded (`max_sessions`; RESOURCE_EXHAUSTED beyond, naming
// the limit) and expire after `ttl` without a byte sent (not while a
// FetchFile runs), and after `max_lifetime` whatever they do (a fetch
// running then ends with ABORTED): calls that send nothing, or a reader
// taking a chunk now and then, cannot keep a checkpoint and a session slot
// for ever (review s43c). Their checkpoints are removed on Finish, expiry,
// and destruction, and a directory left by a crash is removed at
// construction. While a session lives, PURGE BINARY LOGS keeps the binlog
// from its GTID+1 on (MinNeededSeq), so the clone can replicate from
// there; the age and size limits win over it (server/node_retention.cc).
//
// A peer cannot pin the source's threads (review s43a H1): each FetchFile
// holds a max_connections slot for its life (RESOURCE_EXHAUSTED beyond,
// naming the limit), a session runs at most kMaxFetchesPerSession at once,
// and a send blocked longer than `send_timeout` (net_write_timeout: the
// receiver does not read) ends the call, as it ends a replica's stream.
//
// Every method needs the replication or the admin role (server/auth.h).
// Threads: gRPC's sync server threads call the methods concurrently; a
// reaper task on the node's timer loop (server/timer_loop.h) expires
// sessions once a second: registered by the constructor, cancelled by the
// destructor, which returns once no reaping round runs.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "proto/clone.grpc.pb.h"
#include "server/auth.h"
#include "server/connection_slots.h"
#include "server/limits.h"
#include "server/stall_watchdog.h"
#include "server/timer_loop.h"
#include "storage/gtid.h"
#include "storage/state_machine.h"
#include "storage/thread_annotations.h"

namespace relaykv {

class Binlog;

struct CloneServiceOptions {
  std::filesystem::path sessions_dir;  // owned by the service; emptied at start
  size_t max_sessions = 2;
  std::chrono::milliseconds ttl = std::chrono::minutes(10);
  std::chrono::milliseconds max_lifetime = std::chrono::hours(24);
  size_t chunk_bytes = 1 << 20;
  // What the source says about itself in BeginCloneResponse.
  std::function<uint32_t()> server_id;
  std::function<std::string()> primary;  // "" on a primary
  // Borrowed; null: fetches are not counted (tests that run the service alone).
  ConnectionSlots* connections = nullptr;
  // The node's binlog (a replica's relay log). Borrowed; null: Begin sends
  // no event, and the clone's binlog cannot tell who wrote its last one.
  Binlog* binlog = nullptr;
  // The largest answer gRPC sends (max_allowed_packet, and what a receiver
  // takes): Begin leaves the event out rather than exceed it.
  size_t max_reply_bytes = kMaxGrpcMessageBytes;
  // net_write_timeout; empty: 60 s.
  std::function<std::chrono::seconds()> send_timeout;
  // Tests only: end a FetchFile with UNAVAILABLE once this many bytes of a
  // session were sent (once per session; 0 = never), and flip one bit of
  // the data of a session's first chunk after its CRC is computed (a
  // corrupted transfer the receiver must refuse). relaykvd sets them from
  // RELAYKV_CLONE_BREAK_AT_BYTES_FOR_TESTING and
  // RELAYKV_CLONE_CORRUPT_CHUNK_FOR_TESTING.
  uint64_t break_at_bytes_for_testing = 0;
  bool corrupt_first_chunk_for_testing = false;
};

struct CloneSourceStats {
  uint64_t sessions = 0;     // live now
  uint64_t started = 0;      // Begin calls that made a session
  uint64_t finished = 0;     // Finish calls
  uint64_t expired = 0;      // sessions dropped by the TTL
  uint64_t bytes_sent = 0;   // file bytes streamed
};

class CloneService final : public v1::Clone::Service {
 public:
  // Borrows `state` and `auth`; both must outlive the gRPC server.
  // Borrows `timers` for the constructor only.
  CloneService(const StateMachine* state, const Authorizer* auth, TimerLoop* timers,
               CloneServiceOptions options);
  ~CloneService() override;
  CloneService(const CloneService&) = delete;
  CloneService& operator=(const CloneService&) = delete;

  grpc::Status Begin(grpc::ServerContext* ctx, const v1::BeginCloneRequest* request,
                     v1::BeginCloneResponse* response) override;
  grpc::Status FetchFile(grpc::ServerContext* ctx, const v1::FetchCloneFileRequest* request,
                         grpc::ServerWriter<v1::CloneChunk>* writer) override;
  grpc::Status Finish(grpc::ServerContext* ctx, const v1::FinishCloneRequest* request,
                      v1::FinishCloneResponse* response) override;

  // A receiver fetches one file at a time; a few more cover streams it
  // gave up on that have not ended yet.
  static constexpr int kMaxFetchesPerSession = 4;

  // The lowest binlog seq a live session still needs (its GTID + 1);
  // UINT64_MAX when there is none.
  uint64_t MinNeededSeq() const EXCLUDES(mu_);
  CloneSourceStats stats() const EXCLUDES(mu_);

 private:
  using Clock = std::chrono::steady_clock;
  struct Session {
    std::string id;
    std::filesystem::path dir;
    Gtid gtid;
    std::map<std::string, uint64_t> sizes;  // file name -> size: what may be fetched
    Clock::time_point created;
    Clock::time_point last_used;            // Begin, or a byte sent; GUARDED_BY(CloneService::mu_)
    bool dropped = false;                   // expired while fetching; GUARDED_BY(CloneService::mu_)
    int fetching = 0;                       // GUARDED_BY(CloneService::mu_)
    uint64_t bytes_sent = 0;                // GUARDED_BY(CloneService::mu_)
    bool broke_for_testing = false;         // GUARDED_BY(CloneService::mu_)
    bool corrupted_for_testing = false;     // GUARDED_BY(CloneService::mu_)
  };
  grpc::Status CheckRole(const grpc::ServerContext* ctx, std::string_view op) const;
  // The session; null if unknown.
  std::shared_ptr<Session> Find(const std::string& id) EXCLUDES(mu_);
  // One reaping round: drops the sessions idle for longer than the TTL.
  void Reap() EXCLUDES(mu_);

  const StateMachine* const state_;
  const Authorizer* const auth_;
  const CloneServiceOptions options_;

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Session>> sessions_ GUARDED_BY(mu_);
  size_t beginning_ GUARDED_BY(mu_) = 0;  // Begin calls taking a checkpoint now
  bool stop_ GUARDED_BY(mu_) = false;
  CloneSourceStats stats_ GUARDED_BY(mu_);
  StallWatchdog watchdog_;  // FetchFile sends (net_write_timeout)
  TimerLoop::PeriodicTask reaper_;  // last: runs once everything above is set up
};

}  // namespace relaykv
