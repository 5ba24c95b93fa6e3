// What only the epoll engine promises: dispatch() re-arms a oneshot fd with one epoll_ctl at most
// and reports a failed re-arm, the event array grows, and kernel errors carry the call and the
// errno text.

#include <fcntl.h>
#include <sys/wait.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engines/engine_test_util.h"
#include "engines/epoll_engine.h"
#include "gtest/gtest.h"

namespace plexus::detail {
namespace {

using engine_test::Pair;
using engine_test::ReadyEvent;
using engine_test::socketPair;
using engine_test::writeByte;

std::unique_ptr<EpollEngine> makeEpoll(EpollMode mode, bool batch_rearm = true) {
  auto engine = EpollEngine::create(mode, batch_rearm);
  EXPECT_TRUE(engine.ok()) << engine.status();
  return engine.ok() ? std::move(*engine) : nullptr;
}

// A dispatch callback that records the calls and runs `on_call` inside each, like a handler.
struct Recorder {
  std::vector<ReadyEvent> calls;
  std::function<void(const ReadyEvent&)> on_call;
  static void record(void* ctx, int fd, uint32_t events, void* arg) {
    auto* r = static_cast<Recorder*>(arg);
    r->calls.push_back(ReadyEvent{fd, events, ctx});
    if (r->on_call) r->on_call(r->calls.back());
  }
};

// The oneshot tests below run on both re-arm paths: batched in the thread's io_uring (where the
// kernel allows it) and one epoll_ctl each. Either way a re-arm is one control call.
class EpollOneshotTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      auto probe = makeEpoll(EpollMode::kOneshot, true);
      ASSERT_NE(probe, nullptr);
      if (!probe->batchesRearms()) GTEST_SKIP() << "no io_uring IORING_OP_EPOLL_CTL here";
    }
  }
  // Control calls for a dispatch that re-arms `n` fds.
  uint64_t expectedCalls(int n) const {
    return GetParam() && static_cast<size_t>(n) >= EpollEngine::kRingMinBatch ? 1
                                                                              : static_cast<uint64_t>(n);
  }
  std::unique_ptr<EpollEngine> make() {
    auto engine = makeEpoll(EpollMode::kOneshot, GetParam());
    if (engine != nullptr) {
      EXPECT_EQ(engine->batchesRearms(), GetParam());
    }
    return engine;
  }
};

INSTANTIATE_TEST_SUITE_P(RearmPaths, EpollOneshotTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return std::string(info.param ? "IoUring" : "EpollCtl");
                         });

TEST_P(EpollOneshotTest, DispatchRearmsOnceAndNotAfterAModify) {
  auto engine = make();
  ASSERT_NE(engine, nullptr);
  Pair p = socketPair();
  ASSERT_TRUE(engine->add(p.a.get(), kEventRead, nullptr).ok());
  ASSERT_TRUE(writeByte(p.b.get()));

  // The handler changes the interest: that modify() re-arms, so dispatch() adds no call.
  Recorder r;
  r.on_call = [&](const ReadyEvent&) {
    ASSERT_TRUE(engine->modify(p.a.get(), kEventRead | kEventWrite, nullptr).ok());
  };
  uint64_t calls = engine->controlCalls();
  ASSERT_EQ(*engine->dispatch(5000, &Recorder::record, &r), 1);
  EXPECT_EQ(engine->controlCalls(), calls + 1);

  // Reported again (readable and writable); no modify() this time: exactly one re-arm.
  r.on_call = nullptr;
  calls = engine->controlCalls();
  ASSERT_EQ(*engine->dispatch(5000, &Recorder::record, &r), 1);
  EXPECT_EQ(engine->controlCalls(), calls + 1);
}

