// TimerLoop (the node's periodic chores) and UnappliedTimes (a replica's
// Seconds_Behind_Master source).
#include "server/timer_loop.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "gtest/gtest.h"
#include "server/unapplied_times.h"
#include "tests/common/temp_dir.h"

namespace relaykv {
namespace {

using testing::WaitFor;
using namespace std::chrono_literals;

TEST(TimerLoopTest, TasksRunRepeatedlyAndNeverAfterStop) {
  TimerLoop loop;
  std::atomic<int> fast{0}, slow{0};
  loop.Every(10ms, [&] { ++fast; });
  loop.Every(1h, [&] { ++slow; });
  EXPECT_TRUE(WaitFor([&] { return fast.load() >= 3; }));
  loop.Stop();
  const int at_stop = fast.load();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(fast.load(), at_stop) << "a task ran after Stop()";
  EXPECT_EQ(slow.load(), 0);
  loop.Every(1ms, [&] { ++slow; });  // ignored once stopped
  loop.Stop();                       // idempotent
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(slow.load(), 0);
}

TEST(TimerLoopTest, StopWaitsForTheTaskInProgress) {
  TimerLoop loop;
  std::atomic<bool> started{false}, finished{false};
  loop.Every(1ms, [&] {
    if (started.exchange(true)) return;
    std::this_thread::sleep_for(100ms);
    finished = true;
  });
  ASSERT_TRUE(WaitFor([&] { return started.load(); }));
  loop.Stop();
  EXPECT_TRUE(finished.load());
}

// A timer whose wait already completed (overdue: its handler queued
// behind Stop's cancel, as after a SIGSTOP/SIGCONT or a long task) must
// not re-arm itself: it kept run() alive and Stop() joined forever (a
// nemesis round: a resumed primary never finished closing for its restart).
TEST(TimerLoopTest, StopEndsEvenWhenATimerFiresBehindIt) {
  TimerLoop loop;
  std::atomic<bool> blocking{false}, release{false};
  loop.Every(std::chrono::milliseconds(1), [&] {
    if (blocking.exchange(true)) return;
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  std::atomic<int> fired{0};
  // Due while the first blocks the loop: its wait completes behind Stop.
  loop.Every(std::chrono::milliseconds(10), [&] { fired.fetch_add(1); });
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
