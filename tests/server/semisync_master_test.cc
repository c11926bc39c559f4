// SemiSyncMaster on its own: who counts toward the quorum, when status
// switches, what the timeout is measured from. Connections and ACKs are fed
// by hand, as the replication service would; the binlog end is a variable.
#include "server/semisync.h"

#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <semaphore>
#include <thread>

#include "gtest/gtest.h"

namespace relaykv {
namespace {

using Clock = std::chrono::steady_clock;
using Outcome = SemiSyncMaster::Outcome;

std::string Counter(const SemiSyncMaster& m, const std::string& name) {
  for (const auto& [n, v] : m.Status()) {
    if (n == "Rpl_semi_sync_master_" + name) return v;
  }
  return "<missing " + name + ">";
}

class SemiSyncMasterTest : public ::testing::Test {
 protected:
  void Configure(uint64_t count, uint64_t timeout_ms, bool wait_no_slave = true) {
    SemiSyncSettings s;
    s.enabled = true;
    s.timeout_ms = timeout_ms;
    s.wait_for_slave_count = count;
    s.wait_no_slave = wait_no_slave;
    master_.Configure(s);
  }
  // Automatic failover's async gate (closed while `gate` is false), one
  // semi-sync replica, and commit 10 registered: about to wait for its ACK.
  void WaitCommit10BehindAClosedGate(std::atomic<bool>& gate) {
    master_.set_async_gate([&gate] { return gate.load(); });
    Configure(/*count=*/1, /*timeout_ms=*/600000);
    master_.ReplicaConnected(1, 2, true, 0);
    end_ = 10;
    Register(10);
  }
  // rpl_semi_sync_master_enabled=OFF (as SET GLOBAL does).
  void ConfigureOff(uint64_t timeout_ms) {
    SemiSyncSettings s;
    s.enabled = false;
    s.timeout_ms = timeout_ms;
    s.wait_for_slave_count = 1;
    master_.Configure(s);
  }
  // A commit of `seq` waits; a deadline far away (the hang guard is the
  // semi-sync timeout, which every test sets).
  SemiSyncMaster::Result Wait(uint64_t seq) {
    return master_.WaitForAck(seq, Registered(seq), Clock::now() + std::chrono::seconds(60));
  }
  // The registered commit of seq 4 waits; replica 1 ACKs it 50 ms later:
  // it is answered ACKed, counted once, and nothing is left waiting.
  void ExpectSeq4WaitsFromItsRegistrationUntilItsAck() {
    std::thread acker([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      master_.Ack(1, 4, -1);
    });
    auto r = Wait(4);
    acker.join();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r, Outcome::kAcked);
    EXPECT_EQ(Counter(master_, "wait_sessions"), "0") << "a stale wait was left behind";
    EXPECT_EQ(Counter(master_, "tx_waits"), "1") << "one wait, from its registration";
  }
  // The commit of `seq` is assigned (its registration kept for Wait()).
  void Register(uint64_t seq) { registrations_[seq] = master_.Register(seq); }
  SemiSyncMaster::Registration Registered(uint64_t seq) const {
    auto r = registrations_.find(seq);
    return r == registrations_.end() ? SemiSyncMaster::kNotRegistered : r->second;
  }