TEST_P(EpollOneshotTest, NoRearmWhenTheHandlerLeftNoInterest) {
  auto engine = make();
  ASSERT_NE(engine, nullptr);
  Pair p = socketPair();
  ASSERT_TRUE(engine->add(p.a.get(), kEventRead, nullptr).ok());
  ASSERT_TRUE(writeByte(p.b.get()));
  Recorder r;
  r.on_call = [&](const ReadyEvent&) { ASSERT_TRUE(engine->modify(p.a.get(), 0, nullptr).ok()); };
  const uint64_t calls = engine->controlCalls();
  ASSERT_EQ(*engine->dispatch(5000, &Recorder::record, &r), 1);
  EXPECT_EQ(engine->controlCalls(), calls + 1);  // the modify() only
  EXPECT_EQ(*engine->dispatch(0, &Recorder::record, &r), 0);
  // A later modify() arms it.
  ASSERT_TRUE(engine->modify(p.a.get(), kEventRead, nullptr).ok());
  r.on_call = nullptr;
  EXPECT_EQ(*engine->dispatch(5000, &Recorder::record, &r), 1);
}

TEST(EpollEngineTest, DispatchMakesNoControlCallsInLevelAndEdgeModes) {
  for (EpollMode mode : {EpollMode::kLevel, EpollMode::kEdge}) {
    auto engine = makeEpoll(mode);
    ASSERT_NE(engine, nullptr);
    Pair p = socketPair();
    ASSERT_TRUE(engine->add(p.a.get(), kEventRead, nullptr).ok());
    ASSERT_TRUE(writeByte(p.b.get()));
    const uint64_t calls = engine->controlCalls();
    Recorder r;
    ASSERT_EQ(*engine->dispatch(5000, &Recorder::record, &r), 1);
    EXPECT_EQ(engine->controlCalls(), calls) << epollModeName(mode);
  }
}

// A re-arm that fails (here: the fd was closed during its call, without remove()) would leave the
// fd silent for good: the handler gets one more call with kEventFailed, so it can close or retry.
TEST_P(EpollOneshotTest, FailedRearmIsReportedToTheHandler) {
  auto engine = make();
  ASSERT_NE(engine, nullptr);
  Pair p = socketPair();
  const int fd = p.a.get();
  int tag = 0;
  ASSERT_TRUE(engine->add(fd, kEventRead, &tag).ok());
  ASSERT_TRUE(writeByte(p.b.get()));
  Recorder r;
  // Keep the file open (so epoll keeps the registration), but let the fd number go: MOD fails.
  engine_test::Fd keep(::dup(fd));
  r.on_call = [&](const ReadyEvent& e) {
    if (r.calls.size() == 1) p.a.reset();
    (void)e;
  };
  ASSERT_EQ(*engine->dispatch(5000, &Recorder::record, &r), 1);
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0].events & kEventFailed, 0u);
  EXPECT_EQ(r.calls[1].events, kEventFailed);
  EXPECT_EQ(r.calls[1].fd, fd);
  EXPECT_EQ(r.calls[1].ctx, &tag);
  // remove() forgets it even though the kernel's DEL fails now.
  EXPECT_FALSE(engine->remove(fd).ok());
  EXPECT_EQ(engine->remove(fd).code(), absl::StatusCode::kNotFound);
}

