// plugin_host: one handler per connection over a real TcpServer on loopback, with an in-process
// factory and with plugins loaded from shared objects (echo, testproto).

#include "plexus/plugin_host.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "plexus/buffer.h"
#include "plexus/log.h"
#include "plexus/plugin_loader.h"
#include "support/echo_clients.h"
#include "support/server_harness.h"
#include "support/test_util.h"

namespace plexus {
namespace {

using testing::connectBlocking;
using testing::readExactly;
using testing::readUntilEof;
using testing::ServerHarness;
using testing::waitUntil;
using testing::writeAll;

constexpr size_t kBigReply = 8 * 1024 * 1024;

struct Counters {
  std::atomic<int> made{0};
  std::atomic<int> destroyed{0};
  std::atomic<int> connects{0};
  std::atomic<int> drained{0};
  std::atomic<int> taken_whole{0};  // "big" replies the socket took in one send
  std::atomic<int> closes{0};
  std::atomic<int> reentered{0};  // onClose while another callback of the same handler ran
  std::atomic<int> lost_input{0};  // a view of the input changed under a close()/abort()
};

// Runs one command per line: "info", "echo TEXT", "bye" (reply, then close), "abort", "big" (8 MiB
// reply), "throw", "throw-int".
class ScriptedHandler final : public ProtocolHandler {
 public:
  explicit ScriptedHandler(Counters* counters) : counters_(counters) { ++counters_->made; }
  ~ScriptedHandler() override { ++counters_->destroyed; }

  void onConnect(Session& session) override { ++counters_->connects; }
  void onData(Session& session, Buffer& input) override {
    struct InCallback {  // cleared also when run() throws
      bool& flag;
      explicit InCallback(bool& f) : flag(f) { flag = true; }
      ~InCallback() { flag = false; }
    } in_callback(in_callback_);
    // Parses in place, as a protocol parser does: each line is a view into `input`, consumed only
    // after its command ran, so the view must stay valid through close() and abort().
    size_t eol;
    while ((eol = input.view().find('\n')) != std::string_view::npos) {
      run(session, input.view().substr(0, eol));
      input.retrieve(eol + 1);
    }
  }
  void onDrained(Session& session) override { ++counters_->drained; }
  void onClose(Session& session) override {
    if (in_callback_) ++counters_->reentered;
    ++counters_->closes;
  }

 private:
  void run(Session& session, std::string_view line) {
    if (line == "info") {
      session.send(absl::StrFormat("id=%d peer=%s pending=%d loop=%d\n", session.id(),
                                   session.peerAddress(), session.pendingOutputBytes(),
                                   session.loopInfo().loop == EventLoop::current() ? 1 : 0));
    } else if (line.rfind("echo ", 0) == 0) {
      Buffer reply;
      reply.append(std::string(line.substr(5)) + "\n");
      session.send(reply);
      if (!reply.empty()) throw std::logic_error("send(Buffer&) left bytes behind");
    } else if (line == "bye") {
      session.send("ok\n");
      session.close();
      if (line != "bye") ++counters_->lost_input;  // the view must still read "bye"
    } else if (line == "abort") {
      session.abort();
      if (line != "abort") ++counters_->lost_input;
    } else if (line == "big") {
      session.send(std::string(kBigReply, 'x'));
      // A reader draining the socket as fast as it fills may let the send take all 8 MiB at once:
      // then, as documented, no drain notice follows.
      if (session.pendingOutputBytes() == 0) ++counters_->taken_whole;
    } else if (line == "throw") {
      throw std::runtime_error("scripted failure");
    } else if (line == "throw-int") {
      throw 42;
    }
  }

  Counters* const counters_;
  bool in_callback_ = false;
};

class ScriptedFactory final : public PluginFactory {
 public:
  std::unique_ptr<ProtocolHandler> newHandler(const LoopInfo& /*loop*/) override {
    if (fail_) throw std::runtime_error("no handlers today");
    return std::make_unique<ScriptedHandler>(&counters);
  }
  Counters counters;
  std::atomic<bool> fail_{false};
};

// Captures log lines for the test's duration.
class LogCapture {
 public:
  LogCapture() {
    setLogSink([this](LogLevel level, std::string_view line) {
      absl::MutexLock lock(&mutex_);
      lines_.emplace_back(line);
    });
  }
  ~LogCapture() { setLogSink(nullptr); }
  bool contains(const std::string& a, const std::string& b = "") {
    absl::MutexLock lock(&mutex_);
    for (const std::string& line : lines_) {
      if (line.find(a) != std::string::npos && line.find(b) != std::string::npos) return true;
    }
    return false;
  }

 private:
  absl::Mutex mutex_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mutex_);
};

std::string localAddress(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return InetAddress(a).toIpPort();
}

// Reads until the peer closes (EOF or reset) or the receive timeout; *closed tells which.
std::string readUntilClosed(int fd, bool* closed) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    *closed = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
    return out;
  }
}

