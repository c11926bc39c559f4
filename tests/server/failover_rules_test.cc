// Tests server/failover_rules.cc: hand cases (Patroni's _is_healthiest_node,
// Vitess ERS scenarios: errant candidates, async replicas ahead of ackers,
// an ineligible replica ahead) and seeded property tests that simulate one
// epoch of semi-sync commits and check that no rule ever loses an
// acknowledged write. RELAYKV_FAILOVER_SEED=<n> reruns with another seed.
#include "server/failover_rules.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace relaykv::failover {
namespace {

uint64_t BaseSeed() {
  const char* env = std::getenv("RELAYKV_FAILOVER_SEED");
  return env != nullptr ? std::strtoull(env, nullptr, 10) : 16;
}

Responder Acker(uint32_t id, Gtid durable, int priority = 1) {
  Responder r;
  r.server_id = id;
  r.durable = durable;
  r.applied = durable;
  r.priority = priority;
  r.listed_acker = true;
  return r;
}

// ---- GTID order ----

TEST(GtidOrderTest, EpochComparesBeforeSeq) {
  EXPECT_LT((Gtid{1, 10}), (Gtid{2, 5}));  // a newer epoch supersedes a longer old tail
  EXPECT_LT((Gtid{2, 5}), (Gtid{2, 6}));
  EXPECT_EQ((Gtid{3, 7}), (Gtid{3, 7}));
  EXPECT_LT((Gtid{0, 0}), (Gtid{1, 1}));
}

// ---- Revoke / establish ----

TEST(ElectionQuorumTest, NeedsAMinusNPlusOneAnswered) {
  EXPECT_FALSE(CheckElectionQuorum({.listed_ackers = 3, .acks_per_commit = 1,
                                    .answered_ackers = 2}).ok);
  Decision d = CheckElectionQuorum({.listed_ackers = 3, .acks_per_commit = 2, .answered_ackers = 1});
  EXPECT_FALSE(d.ok);
  EXPECT_NE(d.reason.find("revoke"), std::string::npos) << d.reason;
  EXPECT_TRUE(CheckElectionQuorum({.listed_ackers = 3, .acks_per_commit = 2,
                                   .answered_ackers = 2}).ok);
}

TEST(ElectionQuorumTest, NewPrimaryNeedsNOtherAckers) {
  // A=3, N=2: two answers revoke; if one is the candidate itself, one acker
  // is left to acknowledge its commits, and they need two.
  Decision d = CheckElectionQuorum({.listed_ackers = 3, .acks_per_commit = 2,
                                    .answered_ackers = 2, .new_primary_is_acker = true});
  EXPECT_FALSE(d.ok);
  EXPECT_NE(d.reason.find("establish"), std::string::npos) << d.reason;
  EXPECT_TRUE(CheckElectionQuorum({.listed_ackers = 3, .acks_per_commit = 2,
                                   .answered_ackers = 3, .new_primary_is_acker = true}).ok);
  // The previous primary taking over needs N ackers, none of them itself.
  EXPECT_TRUE(CheckElectionQuorum({.listed_ackers = 2, .acks_per_commit = 1,
                                   .answered_ackers = 2, .new_primary_is_previous = true}).ok);
}

TEST(ElectionQuorumTest, AsyncOnlyLetsThePreviousPrimaryTakeOver) {
  Decision d = CheckElectionQuorum({.listed_ackers = 2, .acks_per_commit = 0,
                                    .answered_ackers = 2});
  EXPECT_FALSE(d.ok);
  EXPECT_NE(d.reason.find("N=0"), std::string::npos) << d.reason;
  EXPECT_TRUE(CheckElectionQuorum({.listed_ackers = 0, .acks_per_commit = 0, .answered_ackers = 0,
                                   .new_primary_is_previous = true}).ok);
}

TEST(ElectionQuorumTest, MoreAcksThanAckersIsRefused) {
  Decision d = CheckElectionQuorum({.listed_ackers = 1, .acks_per_commit = 2, .answered_ackers = 1});
  EXPECT_FALSE(d.ok);
  EXPECT_NE(d.reason.find("N=2 > A=1"), std::string::npos) << d.reason;
  EXPECT_FALSE(CheckElectionQuorum({.listed_ackers = 0, .acks_per_commit = 1,
                                    .answered_ackers = 0}).ok);
}

TEST(ElectionQuorumTest, InconsistentCountsAreRefused) {
  EXPECT_FALSE(CheckElectionQuorum({.listed_ackers = 2, .acks_per_commit = 1,
                                    .answered_ackers = 3}).ok);
  EXPECT_FALSE(CheckElectionQuorum({.listed_ackers = -1, .acks_per_commit = 0}).ok);
}

// Against brute force: the revoke condition holds exactly when every
// N-subset of the ackers meets the responders.
TEST(ElectionQuorumTest, RevokeConditionMatchesBruteForce) {
  std::mt19937_64 rng(BaseSeed());
  for (int iter = 0; iter < 20000; ++iter) {
    const int a = 1 + static_cast<int>(rng() % 8);
    const int n = 1 + static_cast<int>(rng() % a);
    const uint32_t responders = static_cast<uint32_t>(rng() % (1u << a));
    const int answered = __builtin_popcount(responders);
    bool every_quorum_meets = true;
    for (uint32_t q = 0; q < (1u << a); ++q) {
      if (__builtin_popcount(q) == n && (q & responders) == 0) every_quorum_meets = false;
    }
    // Not an acker itself, so establish needs answered >= N.
    Decision d = CheckElectionQuorum({.listed_ackers = a, .acks_per_commit = n,
                                      .answered_ackers = answered});
    EXPECT_EQ(d.ok, every_quorum_meets && answered >= n)
        << "A=" << a << " N=" << n << " answered=" << answered << ": " << d.reason;
  }
}

// ---- Errant detection ----

History TwoFailovers() {
  History h;
  h[1] = {.start_after = {0, 0}, .primary = 1, .revoke_quorum_met = true};
  h[2] = {.start_after = {1, 10}, .primary = 2, .revoke_quorum_met = true};
  h[3] = {.start_after = {2, 15}, .primary = 3, .revoke_quorum_met = true};
  return h;
}

TEST(LineageTest, TailPastTheNextEpochsStartIsErrant) {
  const History h = TwoFailovers();
  EXPECT_EQ(CheckLineage({1, 10}, h).lineage, Lineage::kClean);
  EXPECT_EQ(CheckLineage({1, 11}, h).lineage, Lineage::kErrant);
  EXPECT_EQ(CheckLineage({2, 15}, h).lineage, Lineage::kClean);
  EXPECT_EQ(CheckLineage({2, 16}, h).lineage, Lineage::kErrant);
  EXPECT_EQ(CheckLineage({3, 99}, h).lineage, Lineage::kClean);  // the current epoch
  EXPECT_EQ(CheckLineage({0, 0}, h).lineage, Lineage::kClean);   // empty node
}

TEST(LineageTest, MissingHistoryCannotBeJudged) {
  History h = TwoFailovers();
  EXPECT_EQ(CheckLineage({4, 1}, h).lineage, Lineage::kUnknownHistory);
  h.erase(2);
  LineageResult r = CheckLineage({1, 5}, h);
  EXPECT_EQ(r.lineage, Lineage::kUnknownHistory);
  EXPECT_NE(r.reason.find("judge 1:5"), std::string::npos) << r.reason;
}

// ---- Winner: Patroni _is_healthiest_node cases ----

ElectionInput OneEpoch(std::vector<Responder> rs) {
  ElectionInput in;
  in.history[1] = {.start_after = {0, 0}, .primary = 9, .revoke_quorum_met = true};
  in.responders = std::move(rs);
  return in;
}

TEST(PickWinnerTest, MostAdvancedWinsOverHigherPriority) {
  ElectionResult r = PickWinner(OneEpoch({Acker(1, {1, 7}, 5), Acker(2, {1, 8}, 1)}));
  ASSERT_TRUE(r.winner) << r.reason;
  EXPECT_EQ(*r.winner, 2u);
}

TEST(PickWinnerTest, EqualPositionsGoToHigherPriorityThenLowerId) {
  ElectionResult r = PickWinner(OneEpoch({Acker(1, {1, 8}, 1), Acker(2, {1, 8}, 3)}));
  ASSERT_TRUE(r.winner);
  EXPECT_EQ(*r.winner, 2u);
  r = PickWinner(OneEpoch({Acker(7, {1, 8}), Acker(3, {1, 8}), Acker(5, {1, 8})}));
  ASSERT_TRUE(r.winner);
  EXPECT_EQ(*r.winner, 3u);
}

TEST(PickWinnerTest, NoFailoverMemberAheadBlocksTheElection) {
  // Patroni skips a nofailover member; here it may hold an acknowledged write
  // the others lack, so nobody wins until it is back to feed them or an
  // operator decides.
  ElectionResult r = PickWinner(OneEpoch({Acker(1, {1, 9}, 0), Acker(2, {1, 8})}));
  EXPECT_FALSE(r.winner);
  EXPECT_NE(r.reason.find("server 1"), std::string::npos) << r.reason;
  // Not ahead: it does not block.
  r = PickWinner(OneEpoch({Acker(1, {1, 8}, 0), Acker(2, {1, 8})}));
  ASSERT_TRUE(r.winner);
  EXPECT_EQ(*r.winner, 2u);
}

TEST(PickWinnerTest, NewerEpochBeatsLongerOldTail) {
  ElectionInput in = OneEpoch({});
  in.history[2] = {.start_after = {1, 10}, .primary = 9, .revoke_quorum_met = true};
  in.responders = {Acker(1, {2, 11}), Acker(2, {1, 10})};
  ElectionResult r = PickWinner(in);
  ASSERT_TRUE(r.winner);
  EXPECT_EQ(*r.winner, 1u);
}

// ---- Winner: Vitess ERS scenarios ----

TEST(PickWinnerTest, ErrantCandidateIsDroppedEvenIfHighest) {
  // vitess#16724 style: a demoted primary of epoch 1 kept writing past the
  // start of epoch 2; its GTID ranks below epoch 2 anyway, but an errant
  // node must not win even when the others are behind it in seq.
  ElectionInput in = OneEpoch({});
  in.history[2] = {.start_after = {1, 10}, .primary = 2, .revoke_quorum_met = true};
  Responder old = Acker(1, {1, 14});
  old.previous_primary = false;
  // Node 3 lacks (1,10), where epoch 2 continued: writes acknowledged
  // before epoch 2 may be missing (review-coord 1): no winner.
  in.responders = {old, Acker(3, {1, 9})};
  ElectionResult r = PickWinner(in);
  EXPECT_FALSE(r.winner);
  EXPECT_NE(r.reason.find("1:10"), std::string::npos) << r.reason;
  // One that followed epoch 2's primary wins; the errant node never does.
  in.responders = {old, Acker(3, {1, 9}), Acker(4, {2, 11})};
  r = PickWinner(in);
  ASSERT_TRUE(r.winner) << r.reason;
  EXPECT_EQ(*r.winner, 4u);
  ASSERT_GE(r.excluded.size(), 1u);
  EXPECT_EQ(r.excluded[0].first, 1u);
  EXPECT_NE(r.excluded[0].second.find("past"), std::string::npos);
}

TEST(PickWinnerTest, AsyncReplicaAheadOfAckersDoesNotWinNorBlock) {
  // vitess#20087: async replicas can be ahead of the ackers; their tail was
  // never acknowledged by a quorum.
  Responder async;
  async.server_id = 4;
  async.durable = {1, 20};
  ElectionResult r = PickWinner(OneEpoch({async, Acker(2, {1, 15})}));
  ASSERT_TRUE(r.winner) << r.reason;
  EXPECT_EQ(*r.winner, 2u);
}

TEST(PickWinnerTest, AsyncClusterOnlyPreviousPrimaryWins) {
  ElectionInput in = OneEpoch({Acker(2, {1, 15})});
  in.cluster_async = true;
  ElectionResult r = PickWinner(in);
  EXPECT_FALSE(r.winner);
  EXPECT_NE(r.reason.find("async"), std::string::npos) << r.reason;
  Responder prev;
  prev.server_id = 9;
  prev.previous_primary = true;
  prev.durable = {1, 14};
  in.responders.push_back(prev);
  r = PickWinner(in);
  // The acker ahead of it (1:15) is listed: the previous primary does not
  // hold 1:15, so it must not win either.
  EXPECT_FALSE(r.winner);
  in.responders[1].durable = {1, 16};
  r = PickWinner(in);
  ASSERT_TRUE(r.winner) << r.reason;
  EXPECT_EQ(*r.winner, 9u);
}

TEST(PickWinnerTest, NoResponderNoWinner) {
  ElectionResult r = PickWinner(OneEpoch({}));
  EXPECT_FALSE(r.winner);
  EXPECT_FALSE(r.reason.empty());
}

// ---- Rejoin ----

TEST(DecideRejoinTest, PrefixReplicatesAsIs) {
  const History h = TwoFailovers();
  EXPECT_EQ(DecideRejoin({1, 10}, {1, 10}, h).action, RejoinAction::kReplicate);
  EXPECT_EQ(DecideRejoin({2, 12}, {2, 12}, h).action, RejoinAction::kReplicate);
  EXPECT_EQ(DecideRejoin({3, 40}, {3, 40}, h).action, RejoinAction::kReplicate);
}

TEST(DecideRejoinTest, ProvablyUnacknowledgedTailIsTruncated) {
  RejoinDecision d = DecideRejoin({1, 13}, {1, 10}, TwoFailovers());
  EXPECT_EQ(d.action, RejoinAction::kTruncate) << d.reason;
  EXPECT_EQ(d.truncate_after, (Gtid{1, 10}));
}

TEST(DecideRejoinTest, ForcedEpochRefuses) {
  History h = TwoFailovers();
  h[2].forced = true;
  RejoinDecision d = DecideRejoin({1, 13}, {1, 10}, h);
  EXPECT_EQ(d.action, RejoinAction::kRefuse);
  EXPECT_NE(d.reason.find("forced"), std::string::npos) << d.reason;
}

TEST(DecideRejoinTest, RevokeQuorumNotMetRefuses) {
  History h = TwoFailovers();
  h[2].revoke_quorum_met = false;
  EXPECT_EQ(DecideRejoin({1, 13}, {1, 10}, h).action, RejoinAction::kRefuse);
}

TEST(DecideRejoinTest, AsyncWithinTheTailRefusesAsyncAfterItDoesNot) {
  History h = TwoFailovers();
  h[1].went_async_after = 12;  // 1:13 may have been acked async
  RejoinDecision d = DecideRejoin({1, 13}, {1, 10}, h);
  EXPECT_EQ(d.action, RejoinAction::kRefuse);
  EXPECT_NE(d.reason.find("async"), std::string::npos) << d.reason;
  h[1].went_async_after = 13;  // async only after the node's last event
  EXPECT_EQ(DecideRejoin({1, 13}, {1, 10}, h).action, RejoinAction::kTruncate);
  h[1].went_async_after = 5;   // before end: the whole tail was async
  EXPECT_EQ(DecideRejoin({1, 13}, {1, 10}, h).action, RejoinAction::kRefuse);
}

TEST(DecideRejoinTest, AppliedPastEndRefuses) {
  RejoinDecision d = DecideRejoin({1, 13}, {1, 11}, TwoFailovers());
  EXPECT_EQ(d.action, RejoinAction::kRefuse);
  EXPECT_NE(d.reason.find("applied"), std::string::npos) << d.reason;
}

TEST(DecideRejoinTest, MissingHistoryRefuses) {
  History h = TwoFailovers();
  h.erase(1);  // whether epoch 1 went async is unknown
  EXPECT_EQ(DecideRejoin({1, 13}, {1, 10}, h).action, RejoinAction::kRefuse);
  EXPECT_EQ(DecideRejoin({5, 1}, {5, 1}, TwoFailovers()).action, RejoinAction::kRefuse);
}

// ---- Property: one epoch of semi-sync commits, a failover, the rejoins ----
//
// Model: the primary of epoch 1 wrote seqs 1..p; acker i durably holds the
// prefix 1..d[i] (relay logs are gap-free prefixes). A seq was acknowledged
// iff N ackers held it, or the epoch had gone async before it. The primary
// dies; a random subset of ackers answers the revoke; random async replicas
// (ahead or not) answer too. Whatever the rules decide must never lose an
// acknowledged seq: the winner holds them all, and a truncation at rejoin
// removes none.
TEST(FailoverPropertyTest, NoAcknowledgedWriteIsEverLost) {
  const uint64_t seed = BaseSeed();
  std::mt19937_64 rng(seed);
  int elections = 0, truncations = 0, refusals = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    SCOPED_TRACE("RELAYKV_FAILOVER_SEED=" + std::to_string(seed) + " iter " +
                 std::to_string(iter));
    const int a = 1 + static_cast<int>(rng() % 5);
    const int n = static_cast<int>(rng() % (a + 1));  // 0 = async
    const uint64_t p = rng() % 30;
    std::vector<uint64_t> d(a);
    for (auto& x : d) x = p == 0 ? 0 : rng() % (p + 1);
    std::optional<uint64_t> went_async_after;
    if (rng() % 4 == 0) went_async_after = rng() % (p + 1);
    auto acked = [&](uint64_t s) {
      if (s == 0 || s > p) return false;
      if (n == 0) return true;
      if (went_async_after && s > *went_async_after) return true;
      int holders = 0;
      for (uint64_t x : d) holders += x >= s ? 1 : 0;
      return holders >= n;
    };
    uint64_t max_acked = 0;
    for (uint64_t s = 1; s <= p; ++s) {
      if (acked(s)) max_acked = s;
    }

    ElectionInput in;
    in.history[1] = {.start_after = {0, 0}, .primary = 100, .revoke_quorum_met = true,
                     .went_async_after = went_async_after};
    in.cluster_async = n == 0 || went_async_after.has_value();
    int answered = 0;
    for (int i = 0; i < a; ++i) {
      if (rng() % 3 == 0) continue;  // did not answer
      Responder r = Acker(static_cast<uint32_t>(i + 1), {d[i] == 0 ? 0u : 1u, d[i]},
                          static_cast<int>(rng() % 3));
      in.responders.push_back(r);
      ++answered;
    }
    for (int j = 0; j < 2; ++j) {  // async replicas, possibly ahead
      Responder r;
      r.server_id = static_cast<uint32_t>(50 + j);
      const uint64_t s = rng() % (p + 1);
      r.durable = {s == 0 ? 0u : 1u, s};
      in.responders.push_back(r);
    }
    std::shuffle(in.responders.begin(), in.responders.end(), rng);

    ElectionResult win = PickWinner(in);
    if (!win.winner) {
      EXPECT_FALSE(win.reason.empty());
      ++refusals;
      continue;
    }
    const Responder& w = *std::find_if(in.responders.begin(), in.responders.end(),
                                       [&](const Responder& r) { return r.server_id == *win.winner; });
    EXPECT_TRUE(w.listed_acker);
    EXPECT_GT(w.priority, 0);
    Decision q = CheckElectionQuorum({.listed_ackers = a, .acks_per_commit = n,
                                      .answered_ackers = answered,
                                      .new_primary_is_acker = w.listed_acker});
    if (!q.ok) {
      EXPECT_FALSE(q.reason.empty());
      ++refusals;
      continue;
    }
    ++elections;
    // The old primary is dead and the cluster was not async, so N >= 1 and
    // the winner must hold every acknowledged seq.
    ASSERT_GE(n, 1);
    ASSERT_FALSE(went_async_after);
    ASSERT_GE(w.durable.seq, max_acked) << "winner " << w.server_id << " lacks an acked seq";

    // Epoch 2 begins after the winner's GTID; the old primary and every
    // replica rejoin.
    History h = in.history;
    h[2] = {.start_after = w.durable, .primary = w.server_id, .revoke_quorum_met = true};
    std::vector<Gtid> lasts = {{p == 0 ? 0u : 1u, p}};
    for (const Responder& r : in.responders) lasts.push_back(r.durable);
    for (const Gtid& last : lasts) {
      // Under AFTER_SYNC the engine applied only acknowledged seqs (or less).
      const uint64_t applied_seq = std::min<uint64_t>(last.seq, rng() % (max_acked + 1));
      RejoinDecision rj = DecideRejoin(last, {last.epoch, applied_seq}, h);
      if (last.seq <= w.durable.seq) {
        EXPECT_EQ(rj.action, RejoinAction::kReplicate) << rj.reason;
        continue;
      }
      ASSERT_EQ(rj.action, RejoinAction::kTruncate) << rj.reason;
      ++truncations;
      EXPECT_EQ(rj.truncate_after, w.durable);
      for (uint64_t s = rj.truncate_after.seq + 1; s <= last.seq; ++s) {
        ASSERT_FALSE(acked(s)) << "truncation would remove acknowledged seq " << s;
      }
    }
  }
  // The generator must exercise each outcome.
  EXPECT_GT(elections, 1000);
  EXPECT_GT(truncations, 1000);
  EXPECT_GT(refusals, 1000);
  std::printf("%d elections, %d truncations, %d refusals\n", elections, truncations, refusals);
}