// A batch of ready fds: the batched path re-arms them all with one io_uring_enter (with
// epoll_ctl when there are fewer than kRingMinBatch), the plain path with one epoll_ctl each;
// either way every fd is armed again, with the interest it has at the end of the batch.
TEST_P(EpollOneshotTest, BatchOfFdsRearmedTogether) {
  auto engine = make();
  ASSERT_NE(engine, nullptr);
  constexpr int kPairs = 40;
  std::vector<Pair> pairs;
  pairs.reserve(kPairs);  // the ctx points into it
  for (int i = 0; i < kPairs; ++i) {
    pairs.push_back(socketPair());
    ASSERT_TRUE(engine->add(pairs[i].a.get(), kEventRead, &pairs[i]).ok());
    ASSERT_TRUE(writeByte(pairs[i].b.get()));
  }
  Recorder r;
  // Grow the event array first (oneshot: reported fds stay disarmed until re-armed).
  int total = 0;
  while (total < kPairs) {
    const uint64_t calls = engine->controlCalls();
    const int n = *engine->dispatch(5000, &Recorder::record, &r);
    ASSERT_GT(n, 0);
    total += n;
    EXPECT_EQ(engine->controlCalls() - calls, expectedCalls(n));
  }
  // Unread input: all reported again, in one batch now that the array has grown.
  for (;;) {
    r.calls.clear();
    const uint64_t calls = engine->controlCalls();
    const int n = *engine->dispatch(5000, &Recorder::record, &r);
    EXPECT_EQ(engine->controlCalls() - calls, expectedCalls(n));
    if (n == kPairs) break;
    ASSERT_LT(n, kPairs);
  }
  for (const ReadyEvent& e : r.calls) {
    EXPECT_EQ(e.events & (kEventRead | kEventFailed), kEventRead);
    EXPECT_EQ(static_cast<Pair*>(e.ctx)->a.get(), e.fd);
  }
}

// The handler of a later fd changes an earlier fd of the batch: the earlier one is armed with the
// new interest (the handler's modify() did it; the batch's re-arm must not undo it), a removed one
// is not re-armed, and an fd closed and its number reused meanwhile keeps its new registration.
TEST_P(EpollOneshotTest, RearmSeesChangesMadeLaterInTheBatch) {
  auto engine = make();
  ASSERT_NE(engine, nullptr);
  Pair a = socketPair();
  Pair b = socketPair();
  Pair c = socketPair();
  Pair d = socketPair();
  // Untouched ones, so that the batch's re-arms are enough for the ring.
  std::vector<Pair> others(EpollEngine::kRingMinBatch);
  std::vector<Pair*> all = {&a, &b, &c, &d};
  for (Pair& p : others) {
    p = socketPair();
    all.push_back(&p);
  }
  for (Pair* p : all) {
    ASSERT_TRUE(engine->add(p->a.get(), kEventRead, nullptr).ok());
    ASSERT_TRUE(writeByte(p->b.get()));
  }
  const int n = static_cast<int>(all.size());
  auto isOther = [&](int fd) {
    return std::any_of(others.begin(), others.end(), [fd](const Pair& p) { return p.a.get() == fd; });
  };
  const int c_fd = c.a.get();
  const int d_fd = d.a.get();
  int reused_tag = 0;
  int reused = -1;
  Recorder r;
  // Whichever fd comes last in the batch changes the others.
  r.on_call = [&](const ReadyEvent&) {
    if (r.calls.size() != all.size()) return;
    ASSERT_TRUE(engine->modify(a.a.get(), kEventWrite, nullptr).ok());
    ASSERT_TRUE(engine->modify(b.a.get(), 0, nullptr).ok());
    ASSERT_TRUE(engine->remove(c_fd).ok());
    ASSERT_TRUE(engine->removeBeforeClose(d_fd).ok());
    d.a.reset();
    reused = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ASSERT_EQ(reused, d_fd);
    ASSERT_TRUE(engine->add(reused, kEventRead, &reused_tag).ok());
  };
  const uint64_t calls = engine->controlCalls();
  ASSERT_EQ(*engine->dispatch(5000, &Recorder::record, &r), n);
  ASSERT_EQ(r.calls.size(), all.size());
  engine_test::Fd reused_fd(reused);
  // Batched: the handler's 4 calls (2 modify, 1 remove, 1 add), then the untouched ones' re-arms
  // only. (One at a time, the fds handled before the last were re-armed already.)
  if (GetParam()) {
    EXPECT_EQ(engine->controlCalls() - calls, 4 + expectedCalls(n - 4));
  }
  // a: writable only now (its unread byte no longer counts); b: silent; c: not watched; the reused
  // number: silent until its eventfd is written; the others: re-armed, their byte unread.
  r.calls.clear();
  r.on_call = nullptr;
  ASSERT_EQ(*engine->dispatch(5000, &Recorder::record, &r), 1 + static_cast<int>(others.size()));
  bool saw_a = false;
  for (const ReadyEvent& e : r.calls) {
    if (e.fd == a.a.get()) {
      saw_a = true;
      EXPECT_EQ(e.events & (kEventRead | kEventWrite), kEventWrite);
    } else {
      EXPECT_TRUE(isOther(e.fd)) << e.fd;
      EXPECT_EQ(e.events & (kEventRead | kEventWrite), kEventRead);
    }
  }
  EXPECT_TRUE(saw_a);
  ASSERT_TRUE(engine->modify(a.a.get(), 0, nullptr).ok());  // always writable: quiet it
  for (Pair& p : others) ASSERT_TRUE(engine->remove(p.a.get()).ok());
  EXPECT_EQ(*engine->dispatch(0, &Recorder::record, &r), 0);
  const uint64_t one = 1;
  ASSERT_EQ(::write(reused, &one, sizeof one), static_cast<ssize_t>(sizeof one));
  r.calls.clear();
  ASSERT_EQ(*engine->dispatch(5000, &Recorder::record, &r), 1);
  EXPECT_EQ(r.calls[0].fd, reused);
  EXPECT_EQ(r.calls[0].ctx, &reused_tag);
  ASSERT_TRUE(engine->remove(reused).ok());
}

