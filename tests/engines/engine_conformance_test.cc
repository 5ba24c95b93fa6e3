// One conformance suite, run against every engine and every epoll mode. It drives the Engine
// interface directly on socketpairs, pipes, an eventfd and loopback TCP sockets.

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <thread>
#include <vector>

#include "engines/engine_test_util.h"
#include "gtest/gtest.h"
#include "plexus/engine.h"
#include "support/test_util.h"

namespace plexus {
namespace {

using engine_test::dispatchAll;
using engine_test::drain;
using engine_test::Fd;
using engine_test::fill;
using engine_test::Pair;
using engine_test::ReadyEvent;
using engine_test::socketPair;
using engine_test::tcpPair;
using engine_test::writeByte;


const ReadyEvent* findFd(const std::vector<ReadyEvent>& events, int fd) {
  auto it = std::find_if(events.begin(), events.end(), [fd](const ReadyEvent& e) { return e.fd == fd; });
  return it == events.end() ? nullptr : &*it;
}

std::string paramName(const ::testing::TestParamInfo<EngineOptions>& info) {
  std::string name = info.param.name;
  name[0] = static_cast<char>(std::toupper(name[0]));
  if (info.param.name == "epoll") {
    std::string mode(epollModeName(info.param.epoll_mode));
    mode[0] = static_cast<char>(std::toupper(mode[0]));
    name += "_" + mode;
    // Oneshot re-arms batched in an io_uring (the default) or one epoll_ctl each.
    if (info.param.epoll_mode == EpollMode::kOneshot && !info.param.epoll_batch_rearm) {
      name += "_EpollCtl";
    }
  }
  return name;
}

// Raises the soft RLIMIT_NOFILE to the hard limit for its lifetime.
class RaisedFdLimit {
 public:
  RaisedFdLimit() {
    if (::getrlimit(RLIMIT_NOFILE, &saved_) != 0) return;
    rlimit raised = saved_;
    raised.rlim_cur = saved_.rlim_max;
    ok_ = ::setrlimit(RLIMIT_NOFILE, &raised) == 0;
  }
  ~RaisedFdLimit() {
    if (ok_) ::setrlimit(RLIMIT_NOFILE, &saved_);
  }
  bool allows(int fd) const {
    return ok_ && (saved_.rlim_max == RLIM_INFINITY || saved_.rlim_max > static_cast<rlim_t>(fd) + 8);
  }

 private:
  rlimit saved_{};
  bool ok_ = false;
};

class EngineConformanceTest : public ::testing::TestWithParam<EngineOptions> {
 protected:
  void SetUp() override {
    auto engine = makeEngine(GetParam());
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
  }

  bool isEpoll() const { return GetParam().name == "epoll"; }
  bool isOneshot() const { return isEpoll() && GetParam().epoll_mode == EpollMode::kOneshot; }
  bool isEdge() const { return isEpoll() && GetParam().epoll_mode == EpollMode::kEdge; }
  bool isSelect() const { return GetParam().name == "select"; }

  // Dispatches once and returns what was handed over (the engine re-arms oneshot fds after each
  // call, as for the loop); a failed wait fails the test and gives no events.
  std::vector<ReadyEvent> waitEvents(int timeout_ms) {
    absl::StatusOr<std::vector<ReadyEvent>> events = dispatchAll(*engine_, timeout_ms);
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? *std::move(events) : std::vector<ReadyEvent>{};
  }

  // Dispatches until `fd` is reported, for up to `timeout_ms`. Returns its events (0: none).
  uint32_t waitForFd(int fd, int timeout_ms = 5000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    uint32_t seen = 0;
    do {
      for (const ReadyEvent& e : waitEvents(100)) {
        if (e.fd == fd) seen |= e.events;
      }
    } while (seen == 0 && std::chrono::steady_clock::now() < deadline);
    return seen;
  }

  std::unique_ptr<Engine> engine_;
};

TEST_P(EngineConformanceTest, NamesItself) {
  const std::string name(engine_->name());
  EXPECT_EQ(name.rfind(GetParam().name, 0), 0u) << name;
  if (isEpoll()) {
    EXPECT_EQ(name, "epoll (" + std::string(epollModeName(GetParam().epoll_mode)) + ")");
  } else {
    EXPECT_EQ(name, GetParam().name);
  }
  EXPECT_EQ(engine_->edgeTriggered(), isEdge());
}

TEST_P(EngineConformanceTest, WaitWithNothingRegisteredTimesOut) {
  int calls = 0;
  auto count = [](void*, int, uint32_t, void* arg) { ++*static_cast<int*>(arg); };
  absl::StatusOr<int> n = engine_->dispatch(0, count, &calls);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 0);
  EXPECT_EQ(calls, 0);
}

// In a thread of its own, with an engine made there: closing an io_uring ring (an earlier test's
// engine on the test thread) makes the kernel interrupt that thread's next wait once, as a signal
// would; a fresh thread has no such past.
TEST_P(EngineConformanceTest, WaitHonoursItsTimeout) {
  std::thread([this] {
    auto engine = makeEngine(GetParam());
    ASSERT_TRUE(engine.ok()) << engine.status();
    Pair p = socketPair();
    ASSERT_TRUE((*engine)->add(p.a.get(), kEventRead, nullptr).ok());
    int calls = 0;
    auto count = [](void*, int, uint32_t, void* arg) { ++*static_cast<int*>(arg); };
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<int> n = (*engine)->dispatch(50, count, &calls);
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(*n, 0);
    EXPECT_EQ(calls, 0);
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(45));
  }).join();
}

