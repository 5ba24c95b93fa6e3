// EventLoopThread and EventLoopThreadPool: threads that run their own loops, round-robin and
// least-loaded choice, stopping, and engine errors.

#include "plexus/event_loop_thread_pool.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "plexus/event_loop.h"
#include "plexus/event_loop_thread.h"
#include "support/test_util.h"

namespace plexus {
namespace {

using testing::runSync;

// Counts threads that exited after touching it: a thread_local's destructor runs at thread exit,
// before join() returns.
std::atomic<int> g_exited{0};
struct ExitMarker {
  bool touched = false;
  ~ExitMarker() {
    if (touched) g_exited.fetch_add(1);
  }
};
thread_local ExitMarker t_exit_marker;

TEST(EventLoopThreadTest, StartRunsLoopOnItsThread) {
  EventLoopThread t;
  EXPECT_EQ(t.loop(), nullptr);
  absl::StatusOr<EventLoop*> loop = t.start();
  ASSERT_TRUE(loop.ok()) << loop.status();
  ASSERT_NE(*loop, nullptr);
  EXPECT_EQ(t.loop(), *loop);
  EXPECT_FALSE((*loop)->isInLoopThread());
  std::thread::id id;
  EventLoop* current = nullptr;
  runSync(*loop, [&] {
    id = std::this_thread::get_id();
    current = EventLoop::current();
  });
  EXPECT_NE(id, std::this_thread::get_id());
  EXPECT_EQ(current, *loop);

  // A second start() returns the same running loop.
  absl::StatusOr<EventLoop*> again = t.start();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *loop);

  t.stop();
  EXPECT_EQ(t.loop(), nullptr);
  t.stop();  // idempotent
}

TEST(EventLoopThreadTest, InitCallbackRunsOnLoopThreadBeforeStartReturns) {
  std::thread::id init_thread;
  EventLoop* init_loop = nullptr;
  EventLoop* init_current = nullptr;
  EventLoopThread t(EngineOptions{}, [&](EventLoop* loop) {
    init_thread = std::this_thread::get_id();
    init_loop = loop;
    init_current = EventLoop::current();
  });
  absl::StatusOr<EventLoop*> loop = t.start();
  ASSERT_TRUE(loop.ok());
  EXPECT_EQ(init_loop, *loop);
  EXPECT_EQ(init_current, *loop);
  EXPECT_NE(init_thread, std::this_thread::get_id());
  std::thread::id loop_thread;
  runSync(*loop, [&] { loop_thread = std::this_thread::get_id(); });
  EXPECT_EQ(init_thread, loop_thread);
}

TEST(EventLoopThreadTest, StopJoinsTheThread) {
  EventLoopThread t;
  absl::StatusOr<EventLoop*> loop = t.start();
  ASSERT_TRUE(loop.ok());
  const int before = g_exited.load();
  runSync(*loop, [] { t_exit_marker.touched = true; });
  t.stop();
  EXPECT_EQ(g_exited.load(), before + 1);
}

TEST(EventLoopThreadTest, DestructorStops) {
  const int before = g_exited.load();
  {
    EventLoopThread t;
    absl::StatusOr<EventLoop*> loop = t.start();
    ASSERT_TRUE(loop.ok());
    runSync(*loop, [] { t_exit_marker.touched = true; });
  }
  EXPECT_EQ(g_exited.load(), before + 1);
}

TEST(EventLoopThreadTest, OtherEnginesByName) {
  for (const std::string& name : engineNames()) {
    EventLoopThread t(EngineOptions{name});
    absl::StatusOr<EventLoop*> loop = t.start();
    ASSERT_TRUE(loop.ok()) << name << ": " << loop.status();
    std::string description;
    runSync(*loop, [&] { description = std::string((*loop)->engine().name()); });
    EXPECT_EQ(description.rfind(name, 0), 0u) << description;  // "epoll (oneshot)" for epoll
  }
}

// Regression: start() kept its first failure for good. A start() that failed because the engine
// could not be made (no fds left) succeeds once fds are available again.
TEST(EventLoopThreadTest, StartAgainAfterAFailedStart) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "not under sanitizers: they need file descriptors of their own";
#endif
  EventLoopThread t;
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  // No fd number left below the limit: epoll_create1 fails with EMFILE.
  const int lowest_free = ::fcntl(0, F_DUPFD_CLOEXEC, 0);
  ASSERT_GE(lowest_free, 0);
  ::close(lowest_free);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(lowest_free);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  absl::StatusOr<EventLoop*> first = t.start();
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_FALSE(first.ok());
  EXPECT_NE(first.status().message().find("epoll_create1"), std::string::npos) << first.status();