// ---- Review finding 5: ackers that may have ACKed unsynced ----

TEST(ElectionQuorumTest, AckersThatMayHaveAckedUnsyncedDoNotVouchForTheRevoke) {
  // A=3, N=2: A-N+1 = 2 answers needed; one of the two may have lost what
  // it ACKed.
  Decision d = CheckElectionQuorum({.listed_ackers = 3, .acks_per_commit = 2,
                                    .answered_ackers = 2, .answered_ackers_acked_unsynced = 1});
  EXPECT_FALSE(d.ok);
  EXPECT_NE(d.reason.find("sync_relay_log=0"), std::string::npos) << d.reason;
  // Their promise still counts for establishing the new primary.
  EXPECT_TRUE(CheckElectionQuorum({.listed_ackers = 3, .acks_per_commit = 2,
                                   .answered_ackers = 3, .answered_ackers_acked_unsynced = 1})
                  .ok);
  EXPECT_FALSE(CheckElectionQuorum({.listed_ackers = 3, .acks_per_commit = 2,
                                    .answered_ackers = 2, .answered_ackers_acked_unsynced = 3})
                   .ok);
}

TEST(PickWinnerTest, AckerThatMayHaveAckedUnsyncedNeitherWinsNorBlocks) {
  ElectionInput in;
  in.history[1] = {.start_after = {0, 0}, .primary = 100, .revoke_quorum_met = true};
  Responder lossy = Acker(1, {1, 9});
  lossy.may_have_acked_unsynced = true;
  in.responders = {lossy, Acker(2, {1, 7})};
  ElectionResult r = PickWinner(in);
  ASSERT_TRUE(r.winner) << r.reason;
  EXPECT_EQ(*r.winner, 2u);
  ASSERT_EQ(r.excluded.size(), 1u);
  EXPECT_EQ(r.excluded[0].first, 1u);
}