  std::atomic<uint64_t> end_{0};
  std::atomic<uint64_t> released_{0};
  SemiSyncMaster master_{[this] { return Gtid{1, end_.load()}; },
                         [this](uint64_t seq) { released_ = seq; }};
  std::map<uint64_t, SemiSyncMaster::Registration> registrations_;
};

// A restarted primary's held tail (review s33c F7): released by an ACK or a
// timeout as a commit would be, but no client's transaction — no *_tx or
// tx_wait* counter moves and wait_sessions does not count it.
TEST_F(SemiSyncMasterTest, HeldTailIsReleasedLikeACommitButNotCountedAsOne) {
  Configure(/*count=*/1, /*timeout_ms=*/600000);
  end_ = 7;
  std::optional<SemiSyncMaster::Result> acked;
  (void)master_.HoldTail(7, [&](SemiSyncMaster::Result r) { acked = r; });
  EXPECT_EQ(Counter(master_, "wait_sessions"), "0");
  master_.ReplicaConnected(1, 2, true, 0);
  master_.Ack(1, 6, -1);
  EXPECT_FALSE(acked.has_value()) << "released below its end";
  master_.Ack(1, 7, -1);
  ASSERT_TRUE(acked.has_value());
  ASSERT_TRUE(acked->ok()) << acked->status();
  EXPECT_EQ(**acked, Outcome::kAcked);
  EXPECT_EQ(released_.load(), 7u);
  for (const char* c : {"yes_tx", "no_tx", "tx_waits", "tx_wait_time", "wait_sessions"}) {
    EXPECT_EQ(Counter(master_, c), "0") << c;
  }

  // No replica holds the next one: its timeout switches OFF, as a commit's.
  master_.ReplicaDisconnected(1);
  Configure(/*count=*/1, /*timeout_ms=*/100);
  end_ = 9;
  std::binary_semaphore done{0};
  std::optional<SemiSyncMaster::Result> timed_out;
  (void)master_.HoldTail(9, [&](SemiSyncMaster::Result r) {
    timed_out = r;
    done.release();
  });
  ASSERT_TRUE(done.try_acquire_for(std::chrono::seconds(30)));
  ASSERT_TRUE(timed_out->ok()) << timed_out->status();
  EXPECT_EQ(**timed_out, Outcome::kAsync);
  EXPECT_EQ(Counter(master_, "status"), "OFF");
  EXPECT_EQ(Counter(master_, "no_times"), "1");
  EXPECT_EQ(Counter(master_, "no_tx"), "0");

  // Held while semi-sync is OFF: out at once, still not a transaction.
  std::optional<SemiSyncMaster::Result> off;
  (void)master_.HoldTail(9, [&](SemiSyncMaster::Result r) { off = r; });
  ASSERT_TRUE(off.has_value());
  EXPECT_EQ(**off, Outcome::kAsync);
  EXPECT_EQ(Counter(master_, "no_tx"), "0");
}

// Review s47d F4: a promoted replica's tail is held with a credit of one
// ACK (its own copy was one of the old quorum's): with a count of 3 it
// shows once 2 replicas hold it; with a count of 1 it still waits for one
// (never shown on the new primary alone).
TEST_F(SemiSyncMasterTest, ACreditedHoldNeedsOneAckFewerButNeverNone) {
  Configure(/*count=*/3, /*timeout_ms=*/600000);
  end_ = 7;
  std::optional<SemiSyncMaster::Result> shown;
  (void)master_.HoldTail(7, [&](SemiSyncMaster::Result r) { shown = r; }, /*credit=*/1);
  for (uint32_t id : {1u, 2u, 3u}) master_.ReplicaConnected(id, id + 1, true, 0);
  master_.Ack(1, 7, -1);
  EXPECT_FALSE(shown.has_value()) << "one replica of the two needed";
  master_.Ack(2, 7, -1);
  ASSERT_TRUE(shown.has_value());
  ASSERT_TRUE(shown->ok()) << shown->status();
  EXPECT_EQ(**shown, Outcome::kAcked);
  EXPECT_EQ(Counter(master_, "yes_tx"), "0");

  Configure(/*count=*/1, /*timeout_ms=*/600000);
  end_ = 9;
  std::optional<SemiSyncMaster::Result> alone;
  (void)master_.HoldTail(9, [&](SemiSyncMaster::Result r) { alone = r; }, /*credit=*/1);
  EXPECT_FALSE(alone.has_value()) << "a credit shows nothing before one replica holds it";
  master_.Ack(3, 9, -1);
  ASSERT_TRUE(alone.has_value());
  EXPECT_EQ(**alone, Outcome::kAcked);
}

// Review s47e F4: the credit stands for the promoted node's own copy; the
// old primary that wrote the tail, following it now, is not one more.
TEST_F(SemiSyncMasterTest, TheOldPrimarysAckIsNotCountedWithTheCredit) {
  Configure(/*count=*/2, /*timeout_ms=*/600000);
  end_ = 7;
  std::optional<SemiSyncMaster::Result> shown;
  (void)master_.HoldTail(7, [&](SemiSyncMaster::Result r) { shown = r; }, /*credit=*/1,
                         /*credit_not_from=*/1);
  master_.ReplicaConnected(/*connection=*/1, /*server_id=*/1, true, 0);  // the old primary
  master_.ReplicaConnected(/*connection=*/2, /*server_id=*/3, true, 0);
  master_.Ack(1, 7, -1);
  EXPECT_FALSE(shown.has_value()) << "the tail's own writer counted as another copy";
  master_.Ack(2, 7, -1);
  ASSERT_TRUE(shown.has_value());
  EXPECT_EQ(**shown, Outcome::kAcked);
}

// Review s33d D1, D2: CHANGE MASTER ends the hold at once (CANCELLED); an
// ACK, a timeout or an OFF after that resolves nothing and switches nothing.
TEST_F(SemiSyncMasterTest, EndedHoldIsCancelledBeforeAnythingElseResolvesIt) {
  Configure(/*count=*/1, /*timeout_ms=*/150);
  end_ = 5;
  int calls = 0;
  std::optional<SemiSyncMaster::Result> result;
  const SemiSyncMaster::Hold hold = master_.HoldTail(5, [&](SemiSyncMaster::Result r) {
    ++calls;
    result = r;
  });
  master_.EndHold(hold);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->status().code(), absl::StatusCode::kCancelled) << result->status();
  std::this_thread::sleep_for(std::chrono::milliseconds(400));  // past its timeout
  master_.ReplicaConnected(1, 2, true, 0);
  master_.Ack(1, 5, -1);
  ConfigureOff(150);
  master_.EndHold(hold);  // already over: nothing
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(Counter(master_, "no_times"), "1") << "only SET GLOBAL ... OFF switched it OFF";
  EXPECT_EQ(Counter(master_, "yes_tx"), "0");
  EXPECT_EQ(Counter(master_, "no_tx"), "0");
}