TEST_P(EngineConformanceTest, ReadableOnlyAfterPeerWrites) {
  Pair p = socketPair();
  int tag = 0;
  ASSERT_TRUE(engine_->add(p.a.get(), kEventRead, &tag).ok());
  EXPECT_TRUE(waitEvents(0).empty());

  ASSERT_TRUE(testing::writeAll(p.b.get(), "hello"));
  std::vector<ReadyEvent> events = waitEvents(5000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].fd, p.a.get());
  EXPECT_EQ(events[0].ctx, &tag);
  EXPECT_TRUE(events[0].events & kEventRead);
  EXPECT_FALSE(events[0].events & kEventWrite);  // not asked for
  EXPECT_EQ(drain(p.a.get()), 5u);

  // Handled and drained: nothing more to report.
  EXPECT_TRUE(waitEvents(0).empty());
}

TEST_P(EngineConformanceTest, WritableWhenBufferHasRoom) {
  Pair p = socketPair();
  int tag = 0;
  ASSERT_TRUE(engine_->add(p.a.get(), kEventWrite, &tag).ok());
  std::vector<ReadyEvent> events = waitEvents(5000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].fd, p.a.get());
  EXPECT_EQ(events[0].ctx, &tag);
  EXPECT_TRUE(events[0].events & kEventWrite);
  EXPECT_FALSE(events[0].events & kEventRead);
}

// A full send buffer is not writable; draining the peer makes it writable again. On TCP, so the
// kernel's flow control is the real one.
TEST_P(EngineConformanceTest, WritableAgainAfterPeerDrainsOverTcp) {
  Pair p = tcpPair();
  ASSERT_GE(p.a.get(), 0);
  int tag = 0;
  ASSERT_TRUE(engine_->add(p.a.get(), kEventWrite, &tag).ok());
  ASSERT_TRUE(waitForFd(p.a.get()) & kEventWrite);

  // Fill the send buffer; re-registering the interest (arms a oneshot fd, makes epoll re-evaluate
  // an edge fd) must then report nothing. The kernel may still be moving bytes to the peer's receive
  // buffer, freeing room: fill again until the buffer stays full.
  size_t written = 0;
  bool silent = false;
  for (int i = 0; i < 100 && !silent; ++i) {
    written += fill(p.a.get());
    ASSERT_TRUE(engine_->modify(p.a.get(), kEventWrite, &tag).ok());
    silent = findFd(waitEvents(0), p.a.get()) == nullptr;
  }
  ASSERT_GT(written, 0u);
  EXPECT_TRUE(silent) << "a full TCP send buffer kept being reported writable";

  EXPECT_EQ(testing::readExactly(p.b.get(), written).size(), written);
  const uint32_t events = waitForFd(p.a.get());
  EXPECT_TRUE(events & kEventWrite);
}

TEST_P(EngineConformanceTest, ModifyChangesInterest) {
  Pair p = socketPair();
  int tag = 0;
  ASSERT_TRUE(engine_->add(p.a.get(), kEventRead, &tag).ok());
  EXPECT_TRUE(waitEvents(0).empty());  // writable, but only reading was asked

  ASSERT_TRUE(engine_->modify(p.a.get(), kEventWrite, &tag).ok());
  std::vector<ReadyEvent> events = waitEvents(5000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].events & (kEventRead | kEventWrite), kEventWrite);

  ASSERT_TRUE(writeByte(p.b.get()));
  ASSERT_TRUE(engine_->modify(p.a.get(), kEventRead | kEventWrite, &tag).ok());
  events = waitEvents(5000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].events & (kEventRead | kEventWrite), kEventRead | kEventWrite);
}