// Model: as NoAcknowledgedWriteIsEverLost, but each acker ACKed up to
// ack[i] and, if it ran with sync_relay_log=0 and lost power, holds only
// d[i] <= ack[i] (its answer then carries the flag). A seq was acknowledged
// iff N ackers ACKed it. Whenever the rules elect, the winner holds every
// acknowledged seq; and the generator finds elections that would have lost
// one had the flag been ignored (the rule is needed).
TEST(FailoverPropertyTest, AckersThatLostUnsyncedAcksNeverCostAnAcknowledgedWrite) {
  const uint64_t seed = BaseSeed() + 2;
  std::mt19937_64 rng(seed);
  int elections = 0, would_have_lost = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    SCOPED_TRACE("RELAYKV_FAILOVER_SEED=" + std::to_string(seed - 2) + " iter " +
                 std::to_string(iter));
    const int a = 1 + static_cast<int>(rng() % 5);
    const int n = 1 + static_cast<int>(rng() % a);
    const uint64_t p = 1 + rng() % 30;
    std::vector<uint64_t> ack(a), d(a);
    std::vector<bool> lossy(a);
    for (int i = 0; i < a; ++i) {
      ack[i] = rng() % (p + 1);
      lossy[i] = rng() % 3 == 0;
      d[i] = lossy[i] ? rng() % (ack[i] + 1) : ack[i];
    }
    uint64_t max_acked = 0;
    for (uint64_t s = 1; s <= p; ++s) {
      int holders = 0;
      for (uint64_t x : ack) holders += x >= s ? 1 : 0;
      if (holders >= n) max_acked = s;
    }
    ElectionInput in;
    in.history[1] = {.start_after = {0, 0}, .primary = 100, .revoke_quorum_met = true};
    int answered = 0, answered_lossy = 0;
    for (int i = 0; i < a; ++i) {
      if (rng() % 4 == 0) continue;
      Responder r = Acker(static_cast<uint32_t>(i + 1), {d[i] == 0 ? 0u : 1u, d[i]});
      r.may_have_acked_unsynced = lossy[i];
      in.responders.push_back(r);
      ++answered;
      answered_lossy += lossy[i] ? 1 : 0;
    }
    auto elect = [&](const ElectionInput& input, int unsynced) -> std::optional<Responder> {
      ElectionResult win = PickWinner(input);
      if (!win.winner) return std::nullopt;
      const Responder& w =
          *std::find_if(input.responders.begin(), input.responders.end(),
                        [&](const Responder& r) { return r.server_id == *win.winner; });
      if (!CheckElectionQuorum({.listed_ackers = a, .acks_per_commit = n,
                                .answered_ackers = answered,
                                .answered_ackers_acked_unsynced = unsynced,
                                .new_primary_is_acker = true})
               .ok) {
        return std::nullopt;
      }
      return w;
    };
    if (auto w = elect(in, answered_lossy)) {
      ++elections;
      ASSERT_GE(w->durable.seq, max_acked) << "winner " << w->server_id << " lacks an acked seq";
    }
    // The same election with the flag ignored.
    ElectionInput blind = in;
    for (Responder& r : blind.responders) r.may_have_acked_unsynced = false;
    if (auto w = elect(blind, 0); w && w->durable.seq < max_acked) ++would_have_lost;
  }
  EXPECT_GT(elections, 1000);
  EXPECT_GT(would_have_lost, 0) << "the generator never needed the flag";
  std::printf("%d elections, %d would have lost an acked write without the flag\n", elections,
              would_have_lost);
}

