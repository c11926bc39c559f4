// TimerLoop (the node's periodic chores) and UnappliedTimes (a replica's
// Seconds_Behind_Master source).
#include "server/timer_loop.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>

#include "gtest/gtest.h"
#include "server/unapplied_times.h"
#include "tests/common/temp_dir.h"

namespace relaykv {
namespace {

using testing::WaitFor;
using namespace std::chrono_literals;

// A task whose first run sets `started`, takes `d`, then sets `finished`;
// later runs do nothing.
std::function<void()> SlowFirstRun(std::atomic<bool>& started, std::atomic<bool>& finished,
                                   std::chrono::milliseconds d) {
  return [&started, &finished, d] {
    if (started.exchange(true)) return;
    std::this_thread::sleep_for(d);
    finished = true;
  };
}

TEST(TimerLoopTest, TasksRunRepeatedlyAndNeverAfterStop) {
  TimerLoop loop;
  std::atomic<int> fast{0}, slow{0};
  auto fast_task = loop.Every(10ms, [&] { ++fast; });
  auto slow_task = loop.Every(1h, [&] { ++slow; });
  EXPECT_TRUE(WaitFor([&] { return fast.load() >= 3; }));
  loop.Stop();
  const int at_stop = fast.load();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(fast.load(), at_stop) << "a task ran after Stop()";
  EXPECT_EQ(slow.load(), 0);
  auto late = loop.Every(1ms, [&] { ++slow; });  // ignored once stopped
  loop.Stop();                                   // idempotent
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(slow.load(), 0);
}

TEST(TimerLoopTest, StopWaitsForTheTaskInProgress) {
  TimerLoop loop;
  std::atomic<bool> started{false}, finished{false};
  auto task = loop.Every(1ms, SlowFirstRun(started, finished, 100ms));
  ASSERT_TRUE(WaitFor([&] { return started.load(); }));
  loop.Stop();
  EXPECT_TRUE(finished.load());
}

// Two threads stopping at once (the node's Close and its destructor, say):
// neither returns while the task still runs — the second used to return
// at once, before the first had joined the loop.
TEST(TimerLoopTest, ConcurrentStopsBothWaitForTheTaskInProgress) {
  TimerLoop loop;
  std::atomic<bool> started{false}, finished{false};
  auto task = loop.Every(1ms, SlowFirstRun(started, finished, 200ms));
  ASSERT_TRUE(WaitFor([&] { return started.load(); }));
  std::atomic<int> early{0};
  auto stop = [&] {
    loop.Stop();
    if (!finished.load()) ++early;
  };
  std::thread a(stop), b(stop);
  a.join();
  b.join();
  EXPECT_EQ(early.load(), 0) << "a Stop() returned while the task was still running";
}

// A timer whose wait already completed (overdue: its handler queued
// behind Stop's cancel, as after a SIGSTOP/SIGCONT or a long task) must
// not re-arm itself: it kept run() alive and Stop() joined forever (a
// nemesis round: a resumed primary never finished closing for its restart).
TEST(TimerLoopTest, StopEndsEvenWhenATimerFiresBehindIt) {
  TimerLoop loop;
  std::atomic<bool> blocking{false}, release{false};
  auto blocker = loop.Every(std::chrono::milliseconds(1), [&] {
    if (blocking.exchange(true)) return;
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  std::atomic<int> fired{0};
  // Due while the first blocks the loop: its wait completes behind Stop.
  auto overdue = loop.Every(std::chrono::milliseconds(10), [&] { fired.fetch_add(1); });
  while (!blocking.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    loop.Stop();
    stopped.store(true);
  });
  // Stop's cancel is queued; the second timer becomes overdue meanwhile.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  release.store(true);
  for (int i = 0; i < 500 && !stopped.load(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!stopped.load()) {
    ADD_FAILURE() << "TimerLoop::Stop() did not return within 5 s";
    std::fflush(nullptr);
    std::_Exit(1);  // the hang guard: the stopper can never be joined
  }
  stopper.join();
}

TEST(TimerLoopTest, CancelWaitsForTheRunInProgress) {
  TimerLoop loop;
  std::atomic<bool> started{false}, finished{false};
  auto task = loop.Every(1ms, SlowFirstRun(started, finished, 100ms));
  ASSERT_TRUE(WaitFor([&] { return started.load(); }));
  task.Cancel();
  EXPECT_TRUE(finished.load()) << "Cancel() returned while the task still ran";
}

TEST(TimerLoopTest, CancelledTaskNeverRunsAgainWhileOthersDo) {
  TimerLoop loop;
  std::atomic<int> cancelled{0}, other{0};
  auto task = loop.Every(1ms, [&] { ++cancelled; });
  auto keeps = loop.Every(1ms, [&] { ++other; });
  ASSERT_TRUE(WaitFor([&] { return cancelled.load() >= 3; }));
  task.Cancel();
  const int at_cancel = cancelled.load();
  const int other_at_cancel = other.load();
  ASSERT_TRUE(WaitFor([&] { return other.load() >= other_at_cancel + 20; }));
  EXPECT_EQ(cancelled.load(), at_cancel) << "a task ran after Cancel()";
}

TEST(TimerLoopTest, DestroyingTheHandleCancelsTheTask) {
  TimerLoop loop;
  std::atomic<int> runs{0};
  {
    auto task = loop.Every(1ms, [&] { ++runs; });
    ASSERT_TRUE(WaitFor([&] { return runs.load() >= 1; }));
  }
  const int at_end = runs.load();
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(runs.load(), at_end);
  // Moving a handle in cancels the task it held.
  std::atomic<int> first{0}, second{0};
  auto h = loop.Every(1ms, [&] { ++first; });
  ASSERT_TRUE(WaitFor([&] { return first.load() >= 1; }));
  h = loop.Every(1ms, [&] { ++second; });
  const int first_at_move = first.load();
  ASSERT_TRUE(WaitFor([&] { return second.load() >= 5; }));
  EXPECT_EQ(first.load(), first_at_move);
}

// On the loop thread Cancel() must not wait for the run in progress (its
// own caller): it would wait for ever.
TEST(TimerLoopTest, CancelFromInsideTheTaskReturnsAndEndsIt) {
  TimerLoop loop;
  std::atomic<int> runs{0};
  std::atomic<bool> cancelled{false};
  TimerLoop::PeriodicTask task;
  std::mutex mu;  // orders the assignment below before the task reads it
  {
    std::lock_guard l(mu);
    task = loop.Every(1ms, [&] {
      std::lock_guard l2(mu);
      ++runs;
      task.Cancel();
      cancelled = true;
    });
  }
  ASSERT_TRUE(WaitFor([&] { return cancelled.load(); })) << "Cancel() from the task did not return";
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(runs.load(), 1);
  // Another task may cancel it too (the loop's only thread runs neither then).
  std::atomic<int> victim_runs{0};
  std::atomic<bool> done{false};
  auto victim = loop.Every(1h, [&] { ++victim_runs; });
  auto killer = loop.Every(1ms, [&] {
    if (done.exchange(true)) return;
    victim.Cancel();
  });
  ASSERT_TRUE(WaitFor([&] { return done.load(); }));
  EXPECT_EQ(victim_runs.load(), 0);
}

TEST(TimerLoopTest, CancelAfterStopOrAfterTheLoopIsGoneReturns) {
  std::atomic<int> runs{0};
  TimerLoop::PeriodicTask outlives;
  {
    TimerLoop loop;
    auto task = loop.Every(1ms, [&] { ++runs; });
    outlives = loop.Every(1ms, [&] { ++runs; });
    ASSERT_TRUE(WaitFor([&] { return runs.load() >= 2; }));
    loop.Stop();
    task.Cancel();
    task.Cancel();  // idempotent
  }
  const int at_stop = runs.load();
  outlives.Cancel();  // the loop is destroyed: nothing to wait for
  TimerLoop::PeriodicTask empty;
  empty.Cancel();
  EXPECT_EQ(runs.load(), at_stop);
}

v1::Event EventAt(uint64_t seq, int64_t ts) {
  v1::Event e;
  e.mutable_gtid()->set_epoch(1);
  e.mutable_gtid()->set_seq(seq);
  e.set_timestamp_us(ts);
  return e;
}

TEST(UnappliedTimesTest, OldestUnappliedEventsTimestampOrZeroWhenCaughtUp) {
  UnappliedTimes t;
  const v1::Event batch[] = {EventAt(1, 100), EventAt(2, 200), EventAt(3, 300)};
  t.Received(batch);
  EXPECT_EQ(t.OldestUnapplied(0, 3, 0), 100);
  EXPECT_EQ(t.OldestUnapplied(2, 3, 200), 300);
  EXPECT_EQ(t.OldestUnapplied(3, 3, 300), 0);
  // Unapplied events received before it existed: the last applied one's.
  UnappliedTimes fresh;
  EXPECT_EQ(fresh.OldestUnapplied(5, 9, 555), 555);
  // A rewound relay log starts over.
  const v1::Event rewound[] = {EventAt(2, 900)};
  t.Received(rewound);
  EXPECT_EQ(t.OldestUnapplied(1, 2, 150), 900);
}

}  // namespace
}  // namespace relaykv