TEST_P(EngineConformanceTest, InterestZeroSilencesTheFd) {
  Pair p = socketPair();
  int tag = 0;
  ASSERT_TRUE(engine_->add(p.a.get(), 0, &tag).ok());
  ASSERT_TRUE(writeByte(p.b.get()));
  EXPECT_TRUE(waitEvents(0).empty());  // readable and writable, but nothing asked

  ASSERT_TRUE(engine_->modify(p.a.get(), kEventRead, &tag).ok());
  std::vector<ReadyEvent> events = waitEvents(5000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].events & kEventRead);

  ASSERT_TRUE(engine_->modify(p.a.get(), 0, &tag).ok());
  EXPECT_TRUE(waitEvents(0).empty());  // data still pending, interest 0
}

TEST_P(EngineConformanceTest, RemoveStopsReportingAndAllowsAddAgain) {
  Pair p = socketPair();
  int tag = 0;
  ASSERT_TRUE(engine_->add(p.a.get(), kEventRead, &tag).ok());
  ASSERT_TRUE(writeByte(p.b.get()));
  ASSERT_TRUE(engine_->remove(p.a.get()).ok());
  EXPECT_TRUE(waitEvents(0).empty());

  ASSERT_TRUE(engine_->add(p.a.get(), kEventRead, &tag).ok());
  std::vector<ReadyEvent> events = waitEvents(5000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].fd, p.a.get());
}

// The fd number of a removed and closed fd comes back with the next socket; it must be addable.
TEST_P(EngineConformanceTest, ReusedFdNumberCanBeAdded) {
  Pair first = socketPair();
  const int fd = first.a.get();
  ASSERT_TRUE(engine_->add(fd, kEventRead, nullptr).ok());
  ASSERT_TRUE(engine_->remove(fd).ok());
  first.a.reset();

  Pair second = socketPair();
  ASSERT_EQ(second.a.get(), fd);  // lowest free number
  int tag = 0;
  ASSERT_TRUE(engine_->add(fd, kEventRead, &tag).ok());
  ASSERT_TRUE(writeByte(second.b.get()));
  std::vector<ReadyEvent> events = waitEvents(5000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].ctx, &tag);
}

TEST_P(EngineConformanceTest, ContextPointerRoundTrips) {
  Pair p1 = socketPair();
  Pair p2 = socketPair();
  int tag1 = 1, tag2 = 2, tag3 = 3;
  ASSERT_TRUE(engine_->add(p1.a.get(), kEventRead, &tag1).ok());
  ASSERT_TRUE(engine_->add(p2.a.get(), kEventRead, &tag2).ok());
  ASSERT_TRUE(writeByte(p1.b.get()));
  ASSERT_TRUE(writeByte(p2.b.get()));
  std::vector<ReadyEvent> events = waitEvents(5000);
  ASSERT_EQ(events.size(), 2u);
  ASSERT_NE(findFd(events, p1.a.get()), nullptr);
  ASSERT_NE(findFd(events, p2.a.get()), nullptr);
  EXPECT_EQ(findFd(events, p1.a.get())->ctx, &tag1);
  EXPECT_EQ(findFd(events, p2.a.get())->ctx, &tag2);

  // modify() replaces the ctx; more data gives an edge-triggered engine something new to report.
  ASSERT_TRUE(engine_->modify(p1.a.get(), kEventRead, &tag3).ok());
  ASSERT_TRUE(writeByte(p1.b.get()));
  events = waitEvents(5000);
  ASSERT_NE(findFd(events, p1.a.get()), nullptr);
  EXPECT_EQ(findFd(events, p1.a.get())->ctx, &tag3);
}

TEST_P(EngineConformanceTest, PeerCloseIsReportedAndReadGivesEof) {
  Pair p = socketPair();
  ASSERT_TRUE(engine_->add(p.a.get(), kEventRead, nullptr).ok());
  p.b.reset();
  std::vector<ReadyEvent> events = waitEvents(5000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].events & (kEventRead | kEventHangup)) << events[0].events;
  char c;
  EXPECT_EQ(::read(p.a.get(), &c, 1), 0);
}

TEST_P(EngineConformanceTest, TcpPeerShutdownIsReportedAndReadGivesEof) {
  Pair p = tcpPair();
  ASSERT_GE(p.a.get(), 0);
  ASSERT_TRUE(engine_->add(p.a.get(), kEventRead, nullptr).ok());
  ASSERT_TRUE(testing::writeAll(p.b.get(), "last words"));
  ASSERT_EQ(::shutdown(p.b.get(), SHUT_WR), 0);
  // The data may arrive a moment before the FIN: read until EOF, as a handler would.
  std::string got;
  bool eof = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!eof && std::chrono::steady_clock::now() < deadline) {
    if (!(waitForFd(p.a.get()) & (kEventRead | kEventHangup))) continue;
    char buf[64];
    ssize_t n;
    while ((n = ::read(p.a.get(), buf, sizeof(buf))) > 0) got.append(buf, static_cast<size_t>(n));
    eof = n == 0;
  }
  EXPECT_TRUE(eof);
  EXPECT_EQ(got, "last words");
}