  absl::StatusOr<EventLoop*> second = t.start();
  ASSERT_TRUE(second.ok()) << second.status();
  bool ran = false;
  runSync(*second, [&] { ran = (*second)->isInLoopThread(); });
  EXPECT_TRUE(ran);
}

TEST(EventLoopThreadTest, UnknownEngineFailsStart) {
  bool init_ran = false;
  EventLoopThread t(EngineOptions{"no-such-engine"}, [&](EventLoop*) { init_ran = true; });
  absl::StatusOr<EventLoop*> loop = t.start();
  ASSERT_FALSE(loop.ok());
  EXPECT_EQ(loop.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(loop.status().message().find("no-such-engine"), std::string::npos)
      << loop.status();
  EXPECT_NE(loop.status().message().find("epoll"), std::string::npos) << loop.status();
  EXPECT_FALSE(init_ran);
  EXPECT_EQ(t.loop(), nullptr);
  t.stop();  // nothing to stop
}

class EventLoopThreadPoolTest : public ::testing::Test {
 protected:
  EventLoop base_;  // on the test thread
};

TEST_F(EventLoopThreadPoolTest, ZeroThreadsUsesBaseLoop) {
  EventLoopThreadPool pool(&base_, 0, EngineOptions{});
  ASSERT_TRUE(pool.start().ok());
  EXPECT_TRUE(pool.started());
  EXPECT_EQ(pool.numThreads(), 0);
  EXPECT_EQ(pool.getNextLoop(), &base_);
  EXPECT_EQ(pool.getNextLoop(), &base_);
  EXPECT_EQ(pool.getLeastLoadedLoop(), &base_);
  EXPECT_EQ(pool.loops(), std::vector<EventLoop*>{&base_});
  pool.addLoad(&base_, 3);
  EXPECT_EQ(pool.load(&base_), 3);
  pool.addLoad(&base_, -3);
  EXPECT_EQ(pool.load(&base_), 0);
}

TEST_F(EventLoopThreadPoolTest, NThreadsDistinctLoopsOnOwnThreads) {
  constexpr int kThreads = 3;
  EventLoopThreadPool pool(&base_, kThreads, EngineOptions{});
  ASSERT_TRUE(pool.start().ok());
  std::vector<EventLoop*> loops = pool.loops();
  ASSERT_EQ(loops.size(), static_cast<size_t>(kThreads));
  std::set<EventLoop*> distinct(loops.begin(), loops.end());
  EXPECT_EQ(distinct.size(), loops.size());
  EXPECT_EQ(distinct.count(&base_), 0u);

  std::set<std::thread::id> threads;
  for (EventLoop* loop : loops) {
    EXPECT_FALSE(loop->isInLoopThread());
    runSync(loop, [&] {
      EXPECT_EQ(EventLoop::current(), loop);
      threads.insert(std::this_thread::get_id());
    });
  }
  EXPECT_EQ(threads.size(), static_cast<size_t>(kThreads));
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
}

TEST_F(EventLoopThreadPoolTest, RoundRobinCycles) {
  EventLoopThreadPool pool(&base_, 3, EngineOptions{});
  ASSERT_TRUE(pool.start().ok());
  std::vector<EventLoop*> loops = pool.loops();
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(pool.getNextLoop(), loops[static_cast<size_t>(i % 3)]) << i;
  }
}