// Review s33c F5: once WaitIdle() returned, no callback runs on another thread
// (an ACK's release here), so the owner may tear down what they use.
TEST_F(SemiSyncMasterTest, WaitIdleReturnsOnlyAfterCallbacksRunningElsewhereEnded) {
  Configure(/*count=*/1, /*timeout_ms=*/600000);
  master_.ReplicaConnected(1, 2, true, 0);
  end_ = 3;
  Register(3);
  std::binary_semaphore in_callback{0}, let_go{0};
  master_.WaitAsync(3, Registered(3), Clock::time_point::max(), nullptr,
                    [&](SemiSyncMaster::Result) {
                      in_callback.release();
                      let_go.acquire();
                    });
  std::thread acker([&] { master_.Ack(1, 3, -1); });
  const bool entered = in_callback.try_acquire_for(std::chrono::seconds(30));
  std::atomic<bool> idle{false};
  std::thread closer([&] {
    master_.Close();
    master_.WaitIdle();
    idle = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(idle.load()) << "WaitIdle() returned while a callback still ran";
  let_go.release();
  closer.join();
  acker.join();
  ASSERT_TRUE(entered);
  EXPECT_TRUE(idle.load());
}

// Issue 14.7: two streams of one replica (a reconnect while the old stream
// lingers, a half-open connection) are one replica, not two.
TEST_F(SemiSyncMasterTest, TwoStreamsOfOneServerIdCountOnce) {
  Configure(/*count=*/2, /*timeout_ms=*/300);
  end_ = 5;
  master_.ReplicaConnected(/*connection=*/1, /*server_id=*/2, true, 0);
  master_.ReplicaConnected(/*connection=*/2, /*server_id=*/2, true, 0);
  EXPECT_EQ(Counter(master_, "clients"), "1");
  master_.Ack(1, 5, -1);  // the replaced stream: ignored
  master_.Ack(2, 5, -1);
  auto r = Wait(5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, Outcome::kAsync) << "one replica met wait_for_slave_count=2";
  EXPECT_EQ(Counter(master_, "yes_tx"), "0");
  EXPECT_EQ(released_.load(), 0u) << "nothing may become visible on one replica's ACK";

  // A second replica does make the quorum.
  master_.ReplicaConnected(3, /*server_id=*/3, true, 0);
  master_.Ack(3, 5, -1);
  EXPECT_EQ(released_.load(), 5u);
}

// The replaced stream's disconnect must not remove the replica's new stream.
TEST_F(SemiSyncMasterTest, OldStreamLeavingKeepsTheReplicasNewStream) {
  Configure(1, 300);
  master_.ReplicaConnected(1, 2, true, 0);
  master_.ReplicaConnected(2, 2, true, 0);
  master_.ReplicaDisconnected(1);
  EXPECT_EQ(Counter(master_, "clients"), "1");
  master_.ReplicaDisconnected(2);
  master_.ReplicaDisconnected(2);  // idempotent
  EXPECT_EQ(Counter(master_, "clients"), "0");
}

// Review s48a N4, N5: a replica's newer stream that is not semi-sync (it
// reconnected with sync_relay_log=0) replaces its counted one: the old
// stream registering late is not counted, and with wait_no_slave OFF the
// replacement switches OFF as the old stream's leaving would have.
TEST_F(SemiSyncMasterTest, ANewerStreamThatIsNotSemiSyncReplacesTheCountedOne) {
  Configure(/*count=*/1, 30000, /*wait_no_slave=*/false);
  end_ = 5;
  master_.ReplicaConnected(1, 2, true, 5);
  EXPECT_EQ(Counter(master_, "status"), "ON");
  master_.ReplicaConnected(3, 2, false, 5);
  EXPECT_EQ(Counter(master_, "clients"), "0");
  EXPECT_EQ(Counter(master_, "status"), "OFF") << "no counted replica left, wait_no_slave OFF";
  master_.ReplicaConnected(2, 2, true, 5);  // an older stream, late
  EXPECT_EQ(Counter(master_, "clients"), "0");
  master_.ReplicaDisconnected(3);
  master_.ReplicaConnected(4, 2, true, 5);  // reconnected with sync_relay_log=1
  EXPECT_EQ(Counter(master_, "clients"), "1");
}

// Issue 14.11: a replica that reconnects holding what it never ACKed
// (fsynced, then the stream broke) releases the commit waiting for it at
// once, from its hello, without appending anything new.
TEST_F(SemiSyncMasterTest, ReconnectingReplicaReleasesWhatItAlreadyHolds) {
  Configure(1, /*timeout_ms=*/30000);
  end_ = 7;
  master_.ReplicaConnected(1, 2, true, 0);
  Register(7);
  std::atomic<bool> done{false};
  SemiSyncMaster::Result result = absl::UnknownError("not answered");
  std::thread waiter([&] {
    result = Wait(7);
    done = true;
  });
  // The stream breaks before the ACK; the replica comes back with 7 durable.
  master_.ReplicaDisconnected(1);
  master_.ReplicaConnected(2, 2, true, /*durable_seq=*/7);
  waiter.join();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, Outcome::kAcked);
  EXPECT_EQ(Counter(master_, "yes_tx"), "1");
  EXPECT_EQ(Counter(master_, "no_times"), "0");
  EXPECT_EQ(released_.load(), 7u);
}

// Issue 14.13: status comes back ON only when the replicas connected now
// have ACKed the binlog's end, not because some that left once had.
TEST_F(SemiSyncMasterTest, StatusStaysOffWhileTooFewReplicasAreConnected) {
  Configure(/*count=*/2, 30000, /*wait_no_slave=*/false);
  end_ = 10;
  master_.ReplicaConnected(1, 2, true, 0);
  master_.ReplicaConnected(2, 3, true, 0);
  master_.Ack(1, 10, -1);
  master_.Ack(2, 10, -1);
  EXPECT_EQ(Counter(master_, "status"), "ON");
  master_.ReplicaDisconnected(2);  // wait_no_slave OFF: switches OFF at once
  EXPECT_EQ(Counter(master_, "status"), "OFF");
  master_.Ack(1, 10, -1);  // one replica at the end: not a quorum of two
  EXPECT_EQ(Counter(master_, "status"), "OFF");
  master_.ReplicaConnected(3, 3, true, 10);  // the second one is back, at the end
  EXPECT_EQ(Counter(master_, "status"), "ON");
}

// Issue 14.14: the timeout runs from when the commit's event is durable here
// (its wait starts), not from the seq's assignment: a slow binlog sync does
// not eat into the replicas' time. (A lower bound only: a loaded machine
// makes it longer, never shorter.)
TEST_F(SemiSyncMasterTest, TimeoutIsMeasuredFromTheWaitNotFromAssignment) {
  Configure(1, /*timeout_ms=*/600);
  end_ = 3;
  master_.ReplicaConnected(1, 2, true, 0);
  Register(3);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the binlog's write and sync
  const auto start = Clock::now();
  auto r = Wait(3);
  const auto waited = Clock::now() - start;
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, Outcome::kAsync);
  EXPECT_GE(waited, std::chrono::milliseconds(550))
      << "timed out " << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()
      << " ms after the wait began: the timeout ran from assignment";
  EXPECT_EQ(Counter(master_, "no_times"), "1");
  EXPECT_EQ(Counter(master_, "wait_sessions"), "0");
}