// Random histories: every decision is consistent with the written rules.
TEST(FailoverPropertyTest, RejoinDecisionFollowsTheRules) {
  std::mt19937_64 rng(BaseSeed() + 1);
  int seen[3] = {0, 0, 0};
  for (int iter = 0; iter < 50000; ++iter) {
    History h;
    uint64_t seq = 0;
    const int epochs = 1 + static_cast<int>(rng() % 4);
    for (int e = 1; e <= epochs; ++e) {
      if (rng() % 10 == 0) continue;  // a missing entry
      EpochRecord r;
      r.start_after = {e == 1 ? 0u : static_cast<uint64_t>(e - 1), seq};
      r.revoke_quorum_met = rng() % 5 != 0;
      r.forced = rng() % 6 == 0;
      if (rng() % 4 == 0) r.went_async_after = seq + rng() % 8;
      h[e] = r;
      seq += rng() % 6;
    }
    const uint64_t e = 1 + rng() % (epochs + 1);
    const Gtid last{e, rng() % (seq + 8)};
    const Gtid applied{e, rng() % (last.seq + 1)};
    RejoinDecision d = DecideRejoin(last, applied, h);
    ++seen[static_cast<int>(d.action)];
    const uint64_t current = CurrentEpoch(h);
    if (d.action == RejoinAction::kReplicate) {
      ASSERT_LE(e, current);
      if (e < current && last.seq > 0) {
        // Judged by the first entry after e: it began in e (or at the start).
        const Gtid end = h.upper_bound(e)->second.start_after;
        ASSERT_TRUE(end.epoch == e || end.seq == 0);
        ASSERT_LE(last.seq, end.seq);
      }
    } else if (d.action == RejoinAction::kTruncate) {
      ASSERT_LT(e, current);
      const EpochRecord& next = h.upper_bound(e)->second;
      ASSERT_EQ(d.truncate_after, next.start_after);
      ASSERT_GT(last.seq, next.start_after.seq);
      ASSERT_TRUE(next.revoke_quorum_met && !next.forced);
      ASSERT_TRUE(h.count(e));
      ASSERT_TRUE(!h.at(e).went_async_after || *h.at(e).went_async_after >= last.seq);
      ASSERT_LE(applied.seq, next.start_after.seq);
    } else {
      ASSERT_FALSE(d.reason.empty());
    }
  }
  EXPECT_GT(seen[0], 1000);
  EXPECT_GT(seen[1], 1000);
  EXPECT_GT(seen[2], 1000);
}

