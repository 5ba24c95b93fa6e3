// EventLoop timers (TimerQueue): delays, ordering, repeating timers, cancellation, timers added
// from other threads, and many timers at once.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "plexus/event_loop.h"
#include "plexus/event_loop_thread.h"
#include "support/test_util.h"

namespace plexus {
namespace {

using std::chrono::milliseconds;

constexpr absl::Duration kWait = absl::Seconds(10);

class TimerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loop = thread_.start();
    ASSERT_TRUE(loop.ok()) << loop.status();
    loop_ = *loop;
  }

  // Runs `f` on the loop thread and waits for it.
  void runSync(const std::function<void()>& f) {
    testing::runSync(loop_, f);
  }

  // Waits until a timer of `d` added now has fired: everything the loop had to do before then
  // (timers due earlier) has been done. Used to prove that something did NOT happen.
  void waitTimerBarrier(milliseconds d) {
    absl::Notification fired;
    loop_->runAfter(d, [&] { fired.Notify(); });
    ASSERT_TRUE(fired.WaitForNotificationWithTimeout(kWait));
  }

  EventLoopThread thread_;
  EventLoop* loop_ = nullptr;
};

TEST_F(TimerTest, RunAfterFiresOnceNotEarly) {
  const auto delay = milliseconds(30);
  std::atomic<int> count{0};
  Clock::time_point fired_at;
  absl::Notification fired;
  const Clock::time_point start = Clock::now();
  loop_->runAfter(delay, [&] {
    fired_at = Clock::now();
    if (count.fetch_add(1) == 0) fired.Notify();
  });
  ASSERT_TRUE(fired.WaitForNotificationWithTimeout(kWait));
  EXPECT_GE(fired_at - start, delay);
  waitTimerBarrier(milliseconds(60));
  EXPECT_EQ(count.load(), 1);
}

TEST_F(TimerTest, CallbackRunsOnLoopThread) {
  absl::Notification fired;
  bool on_loop = false;
  loop_->runAfter(milliseconds(1), [&] {
    on_loop = loop_->isInLoopThread();
    fired.Notify();
  });
  ASSERT_TRUE(fired.WaitForNotificationWithTimeout(kWait));
  EXPECT_TRUE(on_loop);
}

TEST_F(TimerTest, ZeroAndNegativeDelaysFire) {
  testing::Latch fired(2);
  loop_->runAfter(Duration::zero(), [&] { fired.countDown(); });
  loop_->runAfter(-milliseconds(5), [&] { fired.countDown(); });
  ASSERT_TRUE(fired.waitFor()) << "not every timer fired";
}

TEST_F(TimerTest, FireInDeadlineOrder) {
  const std::vector<int> delays_ms = {50, 10, 40, 20, 30, 0, 45, 5};
  std::vector<int> order;  // loop thread only
  testing::Latch fired(static_cast<int>(delays_ms.size()));
  // Added on the loop thread, so the creation times are (nearly) equal.
  runSync([&] {
    for (int d : delays_ms) {
      loop_->runAfter(milliseconds(d), [&, d] {
        order.push_back(d);
        fired.countDown();
      });
    }
  });
  ASSERT_TRUE(fired.waitFor()) << "not every timer fired";
  std::vector<int> sorted = delays_ms;
  std::sort(sorted.begin(), sorted.end());
  runSync([&] { EXPECT_EQ(order, sorted); });
}

TEST_F(TimerTest, CloseDeadlinesFireInCreationOrder) {
  std::vector<int> order;
  testing::Latch fired(5);
  runSync([&] {
    for (int i = 0; i < 5; ++i) {
      loop_->runAfter(milliseconds(5), [&, i] {
        order.push_back(i);
        fired.countDown();
      });
    }
  });
  ASSERT_TRUE(fired.waitFor()) << "not every timer fired";
  runSync([&] { EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4})); });
}

