// Plugin API version 3 through the real host (servePlugin over a TcpServer on loopback): timers,
// paused reads, deferred replies from another thread in request order, slices, file ranges, the
// stop notice, the per-loop hooks, and several servers sharing one pool of sub-reactors.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "plexus/buffer.h"
#include "plexus/event_loop_thread.h"
#include "plexus/event_loop_thread_pool.h"
#include "plexus/plugin_host.h"
#include "support/server_harness.h"
#include "support/test_util.h"

namespace plexus {
namespace {

using std::chrono::milliseconds;
using testing::connectBlocking;
using testing::readExactly;
using testing::readUntilEof;
using testing::ServerHarness;
using testing::waitUntil;
using testing::writeAll;

struct Shared {
  EventLoop* worker = nullptr;  // another thread's loop, for deferred replies
  std::atomic<int> timers_fired{0};
  std::atomic<int> stops{0};
  std::atomic<int> closes{0};
  absl::Mutex mu;
  std::vector<int> loop_starts ABSL_GUARDED_BY(mu);  // indexes, in order of the calls
  std::vector<int> loop_stops ABSL_GUARDED_BY(mu);
  std::atomic<int> wrong_thread{0};  // a hook or handler called off its loop's thread
  std::atomic<size_t> loop_count{0};
};

// One command per line:
//   now TEXT                 reply TEXT
//   timer MS TEXT            reply TEXT after MS (a Session timer)
//   cancel                   cancel the last timer
//   defer MS TEXT            reply TEXT after MS, from the worker thread (deferred reply)
//   deferclose MS TEXT       as defer, then close after it
//   close                    Session::close()
//   pause MS                 pause reading (stop parsing), resume after MS
//   slices A B C ...         the words as one sendSlices call
//   file PATH OFFSET LENGTH  sendFile
//   pending                  reply pendingOutputBytes()
class V3Handler final : public ProtocolHandler {
 public:
  V3Handler(Shared* shared, const LoopInfo& info) : shared_(shared), info_(info) {}

  void onData(Session& session, Buffer& input) override {
    if (EventLoop::current() != info_.loop) ++shared_->wrong_thread;
    size_t eol;
    while (!session.readingPaused() && !session.closing() &&
           (eol = input.view().find('\n')) != std::string_view::npos) {
      std::string line(input.view().substr(0, eol));
      input.retrieve(eol + 1);
      run(session, line);
    }
  }
  void onStop(Session& session) override {
    ++shared_->stops;
    session.send("stopping\n");
    session.close();
  }
  void onClose(Session&) override { ++shared_->closes; }

 private:
  void run(Session& session, const std::string& line) {
    std::vector<std::string> w = absl::StrSplit(line, ' ');
    const std::string& cmd = w[0];
    auto rest = [&](size_t from) {
      std::string out;
      for (size_t i = from; i < w.size(); ++i) out += (i > from ? " " : "") + w[i];
      return out + "\n";
    };
    int ms = 0;
    if (w.size() > 1) (void)absl::SimpleAtoi(w[1], &ms);
    if (cmd == "now") {
      session.send(rest(1));
    } else if (cmd == "timer") {
      Shared* shared = shared_;
      last_timer_ = session.runAfter(milliseconds(ms), [&session, shared, text = rest(2)] {
        ++shared->timers_fired;
        session.send(text);
      });
    } else if (cmd == "cancel") {
      session.cancelTimer(last_timer_);
    } else if (cmd == "defer" || cmd == "deferclose") {
      DeferredReply reply = session.deferReply();
      const bool close_after = cmd == "deferclose";
      shared_->worker->runAfter(milliseconds(ms), [reply, text = rest(2), close_after] {
        reply.send(text, close_after);
      });
    } else if (cmd == "close") {
      session.close();
    } else if (cmd == "reject") {  // as a server refusing a request whose body is still coming
      session.send("refused\n");
      session.close();
    } else if (cmd == "pause") {
      session.pauseReading();
      session.runAfter(milliseconds(ms), [&session] { session.resumeReading(); });
    } else if (cmd == "slices") {
      std::vector<std::string_view> slices;
      for (size_t i = 1; i < w.size(); ++i) slices.push_back(w[i]);
      slices.push_back("\n");
      session.sendSlices(slices);
    } else if (cmd == "file") {
      uint64_t offset = 0, length = 0;
      (void)absl::SimpleAtoi(w[2], &offset);
      (void)absl::SimpleAtoi(w[3], &length);
      session.sendFile(::open(w[1].c_str(), O_RDONLY | O_CLOEXEC), offset, length);
    } else if (cmd == "pending") {
      session.send(absl::StrFormat("%d\n", session.pendingOutputBytes()));
    }
  }