// ---- Lease timing ----

TEST(LeaseTimingTest, DefaultsAreValid) { EXPECT_TRUE(ValidateLeaseTiming({}).ok()); }

TEST(LeaseTimingTest, EachBrokenRuleNamesItsSetting) {
  struct Case {
    LeaseTiming t;
    const char* names;
  };
  const Case cases[] = {
      {{.ttl_ms = 0}, "ttl_ms=0"},
      {{.loop_ms = -1}, "loop_ms=-1"},
      {{.retry_ms = 0}, "retry_ms=0"},
      {{.fence_margin_ms = 0}, "fence_margin_ms=0"},
      {{.ttl_ms = 7999}, "loop_ms + 2*retry_ms <= ttl_ms"},
      {{.ttl_ms = 10000, .loop_ms = 2000, .retry_ms = 3000, .fence_margin_ms = 10000},
       "fence_margin_ms=10000 must be < ttl_ms"},
      {{.ttl_ms = 10000, .loop_ms = 2000, .retry_ms = 3000, .fence_margin_ms = 5000},
       "fence_margin_ms=5000 is too large"},
  };
  for (const Case& c : cases) {
    absl::Status s = ValidateLeaseTiming(c.t);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.names;
    EXPECT_NE(s.message().find(c.names), std::string::npos) << s;
  }
  EXPECT_TRUE(ValidateLeaseTiming({.ttl_ms = 8000, .loop_ms = 2000, .retry_ms = 3000,
                                   .fence_margin_ms = 2999}).ok());
}

}  // namespace