// ACKs still count from registration for tx_wait_time (MySQL's meaning).
TEST_F(SemiSyncMasterTest, WaitTimeCountsFromRegistration) {
  Configure(1, 30000);
  end_ = 4;
  master_.ReplicaConnected(1, 2, true, 0);
  Register(4);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::thread acker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    master_.Ack(1, 4, -1);
  });
  auto r = Wait(4);
  acker.join();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, Outcome::kAcked);
  EXPECT_GE(std::stoull(Counter(master_, "tx_wait_time")), 140000u);
}

// Review s31, replication finding 5: a failed group's seqs go to the next
// group, and the failed commit's Unregister may come after the next commit
// registered the same seq. It must not take that registration (or leave a
// stale wait behind: wait_sessions stays right).
TEST_F(SemiSyncMasterTest, LateUnregisterOfAFailedCommitLeavesTheSeqsNewCommitAlone) {
  Configure(1, 30000);
  end_ = 4;
  master_.ReplicaConnected(1, 2, true, 0);
  const auto a = master_.Register(4);  // commit A: its group fails
  Register(4);  // commit B, in the next group, gets seq 4 again
  master_.Unregister(4, a);  // A's callback, late
  EXPECT_EQ(Counter(master_, "wait_sessions"), "1");
  ExpectSeq4WaitsFromItsRegistrationUntilItsAck();
}