  Shared* const shared_;
  const LoopInfo info_;
  SessionTimerId last_timer_ = 0;
};

class V3Factory final : public PluginFactory {
 public:
  explicit V3Factory(Shared* shared) : shared_(shared) {}
  void onLoopStart(const LoopInfo& loop) override {
    if (EventLoop::current() != loop.loop) ++shared_->wrong_thread;
    shared_->loop_count = loop.count;
    absl::MutexLock lock(&shared_->mu);
    shared_->loop_starts.push_back(static_cast<int>(loop.index));
  }
  void onLoopStop(const LoopInfo& loop) override {
    if (EventLoop::current() != loop.loop) ++shared_->wrong_thread;
    absl::MutexLock lock(&shared_->mu);
    shared_->loop_stops.push_back(static_cast<int>(loop.index));
  }
  std::unique_ptr<ProtocolHandler> newHandler(const LoopInfo& loop) override {
    if (EventLoop::current() != loop.loop) ++shared_->wrong_thread;
    return std::make_unique<V3Handler>(shared_, loop);
  }

 private:
  Shared* const shared_;
};

// A temporary file holding `content`; returns its path.
std::string tempFile(const std::string& content) {
  char path[] = "/tmp/plexus-v3-file-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) return "";
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return done == content.size() ? path : "";
}

TcpServerOptions serverOptions(int threads) {
  TcpServerOptions options;
  options.listen_address = InetAddress(0, /*loopback_only=*/true);
  options.threads = threads;
  return options;
}

class PluginApiV3Test : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    auto worker = worker_thread_.start();
    ASSERT_TRUE(worker.ok());
    shared_.worker = *worker;
    factory_ = std::make_shared<V3Factory>(&shared_);
    harness_ = std::make_unique<ServerHarness>(
        serverOptions(GetParam()), [this](TcpServer& server) { servePlugin(server, factory_); });
    ASSERT_TRUE(harness_->status().ok()) << harness_->status();
  }
  void TearDown() override { harness_.reset(); }
  int connect() { return connectBlocking(harness_->address()); }

  EventLoopThread worker_thread_;
  Shared shared_;
  std::shared_ptr<V3Factory> factory_;
  std::unique_ptr<ServerHarness> harness_;
};

INSTANTIATE_TEST_SUITE_P(Threads, PluginApiV3Test, ::testing::Values(0, 2),
                         [](const auto& info) { return absl::StrFormat("t%d", info.param); });

TEST_P(PluginApiV3Test, TimerFiresOnceAndCancelledTimerNever) {
  const int fd = connect();
  ASSERT_TRUE(writeAll(fd, "timer 30 late\ntimer 10 early\ntimer 20 never\ncancel\nnow first\n"));
  EXPECT_EQ(readExactly(fd, 17), "first\nearly\nlate\n");
  ::shutdown(fd, SHUT_WR);
  EXPECT_EQ(readUntilEof(fd), "");
  ::close(fd);
  EXPECT_EQ(shared_.timers_fired.load(), 2);
}

TEST_P(PluginApiV3Test, TimersDieWithTheConnection) {
  const int fd = connect();
  ASSERT_TRUE(writeAll(fd, "timer 50 x\nnow ok\n"));
  EXPECT_EQ(readExactly(fd, 3), "ok\n");
  ::close(fd);
  ASSERT_TRUE(waitUntil([&] { return shared_.closes.load() == 1; }));
  // Past the deadline the timer must not have run (it was cancelled with the connection).
  const int probe = connect();
  ASSERT_TRUE(writeAll(probe, "timer 100 done\n"));
  EXPECT_EQ(readExactly(probe, 5), "done\n");
  ::close(probe);
  EXPECT_EQ(shared_.timers_fired.load(), 1);
}