// review-coord 1: epoch 6 continued after (5,20); its primary C is gone. The
// old primary P of epoch 5 holds (5,21) (errant), R only (5,19): nobody may
// win, or the acknowledged (5,20) is lost.
TEST(PickWinnerTest, NoWinnerWithoutTheCurrentEpochsStartPoint) {
  ElectionInput in;
  in.history[5] = {.start_after = {4, 1}, .primary = 1, .revoke_quorum_met = true};
  in.history[6] = {.start_after = {5, 20}, .primary = 2, .revoke_quorum_met = true};
  Responder p = Acker(1, {5, 21});
  Responder r = Acker(3, {5, 19});
  in.responders = {p, r};
  EXPECT_FALSE(PickWinner(in).winner);
}

// review-coord 3: with the revoke quorum met, the previous primary's tail
// past what any answering acker holds was never acknowledged: a caught-up
// replica wins over it (the previous primary may be cut off from etcd).
TEST(PickWinnerTest, QuorumMetPrefersAReplicaOverThePreviousPrimarysTail) {
  ElectionInput in = OneEpoch({});
  Responder prev = Acker(1, {1, 12});
  prev.previous_primary = true;
  prev.listed_acker = false;
  in.responders = {prev, Acker(2, {1, 10}), Acker(3, {1, 9})};
  in.revoke_quorum_met = false;
  ASSERT_TRUE(PickWinner(in).winner);
  EXPECT_EQ(*PickWinner(in).winner, 1u) << "no quorum: the previous primary's tail counts";
  in.revoke_quorum_met = true;
  ASSERT_TRUE(PickWinner(in).winner) << PickWinner(in).reason;
  EXPECT_EQ(*PickWinner(in).winner, 2u);
}

