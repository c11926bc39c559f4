#include "server/coordinator.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <thread>

#include "absl/strings/numbers.h"
#include "client/channel_args.h"
#include "client/channel_credentials.h"
#include "proto/replication.grpc.pb.h"
#include "server/coordinator_internal.h"
#include "server/node_impl.h"
#include "server/test_pause.h"
#include "spdlog/spdlog.h"
#include "storage/thread_name.h"

namespace relaykv {

using namespace coordinator_internal;

namespace {
// For a refusal that waits on the leader key: a key without a lease never
// expires, so nothing but an operator ends that wait (review s44e L3).
std::string NeverExpires(const ClusterView& view, const std::string& cluster) {
  if (view.leader_lease != 0) return "";
  return "; it has no lease, so it never expires: delete it (etcdctl del " +
         LeaderLease::LeaderKey(cluster) + ")";
}

// A claim writes the leader key in one Txn with history/<epoch> naming its
// server_id, and no later epoch is claimed while the key lives. A key this
// does not hold for was written by hand or by a stranger: nothing is
// decided on it (review s44e M6).
bool ClaimWroteLeaderKey(const ClusterView& view) {
  const v1::LeaderRecord& leader = *view.leader;
  const auto claimed = view.history.find(leader.epoch());
  return claimed != view.history.end() && claimed->second.primary == leader.server_id() &&
         leader.epoch() == failover::CurrentEpoch(view.history);
}
}  // namespace

std::set<uint32_t> Coordinator::Ackers(const ClusterView& view) const {
  std::set<uint32_t> ackers;
  for (const auto& [id, address] : view.nodes) {
    if (id != options_.server_id) ackers.insert(id);
  }
  return ackers;
}

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(Node* node,
                                                                  CoordinatorOptions options) {
  if (options.cluster.empty() ||
      options.cluster.find_first_of("/ \t\n") != std::string::npos) {
    return absl::InvalidArgumentError("--cluster must be a non-empty name without '/' or spaces");
  }
  if (options.server_id == 0) {
    return absl::InvalidArgumentError(
        "automatic failover needs a server_id other than 0, unique in the cluster");
  }
  etcd::EtcdClient::Options eo;
  eo.endpoints = options.etcd_endpoints;
  eo.call_timeout = std::chrono::milliseconds(3000);
  auto etcd = etcd::EtcdClient::Create(eo);
  if (!etcd.ok()) return etcd.status();
  return std::unique_ptr<Coordinator>(new Coordinator(node, std::move(options), *std::move(etcd)));
}

Coordinator::Coordinator(Node* node, CoordinatorOptions options,
                         std::unique_ptr<etcd::EtcdClient> etcd)
    : node_(node), options_(std::move(options)), etcd_(std::move(etcd)) {}

Coordinator::~Coordinator() { Stop(); }

std::optional<failover::RejoinDecision> Coordinator::DecideAtOpen(const Gtid& last,
                                                                  const Gtid& applied) {
  auto view = ReadClusterView(etcd_.get(), options_.cluster);
  if (!view.ok()) {
    spdlog::warn("automatic failover: cannot read etcd at open ({}); the role stays unknown until "
                 "it can",
                 view.status().ToString());
    return std::nullopt;
  }
  if (!view->leader || view->leader->server_id() == options_.server_id ||
      last.epoch >= view->leader->epoch()) {
    return std::nullopt;
  }
  if (!ClaimWroteLeaderKey(*view)) {
    // Follow() says why, and decides the rejoin, once it follows a real one.
    spdlog::warn("automatic failover: at open, the leader key (server_id {}, epoch {}) was not "
                 "written by a claim; nothing is truncated for it",
                 view->leader->server_id(), view->leader->epoch());
    return std::nullopt;
  }
  return failover::DecideRejoin(last, applied, view->history);
}

void Coordinator::Start(std::string address) {
  address_ = std::move(address);
  thread_ = std::thread([this] {
    own_id_.store(std::this_thread::get_id());
    NameThisThread("relaykv-coord");
    Run();
  });
}

bool Coordinator::OnOwnThread() const { return std::this_thread::get_id() == own_id_.load(); }

void Coordinator::Stop() {
  {
    std::lock_guard l(mu_);
    if (stopping_) return;
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  if (lease_) {
    // No OK after this, then the key goes: a replica takes over at once
    // instead of after the lease's TTL.
    node_->impl_->lease_until_ns_.store(0);
    if (auto s = lease_->Release(); !s.ok()) {
      spdlog::warn("automatic failover: leader key not released ({}); it expires with the lease",
                   s.ToString());
    } else {
      spdlog::info("automatic failover: leader key released (shutting down)");
    }
    lease_.reset();
  }
}

void Coordinator::Run() {
  std::unique_lock l(mu_);
  while (!stopping_) {
    l.unlock();
    Step();
    l.lock();
    cv_.wait_for(l, kLoop, [&] { return stopping_; });
  }
}

void Coordinator::SetRole(const std::string& role) {
  std::lock_guard l(mu_);
  role_ = role;
  if (role != "unknown") refusal_.clear();
}

void Coordinator::Refuse(const std::string& why) {
  std::lock_guard l(mu_);
  if (refusal_ != why) spdlog::warn("automatic failover: {}", why);
  refusal_ = why;
}

void Coordinator::RequestRestart(const std::string& why) {
  if (restart_requested_) return;
  restart_requested_ = true;
  spdlog::warn("automatic failover: this node restarts to rejoin the cluster: {}", why);
  if (options_.request_restart) options_.request_restart(why);
}

void Coordinator::Step() {
  Node::Impl& impl = *node_->impl_;
  std::shared_ptr<Job> job;
  {
    std::lock_guard l(mu_);
    job = job_;
    if (job) job->started = true;  // from here its caller no longer withdraws it
  }
  if (job) {
    job->work();
    std::lock_guard l(mu_);
    job->done = true;
    job_.reset();
    cv_.notify_all();
  }
  if (restart_requested_) return;
  if (lease_) {
    if (lease_lost_.load() || !lease_->Valid()) {
      // Fenced before anything else: no commit is answered OK from here on.
      impl.lease_until_ns_.store(0);
      impl.SetHeld(true);
      lease_.reset();
      SetRole("unknown");
      RequestRestart("the leader lease was lost (etcd unreachable or too slow to renew)");
      return;
    }
    if (impl.revoked_.load() || impl.promise_->value() > impl.binlog_->epoch()) {
      // A newer epoch was promised here: another node is being elected.
      // Holding the key would keep everyone from electing it.
      impl.lease_until_ns_.store(0);
      impl.SetHeld(true);
      lease_->Release().IgnoreError();
      lease_.reset();
      SetRole("unknown");
      RequestRestart("this primary's epoch was revoked (promised epoch " +
                     std::to_string(impl.promise_->value()) + "): a newer primary is elected");
      return;
    }
    bool key_lost = false;
    auto view = RenewLeaseWindow(&key_lost);
    if (key_lost) {
      impl.SetHeld(true);
      lease_->Release().IgnoreError();
      lease_.reset();
      SetRole("unknown");
      RequestRestart(view->leader_raw.empty()
                         ? "the leader key is gone although this node's lease lives"
                         : "the leader key is no longer this node's: " + view->leader_raw);
      return;
    }
    // Nodes that joined since count as ackers from now (the records only
    // grow; an unread view changes nothing).
    if (view.ok()) impl.semisync_->set_ackers(Ackers(*view));
    if (impl.semisync_->async_wanted() && !impl.async_recorded_.load()) {
      RecordAsync();
    } else if ((impl.async_recorded_.load() || resync_pending_) &&
               impl.semisync_->resynced_at()) {
      RecordResync();
    }
    return;
  }
  if (!registered_) {
    v1::NodeRecord rec;
    rec.set_server_id(options_.server_id);
    rec.set_address(address_);
    rec.set_priority(options_.priority);
    if (auto put = etcd_->Put(NodeKey(options_.cluster, options_.server_id), ToJson(rec));
        !put.ok()) {
      Refuse("cannot register in etcd: " + put.status().ToString());
      return;
    }
    registered_ = true;
  }
  auto view = ReadClusterView(etcd_.get(), options_.cluster);
  if (!view.ok()) {
    Refuse("cannot read etcd: " + view.status().ToString());
    return;
  }
  if (const uint64_t e = failover::CurrentEpoch(view->history); e != newest_seen_epoch_) {
    newest_seen_epoch_ = e;
    newest_seen_at_ = Clock::now();
  }
  {
    std::lock_guard l(mu_);
    epoch_ = failover::CurrentEpoch(view->history);
    leader_ = view->leader ? view->leader->address() + " (server_id " +
                                 std::to_string(view->leader->server_id()) + ", epoch " +
                                 std::to_string(view->leader->epoch()) + ")"
                           : "";
  }
  const std::string never_expires = NeverExpires(*view, options_.cluster);
  if (view->leader && view->leader->server_id() == options_.server_id) {
    if (view->leader_lease == 0) {
      Refuse("the leader key names this node, but no process of it wrote it" + never_expires);
      return;
    }
    // Our own key from before a restart: we hold no lease in this process,
    // so it is stale. Revoking that lease deletes it; the election that
    // follows picks the most advanced node (this one, if nobody else has
    // its tail: a primary that keeps its role keeps its tail).
    spdlog::warn("automatic failover: the leader key still names this node from its last run "
                 "(lease {:x}); revoking that lease to elect again",
                 view->leader_lease);
    if (view->leader_lease != 0) etcd_->LeaseRevoke(view->leader_lease).IgnoreError();
    return;
  }
  if (view->leader) {
    Follow(*view);
    return;
  }
  if (!view->leader_raw.empty()) {
    Refuse("the leader key holds no valid record ('" + view->leader_raw + "')" +
           (never_expires.empty() ? ": waiting for it to expire" : never_expires));
    return;
  }
  Elect(*view);
}

absl::StatusOr<ClusterView> Coordinator::RenewLeaseWindow(bool* key_lost) {
  Node::Impl& impl = *node_->impl_;
  // Read before the key is checked, stored after (review-force2 P7).
  const LeaseClock::time_point safe_until = lease_->safe_until();
  auto view = ReadClusterView(etcd_.get(), options_.cluster);
  if (view.ok() && view->leader_lease != lease_->lease_id()) {
    // The key went while our lease lives (deleted by hand, an etcd bug):
    // others may elect, so this node must stop answering now, not at
    // its lease's end (review-force F1).
    impl.lease_until_ns_.store(0);
    *key_lost = true;
    return view;
  }
  // Never later than the lease says now, and never over a loss reported
  // meanwhile (the callback sets the flag before it closes the window).
  impl.lease_until_ns_.store(LeaseNanos(std::min(safe_until, lease_->safe_until())));
  if (lease_lost_.load()) impl.lease_until_ns_.store(0);
  return view;
}

void Coordinator::Follow(const ClusterView& view) {
  Node::Impl& impl = *node_->impl_;
  const v1::LeaderRecord& leader = *view.leader;
  // Following a key no claim wrote would promise its epoch, durably, to a
  // node that never opened it, and then refuse the real winner of that
  // epoch. The claimer registered first (nodes/<id>, its address).
  const std::string named = leader.address() + " (server_id " +
                            std::to_string(leader.server_id()) + ", epoch " +
                            std::to_string(leader.epoch()) + ")";
  const auto registered = view.nodes.find(leader.server_id());
  if (!ClaimWroteLeaderKey(view) || registered == view.nodes.end()) {
    Refuse("the leader key names " + named + ", which no history/nodes record backs: not "
           "followed" + NeverExpires(view, options_.cluster));
    return;
  }
  if (registered->second != leader.address()) {
    // Its primary restarted elsewhere: the key is its last run's, and goes
    // when it starts (it revokes that lease) or when the lease ends.
    Refuse("the leader key names " + named + ", but that node is registered at " +
           registered->second + " now: waiting for its old key to go" +
           NeverExpires(view, options_.cluster));
    return;
  }
  if (following_ == leader.address() && following_epoch_ == leader.epoch()) {
    RestartStoppedIo();
    return;
  }
  const Gtid last = impl.binlog_->LastVisible();
  const Gtid applied = impl.state_->Applied();
  if (leader.epoch() < impl.binlog_->epoch()) {
    Refuse("the leader key names " + leader.address() + " of epoch " +
           std::to_string(leader.epoch()) + ", older than this node's epoch " +
           std::to_string(impl.binlog_->epoch()) + ": not followed");
    return;
  }
  if (last.epoch < leader.epoch()) {
    const failover::RejoinDecision d = failover::DecideRejoin(last, applied, view.history);
    if (d.action == failover::RejoinAction::kRefuse) {
      Refuse("not following " + leader.address() + ": " + d.reason);
      return;
    }
    if (d.action == failover::RejoinAction::kTruncate) {
      RequestRestart("this binlog's tail after " + d.truncate_after.ToString() +
                     " was never acknowledged (" + d.reason + "); it is truncated at the next "
                     "open, before following " + leader.address());
      return;
    }
  }
  if (auto r = node_->Revoke(leader.epoch(), leader.server_id()); !r.ok()) {
    Refuse("not following " + leader.address() + ": " + r.status().ToString());
    return;
  }
  const auto colon = leader.address().rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(leader.address().substr(colon + 1), &port) || port == 0 || port > 65535) {
    Refuse("the leader key's address '" + leader.address() + "' is not HOST:PORT");
    return;
  }
  if (node_->is_replica()) node_->StopReplica(ReplicaThreads::kIo).IgnoreError();
  if (auto s = node_->ChangePrimary(leader.address().substr(0, colon), port); !s.ok()) {
    Refuse("CHANGE MASTER to " + leader.address() + " failed: " + s.ToString());
    return;
  }
  // Its relay log's lost tail (if any) comes from the primary again.
  if (auto s = impl.binlog_->ForgetUnsyncedTail(); !s.ok()) {
    Refuse(s.ToString());
    return;
  }
  if (auto s = node_->StartReplica(ReplicaThreads::kBoth); !s.ok()) {
    Refuse("START SLAVE failed: " + s.ToString());
    return;
  }
  impl.held_.store(false);
  following_ = leader.address();
  following_epoch_ = leader.epoch();
  io_stopped_seen_.reset();
  io_restart_wait_ = kIoRestartFirst;
  io_restarted_at_ = Clock::now();
  SetRole("replica");
  spdlog::info("automatic failover: following {} (server_id {}, epoch {})", leader.address(),
               leader.server_id(), leader.epoch());
}

void Coordinator::RestartStoppedIo() {
  Node::Impl& impl = *node_->impl_;
  const auto now = Clock::now();
  const std::optional<std::string> error = impl.IoStoppedOnError();
  if (!error) {
    io_stopped_seen_.reset();
    if (now - io_restarted_at_ >= kIoRestartForgotten) io_restart_wait_ = kIoRestartFirst;
    return;
  }
  if (!io_stopped_seen_) io_stopped_seen_ = now;
  if (now - *io_stopped_seen_ < io_restart_wait_) return;
  // Certain to fail again: a newer epoch was promised (its leader, once
  // in etcd, is followed afresh), or the relay log refuses writes until
  // the process restarts.
  if (impl.promise_->value() > following_epoch_) return;
  io_stopped_seen_.reset();
  const auto next = std::min(io_restart_wait_ * 2, kIoRestartMost);
  io_restart_wait_ = next;
  io_restarted_at_ = now;
  if (auto broken = impl.binlog_->WriteError(); !broken.ok()) {
    spdlog::warn("automatic failover: the replica IO thread following {} stopped ({}) and is not "
                 "started again: the relay log refuses writes until relaykvd restarts ({})",
                 following_, *error, broken.ToString());
    return;
  }
  if (impl.RestartIoStoppedOnError()) {
    spdlog::warn("automatic failover: the replica IO thread following {} stopped by itself ({}); "
                 "started it again (next time after {} s if it stops again; STOP SLAVE keeps it "
                 "stopped)",
                 following_, *error, next.count());
  }
}

void Coordinator::Elect(const ClusterView& view) {
  Node::Impl& impl = *node_->impl_;
  const uint32_t me = options_.server_id;
  following_.clear();
  const uint64_t current_epoch = failover::CurrentEpoch(view.history);
  // A planned handover of this epoch names who is to win.
  const bool handover = view.switchover && view.switchover->epoch() == current_epoch &&
                        !view.history.empty();
  if (handover && view.switchover->server_id() != me) {
    Refuse("switchover to " + view.switchover->address() + " (server_id " +
           std::to_string(view.switchover->server_id()) + "): waiting for it to claim");
    return;
  }
  if (!view.records.empty() && !handover) {
    // How long ago the last failover was: by the claimer's wall clock, or
    // by ours since we first saw its record, whichever says longer — a
    // claimer whose clock runs ahead cannot hold every election off for
    // longer than the interval (review-coord 12); a node that just started
    // still trusts the record's age.
    const int64_t by_record = UnixMillis() - view.records.rbegin()->second.started_unix_ms();
    const int64_t by_us = std::chrono::duration_cast<std::chrono::milliseconds>(
                              Clock::now() - newest_seen_at_).count();
    const int64_t wait_ms = std::chrono::milliseconds(options_.failover_min_interval).count() -
                            std::max(by_record, by_us);
    if (wait_ms > 0) {
      Refuse("no leader, but the last failover was less than failover_min_interval ago; "
             "electing in " + std::to_string(wait_ms / 1000 + 1) + " s");
      return;
    }
  }
  // Every candidate elects CurrentEpoch+1 (the claim's Txn picks one), not
  // above its own promise from an earlier round: a round one epoch higher
  // would revoke a winner that just claimed (review-coord 2). Only a node
  // that promised more already (an operator's Revoke) moves it up.
  const uint64_t newest = std::max({failover::CurrentEpoch(view.history), impl.binlog_->epoch(),
                                    highest_promise_seen_});
  // Never wraps to 0 ("no claim") on a garbled record: past the largest
  // epoch there is no election, only a refusal that says why.
  if (newest >= EpochPromise::kMaxEpoch) {
    Refuse("cannot elect: the newest epoch " + std::to_string(newest) + " is at or above " +
           std::to_string(EpochPromise::kMaxEpoch) + ", the largest there is (a damaged etcd "
           "record or promise?)");
    return;
  }
  const uint64_t epoch = newest + 1;
  if (view.history.empty()) {
    // A new cluster: the node started as its primary claims it.
    if (!options_.started_as_primary) {
      Refuse("new cluster " + options_.cluster +
             ": waiting for the node started as primary (without --replicate-from) to claim it");
      return;
    }
    if (auto start = Claim(view, epoch, /*quorum_met=*/true, /*ackers=*/0, /*forced=*/false);
        !start.ok()) {
      Refuse(std::string(start.status().message()));
    }
    return;
  }
  const uint64_t current = failover::CurrentEpoch(view.history);
  const uint32_t previous = view.history.at(current).primary;
  const v1::EpochRecord& record = view.records.at(current);
  const RevokeRound round = RevokeAll(view, epoch, handover);
  if (round.higher_promise) {
    Refuse(round.higher_promise_reason);
    return;
  }
  const std::vector<failover::Responder>& responders = round.responders;
  const int listed = round.listed, answered = round.answered,
            answered_unsynced = round.answered_unsynced;
  failover::QuorumInput q;
  q.listed_ackers = listed;
  q.acks_per_commit = static_cast<int>(record.acks_per_commit());
  q.answered_ackers = answered;
  q.answered_ackers_acked_unsynced = answered_unsynced;
  q.new_primary_is_acker = me != previous;
  q.new_primary_is_previous = me == previous;
  // The previous primary with its whole binlog on disk holds every write
  // it acknowledged, and no other node writes its epoch: it needs no
  // revoke quorum (a lone primary's restart must not wait for a replica
  // that may never come back).
  const bool complete_previous = me == previous && !impl.binlog_->unsynced_tail_at_open();
  const failover::Decision quorum = failover::CheckElectionQuorum(q);
  if (!quorum.ok && !complete_previous) {
    Refuse("election of epoch " + std::to_string(epoch) + " not possible: " + quorum.reason);
    return;
  }
  failover::ElectionInput in;
  in.history = view.history;
  in.cluster_async = record.went_async();
  in.responders = responders;
  in.revoke_quorum_met = quorum.ok;
  const failover::ElectionResult result = failover::PickWinner(in);
  if (!result.winner) {
    Refuse("election of epoch " + std::to_string(epoch) + ": no winner: " + result.reason);
    return;
  }
  if (*result.winner != me) {
    Refuse("election of epoch " + std::to_string(epoch) + ": server_id " +
           std::to_string(*result.winner) + " is the most advanced; waiting for it to claim");
    return;
  }
  // Recorded as it was: a previous primary that skipped the quorum proves
  // nothing about other nodes' tails (DecideRejoin then refuses them).
  if (auto start = Claim(view, epoch, quorum.ok, listed, /*forced=*/false); !start.ok()) {
    Refuse(std::string(start.status().message()));
  }
}

Coordinator::RevokeRound Coordinator::RevokeAll(const ClusterView& view, uint64_t epoch,
                                                bool handover) {
  const uint32_t me = options_.server_id;
  const uint32_t previous = view.history.at(failover::CurrentEpoch(view.history)).primary;
  RevokeRound round;
  for (const auto& [id, address] : view.nodes) {
    if (id != previous) ++round.listed;
    absl::StatusOr<RevokeResult> r =
        id == me ? node_->Revoke(epoch, 0) : PeerRevoke(address, epoch, id);
    if (!r.ok()) {
      spdlog::info("automatic failover: Revoke({}) on server_id {} ({}): {}", epoch, id, address,
                   r.status().ToString());
      round.unreachable.push_back(id);
      continue;
    }
    // No node promises past kMaxEpoch, nor jumps kMaxEpochStep above what
    // it had (EpochPromise::CheckBound): such an answer is garbled or
    // hostile, and kept it would switch elections off here until a restart
    // (review s44e L1).
    // This node's own answer is bounded already (an operator's Revoke may
    // have moved it far up, and FAILOVER FORCE must then open above it).
    if (id != me && r->promised_epoch > epoch &&
        (r->promised_epoch > EpochPromise::kMaxEpoch ||
         r->promised_epoch - epoch > EpochPromise::kMaxEpochStep)) {
      spdlog::info("automatic failover: Revoke({}) on server_id {} ({}) answered promised epoch "
                   "{}, which no node can have promised; counted as not reached",
                   epoch, id, address, r->promised_epoch);
      round.unreachable.push_back(id);
      continue;
    }
    if (r->promised_epoch > epoch) {
      highest_promise_seen_ = std::max(highest_promise_seen_, r->promised_epoch);
      round.higher_promise = true;
      round.higher_promise_reason = "server_id " + std::to_string(id) + " promised epoch " +
                                    std::to_string(r->promised_epoch) +
                                    " already; electing again above it";
      return round;
    }
    failover::Responder resp;
    resp.server_id = id;
    resp.durable = r->durable_gtid;
    resp.applied = r->applied_gtid;
    resp.listed_acker = id != previous;
    resp.previous_primary = id == previous;
    resp.may_have_acked_unsynced = r->may_have_acked_unsynced;
    resp.priority = view.priorities.contains(id) ? view.priorities.at(id) : 1;
    // The switchover target wins every tie, the old primary's too (it
    // ACKed everything the old primary holds).
    if (handover && id == me) resp.priority = std::numeric_limits<int>::max();
    if (resp.listed_acker) {
      ++round.answered;
      if (resp.may_have_acked_unsynced) ++round.answered_unsynced;
    }
    round.responders.push_back(resp);
  }
  return round;
}

absl::StatusOr<RevokeResult> Coordinator::PeerRevoke(const std::string& address, uint64_t epoch,
                                                      uint32_t server_id) {
  auto credentials = MakeChannelCredentials(options_.peer_tls);
  if (!credentials.ok()) return credentials.status();
  auto channel = grpc::CreateCustomChannel(address, *credentials, ClientChannelArguments());
  auto stub = v1::Replication::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kPeerRevokeTimeout);
  v1::RevokeRequest request;
  request.set_epoch(epoch);
  v1::RevokeReply reply;
  const grpc::Status s = stub->Revoke(&context, request, &reply);
  if (!s.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                        address + ": " + s.error_message());
  }
  // An older relaykvd answers 0; another id: the address in etcd is stale
  // (review-coord 8): not this node's answer.
  if (reply.server_id() != 0 && reply.server_id() != server_id) {
    return absl::FailedPreconditionError(address + " answered as server_id " +
                                         std::to_string(reply.server_id()) + ", not " +
                                         std::to_string(server_id) + ": its address in etcd is stale");
  }
  RevokeResult r;
  r.promised_epoch = reply.promised_epoch();
  r.durable_gtid = FromProto(reply.durable_gtid());
  r.applied_gtid = FromProto(reply.applied_gtid());
  r.node_epoch = reply.node_epoch();
  r.revoked_primary = reply.revoked_primary();
  r.promised_owner = reply.promised_owner();
  r.may_have_acked_unsynced = reply.may_have_acked_unsynced();
  return r;
}