// One re-arm of a batch fails (its fd number was closed during the batch while the file stays
// open): that fd alone gets kEventFailed, after every handler of the batch ran; the others are
// re-armed and reported again.
TEST_P(EpollOneshotTest, OneFailedRearmInABatchIsReportedAndTheOthersStayArmed) {
  auto engine = make();
  ASSERT_NE(engine, nullptr);
  // Enough good ones that the batch goes through the ring.
  std::vector<Pair> good(EpollEngine::kRingMinBatch);
  int good_tag = 0;
  for (Pair& p : good) {
    p = socketPair();
    ASSERT_TRUE(engine->add(p.a.get(), kEventRead, &good_tag).ok());
    ASSERT_TRUE(writeByte(p.b.get()));
  }
  Pair bad = socketPair();
  int bad_tag = 0;
  ASSERT_TRUE(engine->add(bad.a.get(), kEventRead, &bad_tag).ok());
  ASSERT_TRUE(writeByte(bad.b.get()));
  const int n = static_cast<int>(good.size()) + 1;
  const int bad_fd = bad.a.get();
  engine_test::Fd keep(::dup(bad_fd));  // the file stays open and registered; the number goes
  Recorder r;
  r.on_call = [&](const ReadyEvent& e) {
    if (e.fd == bad_fd && !(e.events & kEventFailed)) bad.a.reset();
  };
  const uint64_t calls = engine->controlCalls();
  ASSERT_EQ(*engine->dispatch(5000, &Recorder::record, &r), n);
  EXPECT_EQ(engine->controlCalls() - calls, expectedCalls(n));
  ASSERT_EQ(r.calls.size(), static_cast<size_t>(n) + 1);
  for (int i = 0; i < n; ++i) EXPECT_EQ(r.calls[i].events & kEventFailed, 0u);
  EXPECT_EQ(r.calls[n].fd, bad_fd);
  EXPECT_EQ(r.calls[n].events, kEventFailed);
  EXPECT_EQ(r.calls[n].ctx, &bad_tag);
  // The good fds were re-armed: their unread bytes are reported again.
  r.calls.clear();
  r.on_call = nullptr;
  ASSERT_EQ(*engine->dispatch(5000, &Recorder::record, &r), n - 1);
  for (const ReadyEvent& e : r.calls) {
    EXPECT_NE(e.fd, bad_fd);
    EXPECT_EQ(e.ctx, &good_tag);
  }
  EXPECT_FALSE(engine->remove(bad_fd).ok());  // DEL fails (the number is closed); forgotten anyway
}

