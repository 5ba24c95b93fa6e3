// What only the epoll engine promises: rearm() skips redundant epoll_ctl calls, the event array
// grows, and kernel errors carry the call and the errno text.

#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "engines/engine_test_util.h"
#include "engines/epoll_engine.h"
#include "gtest/gtest.h"

namespace plexus::detail {
namespace {

using engine_test::Pair;
using engine_test::socketPair;
using engine_test::writeByte;

std::unique_ptr<EpollEngine> makeEpoll(EpollMode mode) {
  auto engine = EpollEngine::create(mode);
  EXPECT_TRUE(engine.ok()) << engine.status();
  return engine.ok() ? std::move(*engine) : nullptr;
}

TEST(EpollEngineTest, RearmAfterModifyCostsNoSyscall) {
  auto engine = makeEpoll(EpollMode::kOneshot);
  ASSERT_NE(engine, nullptr);
  Pair p = socketPair();
  ASSERT_TRUE(engine->add(p.a.get(), kEventRead, nullptr).ok());
  ASSERT_TRUE(writeByte(p.b.get()));
  std::vector<ReadyEvent> events;
  ASSERT_EQ(*engine->wait(5000, &events), 1);

  // The handler changes the interest: that modify() re-arms, so the rearm() after it does nothing.
  ASSERT_TRUE(engine->modify(p.a.get(), kEventRead | kEventWrite, nullptr).ok());
  const uint64_t calls = engine->ctlCalls();
  engine->rearm(p.a.get(), kEventRead | kEventWrite, nullptr);
  EXPECT_EQ(engine->ctlCalls(), calls);

  // Reported again, disarmed; no modify() this time: rearm() makes exactly one call, then none.
  ASSERT_EQ(*engine->wait(5000, &events), 1);
  engine->rearm(p.a.get(), kEventRead, nullptr);
  EXPECT_EQ(engine->ctlCalls(), calls + 1);
  engine->rearm(p.a.get(), kEventRead, nullptr);
  EXPECT_EQ(engine->ctlCalls(), calls + 1);
}

TEST(EpollEngineTest, RearmWithNoInterestLeavesTheFdDisarmed) {
  auto engine = makeEpoll(EpollMode::kOneshot);
  ASSERT_NE(engine, nullptr);
  Pair p = socketPair();
  ASSERT_TRUE(engine->add(p.a.get(), kEventRead, nullptr).ok());
  ASSERT_TRUE(writeByte(p.b.get()));
  std::vector<ReadyEvent> events;
  ASSERT_EQ(*engine->wait(5000, &events), 1);
  const uint64_t calls = engine->ctlCalls();
  engine->rearm(p.a.get(), 0, nullptr);
  EXPECT_EQ(engine->ctlCalls(), calls);
  EXPECT_EQ(*engine->wait(0, &events), 0);
  // A later modify() arms it.
  ASSERT_TRUE(engine->modify(p.a.get(), kEventRead, nullptr).ok());
  EXPECT_EQ(*engine->wait(5000, &events), 1);
}

TEST(EpollEngineTest, RearmIsFreeInLevelAndEdgeModes) {
  for (EpollMode mode : {EpollMode::kLevel, EpollMode::kEdge}) {
    auto engine = makeEpoll(mode);
    ASSERT_NE(engine, nullptr);
    Pair p = socketPair();
    ASSERT_TRUE(engine->add(p.a.get(), kEventRead, nullptr).ok());
    ASSERT_TRUE(writeByte(p.b.get()));
    std::vector<ReadyEvent> events;
    ASSERT_EQ(*engine->wait(5000, &events), 1);
    const uint64_t calls = engine->ctlCalls();
    engine->rearm(p.a.get(), kEventRead, nullptr);
    EXPECT_EQ(engine->ctlCalls(), calls) << epollModeName(mode);
  }
}

// More ready fds than the event array holds: the array grows until one wait() returns them all.
TEST(EpollEngineTest, EventArrayGrowsWhenFull) {
  auto engine = makeEpoll(EpollMode::kLevel);
  ASSERT_NE(engine, nullptr);
  constexpr int kPairs = 100;
  std::vector<Pair> pairs;
  for (int i = 0; i < kPairs; ++i) {
    pairs.push_back(socketPair());
    ASSERT_TRUE(engine->add(pairs[i].a.get(), kEventRead, nullptr).ok());
    ASSERT_TRUE(writeByte(pairs[i].b.get()));
  }
  std::vector<ReadyEvent> events;
  std::vector<int> counts;
  for (int i = 0; i < 8; ++i) counts.push_back(*engine->wait(0, &events));
  EXPECT_LT(counts.front(), kPairs);  // starts small
  EXPECT_EQ(counts.back(), kPairs);
  for (size_t i = 1; i < counts.size(); ++i) EXPECT_GE(counts[i], counts[i - 1]);
}

TEST(EpollEngineTest, KernelErrorsNameTheCall) {
  auto engine = makeEpoll(EpollMode::kOneshot);
  ASSERT_NE(engine, nullptr);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);
  ::close(fds[1]);
  const int closed_fd = fds[0];
  absl::Status st = engine->add(closed_fd, kEventRead, nullptr);
  EXPECT_EQ(st.message(), "epoll_ctl(ADD, fd " + std::to_string(closed_fd) + "): Bad file descriptor");
  // A failed add() leaves the fd unregistered.
  EXPECT_EQ(engine->remove(closed_fd).code(), absl::StatusCode::kNotFound);

  // Regular files cannot be polled: EPERM.
  int file = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(file, 0);
  st = engine->add(file, kEventRead, nullptr);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("Operation not permitted"), std::string::npos) << st;
  ::close(file);
}

}  // namespace
}  // namespace plexus::detail
