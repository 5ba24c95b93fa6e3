// EventLoop: one loop per thread, the thread checks, and handing work to the loop from other threads.

#include "plexus/event_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "support/faulty_engine.h"
#include "support/test_util.h"

namespace plexus {
namespace {

// A loop built and run on a thread of its own (plain std::thread, so these tests do not rely on
// EventLoopThread). The constructor returns once run() has started.
class LoopOnThread {
 public:
  LoopOnThread() {
    absl::Notification ready;
    thread_ = std::thread([this, &ready] {
      EventLoop loop;
      loop_ = &loop;
      thread_id_ = std::this_thread::get_id();
      loop.queueInLoop([&ready] { ready.Notify(); });
      EXPECT_TRUE(loop.run().ok());
      stopped_.Notify();
      // The loop must outlive calls other threads make on it: quit() may still be inside its
      // wakeup when run() returns (see QuitFromOtherThreadWhileLoopIsBusy below).
      may_destroy_.WaitForNotification();
    });
    testing::awaitOrAbort(ready, "LoopOnThread: the loop did not start");
  }
  ~LoopOnThread() {
    if (thread_.joinable()) {
      loop_->quit();
      join();
    }
  }
  EventLoop* loop() const { return loop_; }
  std::thread::id threadId() const { return thread_id_; }
  absl::Notification& stopped() { return stopped_; }
  void join() {
    may_destroy_.Notify();
    thread_.join();
  }

  // Runs `f` on the loop and waits for it.
  void runSync(const std::function<void()>& f) {
    testing::runSync(loop_, f);
  }

 private:
  std::thread thread_;
  EventLoop* loop_ = nullptr;
  std::thread::id thread_id_;
  absl::Notification stopped_;
  absl::Notification may_destroy_;
};

// Longer than any sane wakeup latency, shorter than the loop's 10 s wait limit, so a lost wakeup
// shows up as a timeout rather than as a slow pass.
constexpr absl::Duration kNoLostWakeup = absl::Seconds(5);

TEST(EventLoopDeathTest, SecondLoopOnSameThreadDies) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH(
      {
        EventLoop first;
        EventLoop second;
      },
      "one loop per thread");
}

TEST(EventLoopDeathTest, AssertInLoopThreadFromAnotherThreadDies) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH(
      {
        EventLoop loop;
        std::thread t([&] { loop.assertInLoopThread(); });
        t.join();
      },
      "belongs to thread .* but was used from thread");
}

TEST(EventLoopDeathTest, RunFromAnotherThreadDies) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH(
      {
        EventLoop loop;
        std::thread t([&] { EXPECT_TRUE(loop.run().ok()); });
        t.join();
      },
      "but was used from thread");
}

TEST(EventLoopTest, CurrentIsThisThreadsLoop) {
  EXPECT_EQ(EventLoop::current(), nullptr);
  {
    EventLoop loop;
    EXPECT_EQ(EventLoop::current(), &loop);
    EXPECT_TRUE(loop.isInLoopThread());
    loop.assertInLoopThread();
    EventLoop* other_thread_sees = &loop;
    std::thread t([&] { other_thread_sees = EventLoop::current(); });
    t.join();
    EXPECT_EQ(other_thread_sees, nullptr);
    EXPECT_FALSE(loop.engineDescription().empty());
  }
  EXPECT_EQ(EventLoop::current(), nullptr);
  // Once the first loop is gone, the thread may have another.
  EventLoop again;
  EXPECT_EQ(EventLoop::current(), &again);
}

TEST(EventLoopTest, RunInLoopOnLoopThreadRunsSynchronously) {
  EventLoop loop;
  bool ran = false;
  loop.runInLoop([&] { ran = true; });
  EXPECT_TRUE(ran);
}