std::string readLine(int fd) {
  std::string line;
  char c;
  while (::recv(fd, &c, 1, 0) == 1) {
    line.push_back(c);
    if (c == '\n') break;
  }
  return line;
}

TcpServerOptions serverOptions(int threads) {
  TcpServerOptions options;
  options.listen_address = InetAddress(0, /*loopback_only=*/true);
  options.threads = threads;
  return options;
}

class PluginHostTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    factory_ = std::make_shared<ScriptedFactory>();
    harness_ = std::make_unique<ServerHarness>(
        serverOptions(GetParam()), [this](TcpServer& server) { servePlugin(server, factory_); });
    ASSERT_TRUE(harness_->status().ok()) << harness_->status();
  }
  void TearDown() override { harness_.reset(); }

  Counters& counters() { return factory_->counters; }
  int connect() { return connectBlocking(harness_->address()); }

  std::shared_ptr<ScriptedFactory> factory_;
  std::unique_ptr<ServerHarness> harness_;
};

INSTANTIATE_TEST_SUITE_P(Threads, PluginHostTest, ::testing::Values(0, 2),
                         [](const auto& info) { return absl::StrFormat("t%d", info.param); });

TEST_P(PluginHostTest, OneHandlerPerConnectionDestroyedAfterClose) {
  int a = connect();
  int b = connect();
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_TRUE(writeAll(a, "echo one\n"));
  EXPECT_EQ(readLine(a), "one\n");
  ASSERT_TRUE(writeAll(b, "echo two\n"));
  EXPECT_EQ(readLine(b), "two\n");
  EXPECT_EQ(counters().made, 2);
  EXPECT_EQ(counters().connects, 2);
  ::close(a);
  ::close(b);
  EXPECT_TRUE(waitUntil([&] { return counters().destroyed == 2; }));
  EXPECT_EQ(counters().closes, 2);
  EXPECT_EQ(counters().reentered, 0);
}

TEST_P(PluginHostTest, SessionDescribesTheConnection) {
  int fd = connect();
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(writeAll(fd, "info\n"));
  const std::string line = readLine(fd);
  EXPECT_NE(line.find(" peer=" + localAddress(fd) + " "), std::string::npos) << line;
  EXPECT_NE(line.find(" pending=0 loop=1"), std::string::npos) << line;
  EXPECT_EQ(line.rfind("id=", 0), 0u) << line;
  ::close(fd);
}

TEST_P(PluginHostTest, CloseFlushesFirst) {
  int fd = connect();
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(writeAll(fd, "bye\n"));
  bool eof = false;
  EXPECT_EQ(readUntilEof(fd, &eof), "ok\n");
  EXPECT_TRUE(eof);
  ::close(fd);
  EXPECT_TRUE(waitUntil([&] { return counters().destroyed == 1; }));
  EXPECT_EQ(counters().closes, 1);
  EXPECT_EQ(counters().reentered, 0);
}

TEST_P(PluginHostTest, AbortClosesWithoutReentering) {
  int fd = connect();
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(writeAll(fd, "abort\n"));
  bool closed = false;
  EXPECT_EQ(readUntilClosed(fd, &closed), "");
  EXPECT_TRUE(closed);
  ::close(fd);
  EXPECT_TRUE(waitUntil([&] { return counters().destroyed == 1; }));
  EXPECT_EQ(counters().closes, 1);
  EXPECT_EQ(counters().reentered, 0);
}

// Regression: a handler that closes or aborts in the middle of its input and then parses on (as a
// protocol parser does with pipelined requests) read freed memory. The input stays valid until
// onData() returns; what it sends after close()/abort() is dropped, and no onData() follows. The
// first write leaves a partial line, so the rest lands in the connection's own input buffer.
TEST_P(PluginHostTest, CloseOrAbortMidInputKeepsTheInputValid) {
  for (const std::string verb : {"bye", "abort"}) {
    SCOPED_TRACE(verb);
    const int before = counters().closes;
    int fd = connect();
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(writeAll(fd, "echo a\n" + verb.substr(0, 2)));
    EXPECT_EQ(readLine(fd), "a\n");
    ASSERT_TRUE(writeAll(fd, verb.substr(2) + "\necho after\n"));
    bool closed = false;
    EXPECT_EQ(readUntilClosed(fd, &closed), verb == "bye" ? "ok\n" : "");
    EXPECT_TRUE(closed);
    ::close(fd);
    EXPECT_TRUE(waitUntil([&] { return counters().closes == before + 1; }));
  }
  EXPECT_EQ(counters().reentered, 0);
  EXPECT_EQ(counters().lost_input, 0);
}

TEST_P(PluginHostTest, DrainedAfterALargeReply) {
  int fd = connect();
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(writeAll(fd, "big\n"));
  EXPECT_EQ(readExactly(fd, kBigReply), std::string(kBigReply, 'x'));
  EXPECT_TRUE(waitUntil([&] { return counters().drained + counters().taken_whole >= 1; }));
  ::close(fd);
}