// Review s32-late F2: a commit whose registration was refused (semi-sync
// OFF) must not remove, or be timed by, another commit's registration of
// the same seq. A registers 4 and its group fails; OFF: B gets 4 and is not
// registered, and its group fails too; ON: C gets 4. A's and B's late
// Unregisters leave C's registration alone.
TEST_F(SemiSyncMasterTest, FailedCommitsOfAReusedSeqRemoveOnlyTheirOwnRegistration) {
  Configure(1, 30000);
  end_ = 4;
  master_.ReplicaConnected(1, 2, true, 0);
  const auto a = master_.Register(4);
  ASSERT_NE(a, SemiSyncMaster::kNotRegistered);
  ConfigureOff(30000);
  const auto b = master_.Register(4);
  EXPECT_EQ(b, SemiSyncMaster::kNotRegistered) << "semi-sync is OFF";
  Configure(1, 30000);
  Register(4);  // C
  master_.Unregister(4, b);
  master_.Unregister(4, a);
  EXPECT_EQ(Counter(master_, "wait_sessions"), "1") << "C's registration was taken";
  ExpectSeq4WaitsFromItsRegistrationUntilItsAck();
}

// Automatic failover: only members' ACKs count (set_ackers). An ACK from
// another replica moves nothing; adding that replica to the set counts
// what it had ACKed at once.
TEST_F(SemiSyncMasterTest, OnlyTheAckersSetCountsAndAddingOneCountsItsAcks) {
  Configure(/*count=*/1, /*timeout_ms=*/600000);
  master_.set_ackers(std::set<uint32_t>{3});
  end_ = 7;
  Register(7);
  master_.ReplicaConnected(/*connection=*/1, /*server_id=*/2, true, 0);
  EXPECT_FALSE(master_.counts(2));
  EXPECT_TRUE(master_.counts(3));
  EXPECT_EQ(Counter(master_, "clients"), "0");
  master_.Ack(1, 7, -1);
  EXPECT_EQ(master_.acked_seq(), 0u) << "a non-member's ACK released seq 7";
  EXPECT_EQ(released_.load(), 0u);
  master_.set_ackers(std::set<uint32_t>{2, 3});
  EXPECT_EQ(master_.acked_seq(), 7u);
  auto r = Wait(7);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, Outcome::kAcked);
  master_.set_ackers(std::nullopt);  // every replica counts again (MySQL)
  EXPECT_TRUE(master_.counts(42));
}