TEST(EventLoopTest, QueueInLoopOnLoopThreadIsDeferred) {
  EventLoop loop;
  std::vector<int> order;
  loop.queueInLoop([&] {
    order.push_back(2);
    loop.quit();
  });
  order.push_back(1);
  EXPECT_EQ(order, std::vector<int>{1});
  EXPECT_TRUE(loop.run().ok());
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(EventLoopTest, IsInLoopThreadFromOtherThread) {
  LoopOnThread lt;
  EXPECT_FALSE(lt.loop()->isInLoopThread());
  bool inside = false;
  lt.runSync([&] {
    inside = lt.loop()->isInLoopThread() && EventLoop::current() == lt.loop();
  });
  EXPECT_TRUE(inside);
}

TEST(EventLoopTest, ManyProducersEachTaskRunsOnceInOrder) {
  LoopOnThread lt;
  EventLoop* loop = lt.loop();
  constexpr int kProducers = 8;
  constexpr int kTasks = 10000;
  // Touched on the loop thread only.
  std::vector<int> next(kProducers, 0);
  std::vector<int> runs(kProducers * kTasks, 0);
  std::atomic<int> off_thread{0};
  std::atomic<int> out_of_order{0};
  testing::Latch all_ran(kProducers * kTasks);

  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kTasks; ++i) {
        auto task = [&, p, i] {
          if (!loop->isInLoopThread()) off_thread.fetch_add(1);
          if (next[p] != i) out_of_order.fetch_add(1);
          next[p] = i + 1;
          ++runs[p * kTasks + i];
          all_ran.countDown();
        };
        // Both entry points queue from a foreign thread.
        if (i % 2 == 0) {
          loop->queueInLoop(task);
        } else {
          loop->runInLoop(task);
        }
      }
    });
  }
  for (auto& t : producers) t.join();
  ASSERT_TRUE(all_ran.waitFor()) << "queued tasks did not all run";

  int wrong = 0;
  lt.runSync([&] {
    for (int r : runs) wrong += r != 1;
  });
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(off_thread.load(), 0);
  EXPECT_EQ(out_of_order.load(), 0);
}

TEST(EventLoopTest, FunctorQueuedFromFunctorRuns) {
  LoopOnThread lt;
  EventLoop* loop = lt.loop();
  absl::Notification done;
  loop->queueInLoop([&] {
    // Queued while the pending functors run: must wake the loop, or it waits up to 10 s.
    loop->queueInLoop([&] { done.Notify(); });
  });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(kNoLostWakeup));
}

TEST(EventLoopTest, ChainOfQueuedFunctorsRuns) {
  LoopOnThread lt;
  EventLoop* loop = lt.loop();
  constexpr int kDepth = 200;
  int depth = 0;
  absl::Notification done;
  std::function<void()> step = [&] {
    if (++depth == kDepth) {
      done.Notify();
    } else {
      loop->queueInLoop(step);
    }
  };
  loop->queueInLoop(step);
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(kNoLostWakeup));
  EXPECT_EQ(depth, kDepth);
}

TEST(EventLoopTest, FunctorQueuedFromTimerCallbackRuns) {
  LoopOnThread lt;
  EventLoop* loop = lt.loop();
  absl::Notification done;
  loop->runAfter(std::chrono::milliseconds(1), [&] {
    // Queued while the loop handles events: runs at the end of this iteration.
    loop->queueInLoop([&] { done.Notify(); });
  });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(kNoLostWakeup));
}

TEST(EventLoopTest, QueueFromOtherThreadWakesIdleLoop) {
  LoopOnThread lt;
  // Let the loop block in wait(): the functor has no event of its own to ride on.
  absl::SleepFor(absl::Milliseconds(20));
  absl::Notification done;
  lt.loop()->queueInLoop([&] { done.Notify(); });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(kNoLostWakeup));
}

TEST(EventLoopTest, QuitFromOtherThreadStopsRun) {
  LoopOnThread lt;
  lt.loop()->quit();
  EXPECT_TRUE(lt.stopped().WaitForNotificationWithTimeout(kNoLostWakeup));
  lt.join();
}

// Regression: quit() from another thread stores quit_ and then wakes the loop. A busy loop can see
// quit_, return from run() and be destroyed by its owner while quit() is still inside the wakeup;
// the destructor now waits for it (both hold the loop's mutex). Under TSan
// (-DPLEXUS_SANITIZE=thread) the old code reported a race between ~EventLoop and quit(). Each
// round must end: run() returns OK and the thread finishes within a bounded wait.
TEST(EventLoopTest, QuitFromOtherThreadWhileLoopIsBusy) {
  for (int round = 0; round < 20; ++round) {
    EventLoop* loop = nullptr;
    absl::Notification running;
    absl::Notification finished;
    std::thread t([&] {
      EventLoop own;
      loop = &own;
      // Re-queue forever: the loop never blocks, so it sees quit_ without needing the wakeup.
      std::function<void()> spin = [&] { own.queueInLoop(spin); };
      own.queueInLoop([&] {
        running.Notify();
        spin();
      });
      EXPECT_TRUE(own.run().ok());
      finished.Notify();
    });
    testing::awaitOrAbort(running, "the busy loop did not start");
    loop->quit();
    testing::awaitOrAbort(finished, "quit() from another thread did not stop a busy loop");
    t.join();
  }
}