TEST_P(EngineConformanceTest, TcpResetIsReported) {
  Pair p = tcpPair();
  ASSERT_GE(p.a.get(), 0);
  ASSERT_TRUE(engine_->add(p.a.get(), kEventRead, nullptr).ok());
  testing::closeWithReset(p.b.release());
  const uint32_t events = waitForFd(p.a.get());
  EXPECT_TRUE(events & (kEventRead | kEventError | kEventHangup)) << events;
  char c;
  EXPECT_EQ(::read(p.a.get(), &c, 1), -1);
  EXPECT_EQ(errno, ECONNRESET);
}

// epoll and poll report a peer's shutdown(SHUT_WR) as kEventReadHangup when asked; select has no
// such bit and shows it as readability.
TEST_P(EngineConformanceTest, ReadHangupWhenAsked) {
  Pair p = socketPair();
  ASSERT_TRUE(engine_->add(p.a.get(), kEventRead | kEventReadHangup, nullptr).ok());
  ASSERT_EQ(::shutdown(p.b.get(), SHUT_WR), 0);
  std::vector<ReadyEvent> events = waitEvents(5000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ((events[0].events & kEventReadHangup) != 0, !isSelect()) << events[0].events;
  EXPECT_TRUE(events[0].events & kEventRead) << events[0].events;
  char c;
  EXPECT_EQ(::read(p.a.get(), &c, 1), 0);
}

TEST_P(EngineConformanceTest, PipeEnds) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  Fd r(fds[0]), w(fds[1]);
  int rtag = 0, wtag = 0;
  ASSERT_TRUE(engine_->add(r.get(), kEventRead, &rtag).ok());
  ASSERT_TRUE(engine_->add(w.get(), kEventWrite, &wtag).ok());
  std::vector<ReadyEvent> events = waitEvents(5000);
  ASSERT_EQ(events.size(), 1u);  // empty pipe: only the write end is ready
  EXPECT_EQ(events[0].fd, w.get());
  EXPECT_EQ(events[0].ctx, &wtag);
  ASSERT_TRUE(engine_->remove(w.get()).ok());

  ASSERT_TRUE(writeByte(w.get()));
  events = waitEvents(5000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].fd, r.get());
  EXPECT_TRUE(events[0].events & kEventRead);
  EXPECT_EQ(drain(r.get()), 1u);

  // Closing the write end: poll/epoll say hang-up, select says readable; read() says EOF.
  w.reset();
  events = waitEvents(5000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].events & (kEventRead | kEventHangup)) << events[0].events;
  char c;
  EXPECT_EQ(::read(r.get(), &c, 1), 0);
}

TEST_P(EngineConformanceTest, EventFd) {
  Fd efd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  ASSERT_GE(efd.get(), 0);
  int tag = 0;
  ASSERT_TRUE(engine_->add(efd.get(), kEventRead, &tag).ok());
  EXPECT_TRUE(waitEvents(0).empty());
  ASSERT_EQ(::eventfd_write(efd.get(), 1), 0);
  std::vector<ReadyEvent> events = waitEvents(5000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].ctx, &tag);
  eventfd_t value = 0;
  ASSERT_EQ(::eventfd_read(efd.get(), &value), 0);
  EXPECT_EQ(value, 1u);
  EXPECT_TRUE(waitEvents(0).empty());
}

// What happens to an fd that stays readable after it was reported, by mode: oneshot (re-armed by
// dispatch() after the call) and level (and poll, select) report it again; edge stays silent until
// new data arrives.
TEST_P(EngineConformanceTest, ReportAgainSemantics) {
  Pair p = socketPair();
  int tag = 0;
  ASSERT_TRUE(engine_->add(p.a.get(), kEventRead, &tag).ok());
  ASSERT_TRUE(writeByte(p.b.get()));
  ASSERT_EQ(waitEvents(5000).size(), 1u);

  // Not handled: the byte stays.
  std::vector<ReadyEvent> events = waitEvents(0);
  EXPECT_EQ(events.size(), isEdge() ? 0u : 1u);
  if (!events.empty()) {
    EXPECT_EQ(events[0].ctx, &tag);
  }

  // New data: every mode reports the fd.
  ASSERT_TRUE(writeByte(p.b.get()));
  events = waitEvents(5000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].fd, p.a.get());
  EXPECT_EQ(drain(p.a.get()), 2u);
}