// Re-arming automatic failover needs the replicas to hold every commit
// released without ACKs, not merely status ON: enabling semi-sync again
// turns it ON at once, before any replica holds what went out async.
TEST_F(SemiSyncMasterTest, ResyncNeedsTheQuorumPastEveryAsyncRelease) {
  Configure(/*count=*/1, /*timeout_ms=*/600000);
  master_.ReplicaConnected(/*connection=*/1, /*server_id=*/2, true, 0);
  end_ = 3;
  master_.Ack(1, 3, -1);
  ASSERT_EQ(master_.resynced_at(), std::optional<uint64_t>(3));
  SemiSyncSettings off;
  off.enabled = false;
  master_.Configure(off);
  end_ = 5;
  auto r = Wait(5);  // disabled: out without ACKs
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, Outcome::kAsync);
  EXPECT_EQ(master_.resynced_at(), std::nullopt) << "disabled";
  Configure(/*count=*/1, /*timeout_ms=*/600000);
  EXPECT_EQ(Counter(master_, "status"), "ON");
  EXPECT_EQ(master_.resynced_at(), std::nullopt) << "ON, but seq 5 is on no replica";
  EXPECT_EQ(master_.TakeResync(), std::nullopt);
  master_.Ack(1, 4, -1);
  EXPECT_EQ(master_.resynced_at(), std::nullopt);
  master_.Ack(1, 5, -1);
  EXPECT_EQ(master_.resynced_at(), std::optional<uint64_t>(5));
  EXPECT_EQ(master_.TakeResync(), std::optional<uint64_t>(5));
}

// No silent async: with the gate closed a timeout does not switch OFF; the
// wish is visible (async_wanted) until the gate opens and it happens, and a
// resync taken afterwards forgets a wish nothing acts on any more.
TEST_F(SemiSyncMasterTest, ClosedAsyncGateKeepsCommitsWaitingUntilItOpens) {
  std::atomic<bool> gate{false};
  master_.set_async_gate([&] { return gate.load(); });
  Configure(/*count=*/1, /*timeout_ms=*/50);
  master_.ReplicaConnected(/*connection=*/1, /*server_id=*/2, true, 0);
  end_ = 2;
  std::atomic<bool> done{false};
  SemiSyncMaster::Result result = absl::UnknownError("not yet");
  std::thread waiter([&] {
    result = Wait(2);
    done = true;
  });
  const auto guard = Clock::now() + std::chrono::seconds(30);
  while (!master_.async_wanted() && Clock::now() < guard) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(master_.async_wanted());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(done.load()) << "released without ACKs while the gate was closed";
  gate = true;
  waiter.join();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, Outcome::kAsync);
  EXPECT_FALSE(master_.async_wanted());
  EXPECT_EQ(master_.resynced_at(), std::nullopt) << "seq 2 went out on no replica";
  master_.Ack(1, 2, -1);
  EXPECT_EQ(master_.TakeResync(), std::optional<uint64_t>(2));
}

// Review s47c F3: an OFF the closed gate refused leaves commits waiting,
// and waits() says so (a promotion then holds its unconfirmed tail, as
// those commits would wait); once the gate opens the OFF takes effect.
TEST_F(SemiSyncMasterTest, WaitsWhileTheGateRefusesTheOffASetAskedFor) {
  std::atomic<bool> gate{false};
  master_.set_async_gate([&] { return gate.load(); });
  Configure(/*count=*/1, /*timeout_ms=*/60000);
  EXPECT_TRUE(master_.waits());
  SemiSyncSettings off;
  off.enabled = false;
  off.timeout_ms = 60000;
  off.wait_for_slave_count = 1;
  master_.Configure(off);
  EXPECT_TRUE(master_.waits()) << "the gate refused the OFF: commits still wait";
  gate = true;
  EXPECT_FALSE(master_.waits());
  gate = false;
  Configure(/*count=*/1, /*timeout_ms=*/60000);
  EXPECT_TRUE(master_.waits());
}