TEST_F(TimerTest, RunEveryRepeatsUntilCancelled) {
  std::atomic<int> count{0};
  absl::Notification five;
  std::vector<Clock::time_point> times;  // loop thread only
  const Clock::time_point start = Clock::now();
  TimerId id = loop_->runEvery(milliseconds(5), [&] {
    times.push_back(Clock::now());
    if (count.fetch_add(1) + 1 == 5) five.Notify();
  });
  ASSERT_TRUE(id.valid());
  ASSERT_TRUE(five.WaitForNotificationWithTimeout(kWait));
  loop_->cancel(id);
  int after_cancel = 0;
  runSync([&] { after_cancel = count.load(); });  // the cancel ran before this
  waitTimerBarrier(milliseconds(50));
  EXPECT_EQ(count.load(), after_cancel);
  runSync([&] {
    ASSERT_GE(times.size(), 5u);
    // The k-th run comes no earlier than k intervals after the start.
    for (size_t k = 0; k < times.size(); ++k) {
      EXPECT_GE(times[k] - start, milliseconds(5) * static_cast<int>(k + 1)) << k;
    }
  });
}

TEST_F(TimerTest, RunEveryWithZeroIntervalStillRepeats) {
  std::atomic<int> count{0};
  absl::Notification three;
  TimerId id = loop_->runEvery(Duration::zero(), [&] {
    if (count.fetch_add(1) + 1 == 3) three.Notify();
  });
  ASSERT_TRUE(three.WaitForNotificationWithTimeout(kWait));
  loop_->cancel(id);
  int after_cancel = 0;
  runSync([&] { after_cancel = count.load(); });
  waitTimerBarrier(milliseconds(20));
  EXPECT_EQ(count.load(), after_cancel);
}

TEST_F(TimerTest, RepeatingTimerCancelsItself) {
  int count = 0;  // loop thread only
  TimerId id;
  absl::Notification third;
  runSync([&] {
    // On the loop thread the timer is added at once, so `id` is set before the first run.
    id = loop_->runEvery(milliseconds(2), [&] {
      if (++count == 3) {
        loop_->cancel(id);
        third.Notify();
      }
    });
  });
  ASSERT_TRUE(third.WaitForNotificationWithTimeout(kWait));
  waitTimerBarrier(milliseconds(30));
  runSync([&] { EXPECT_EQ(count, 3); });
}

TEST_F(TimerTest, OneShotCancellingItselfIsHarmless) {
  TimerId id;
  absl::Notification fired;
  runSync([&] {
    id = loop_->runAfter(milliseconds(1), [&] {
      loop_->cancel(id);
      fired.Notify();
    });
  });
  ASSERT_TRUE(fired.WaitForNotificationWithTimeout(kWait));
  waitTimerBarrier(milliseconds(5));
}

TEST_F(TimerTest, CancelBeforeFirePreventsIt) {
  std::atomic<bool> fired{false};
  // On the loop thread: added and cancelled in the same task.
  runSync([&] {
    TimerId id = loop_->runAfter(milliseconds(10), [&] { fired = true; });
    loop_->cancel(id);
  });
  // From another thread: both calls are queued in order.
  TimerId id = loop_->runAfter(milliseconds(30), [&] { fired = true; });
  loop_->cancel(id);
  waitTimerBarrier(milliseconds(60));
  EXPECT_FALSE(fired.load());
}

TEST_F(TimerTest, CancelRepeatingBeforeFirstRun) {
  std::atomic<int> count{0};
  TimerId id = loop_->runEvery(milliseconds(20), [&] { ++count; });
  loop_->cancel(id);
  waitTimerBarrier(milliseconds(60));
  EXPECT_EQ(count.load(), 0);
}

TEST_F(TimerTest, CallbackCancelsLaterTimerDueInSameBatch) {
  std::atomic<bool> second_ran{false};
  absl::Notification first_ran;
  runSync([&] {
    auto second = std::make_shared<TimerId>();
    loop_->runAfter(milliseconds(5), [&, second] {
      loop_->cancel(*second);
      first_ran.Notify();
    });
    *second = loop_->runAfter(milliseconds(6), [&] { second_ran = true; });
    // Keep the loop busy until both are due, so one expiry handles both.
    const Clock::time_point until = Clock::now() + milliseconds(10);
    while (Clock::now() < until) {
    }
  });
  ASSERT_TRUE(first_ran.WaitForNotificationWithTimeout(kWait));
  waitTimerBarrier(milliseconds(20));
  EXPECT_FALSE(second_ran.load());
}