// review-coord2 1: the cap never goes below the current epoch's start:
// epoch 6's primary X holds (5,30), where it continued, and R only (5,29);
// X must still win (before: capped to (5,29), nobody could win, forever).
TEST(PickWinnerTest, CapNeverHidesTheCurrentEpochsStartPoint) {
  ElectionInput in;
  in.history[5] = {.start_after = {4, 1}, .primary = 1, .revoke_quorum_met = true};
  in.history[6] = {.start_after = {5, 30}, .primary = 2, .revoke_quorum_met = true};
  Responder x = Acker(2, {5, 30});
  x.previous_primary = true;
  x.listed_acker = false;
  in.responders = {Acker(1, {5, 29}), x, Acker(3, {5, 29})};
  in.revoke_quorum_met = true;
  const ElectionResult r = PickWinner(in);
  ASSERT_TRUE(r.winner) << r.reason;
  EXPECT_EQ(*r.winner, 2u);
}

// review-force2 P1: the previous primary, capped to the best acker's
// position, loses the tie even with a higher priority — it may be unable to
// claim (cut off from etcd) and would then win every round for nothing.
TEST(PickWinnerTest, PreviousPrimaryLosesATieWhateverItsPriority) {
  ElectionInput in;
  in.history[1] = {.start_after = {0, 0}, .primary = 1, .revoke_quorum_met = true};
  Responder p = Acker(1, {1, 40}, 5);
  p.previous_primary = true;
  p.listed_acker = false;
  in.responders = {p, Acker(2, {1, 30}), Acker(3, {1, 30})};
  in.revoke_quorum_met = true;
  const ElectionResult r = PickWinner(in);
  ASSERT_TRUE(r.winner) << r.reason;
  EXPECT_EQ(*r.winner, 2u);
}

}  // namespace relaykv::failover