TEST_P(PluginHostTest, ThrowingHandlerLosesOnlyItsConnection) {
  LogCapture log;
  int good = connect();
  int bad = connect();
  ASSERT_GE(good, 0);
  ASSERT_GE(bad, 0);
  ASSERT_TRUE(writeAll(good, "echo before\n"));
  EXPECT_EQ(readLine(good), "before\n");

  const std::string bad_peer = localAddress(bad);
  ASSERT_TRUE(writeAll(bad, "throw\necho never\n"));
  bool closed = false;
  EXPECT_EQ(readUntilClosed(bad, &closed), "");
  EXPECT_TRUE(closed);
  ::close(bad);
  EXPECT_TRUE(waitUntil([&] { return log.contains(bad_peer, "scripted failure"); }));
  EXPECT_TRUE(log.contains(bad_peer, "onData"));

  ASSERT_TRUE(writeAll(good, "echo after\n"));
  EXPECT_EQ(readLine(good), "after\n");
  EXPECT_TRUE(waitUntil([&] { return counters().destroyed == 1; }));
  EXPECT_EQ(counters().closes, 1);  // onClose still runs, once, after the failed callback
  EXPECT_EQ(counters().reentered, 0);
  ::close(good);
}

TEST_P(PluginHostTest, NonStandardExceptionIsCaughtToo) {
  LogCapture log;
  int fd = connect();
  ASSERT_GE(fd, 0);
  const std::string peer = localAddress(fd);
  ASSERT_TRUE(writeAll(fd, "throw-int\n"));
  bool closed = false;
  readUntilClosed(fd, &closed);
  EXPECT_TRUE(closed);
  ::close(fd);
  EXPECT_TRUE(waitUntil([&] { return log.contains(peer, "not derived from std::exception"); }));
  int again = connect();
  ASSERT_TRUE(writeAll(again, "echo alive\n"));
  EXPECT_EQ(readLine(again), "alive\n");
  ::close(again);
}

TEST_P(PluginHostTest, FactoryThatThrowsClosesTheNewConnection) {
  LogCapture log;
  factory_->fail_ = true;
  int fd = connect();
  ASSERT_GE(fd, 0);
  bool closed = false;
  EXPECT_EQ(readUntilClosed(fd, &closed), "");
  EXPECT_TRUE(closed);
  ::close(fd);
  EXPECT_TRUE(waitUntil([&] { return log.contains("newHandler", "no handlers today"); }));
  factory_->fail_ = false;
  int again = connect();
  ASSERT_TRUE(writeAll(again, "echo served\n"));
  EXPECT_EQ(readLine(again), "served\n");
  ::close(again);
}

// Plugins loaded from shared objects.

TEST(PluginHostLoadedTest, EchoPluginIsByteExact) {
  auto plugin = loadPlugin("echo", {PLEXUS_PLUGIN_DIR});
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  ServerHarness harness(serverOptions(2),
                        [&](TcpServer& server) { servePlugin(server, (*plugin)->factory()); });
  ASSERT_TRUE(harness.status().ok()) << harness.status();
  plugin->reset();  // the server's handlers keep the library loaded

  std::string with_nuls("a\0b\0\0c", 6);
  std::vector<std::string> payloads = {
      with_nuls, std::string(1, '\0'), testing::randomBytes(1 << 20, 1),
      testing::randomBytes(5 << 20, 2), testing::randomBytes(100000, 3)};
  auto results = testing::runEchoClients(harness.address(), payloads, 7);
  ASSERT_EQ(results.size(), payloads.size());
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_TRUE(results[i].connected && results[i].complete && results[i].exact)
        << "payload " << i << ": " << results[i].error;
  }
}

TEST(PluginHostLoadedTest, ArgumentsReachTheFactoryAndThrowsAreContained) {
  LogCapture log;
  auto plugin = loadPlugin("testproto", {PLEXUS_TEST_PLUGIN_DIR}, {{"greeting", "hello\n"}});
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  ServerHarness harness(serverOptions(2),
                        [&](TcpServer& server) { servePlugin(server, (*plugin)->factory()); });
  ASSERT_TRUE(harness.status().ok()) << harness.status();

  int good = connectBlocking(harness.address());
  int bad = connectBlocking(harness.address());
  ASSERT_GE(good, 0);
  ASSERT_GE(bad, 0);
  EXPECT_EQ(readExactly(good, 6), "hello\n");
  EXPECT_EQ(readExactly(bad, 6), "hello\n");

  ASSERT_TRUE(writeAll(bad, "boom!"));
  bool closed = false;
  EXPECT_EQ(readUntilClosed(bad, &closed), "");
  EXPECT_TRUE(closed);
  EXPECT_TRUE(
      waitUntil([&] { return log.contains(localAddress(bad), "testproto handler exploded"); }));
  ::close(bad);

  std::string data = testing::randomBytes(200000, 9);
  std::replace(data.begin(), data.end(), '!', '?');
  ASSERT_TRUE(writeAll(good, data));
  EXPECT_EQ(readExactly(good, data.size()), data);
  ::close(good);
}

}  // namespace
}  // namespace plexus