TEST_F(TimerTest, CancelUnknownOrFiredIdIsHarmless) {
  loop_->cancel(TimerId{});
  loop_->cancel(TimerId{0xFFFFFFFFFFFFull});
  absl::Notification fired;
  TimerId id = loop_->runAfter(milliseconds(1), [&] { fired.Notify(); });
  ASSERT_TRUE(fired.WaitForNotificationWithTimeout(kWait));
  loop_->cancel(id);
  loop_->cancel(id);
  runSync([&] { loop_->cancel(id); });
  // The loop's timers still work.
  absl::Notification again;
  loop_->runAfter(milliseconds(1), [&] { again.Notify(); });
  EXPECT_TRUE(again.WaitForNotificationWithTimeout(kWait));
}

TEST_F(TimerTest, TimerIdsAreDistinct) {
  TimerId a = loop_->runAfter(milliseconds(1000), [] {});
  TimerId b = loop_->runEvery(milliseconds(1000), [] {});
  EXPECT_TRUE(a.valid());
  EXPECT_TRUE(b.valid());
  EXPECT_NE(a.seq, b.seq);
  EXPECT_FALSE(TimerId{}.valid());
  loop_->cancel(a);
  loop_->cancel(b);
}

TEST_F(TimerTest, TimersAddedFromManyThreads) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  testing::Latch fired(kThreads * kPerThread);
  std::atomic<int> off_loop{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      for (int i = 0; i < kPerThread; ++i) {
        loop_->runAfter(milliseconds(rng() % 20), [&] {
          if (!loop_->isInLoopThread()) ++off_loop;
          fired.countDown();
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(fired.waitFor()) << "not every timer fired";
  EXPECT_EQ(off_loop.load(), 0);
}

TEST_F(TimerTest, TenThousandTimersAllFireOnce) {
  constexpr int kTimers = 10000;
  std::vector<int> runs(kTimers, 0);  // loop thread only
  testing::Latch fired(kTimers);
  std::mt19937 rng(42);
  for (int i = 0; i < kTimers; ++i) {
    loop_->runAfter(std::chrono::microseconds(rng() % 50000), [&, i] {
      ++runs[i];
      fired.countDown();
    });
  }
  ASSERT_TRUE(fired.waitFor()) << "not every timer fired";
  waitTimerBarrier(milliseconds(10));
  int wrong = 0;
  runSync([&] {
    for (int r : runs) wrong += r != 1;
  });
  EXPECT_EQ(wrong, 0);
}

TEST_F(TimerTest, CallbackAddsTimers) {
  absl::Notification done;
  int depth = 0;  // loop thread only
  std::function<void()> step = [&] {
    if (++depth == 20) {
      done.Notify();
    } else {
      loop_->runAfter(milliseconds(1), step);
    }
  };
  loop_->runAfter(milliseconds(1), step);
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(kWait));
}

TEST_F(TimerTest, EarlierTimerAddedAfterLaterOneFiresFirst) {
  // The timerfd is armed for a late deadline first, then must be re-armed for an earlier one.
  std::atomic<bool> late_fired{false};
  absl::Notification early;
  Clock::time_point early_at;
  const Clock::time_point start = Clock::now();
  TimerId late = loop_->runAfter(std::chrono::seconds(5), [&] { late_fired = true; });
  loop_->runAfter(milliseconds(10), [&] {
    early_at = Clock::now();
    early.Notify();
  });
  ASSERT_TRUE(early.WaitForNotificationWithTimeout(absl::Seconds(3)));
  EXPECT_LT(early_at - start, std::chrono::seconds(3));
  EXPECT_FALSE(late_fired.load());
  loop_->cancel(late);
}

}  // namespace
}  // namespace plexus