// An engine's end leaves the thread's next wait alone: the thread's ring (which the kernel would
// interrupt the thread for when closed) outlives its engines. In a thread of its own: a ring
// another test closed on the test thread (an io_uring engine's) would interrupt a wait there.
TEST_P(EpollOneshotTest, NextEngineOnTheThreadWaitsItsFullTimeout) {
  std::thread([this] {
    {
      auto engine = make();
      ASSERT_NE(engine, nullptr);
      Pair p = socketPair();
      ASSERT_TRUE(engine->add(p.a.get(), kEventRead, nullptr).ok());
      ASSERT_TRUE(writeByte(p.b.get()));
      Recorder r;
      ASSERT_EQ(*engine->dispatch(5000, &Recorder::record, &r), 1);
    }
    auto engine = make();
    ASSERT_NE(engine, nullptr);
    Pair p = socketPair();
    ASSERT_TRUE(engine->add(p.a.get(), kEventRead, nullptr).ok());
    Recorder r;
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(*engine->dispatch(50, &Recorder::record, &r), 0);
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(45));
  }).join();
}

// Ready fds for one batch through the ring; dispatches them and says whether every one was
// handled once and re-armed with one control call (the unread bytes are reported again).
bool batchThroughTheRing(EpollEngine& engine, std::vector<Pair>& pairs) {
  const int n = static_cast<int>(pairs.size());
  for (Pair& p : pairs) {
    p = socketPair();
    if (!engine.add(p.a.get(), kEventRead, nullptr).ok() || !writeByte(p.b.get())) return false;
  }
  Recorder r;
  const uint64_t calls = engine.controlCalls();
  if (*engine.dispatch(5000, &Recorder::record, &r) != n || engine.controlCalls() != calls + 1) {
    return false;
  }
  return *engine.dispatch(5000, &Recorder::record, &r) == n && r.calls.size() == 2u * n;
}