// Review s49b M1: the hook of a SET that read the variables before a later
// SET stored its own may configure after that one's. Its settings are
// older: they change nothing, and the later count stays in force.
TEST_F(SemiSyncMasterTest, SettingsOlderThanTheAppliedOnesAreIgnored) {
  SemiSyncSettings s;
  s.enabled = true;
  s.timeout_ms = 60000;
  s.wait_for_slave_count = 2;
  s.variables_version = 6;
  master_.Configure(s);
  master_.ReplicaConnected(1, 2, true, 0);
  master_.ReplicaConnected(2, 3, true, 0);
  end_ = 5;
  master_.Ack(1, 5, -1);  // one of two
  s.wait_for_slave_count = 1;
  s.variables_version = 5;  // read before the count was raised to 2
  master_.Configure(s);
  EXPECT_EQ(released_.load(), 0u) << "a stale count of 1 released seq 5 held by one replica";
  s.variables_version = 7;  // a later SET of the count to 1
  master_.Configure(s);
  EXPECT_EQ(released_.load(), 5u);
}

// Review s31 (replication) finding 2: a lower wait_for_slave_count that
// makes a quorum of ACKs already in must apply what it reaches (the node's
// applier: visible on the primary and its replicas), even when the commit
// that waited for it is gone (its deadline passed).
TEST_F(SemiSyncMasterTest, LoweringTheWaitCountAppliesWhatTheAcksInHandNowReach) {
  Configure(/*count=*/2, /*timeout_ms=*/60000);
  master_.ReplicaConnected(1, 2, true, 0);
  master_.ReplicaConnected(2, 3, true, 0);
  end_ = 5;
  master_.Ack(1, 5, -1);  // one of two: nothing yet
  EXPECT_EQ(released_.load(), 0u);
  Configure(/*count=*/1, /*timeout_ms=*/60000);
  EXPECT_EQ(released_.load(), 5u) << "a quorum of one holds seq 5, but it was not applied";
}

// Review s31 (replication) finding 3: rpl_semi_sync_master_enabled=OFF that
// the closed async gate refused takes effect once the gate opens: the
// commits still waiting go async then (not at their timeout), and an ACK
// that comes later does not count them as semi-sync (yes_tx) — a later
// async commit had already made them readable.
TEST_F(SemiSyncMasterTest, OffRefusedByTheClosedGateTakesEffectWhenItOpens) {
  std::atomic<bool> gate{false};
  WaitCommit10BehindAClosedGate(gate);
  std::atomic<bool> done{false};
  SemiSyncMaster::Result result = absl::UnknownError("not yet");
  std::thread waiter([&] {
    result = Wait(10);
    done = true;
  });
  ConfigureOff(600000);  // refused: the gate is closed
  EXPECT_TRUE(master_.async_wanted());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(done.load()) << "released while the gate was closed";

  gate = true;
  const auto guard = Clock::now() + std::chrono::seconds(30);
  while (!done.load() && Clock::now() < guard) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(done.load()) << "the OFF was never carried out: the commit waits for its 600 s timeout";
  waiter.join();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, Outcome::kAsync);
  EXPECT_FALSE(master_.async_wanted());
  EXPECT_EQ(master_.timeouts(), 0u) << "switched off on purpose, not by a timeout";
  end_ = 11;
  Register(11);
  auto r = Wait(11);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, Outcome::kAsync);
  master_.Ack(1, 10, -1);
  EXPECT_EQ(Counter(master_, "yes_tx"), "0");
}