TEST_P(PluginApiV3Test, DeferredRepliesKeepRequestOrder) {
  const int fd = connect();
  // Filled from the worker thread in the reverse order of the requests.
  ASSERT_TRUE(writeAll(fd, "defer 60 one\nnow two\ndefer 5 three\nslices f o u r\ndefer 30 five\n"
                           "now six\n"));
  EXPECT_EQ(readExactly(fd, 28), "one\ntwo\nthree\nfour\nfive\nsix\n");
  ::close(fd);
}

TEST_P(PluginApiV3Test, DeferredReplyThenCloseSendsItThenCloses) {
  const int fd = connect();
  ASSERT_TRUE(writeAll(fd, "now a\ndeferclose 20 b\nnow dropped\n"));
  bool eof = false;
  EXPECT_EQ(readUntilEof(fd, &eof), "a\nb\n");
  EXPECT_TRUE(eof);
  ::close(fd);
}

TEST_P(PluginApiV3Test, CloseWaitsForDeferredPlaces) {
  const int fd = connect();
  ASSERT_TRUE(writeAll(fd, "defer 30 late\nnow after\nclose\nnow never\n"));
  bool eof = false;
  EXPECT_EQ(readUntilEof(fd, &eof), "late\nafter\n");
  EXPECT_TRUE(eof);
  ::close(fd);
}

TEST_P(PluginApiV3Test, DeferredRepliesStillGoOutAfterThePeersEof) {
  const int fd = connect();
  ASSERT_TRUE(writeAll(fd, "defer 40 late\nnow after\n"));
  ::shutdown(fd, SHUT_WR);  // EOF while the deferred place is unfilled
  bool eof = false;
  EXPECT_EQ(readUntilEof(fd, &eof), "late\nafter\n");
  EXPECT_TRUE(eof);
  ::close(fd);
}

TEST_P(PluginApiV3Test, CloseWhileThePeerStillSendsLingersSoTheReplyArrives) {
  const int fd = connect();
  // The peer goes on sending a large body after the server refused it; a plain close would
  // answer the unread bytes with a reset, which destroys "refused" before the peer reads it.
  std::thread writer([fd] {
    const std::string body(256 * 1024, 'b');
    (void)writeAll(fd, "reject\n");
    for (int i = 0; i < 16; ++i) {
      if (!writeAll(fd, body)) break;
    }
    ::shutdown(fd, SHUT_WR);
  });
  bool eof = false;
  const std::string got = readUntilEof(fd, &eof);
  writer.join();
  EXPECT_EQ(got, "refused\n");
  EXPECT_TRUE(eof) << "the reply was followed by a reset, not an orderly close";
  ::close(fd);
}

TEST_P(PluginApiV3Test, ResumeDeliversInputAlreadyReadWithoutNewBytes) {
  const int fd = connect();
  // All in one write: the rest sits unconsumed in the input while reading is paused; the peer
  // sends nothing more, and still gets its answers.
  ASSERT_TRUE(writeAll(fd, "now a\npause 20\nnow b\nnow c\n"));
  EXPECT_EQ(readExactly(fd, 6), "a\nb\nc\n");
  ::close(fd);
}

TEST_P(PluginApiV3Test, SlicesGoOutAsOneReply) {
  const int fd = connect();
  ASSERT_TRUE(writeAll(fd, "slices a bb ccc\n"));
  EXPECT_EQ(readExactly(fd, 7), "abbccc\n");
  ::close(fd);
}

TEST_P(PluginApiV3Test, FileRangesInterleaveWithBytesInOrder) {
  const std::string content = testing::randomBytes(3 * 1024 * 1024 + 17, 7);
  const std::string path = tempFile(content);
  ASSERT_FALSE(path.empty());
  const int fd = connect();
  // A large range the socket cannot take at once, bytes queued behind it, a second range, a
  // deferred reply and more bytes: all in order.
  ASSERT_TRUE(writeAll(fd, absl::StrFormat("file %s 0 %d\nnow mid\nfile %s 5 10\ndefer 10 "
                                           "d\nnow end\n",
                                           path, content.size(), path)));
  const std::string expected =
      content + "mid\n" + content.substr(5, 10) + "d\n" + "end\n";
  EXPECT_EQ(readExactly(fd, expected.size()), expected);
  ::close(fd);
  ::unlink(path.c_str());
}