// A handler that leaves its fd no interest (modify() to 0 during the call): the fd is silent, data
// or not, until a modify() asks again.
TEST_P(EngineConformanceTest, NoInterestLeftDuringTheCallSilencesTheFd) {
  Pair p = socketPair();
  int tag = 0;
  ASSERT_TRUE(engine_->add(p.a.get(), kEventRead, &tag).ok());
  ASSERT_TRUE(writeByte(p.b.get()));
  struct Ctx {
    Engine* engine;
    int fd;
    int calls;
  } ctx{engine_.get(), p.a.get(), 0};
  auto silence = [](void*, int, uint32_t, void* arg) {
    auto* c = static_cast<Ctx*>(arg);
    ++c->calls;
    EXPECT_TRUE(c->engine->modify(c->fd, 0, nullptr).ok());
  };
  ASSERT_TRUE(engine_->dispatch(5000, silence, &ctx).ok());
  ASSERT_EQ(ctx.calls, 1);
  ASSERT_TRUE(writeByte(p.b.get()));
  EXPECT_TRUE(waitEvents(0).empty());

  ASSERT_TRUE(engine_->modify(p.a.get(), kEventRead, &tag).ok());
  std::vector<ReadyEvent> events = waitEvents(5000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].ctx, &tag);
  EXPECT_EQ(drain(p.a.get()), 2u);
}

// dispatch(): the event loop's step. Each ready fd gets one call with its ctx and events.
struct DispatchLog {
  struct Call {
    void* ctx;
    uint32_t events;
  };
  std::vector<Call> calls;
  std::function<void(void* ctx)> on_call;  // runs inside the call, like a handler

  static void record(void* ctx, int /*fd*/, uint32_t events, void* arg) {
    auto* log = static_cast<DispatchLog*>(arg);
    log->calls.push_back({ctx, events});
    if (log->on_call) log->on_call(ctx);
  }
};

TEST_P(EngineConformanceTest, DispatchCallsEachReadyFdWithItsContext) {
  Pair p[3] = {socketPair(), socketPair(), socketPair()};
  int tags[3] = {0, 1, 2};
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(engine_->add(p[i].a.get(), kEventRead, &tags[i]).ok());
  ASSERT_TRUE(writeByte(p[0].b.get()));
  ASSERT_TRUE(writeByte(p[2].b.get()));
  DispatchLog log;
  absl::StatusOr<int> n = engine_->dispatch(5000, &DispatchLog::record, &log);
  // The two writes may be seen by two waits: dispatch until both were.
  while (n.ok() && log.calls.size() < 2) n = engine_->dispatch(5000, &DispatchLog::record, &log);
  ASSERT_TRUE(n.ok()) << n.status();
  ASSERT_EQ(log.calls.size(), 2u);
  std::set<void*> ctxs;
  for (const auto& c : log.calls) {
    ctxs.insert(c.ctx);
    EXPECT_TRUE(c.events & kEventRead);
  }
  EXPECT_EQ(ctxs, (std::set<void*>{&tags[0], &tags[2]}));
  EXPECT_EQ(drain(p[0].a.get()), 1u);
  EXPECT_EQ(drain(p[2].a.get()), 1u);
  // Drained, and (oneshot) re-armed by dispatch(): quiet until new data, then reported again.
  log.calls.clear();
  ASSERT_TRUE(engine_->dispatch(0, &DispatchLog::record, &log).ok());
  EXPECT_TRUE(log.calls.empty());
  ASSERT_TRUE(writeByte(p[0].b.get()));
  ASSERT_TRUE(engine_->dispatch(5000, &DispatchLog::record, &log).ok());
  ASSERT_EQ(log.calls.size(), 1u);
  EXPECT_EQ(log.calls[0].ctx, &tags[0]);
}

// A handler that leaves its input unread: level and oneshot (re-armed by dispatch) report the fd
// again, edge does not until new data comes.
TEST_P(EngineConformanceTest, DispatchReportsUnreadInputAgainExceptEdge) {
  Pair p = socketPair();
  int tag = 0;
  ASSERT_TRUE(engine_->add(p.a.get(), kEventRead, &tag).ok());
  ASSERT_TRUE(writeByte(p.b.get()));
  DispatchLog log;
  ASSERT_TRUE(engine_->dispatch(5000, &DispatchLog::record, &log).ok());
  ASSERT_EQ(log.calls.size(), 1u);
  ASSERT_TRUE(engine_->dispatch(0, &DispatchLog::record, &log).ok());
  EXPECT_EQ(log.calls.size(), isEdge() ? 1u : 2u);
}

