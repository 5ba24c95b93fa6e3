// TcpServer limits and lifecycle over real loopback sockets: connection limit, idle timeout,
// graceful stop, select's FD_SETSIZE refusal, load balancing, serving on the base loop.

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "plexus/buffer.h"
#include "plexus/log.h"
#include "plexus/tcp_connection.h"
#include "plexus/tcp_server.h"
#include "support/echo_clients.h"
#include "support/server_harness.h"
#include "support/test_util.h"

namespace plexus {
namespace {

using testing::ServerHarness;

TcpServerOptions loopbackOptions(int threads) {
  TcpServerOptions o;
  o.listen_address = InetAddress(0, true);
  o.threads = threads;
  return o;
}

// Echoes `msg` through a fresh connection; true when it came back intact.
bool echoOnce(const InetAddress& addr, const std::string& msg) {
  int fd = testing::connectBlocking(addr);
  if (fd < 0) return false;
  bool ok = testing::writeAll(fd, msg) && testing::readExactly(fd, msg.size()) == msg;
  ::close(fd);
  return ok;
}

// Captures log lines while alive.
class LogCapture {
 public:
  LogCapture() {
    setLogSink([this](LogLevel, std::string_view line) {
      absl::MutexLock lock(&mu_);
      lines_.emplace_back(line);
    });
  }
  ~LogCapture() { setLogSink(nullptr); }
  int count(std::string_view needle) {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const auto& l : lines_) n += l.find(needle) != std::string::npos;
    return n;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> lines_;
};

TEST(TcpServerTest, ServesOnTheBaseLoopWithZeroThreads) {
  ServerHarness h(loopbackOptions(0), testing::installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  EXPECT_EQ(h.server().loops(), std::vector<EventLoop*>{h.baseLoop()});
  std::vector<std::string> payloads(20, testing::randomBytes(100000, 1));
  for (const auto& r : testing::runEchoClients(h.address(), payloads, 3)) EXPECT_TRUE(r.exact) << r.error;
}

// A connection's own ConnectionHandler takes the input, drain and close notices in place of the
// server's callbacks; setHandler(nullptr), even from inside the handler's own callback, hands them
// back and destroys the handler once that callback has returned.
struct HandlerCounts {
  std::atomic<int> drained{0};
  std::atomic<int> closed{0};
  std::atomic<int> destroyed{0};
};

class TaggingHandler final : public ConnectionHandler {
 public:
  explicit TaggingHandler(HandlerCounts* counts) : counts_(counts) {}
  ~TaggingHandler() override { counts_->destroyed.fetch_add(1); }
  void onMessage(const TcpConnectionPtr& conn, Buffer* input) override {
    std::string in = input->retrieveAllAsString();
    if (in == "big") {
      // More than a socket's send buffer can hold (tcp_wmem caps it at 4 MiB by default): the
      // rest is queued, and a drain notice follows once the client has read it all.
      conn->send(std::string(8 << 20, 'x'));
      return;
    }
    if (in == "release") {
      conn->setHandler(nullptr);
      // Still alive until this call returns: its members are usable here.
      conn->send("handler:" + in + std::to_string(counts_->destroyed.load()));
      return;
    }
    conn->send("handler:" + in);
  }
  void onWriteComplete(const TcpConnectionPtr& conn) override {
    counts_->drained.fetch_add(1);
    conn->send("drained");
  }
  void onClose(const TcpConnectionPtr&) override { counts_->closed.fetch_add(1); }

 private:
  HandlerCounts* const counts_;
};

TEST(TcpServerTest, ConnectionHandlerReplacesTheCallbacksUntilCleared) {
  HandlerCounts counts;
  std::atomic<int> callback_drains{0};
  ServerHarness h(loopbackOptions(1), [&](TcpServer& server) {
    server.setConnectionCallback([&](const TcpConnectionPtr& conn) {
      if (conn->connected()) conn->setHandler(std::make_unique<TaggingHandler>(&counts));
    });
    server.setMessageCallback([](const TcpConnectionPtr& conn, Buffer* input) {
      conn->send("callback:" + input->retrieveAllAsString());
    });
    server.setWriteCompleteCallback([&](const TcpConnectionPtr&) { callback_drains.fetch_add(1); });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  int fd = testing::connectBlocking(h.address());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(testing::writeAll(fd, "one"));
  EXPECT_EQ(testing::readExactly(fd, 11), "handler:one");
  ASSERT_TRUE(testing::writeAll(fd, "big"));
  EXPECT_EQ(testing::readExactly(fd, 8 << 20), std::string(8 << 20, 'x'));
  EXPECT_EQ(testing::readExactly(fd, 7), "drained");
  EXPECT_EQ(counts.drained.load(), 1);
  ASSERT_TRUE(testing::writeAll(fd, "release"));
  EXPECT_EQ(testing::readExactly(fd, 16), "handler:release0");
  EXPECT_TRUE(testing::waitUntil([&] { return counts.destroyed.load() == 1; }));
  ASSERT_TRUE(testing::writeAll(fd, "two"));
  EXPECT_EQ(testing::readExactly(fd, 12), "callback:two");
  ::close(fd);
  EXPECT_EQ(callback_drains.load(), 0);
  EXPECT_EQ(counts.closed.load(), 0);  // replaced before the close
}

// A handler hears the close once, and is destroyed on the loop thread when the server lets go of
// the connection, whichever side closed.
TEST(TcpServerTest, ConnectionHandlerIsToldOfTheCloseThenDestroyed) {
  HandlerCounts counts;
  ServerHarness h(loopbackOptions(1), [&](TcpServer& server) {
    server.setConnectionCallback([&](const TcpConnectionPtr& conn) {
      if (conn->connected()) conn->setHandler(std::make_unique<TaggingHandler>(&counts));
    });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  for (int i = 0; i < 3; ++i) {
    int fd = testing::connectBlocking(h.address());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(testing::writeAll(fd, "x"));
    EXPECT_EQ(testing::readExactly(fd, 9), "handler:x");
    ::close(fd);
  }
  EXPECT_TRUE(testing::waitUntil([&] { return counts.destroyed.load() == 3; }));
  EXPECT_EQ(counts.closed.load(), 3);
}

// An established connection holds a reference to itself; closing releases it, so the connection
// is destroyed once its owner has let go, whichever side closed.
TEST(TcpServerTest, ClosedConnectionsAreDestroyed) {
  for (int threads : {0, 1}) {
    absl::Mutex mu;
    std::vector<std::weak_ptr<TcpConnection>> seen;
    ServerHarness h(loopbackOptions(threads), [&](TcpServer& server) {
      server.setConnectionCallback([&](const TcpConnectionPtr& conn) {
        if (!conn->connected()) return;
        absl::MutexLock lock(&mu);
        seen.push_back(conn);
      });
      server.setMessageCallback([](const TcpConnectionPtr& conn, Buffer* input) {
        std::string in = input->retrieveAllAsString();
        if (in == "close") {
          conn->forceClose();  // closed by the server, inside an event
        } else {
          conn->send(in);
        }
      });
    });
    ASSERT_TRUE(h.status().ok()) << h.status();
    // Closed by the client.
    EXPECT_TRUE(echoOnce(h.address(), "hello"));
    // Closed by the server during a message callback.
    int fd = testing::connectBlocking(h.address());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(testing::writeAll(fd, "close"));
    bool eof = false;
    EXPECT_EQ(testing::readUntilEof(fd, &eof), "");
    EXPECT_TRUE(eof);
    ::close(fd);
    EXPECT_TRUE(testing::waitUntil([&] {
      absl::MutexLock lock(&mu);
      if (seen.size() != 2) return false;
      for (const auto& w : seen) {
        if (!w.expired()) return false;
      }
      return true;
    })) << "threads " << threads;
  }
}

TEST(TcpServerTest, PortInUseIsAClearError) {
  ServerHarness first(loopbackOptions(1), testing::installEcho);
  ASSERT_TRUE(first.status().ok());
  TcpServerOptions o = loopbackOptions(1);
  o.listen_address = first.address();
  ServerHarness second(o, testing::installEcho);
  EXPECT_TRUE(absl::IsAlreadyExists(second.status())) << second.status();
  EXPECT_NE(second.status().message().find("Address already in use"), std::string::npos);
  EXPECT_NE(second.status().message().find(first.address().toIpPort()), std::string::npos);
  EXPECT_TRUE(echoOnce(first.address(), "still serving"));
}

TEST(TcpServerTest, ConnectionLimitRefusesTheExcessAndRecovers) {
  TcpServerOptions o = loopbackOptions(2);
  o.max_connections = 3;
  LogCapture logs;
  ServerHarness h(o, testing::installEcho);
  ASSERT_TRUE(h.status().ok());
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) {
    int fd = testing::connectBlocking(h.address());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(testing::writeAll(fd, "x"));
    ASSERT_EQ(testing::readExactly(fd, 1), "x");
    held.push_back(fd);
  }
  // Over the limit: accepted and closed at once, so the peer sees EOF (or a reset).
  for (int i = 0; i < 3; ++i) {
    int fd = testing::connectBlocking(h.address());
    ASSERT_GE(fd, 0);
    bool eof = false;
    std::string got = testing::readUntilEof(fd, &eof);
    EXPECT_EQ(got, "");
    ::close(fd);
  }
  EXPECT_EQ(h.server().refusedTotal(), 3u);
  EXPECT_EQ(logs.count("connection limit (3) reached"), 1) << "one log line per burst";
  // The held connections still work.
  for (int fd : held) {
    ASSERT_TRUE(testing::writeAll(fd, "still"));
    EXPECT_EQ(testing::readExactly(fd, 5), "still");
  }
  ::close(held.back());
  held.pop_back();
  ASSERT_TRUE(testing::waitUntil([&] { return h.server().connectionCount() == 2; }));
  EXPECT_TRUE(echoOnce(h.address(), "room again"));
  for (int fd : held) ::close(fd);
}

TEST(TcpServerTest, IdleTimeoutClosesSilentConnectionsOnly) {
  TcpServerOptions o = loopbackOptions(1);
  o.connection.idle_timeout = std::chrono::milliseconds(300);
  ServerHarness h(o, testing::installEcho);
  ASSERT_TRUE(h.status().ok());
  int silent = testing::connectBlocking(h.address());
  int chatty = testing::connectBlocking(h.address());
  ASSERT_GE(silent, 0);
  ASSERT_GE(chatty, 0);
  const auto start = std::chrono::steady_clock::now();
  // The chatty one keeps talking for longer than the timeout.
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(700)) {
    ASSERT_TRUE(testing::writeAll(chatty, "ping"));
    ASSERT_EQ(testing::readExactly(chatty, 4), "ping");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  bool eof = false;
  EXPECT_EQ(testing::readUntilEof(silent, &eof), "");
  EXPECT_TRUE(eof) << "the silent connection was closed";
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
  ASSERT_TRUE(testing::writeAll(chatty, "alive"));
  EXPECT_EQ(testing::readExactly(chatty, 5), "alive");
  ::close(silent);
  ::close(chatty);
}

TEST(TcpServerTest, GracefulStopFlushesPendingOutputThenCloses) {
  // The server sends 8 MiB at connect; the client reads only after stop() was asked.
  const std::string big = testing::randomBytes(8 * 1024 * 1024, 11);
  std::atomic<int> connected{0};
  ServerHarness h(loopbackOptions(2), [&](TcpServer& s) {
    s.setConnectionCallback([&](const TcpConnectionPtr& conn) {
      if (conn->connected()) {
        conn->send(big);
        ++connected;
      }
    });
  });
  ASSERT_TRUE(h.status().ok());
  int fd = testing::connectBlocking(h.address(), std::chrono::milliseconds(30000));
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(testing::waitUntil([&] { return connected.load() == 1; }));
  std::string got;
  std::thread reader([&] {
    bool eof = false;
    got = testing::readUntilEof(fd, &eof);
    EXPECT_TRUE(eof);
  });
  h.stop(std::chrono::seconds(20));
  reader.join();
  ::close(fd);
  EXPECT_EQ(got.size(), big.size());
  EXPECT_TRUE(got == big);
  EXPECT_EQ(h.server().connectionCount(), 0u);
  // No longer accepting.
  EXPECT_LT(testing::connectBlocking(h.address()), 0);
}

TEST(TcpServerTest, GracefulStopForceClosesAfterTheGracePeriod) {
  std::atomic<int> connected{0};
  ServerHarness h(loopbackOptions(1), [&](TcpServer& s) {
    s.setConnectionCallback([&](const TcpConnectionPtr& conn) {
      if (conn->connected()) {
        conn->send(std::string(16 * 1024 * 1024, 'z'));  // more than the socket buffers hold
        ++connected;
      }
    });
  });
  ASSERT_TRUE(h.status().ok());
  int fd = testing::connectBlocking(h.address());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(testing::waitUntil([&] { return connected.load() == 1; }));
  const auto start = std::chrono::steady_clock::now();
  h.stop(std::chrono::milliseconds(200));  // the client never reads
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
  EXPECT_EQ(h.server().connectionCount(), 0u);
  ::close(fd);
}

TEST(TcpServerTest, LeastConnectionsBalancesLoad) {
  TcpServerOptions o = loopbackOptions(3);
  o.balance = LoadBalance::kLeastConnections;
  absl::Mutex mu;
  std::map<EventLoop*, int> per_loop;
  ServerHarness h(o, [&](TcpServer& s) {
    testing::installEcho(s);
    s.setConnectionCallback([&](const TcpConnectionPtr& conn) {
      absl::MutexLock lock(&mu);
      per_loop[conn->getLoop()] += conn->connected() ? 1 : 0;
    });
  });
  ASSERT_TRUE(h.status().ok());
  std::vector<int> fds;
  for (int i = 0; i < 9; ++i) fds.push_back(testing::connectBlocking(h.address()));
  ASSERT_TRUE(testing::waitUntil([&] {
    absl::MutexLock lock(&mu);
    int n = 0;
    for (auto& [l, c] : per_loop) n += c;
    return n == 9;
  }));
  {
    absl::MutexLock lock(&mu);
    ASSERT_EQ(per_loop.size(), 3u);
    for (auto& [l, c] : per_loop) EXPECT_EQ(c, 3);
  }
  for (int fd : fds) ::close(fd);
}

// select cannot watch fds >= FD_SETSIZE: such a connection is refused and every other connection
// goes on being served. A burst of refusals logs one line, not one per connection (regression: it
// logged an ERROR per refused fd), and the count once connections are taken again.
TEST(TcpServerTest, SelectRefusesFdsAboveFdSetSize) {
  rlimit rl{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_max < FD_SETSIZE + 64) GTEST_SKIP() << "fd hard limit too low";
  const rlimit saved = rl;
  rl.rlim_cur = FD_SETSIZE + 64;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &rl), 0);

  TcpServerOptions o = loopbackOptions(1);
  o.engine.name = "select";
  LogCapture logs;
  ServerHarness h(o, testing::installEcho);
  ASSERT_TRUE(h.status().ok());
  int low = testing::connectBlocking(h.address());
  ASSERT_GE(low, 0);
  ASSERT_TRUE(testing::writeAll(low, "low"));
  ASSERT_EQ(testing::readExactly(low, 3), "low");

  // Take every free fd below FD_SETSIZE + 8, so the next accepted ones land above FD_SETSIZE.
  std::vector<int> fillers;
  for (;;) {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) break;
    if (fd >= FD_SETSIZE + 8) {
      ::close(fd);
      break;
    }
    fillers.push_back(fd);
  }
  for (int i = 0; i < 5; ++i) {
    int high = testing::connectBlocking(h.address());
    ASSERT_GE(high, 0);
    bool eof = false;
    testing::readUntilEof(high, &eof);
    EXPECT_TRUE(eof);
    ::close(high);
  }
  EXPECT_TRUE(testing::waitUntil([&] { return logs.count("FD_SETSIZE") >= 1; }));
  // The earlier connection is still served.
  ASSERT_TRUE(testing::writeAll(low, "still"));
  EXPECT_EQ(testing::readExactly(low, 5), "still");
  for (int fd : fillers) ::close(fd);
  EXPECT_TRUE(echoOnce(h.address(), "low fds again"));
  EXPECT_TRUE(testing::waitUntil([&] { return logs.count("after refusing 4 more") == 1; }));
  EXPECT_EQ(logs.count("FD_SETSIZE"), 1);
  ::close(low);
  ::setrlimit(RLIMIT_NOFILE, &saved);
}

}  // namespace
}  // namespace plexus