TEST_P(PluginApiV3Test, FileThatEndsEarlyClosesTheConnection) {
  const std::string path = tempFile("0123456789");
  ASSERT_FALSE(path.empty());
  const int fd = connect();
  ASSERT_TRUE(writeAll(fd, absl::StrFormat("file %s 0 100\nnow never\n", path)));
  bool eof = false;
  EXPECT_EQ(readUntilEof(fd, &eof), "0123456789");
  EXPECT_TRUE(eof);
  ::close(fd);
  ::unlink(path.c_str());
}

TEST_P(PluginApiV3Test, StopNoticeLetsTheHandlerAnswerThenClose) {
  const int a = connect();
  const int b = connect();
  ASSERT_TRUE(writeAll(a, "now hi\n"));
  EXPECT_EQ(readExactly(a, 3), "hi\n");
  ASSERT_TRUE(writeAll(b, "now hi\n"));
  EXPECT_EQ(readExactly(b, 3), "hi\n");
  harness_->stop(std::chrono::seconds(5));
  for (int fd : {a, b}) {
    bool eof = false;
    EXPECT_EQ(readUntilEof(fd, &eof), "stopping\n");
    EXPECT_TRUE(eof);
    ::close(fd);
  }
  EXPECT_EQ(shared_.stops.load(), 2);
}

TEST_P(PluginApiV3Test, LoopHooksRunOncePerLoopOnItsThread) {
  const int fd = connect();
  ASSERT_TRUE(writeAll(fd, "now x\n"));
  EXPECT_EQ(readExactly(fd, 2), "x\n");
  ::close(fd);
  const size_t loops = GetParam() == 0 ? 1 : static_cast<size_t>(GetParam());
  EXPECT_EQ(shared_.loop_count.load(), loops);
  harness_->stop(std::chrono::seconds(5));
  absl::MutexLock lock(&shared_.mu);
  std::vector<int> starts = shared_.loop_starts, stops = shared_.loop_stops;
  std::sort(starts.begin(), starts.end());
  std::vector<int> expected;
  for (size_t i = 0; i < loops; ++i) expected.push_back(static_cast<int>(i));
  EXPECT_EQ(starts, expected);
  EXPECT_EQ(stops, expected);  // run one loop after the other, in index order
  EXPECT_EQ(shared_.wrong_thread.load(), 0);
}

TEST(SharedPoolTest, TwoServersServeFromOnePool) {
  EventLoopThread base_thread;
  auto base = base_thread.start();
  ASSERT_TRUE(base.ok());
  EventLoop* loop = *base;
  EventLoopThread worker_thread;
  Shared shared;
  shared.worker = *worker_thread.start();
  auto factory = std::make_shared<V3Factory>(&shared);
  std::shared_ptr<EventLoopThreadPool> pool;
  std::unique_ptr<TcpServer> one, two;
  testing::runSync(loop, [&] {
    pool = std::make_shared<EventLoopThreadPool>(loop, 2, EngineOptions{});
    ASSERT_TRUE(pool->start().ok());
    one = std::make_unique<TcpServer>(loop, serverOptions(0), pool);
    two = std::make_unique<TcpServer>(loop, serverOptions(0), pool);
    servePlugin(*one, factory);
    servePlugin(*two, factory);
    ASSERT_TRUE(one->start().ok());
    ASSERT_TRUE(two->start().ok());
  });
  std::vector<int> fds;
  for (TcpServer* s : {one.get(), two.get()}) {
    const InetAddress addr(s->listenAddress().port(), /*loopback_only=*/true);
    for (int i = 0; i < 4; ++i) {
      const int fd = connectBlocking(addr);
      ASSERT_TRUE(writeAll(fd, "now ok\n"));
      EXPECT_EQ(readExactly(fd, 3), "ok\n");
      fds.push_back(fd);
    }
  }
  for (int fd : fds) ::close(fd);
  // Two servers, two loops each: both see the pool's two loops.
  EXPECT_EQ(shared.loop_count.load(), 2u);
  testing::runSync(loop, [&] {
    one.reset();
    two.reset();
    pool->stop();
  });
  absl::MutexLock lock(&shared.mu);
  EXPECT_EQ(shared.loop_starts.size(), 4u);
  EXPECT_EQ(shared.loop_stops.size(), 4u);
  EXPECT_EQ(shared.wrong_thread.load(), 0);
}

}  // namespace
}  // namespace plexus