// A fork()ed child (a supervisor's worker) gets a ring of its own: the one it inherits is the
// parent's (shared memory, and the kernel takes submissions from the parent's thread only).
TEST(EpollEngineTest, ForkedChildBatchesWithARingOfItsOwn) {
  auto engine = makeEpoll(EpollMode::kOneshot, true);
  ASSERT_NE(engine, nullptr);
  if (!engine->batchesRearms()) GTEST_SKIP() << "no io_uring IORING_OP_EPOLL_CTL here";
  std::vector<Pair> pairs(EpollEngine::kRingMinBatch);
  ASSERT_TRUE(batchThroughTheRing(*engine, pairs));  // this thread's ring is in use
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto child_engine = EpollEngine::create(EpollMode::kOneshot, true);
    std::vector<Pair> child_pairs(EpollEngine::kRingMinBatch);
    std::_Exit(child_engine.ok() && batchThroughTheRing(**child_engine, child_pairs) ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  // The parent's ring still works, untouched by the child.
  std::vector<Pair> more(EpollEngine::kRingMinBatch);
  auto engine2 = makeEpoll(EpollMode::kOneshot, true);
  ASSERT_NE(engine2, nullptr);
  EXPECT_TRUE(batchThroughTheRing(*engine2, more));
}

// Asked for, but not in level or edge mode: they never re-arm.
TEST(EpollEngineTest, OnlyOneshotBatchesRearms) {
  EXPECT_FALSE(makeEpoll(EpollMode::kLevel, true)->batchesRearms());
  EXPECT_FALSE(makeEpoll(EpollMode::kEdge, true)->batchesRearms());
  EXPECT_FALSE(makeEpoll(EpollMode::kOneshot, false)->batchesRearms());
}

// More ready fds than the event array holds: the array grows until one dispatch() takes them all.
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
  std::vector<int> counts;
  for (int i = 0; i < 8; ++i) {
    Recorder r;
    counts.push_back(*engine->dispatch(0, &Recorder::record, &r));
  }
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

// removeBeforeClose() makes no epoll_ctl: the close drops the fd from the epoll set.
TEST(EpollEngineTest, RemoveBeforeCloseMakesNoControlCall) {
  for (EpollMode mode : {EpollMode::kOneshot, EpollMode::kLevel, EpollMode::kEdge}) {
    auto engine = makeEpoll(mode);
    ASSERT_NE(engine, nullptr);
    Pair p = socketPair();
    ASSERT_TRUE(engine->add(p.a.get(), kEventRead, nullptr).ok());
    ASSERT_TRUE(writeByte(p.b.get()));  // ready when it is closed
    const uint64_t calls = engine->controlCalls();
    ASSERT_TRUE(engine->removeBeforeClose(p.a.get()).ok());
    EXPECT_EQ(engine->controlCalls(), calls);
    EXPECT_EQ(engine->removeBeforeClose(p.a.get()).code(), absl::StatusCode::kNotFound);
    p.a.reset();
    // The kernel itself dropped it: not even a raw event comes back.
    Recorder r;
    EXPECT_EQ(*engine->dispatch(0, &Recorder::record, &r), 0);
  }
}

// The contract of removeBeforeClose() broken, as by a fork()ed child still holding the socket:
// the registration outlives the close and reports under the fd's number, which a new fd has
// taken. The stale events must reach nobody, must not come back (a level-triggered one would
// spin the loop), and the new fd must keep being watched.
TEST(EpollEngineTest, StaleRegistrationAfterRemoveBeforeCloseIsDropped) {
  for (EpollMode mode : {EpollMode::kOneshot, EpollMode::kLevel, EpollMode::kEdge}) {
    SCOPED_TRACE(std::string(epollModeName(mode)));
    auto engine = makeEpoll(mode);
    ASSERT_NE(engine, nullptr);
    Pair p = socketPair();
    const int fd = p.a.get();
    const int child_copy = ::dup(fd);  // the child's reference
    ASSERT_GE(child_copy, 0);
    ASSERT_TRUE(engine->add(fd, kEventRead, nullptr).ok());
    ASSERT_TRUE(engine->removeBeforeClose(fd).ok());
    p.a.reset();
    ASSERT_TRUE(writeByte(p.b.get()));  // the stale registration is now ready

    const int reused = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ASSERT_EQ(reused, fd);  // lowest free number
    int tag = 0;
    ASSERT_TRUE(engine->add(reused, kEventRead, &tag).ok());

    Recorder r;
    ASSERT_TRUE(engine->dispatch(0, &Recorder::record, &r).ok());
    EXPECT_TRUE(r.calls.empty()) << "a stale event reached fd " << r.calls[0].fd;
    // Gone for good, not only skipped: the kernel reports nothing any more.
    EXPECT_EQ(*engine->dispatch(0, &Recorder::record, &r), 0);
    EXPECT_EQ(*engine->dispatch(0, &Recorder::record, &r), 0);
    EXPECT_TRUE(r.calls.empty());

    // The fd the engine does know is still watched.
    const uint64_t one = 1;
    ASSERT_EQ(::write(reused, &one, sizeof one), static_cast<ssize_t>(sizeof one));
    ASSERT_EQ(*engine->dispatch(5000, &Recorder::record, &r), 1);
    ASSERT_EQ(r.calls.size(), 1u);
    EXPECT_EQ(r.calls[0].fd, reused);
    EXPECT_EQ(r.calls[0].ctx, &tag);
    EXPECT_TRUE(r.calls[0].events & kEventRead);
    ASSERT_TRUE(engine->remove(reused).ok());
    ::close(reused);
    ::close(child_copy);
  }
}

}  // namespace
}  // namespace plexus::detail