TEST(EventLoopTest, QuitFromLoopThreadStopsRun) {
  EventLoop loop;
  int iterations_seen = 0;
  loop.queueInLoop([&] {
    ++iterations_seen;
    loop.quit();
  });
  EXPECT_TRUE(loop.run().ok());  // returns
  EXPECT_EQ(iterations_seen, 1);
  EXPECT_GE(loop.iterations(), 1u);
}

TEST(EventLoopTest, RunAgainAfterQuit) {
  EventLoop loop;
  for (int round = 0; round < 3; ++round) {
    bool ran = false;
    loop.queueInLoop([&] {
      ran = true;
      loop.quit();
    });
    EXPECT_TRUE(loop.run().ok());
    EXPECT_TRUE(ran) << round;
  }
}

TEST(EventLoopTest, IterationsAdvance) {
  LoopOnThread lt;
  const uint64_t before = lt.loop()->iterations();
  for (int i = 0; i < 3; ++i) lt.runSync([] {});
  EXPECT_TRUE(lt.loop()->iterations() > before);
}

// A failing wait must not make the loop spin: it pauses (1, 2, 4 ms...) and tries again; once the
// wait works again the loop serves as before.
TEST(EventLoopTest, FailingWaitBacksOffThenRecovers) {
  auto made = makeEngine(EngineOptions{});
  ASSERT_TRUE(made.ok()) << made.status();
  auto engine = std::make_unique<testing::FaultyEngine>(*std::move(made));
  testing::FaultyEngine* faulty = engine.get();
  faulty->fail_waits.store(3);
  EventLoop loop(std::move(engine));
  bool failure_reported = false;
  loop.setFailureCallback([&](const absl::Status&) { failure_reported = true; });
  // A timer fires only through a wait that works.
  loop.runAfter(Duration::zero(), [&] { loop.quit(); });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(loop.run().ok());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1 + 2 + 4));
  EXPECT_FALSE(failure_reported);
  EXPECT_FALSE(loop.failed());
  EXPECT_EQ(loop.stats().wait_failures, 3u);
  EXPECT_LE(faulty->dispatch_calls.load(), 6);
}

// A wait that keeps failing: after kMaxWaitFailures tries (about half a second of pauses) the loop
// gives up on its engine, says so once through the failure callback, still runs the work other
// threads queue, and run() returns the error after quit().
TEST(EventLoopTest, PersistentWaitFailureStopsTheLoopWithAnError) {
  auto made = makeEngine(EngineOptions{});
  ASSERT_TRUE(made.ok()) << made.status();
  auto engine = std::make_unique<testing::FaultyEngine>(*std::move(made));
  testing::FaultyEngine* faulty = engine.get();
  faulty->fail_waits.store(-1);
  EventLoop* loop_ptr = nullptr;
  absl::Notification ready;
  absl::Notification failed;
  absl::Status reported;
  absl::Status returned;
  int reports = 0;
  std::thread t([&] {
    EventLoop loop(std::move(engine));
    loop_ptr = &loop;
    loop.setFailureCallback([&](const absl::Status& why) {
      ++reports;
      reported = why;
      failed.Notify();
    });
    loop.queueInLoop([&] { ready.Notify(); });
    returned = loop.run();
  });
  testing::awaitOrAbort(ready, "the loop did not start");
  ASSERT_TRUE(failed.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(loop_ptr->failed());
  EXPECT_EQ(faulty->dispatch_calls.load(), EventLoop::kMaxWaitFailures);
  // Queued work still runs (a server closes the failed loop's connections this way).
  absl::Notification ran;
  loop_ptr->queueInLoop([&] { ran.Notify(); });
  EXPECT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(faulty->dispatch_calls.load(), EventLoop::kMaxWaitFailures);  // never again
  loop_ptr->quit();
  t.join();  // the engine went with the loop
  EXPECT_EQ(reports, 1);
  EXPECT_FALSE(returned.ok());
  EXPECT_EQ(returned, reported);
  EXPECT_NE(returned.message().find("injected: epoll_wait"), std::string::npos) << returned;
}

}  // namespace
}  // namespace plexus