// A handler that changes its fd's interest: dispatch() keeps that interest (a oneshot engine
// re-arms with it, or leaves the re-arm to the modify() that already happened).
TEST_P(EngineConformanceTest, DispatchKeepsInterestChangedDuringTheCall) {
  Pair p = socketPair();
  int tag = 0;
  ASSERT_TRUE(engine_->add(p.a.get(), kEventRead, &tag).ok());
  ASSERT_TRUE(writeByte(p.b.get()));
  DispatchLog log;
  log.on_call = [&](void*) {
    EXPECT_EQ(drain(p.a.get()), 1u);
    ASSERT_TRUE(engine_->modify(p.a.get(), kEventWrite, &tag).ok());
  };
  ASSERT_TRUE(engine_->dispatch(5000, &DispatchLog::record, &log).ok());
  ASSERT_EQ(log.calls.size(), 1u);
  log.on_call = nullptr;
  ASSERT_TRUE(engine_->dispatch(5000, &DispatchLog::record, &log).ok());
  ASSERT_EQ(log.calls.size(), 2u);
  EXPECT_TRUE(log.calls[1].events & kEventWrite);
  EXPECT_FALSE(log.calls[1].events & kEventRead);
}

// A handler that removes (and closes) another ready fd: that fd's event in the same batch must not
// be delivered, not even when its number is reused at once by a new registration.
TEST_P(EngineConformanceTest, DispatchSkipsFdsRemovedDuringTheBatch) {
  Pair p[2] = {socketPair(), socketPair()};
  int tags[2] = {0, 1};
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(engine_->add(p[i].a.get(), kEventRead, &tags[i]).ok());
  ASSERT_TRUE(writeByte(p[0].b.get()));
  ASSERT_TRUE(writeByte(p[1].b.get()));
  // A socketpair's write is queued at the peer when it returns: both are ready for the batch.
  Pair fresh;
  int fresh_tag = 2;
  DispatchLog log;
  log.on_call = [&](void* ctx) {
    if (log.calls.size() != 1) return;
    const int other = ctx == &tags[0] ? 1 : 0;
    const int other_fd = p[other].a.get();
    ASSERT_TRUE(engine_->remove(other_fd).ok());
    p[other].a.reset();
    fresh = socketPair();
    // The lowest free number: the one just closed.
    ASSERT_EQ(fresh.a.get(), other_fd);
    ASSERT_TRUE(engine_->add(fresh.a.get(), kEventRead, &fresh_tag).ok());
  };
  ASSERT_TRUE(engine_->dispatch(5000, &DispatchLog::record, &log).ok());
  ASSERT_EQ(log.calls.size(), 1u) << "an event of the removed fd was delivered";
}

TEST_P(EngineConformanceTest, ManyFdsExactlyTheReadyOnesReported) {
  constexpr int kPairs = 450;  // 900 fds: stays below FD_SETSIZE for select
  std::vector<Pair> pairs;
  std::vector<int> tags(kPairs);
  std::map<int, int> index_of_fd;
  for (int i = 0; i < kPairs; ++i) {
    pairs.push_back(socketPair());
    ASSERT_GE(pairs.back().a.get(), 0);
    ASSERT_TRUE(engine_->add(pairs.back().a.get(), kEventRead, &tags[i]).ok()) << i;
    index_of_fd[pairs.back().a.get()] = i;
  }
  std::mt19937 rng(12345);
  std::set<int> chosen;  // pair indexes
  while (chosen.size() < 137) chosen.insert(static_cast<int>(rng() % kPairs));
  for (int i : chosen) ASSERT_TRUE(writeByte(pairs[i].b.get()));

  // One wait may not hold them all (an engine's event array can be smaller): keep waiting.
  std::set<int> reported;
  for (int round = 0; round < 1000 && reported.size() < chosen.size(); ++round) {
    for (const ReadyEvent& e : waitEvents(round == 0 ? 5000 : 0)) {
      auto it = index_of_fd.find(e.fd);
      ASSERT_NE(it, index_of_fd.end()) << "unknown fd " << e.fd;
      const int i = it->second;
      EXPECT_TRUE(chosen.count(i)) << "pair " << i << " was not written to";
      EXPECT_EQ(e.ctx, &tags[i]);
      EXPECT_TRUE(e.events & kEventRead);
      reported.insert(i);
    }
  }
  EXPECT_EQ(reported, chosen);

  for (int i : chosen) {
    EXPECT_EQ(drain(pairs[i].a.get()), 1u);
  }
  EXPECT_TRUE(waitEvents(0).empty());
  for (auto& pair : pairs) ASSERT_TRUE(engine_->remove(pair.a.get()).ok());
}