TEST_F(EventLoopThreadPoolTest, LeastLoadedPicksSmallestAndRotatesTies) {
  EventLoopThreadPool pool(&base_, 3, EngineOptions{});
  ASSERT_TRUE(pool.start().ok());
  std::vector<EventLoop*> l = pool.loops();

  // All equal: ties rotate like round-robin.
  EXPECT_EQ(pool.getLeastLoadedLoop(), l[0]);
  EXPECT_EQ(pool.getLeastLoadedLoop(), l[1]);
  EXPECT_EQ(pool.getLeastLoadedLoop(), l[2]);
  EXPECT_EQ(pool.getLeastLoadedLoop(), l[0]);

  pool.addLoad(l[0], 2);
  pool.addLoad(l[1], 1);
  pool.addLoad(l[2], 1);
  EXPECT_EQ(pool.load(l[0]), 2);
  EXPECT_EQ(pool.load(l[1]), 1);
  // l[1] and l[2] tie for the smallest load: they alternate, l[0] is never chosen.
  std::vector<EventLoop*> picks;
  for (int i = 0; i < 4; ++i) picks.push_back(pool.getLeastLoadedLoop());
  for (EventLoop* p : picks) EXPECT_NE(p, l[0]);
  EXPECT_NE(picks[0], picks[1]);
  EXPECT_EQ(picks[0], picks[2]);
  EXPECT_EQ(picks[1], picks[3]);

  // A unique minimum wins every time.
  pool.addLoad(l[1], 5);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(pool.getLeastLoadedLoop(), l[2]);
  pool.addLoad(l[0], -2);
  EXPECT_EQ(pool.load(l[0]), 0);
  EXPECT_EQ(pool.getLeastLoadedLoop(), l[0]);
}

TEST_F(EventLoopThreadPoolTest, AddLoadFromLoopThreads) {
  EventLoopThreadPool pool(&base_, 2, EngineOptions{});
  ASSERT_TRUE(pool.start().ok());
  std::vector<EventLoop*> l = pool.loops();
  for (EventLoop* loop : l) {
    runSync(loop, [&] {
      for (int i = 0; i < 100; ++i) pool.addLoad(loop, 1);
    });
  }
  EXPECT_EQ(pool.load(l[0]), 100);
  EXPECT_EQ(pool.load(l[1]), 100);
}

TEST_F(EventLoopThreadPoolTest, StopJoinsAllThreads) {
  constexpr int kThreads = 3;
  EventLoopThreadPool pool(&base_, kThreads, EngineOptions{});
  ASSERT_TRUE(pool.start().ok());
  const int before = g_exited.load();
  for (EventLoop* loop : pool.loops()) runSync(loop, [] { t_exit_marker.touched = true; });
  pool.stop();
  EXPECT_EQ(g_exited.load(), before + kThreads);
  EXPECT_FALSE(pool.started());
  EXPECT_EQ(pool.getNextLoop(), &base_);
  EXPECT_EQ(pool.loops(), std::vector<EventLoop*>{&base_});
  pool.stop();  // idempotent
}

TEST_F(EventLoopThreadPoolTest, DestructorStops) {
  const int before = g_exited.load();
  {
    EventLoopThreadPool pool(&base_, 2, EngineOptions{});
    ASSERT_TRUE(pool.start().ok());
    for (EventLoop* loop : pool.loops()) runSync(loop, [] { t_exit_marker.touched = true; });
  }
  EXPECT_EQ(g_exited.load(), before + 2);
}

TEST_F(EventLoopThreadPoolTest, UnknownEngineFailsStart) {
  EventLoopThreadPool pool(&base_, 2, EngineOptions{"bogus"});
  absl::Status s = pool.start();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("bogus"), std::string::npos) << s;
  EXPECT_FALSE(pool.started());
  EXPECT_EQ(pool.getNextLoop(), &base_);
}

TEST_F(EventLoopThreadPoolTest, PollAndSelectEngines) {
  for (const char* name : {"poll", "select"}) {
    EventLoopThreadPool pool(&base_, 2, EngineOptions{name});
    ASSERT_TRUE(pool.start().ok()) << name;
    for (EventLoop* loop : pool.loops()) {
      std::string engine;
      runSync(loop, [&] { engine = std::string(loop->engine().name()); });
      EXPECT_EQ(engine, name);
    }
  }
}

}  // namespace
}  // namespace plexus