absl::StatusOr<Gtid> Coordinator::Claim(const ClusterView& view, uint64_t epoch, bool quorum_met,
                                        int ackers, bool forced) {
  Node::Impl& impl = *node_->impl_;
  const uint32_t me = options_.server_id;
  PauseHereForTesting("coordinator:before-claim");
  // Promised (unbound: this node may still lose the claim below and must
  // then follow the winner of this epoch); opening the epoch binds it.
  if (auto r = node_->Revoke(epoch, 0); !r.ok()) {
    return absl::FailedPreconditionError("cannot claim epoch " + std::to_string(epoch) + ": " +
                                         r.status().ToString());
  }
  const bool replica = node_->is_replica();
  if (replica) node_->StopReplica(ReplicaThreads::kIo).IgnoreError();
  const Gtid durable = impl.binlog_->LastVisible();
  v1::EpochRecord rec;
  rec.set_epoch(epoch);
  rec.set_primary(me);
  ToProto(durable, rec.mutable_start_after());
  rec.set_revoke_quorum_met(quorum_met);
  rec.set_forced(forced);
  rec.set_ackers(static_cast<uint32_t>(ackers));
  const bool semi_sync = impl.vars_.GetBool("rpl_semi_sync_master_enabled");
  rec.set_acks_per_commit(
      semi_sync ? static_cast<uint32_t>(impl.vars_.GetUint("rpl_semi_sync_master_wait_for_slave_count"))
                : 0);
  rec.set_started_unix_ms(UnixMillis());
  v1::LeaderRecord leader;
  leader.set_server_id(me);
  leader.set_epoch(epoch);
  leader.set_address(address_);

  LeaderLease::Options lo;
  lo.cluster = options_.cluster;
  lo.value = ToJson(leader);
  lo.ttl = options_.lease_ttl;
  lo.renew_interval = std::chrono::duration_cast<std::chrono::milliseconds>(options_.lease_ttl) / 5;
  lo.retry_interval = std::chrono::duration_cast<std::chrono::milliseconds>(options_.lease_ttl) / 20;
  lo.margin = std::chrono::duration_cast<std::chrono::milliseconds>(options_.lease_ttl) / 5;
  const std::string history_key = HistoryKey(options_.cluster, epoch);
  // Decided on `view`: the claim holds only if no other election wrote
  // since (the `epoch` key changes with every claim), so a slow candidate
  // never claims an epoch below one that exists (review-coord 6).
  const std::string epoch_key = ClusterPrefix(options_.cluster) + "epoch";
  lo.extra_compares = {etcd::Compare::Version(history_key, etcd::Compare::Result::kEqual, 0),
                       etcd::Compare::ModRevision(epoch_key, etcd::Compare::Result::kEqual,
                                                  view.epoch_mod_revision)};
  lo.extra_ops = {etcd::TxnOp::Put(history_key, ToJson(rec)),
                  etcd::TxnOp::Put(epoch_key, std::to_string(epoch))};
  auto lease = LeaderLease::Acquire(etcd_.get(), lo, [this](const absl::Status& why) {
    spdlog::error("automatic failover: leader lease lost: {}", why.ToString());
    // The flag first: a loop storing a window after this sees it and
    // takes the window back (review-last F1).
    lease_lost_.store(true);
    node_->impl_->lease_until_ns_.store(0);  // no OK from now on
    std::lock_guard l(mu_);
    cv_.notify_all();
  });
  if (!lease.ok()) {
    // The next round follows whoever won.
    return absl::AbortedError("claim of epoch " + std::to_string(epoch) + " lost: " +
                              lease.status().ToString());
  }
  impl.lease_until_ns_.store(LeaseNanos((*lease)->safe_until()));
  // Only the ACKs of joined nodes count: an election revokes and asks
  // exactly those (review-coord 8b).
  impl.semisync_->set_ackers(Ackers(view));
  // The epoch opened must be the one claimed (OpenOwnEpoch refuses before
  // its marker if the promise moved meanwhile).
  impl.claim_epoch_.store(epoch);
  // A new epoch has not gone async (review-coord2 2): the gate closes again.
  impl.async_recorded_.store(false);
  absl::StatusOr<Gtid> start = replica ? node_->BecomePrimary() : impl.PromoteHeldPrimary();
  impl.claim_epoch_.store(0);
  if (start.ok()) {
    if (auto s = impl.binlog_->ForgetUnsyncedTail(); !s.ok()) start = s;
  }
  if (start.ok() && start->epoch != epoch) {
    start = absl::InternalError("opened epoch " + std::to_string(start->epoch) + ", not " +
                                std::to_string(epoch));
  }
  if (!start.ok()) {
    impl.hold_replayed_tail_ = false;  // it restarts: the tail stays unapplied
    impl.held_tail_end_.store(0);       // (the closed gate refuses reads meanwhile)
    impl.lease_until_ns_.store(0);
    (*lease)->Release().IgnoreError();
    const std::string why = "won epoch " + std::to_string(epoch) +
                            " but could not become its primary: " + start.status().ToString();
    RequestRestart(why);
    return absl::UnavailableError(why);
  }
  lease_ = *std::move(lease);
  impl.SetHeld(false);
  PauseHereForTesting("coordinator:unheld");
  // Not revoked any more: a hold armed now is not ended by the revoke.
  impl.HoldReplayedTail();
  SetRole("primary");
  {
    std::lock_guard l(mu_);
    ++failovers_;
    epoch_ = epoch;
    leader_ = address_ + " (this node)";
    last_failover_ = "epoch " + std::to_string(epoch) + " at " + start->ToString() +
                     ", after " + durable.ToString() +
                     (view.history.empty() ? " (new cluster)" : forced ? " (forced)" : "");
  }
  spdlog::warn("automatic failover: this node is the primary of epoch {} (starts at {}, continues "
               "after {}{})",
               epoch, start->ToString(), durable.ToString(),
               view.history.empty() ? "; new cluster" : forced ? "; FORCED by an operator" : "");
  return *start;
}

std::vector<std::pair<std::string, std::string>> Coordinator::Status() const {
  std::lock_guard l(mu_);
  std::string lease_ms = "0";
  const int64_t until = node_->impl_->lease_until_ns_.load();
  if (until != INT64_MAX) {
    lease_ms = std::to_string(
        std::max<int64_t>(0, (until - LeaseNanos(LeaseClock::now())) / 1000000));
  }
  return {{"Coordinator_cluster", options_.cluster},
          {"Coordinator_priority", std::to_string(options_.priority)},
          {"Coordinator_role", role_},
          {"Coordinator_epoch", std::to_string(epoch_)},
          {"Coordinator_leader", leader_},
          {"Coordinator_lease_valid_ms", lease_ms},
          {"Coordinator_elections_won", std::to_string(failovers_)},
          {"Coordinator_last_failover", last_failover_},
          {"Coordinator_refusal", refusal_}};
}

}  // namespace relaykv