// Review s31: the refused OFF is carried out by the next commit itself,
// before its answer — not left to the timer's next tick, in which that
// commit could make the older ones readable and an ACK count them.
TEST_F(SemiSyncMasterTest, NextCommitCarriesOutARefusedOffBeforeItsOwnAnswer) {
  std::atomic<bool> gate{false};
  WaitCommit10BehindAClosedGate(gate);
  std::atomic<bool> done{false};
  master_.WaitAsync(10, Registered(10), Clock::now() + std::chrono::seconds(60), nullptr,
                    [&](SemiSyncMaster::Result) { done = true; });
  ConfigureOff(600000);  // refused: the gate is closed
  EXPECT_FALSE(done.load());
  gate = true;
  end_ = 11;
  Register(11);
  auto r = Wait(11);
  // 10 must have been released before 11's answer; its callback may still
  // be on its way on the timer thread (which can carry out the OFF too), so
  // its wait is checked, then its answer awaited.
  EXPECT_EQ(Counter(master_, "wait_sessions"), "0")
      << "commit 11 was answered while commit 10 still waited for an ACK";
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!done.load() && Clock::now() < deadline) std::this_thread::yield();
  EXPECT_TRUE(done.load()) << "commit 10 was never answered";
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, Outcome::kAsync);
}

// Review s31: ACKs that arrive while the primary is revoked move nothing,
// but are kept; when it is un-revoked (promoted into a new epoch) what they
// reach is applied at once, not only at the next commit.
// Review s31 follow-up: a commit that carries out a refused OFF runs the
// released callbacks with the lock dropped; a Revoke() landing meanwhile
// must still decide its own answer (UNAVAILABLE, not async OK). The timer
// thread may carry out the OFF first (a tick right after the gate opens):
// then that attempt proves nothing and another is made.
TEST(SemiSyncMasterRaceTest, RevokeWhileTheReleasedCallbacksRunDecidesTheCommitThatRanThem) {
  bool tested = false;
  for (int attempt = 0; attempt < 20 && !tested; ++attempt) {
    std::atomic<uint64_t> end{10};
    SemiSyncMaster master([&] { return Gtid{1, end.load()}; }, [](uint64_t) {});
    std::atomic<bool> gate{false};
    master.set_async_gate([&gate] { return gate.load(); });
    SemiSyncSettings on;
    on.enabled = true;
    on.timeout_ms = 600000;
    on.wait_for_slave_count = 1;
    master.Configure(on);
    master.ReplicaConnected(1, 2, true, 0);
    const auto registration10 = master.Register(10);
    std::binary_semaphore in_callback(0);
    std::binary_semaphore go_on(0);
    std::thread::id callback_thread;
    master.WaitAsync(10, registration10, Clock::now() + std::chrono::seconds(60), nullptr,
                     [&](SemiSyncMaster::Result) {
                       callback_thread = std::this_thread::get_id();
                       in_callback.release();
                       go_on.acquire();
                     });
    SemiSyncSettings off = on;
    off.enabled = false;
    master.Configure(off);  // refused: the gate is closed
    end = 11;
    const auto registration11 = master.Register(11);
    SemiSyncMaster::Result r11 = Outcome::kAcked;
    std::thread::id commit11_thread;
    gate = true;
    std::thread commit11([&] {
      r11 = master.WaitForAck(11, registration11, Clock::now() + std::chrono::seconds(60));
    });
    commit11_thread = commit11.get_id();
    in_callback.acquire();
    master.Revoke("test: fenced while callbacks ran");
    go_on.release();
    commit11.join();
    if (callback_thread != commit11_thread) continue;  // the timer carried it out
    tested = true;
    ASSERT_FALSE(r11.ok()) << "a commit answered OK after its primary was revoked";
    EXPECT_EQ(r11.status().code(), absl::StatusCode::kUnavailable) << r11.status();
  }
  EXPECT_TRUE(tested) << "the timer carried out the OFF first in every attempt";
}

TEST_F(SemiSyncMasterTest, AcksKeptWhileRevokedAreAppliedWhenUnrevoked) {
  Configure(/*count=*/1, /*timeout_ms=*/60000);
  master_.ReplicaConnected(1, 2, true, 0);
  end_ = 5;
  master_.Revoke("test: fenced");
  master_.Ack(1, 5, -1);
  EXPECT_EQ(released_.load(), 0u) << "a revoked primary released what an ACK reached";
  master_.Unrevoke();
  EXPECT_EQ(released_.load(), 5u);
}

}  // namespace
}  // namespace relaykv