// Removing some fds (the first, the last and ones between) leaves the others reported correctly.
TEST_P(EngineConformanceTest, RemoveAmongManyKeepsTheOthers) {
  constexpr int kPairs = 12;
  std::vector<Pair> pairs;
  std::vector<int> tags(kPairs);
  for (int i = 0; i < kPairs; ++i) {
    pairs.push_back(socketPair());
    ASSERT_TRUE(engine_->add(pairs[i].a.get(), kEventRead, &tags[i]).ok());
  }
  std::set<int> removed = {0, 3, 4, 7, kPairs - 1};
  for (int i : removed) ASSERT_TRUE(engine_->remove(pairs[i].a.get()).ok());
  for (auto& pair : pairs) ASSERT_TRUE(writeByte(pair.b.get()));

  std::vector<ReadyEvent> events = waitEvents(5000);
  EXPECT_EQ(events.size(), kPairs - removed.size());
  for (int i = 0; i < kPairs; ++i) {
    const ReadyEvent* e = findFd(events, pairs[i].a.get());
    if (removed.count(i)) {
      EXPECT_EQ(e, nullptr) << i;
    } else {
      ASSERT_NE(e, nullptr) << i;
      EXPECT_EQ(e->ctx, &tags[i]);
    }
  }
}

TEST_P(EngineConformanceTest, AddTwiceIsAnError) {
  Pair p = socketPair();
  ASSERT_TRUE(engine_->add(p.a.get(), kEventRead, nullptr).ok());
  absl::Status st = engine_->add(p.a.get(), kEventRead, nullptr);
  EXPECT_FALSE(st.ok());
  // The first registration still works.
  ASSERT_TRUE(writeByte(p.b.get()));
  EXPECT_EQ(waitEvents(5000).size(), 1u);
}

TEST_P(EngineConformanceTest, UnknownFdIsAnError) {
  Pair p = socketPair();
  EXPECT_FALSE(engine_->remove(p.a.get()).ok());
  EXPECT_FALSE(engine_->modify(p.a.get(), kEventRead, nullptr).ok());
  EXPECT_FALSE(engine_->remove(-1).ok());
  EXPECT_FALSE(engine_->add(-1, kEventRead, nullptr).ok());

  ASSERT_TRUE(engine_->add(p.a.get(), kEventRead, nullptr).ok());
  ASSERT_TRUE(engine_->remove(p.a.get()).ok());
  EXPECT_FALSE(engine_->remove(p.a.get()).ok());
}

// select must refuse fds >= FD_SETSIZE, and never set a bit past its fd_set; epoll and poll take them.
TEST_P(EngineConformanceTest, FdsAtAndAboveFdSetSize) {
  RaisedFdLimit limit;
  if (!limit.allows(1500)) GTEST_SKIP() << "RLIMIT_NOFILE hard limit too low for fd 1500";

  Pair low = socketPair();
  int low_tag = 0;
  ASSERT_TRUE(engine_->add(low.a.get(), kEventRead, &low_tag).ok());

  for (int want : {FD_SETSIZE, 1500}) {
    SCOPED_TRACE(want);
    Pair p = socketPair();
    Fd high(::fcntl(p.a.get(), F_DUPFD_CLOEXEC, want));
    ASSERT_GE(high.get(), want) << strerror(errno);
    int tag = 0;
    absl::Status st = engine_->add(high.get(), kEventRead, &tag);
    if (isSelect()) {
      EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
      EXPECT_NE(st.message().find("FD_SETSIZE"), std::string::npos) << st;
      EXPECT_NE(st.message().find(std::to_string(high.get())), std::string::npos) << st;
      absl::Status mod = engine_->modify(high.get(), kEventRead, &tag);
      EXPECT_EQ(mod.code(), absl::StatusCode::kResourceExhausted) << mod;
      EXPECT_FALSE(engine_->remove(high.get()).ok());
    } else {
      ASSERT_TRUE(st.ok()) << st;
      ASSERT_TRUE(writeByte(p.b.get()));
      std::vector<ReadyEvent> events = waitEvents(5000);
      ASSERT_EQ(events.size(), 1u);
      EXPECT_EQ(events[0].fd, high.get());
      EXPECT_EQ(events[0].ctx, &tag);
      EXPECT_EQ(drain(high.get()), 1u);
      ASSERT_TRUE(engine_->remove(high.get()).ok());
    }
  }

  // The engine goes on working for the fds it has.
  ASSERT_TRUE(writeByte(low.b.get()));
  std::vector<ReadyEvent> events = waitEvents(5000);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].fd, low.a.get());
  EXPECT_EQ(events[0].ctx, &low_tag);
  ASSERT_TRUE(engine_->remove(low.a.get()).ok());
}

// kEventLevel: reported again while the condition holds, in every mode, with no re-arm (no
// epoll_ctl) between the reports, and never reported back as an event bit.
TEST_P(EngineConformanceTest, LevelInterestReportsAgainWithoutRearm) {
  Pair p = socketPair();
  int tag = 0;
  ASSERT_TRUE(engine_->add(p.a.get(), kEventRead | kEventLevel, &tag).ok());
  EXPECT_TRUE(waitEvents(0).empty());
  ASSERT_TRUE(writeByte(p.b.get()));
  const uint64_t calls = engine_->controlCalls();
  for (int round = 0; round < 3; ++round) {
    std::vector<ReadyEvent> events = waitEvents(5000);  // not drained: still readable
    ASSERT_EQ(events.size(), 1u) << "round " << round;
    EXPECT_EQ(events[0].fd, p.a.get());
    EXPECT_EQ(events[0].ctx, &tag);
    EXPECT_TRUE(events[0].events & kEventRead);
    EXPECT_FALSE(events[0].events & kEventLevel);
  }
  EXPECT_EQ(engine_->controlCalls(), calls);
  EXPECT_EQ(drain(p.a.get()), 1u);
  EXPECT_TRUE(waitEvents(0).empty());

  // Interest 0 and back keep it level-triggered.
  ASSERT_TRUE(engine_->modify(p.a.get(), kEventLevel, &tag).ok());
  ASSERT_TRUE(writeByte(p.b.get()));
  EXPECT_TRUE(waitEvents(0).empty());
  ASSERT_TRUE(engine_->modify(p.a.get(), kEventRead | kEventLevel, &tag).ok());
  EXPECT_EQ(waitForFd(p.a.get()) & kEventRead, kEventRead);
  EXPECT_EQ(waitForFd(p.a.get()) & kEventRead, kEventRead);
}

// removeBeforeClose() then close(): nothing more is reported for the fd, also from the batch
// being dispatched, and its number, reused at once, is reported only for the new fd's own events.
TEST_P(EngineConformanceTest, RemoveBeforeCloseInBatchThenReuseNumber) {
  Pair p = socketPair();
  Pair q = socketPair();
  int tag_p = 0, tag_q = 0;
  ASSERT_TRUE(engine_->add(p.a.get(), kEventRead, &tag_p).ok());
  ASSERT_TRUE(engine_->add(q.a.get(), kEventRead, &tag_q).ok());
  ASSERT_TRUE(writeByte(p.b.get()));
  ASSERT_TRUE(writeByte(q.b.get()));
  // Both ready; whichever comes first removes and closes the other, as a handler closing another
  // connection would.
  struct Batch {
    Engine* engine;
    Pair* p;
    Pair* q;
    std::vector<int> seen;
    int closed = -1;
  } batch{engine_.get(), &p, &q, {}, -1};
  auto handler = [](void*, int fd, uint32_t, void* arg) {
    auto* b = static_cast<Batch*>(arg);
    b->seen.push_back(fd);
    if (b->closed >= 0) return;
    Fd& other = fd == b->p->a.get() ? b->q->a : b->p->a;
    b->closed = other.get();
    ASSERT_TRUE(b->engine->removeBeforeClose(other.get()).ok());
    other.reset();
  };
  absl::StatusOr<int> n = engine_->dispatch(5000, handler, &batch);
  ASSERT_TRUE(n.ok()) << n.status();
  // Edge and level alike: one of the two may not have been in that batch yet.
  ASSERT_EQ(batch.seen.size(), 1u);
  EXPECT_EQ(std::count(batch.seen.begin(), batch.seen.end(), batch.closed), 0);
  EXPECT_TRUE(waitEvents(0).size() <= 1u);  // the survivor, still readable (not in edge mode)

  // The closed number comes back with the next socket: quiet until its own peer writes.
  Pair r = socketPair();
  ASSERT_EQ(r.a.get(), batch.closed);  // lowest free number
  int tag_r = 0;
  ASSERT_TRUE(engine_->add(r.a.get(), kEventRead, &tag_r).ok());
  EXPECT_EQ(findFd(waitEvents(0), r.a.get()), nullptr);
  ASSERT_TRUE(writeByte(r.b.get()));
  EXPECT_EQ(waitForFd(r.a.get()) & kEventRead, kEventRead);
  EXPECT_FALSE(engine_->removeBeforeClose(-1).ok());
}

INSTANTIATE_TEST_SUITE_P(AllEngines, EngineConformanceTest,
                         ::testing::Values(EngineOptions{"epoll", EpollMode::kOneshot},
                                           EngineOptions{"epoll", EpollMode::kOneshot, false},
                                           EngineOptions{"epoll", EpollMode::kLevel},
                                           EngineOptions{"epoll", EpollMode::kEdge},
                                           EngineOptions{"poll", EpollMode::kOneshot},
                                           EngineOptions{"select", EpollMode::kOneshot},
                                           EngineOptions{"uring", EpollMode::kOneshot}),
                         paramName);

}  // namespace
}  // namespace plexus
