// TcpServer in AcceptMode::kReusePort: every loop listens on the address with its own
// SO_REUSEPORT socket and accepts for itself. Connections spread over the loops and are served
// byte-exact, the base loop accepts nothing, max_connections holds across loops, stop closes every
// listener, and with threads = 0 the base loop is the one listener.

#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "plexus/buffer.h"
#include "plexus/tcp_connection.h"
#include "plexus/tcp_server.h"
#include "support/echo_clients.h"
#include "support/server_harness.h"
#include "support/test_util.h"

namespace plexus {
namespace {

using testing::ServerHarness;

TcpServerOptions reusePortOptions(int threads) {
  TcpServerOptions o;
  o.listen_address = InetAddress(0, true);
  o.threads = threads;
  o.accept_mode = AcceptMode::kReusePort;
  return o;
}

// Records the loop of every connection that got established.
struct LoopsSeen {
  absl::Mutex mu;
  std::multiset<EventLoop*> loops ABSL_GUARDED_BY(mu);
  void install(TcpServer& server) {
    testing::installEcho(server);
    server.setConnectionCallback([this](const TcpConnectionPtr& conn) {
      if (!conn->connected()) return;
      conn->getLoop()->assertInLoopThread();
      absl::MutexLock lock(&mu);
      loops.insert(conn->getLoop());
    });
  }
};

bool echoOnce(const InetAddress& addr, const std::string& msg) {
  int fd = testing::connectBlocking(addr);
  if (fd < 0) return false;
  bool ok = testing::writeAll(fd, msg) && testing::readExactly(fd, msg.size()) == msg;
  ::close(fd);
  return ok;
}

TEST(ReusePortAcceptTest, ConnectionsSpreadOverTheLoopsAndEchoExactly) {
  LoopsSeen seen;
  ServerHarness h(reusePortOptions(4), [&](TcpServer& s) { seen.install(s); });
  ASSERT_TRUE(h.status().ok()) << h.status();
  ASSERT_NE(h.address().port(), 0);
  const std::vector<EventLoop*> loops = h.server().loops();
  ASSERT_EQ(loops.size(), 4u);

  // 64 connections at once (each from its own port, so the kernel's hash spreads them), with
  // payloads of different sizes and random bytes.
  std::vector<std::string> payloads;
  for (int i = 0; i < 64; ++i) payloads.push_back(testing::randomBytes(1 + i * 997, i));
  for (const auto& r : testing::runEchoClients(h.address(), payloads, 7)) {
    EXPECT_TRUE(r.connected && r.exact) << r.error;
  }
  EXPECT_TRUE(testing::waitUntil([&] { return h.server().connectionCount() == 0; }));
  EXPECT_EQ(h.server().acceptedTotal(), 64u);

  absl::MutexLock lock(&seen.mu);
  ASSERT_EQ(seen.loops.size(), 64u);
  std::set<EventLoop*> distinct(seen.loops.begin(), seen.loops.end());
  // 64 connections all hashed to one of 4 sockets: 4^-63. More than one loop took some.
  EXPECT_GT(distinct.size(), 1u);
  for (EventLoop* l : distinct) {
    EXPECT_NE(l, h.baseLoop()) << "a connection was served on the main reactor";
    EXPECT_NE(std::find(loops.begin(), loops.end(), l), loops.end());
  }
  // Nothing passed through the main reactor: it never called accept.
  uint64_t base_accepts = 0;
  h.runSync([&] { base_accepts = h.baseLoop()->stats().accept_calls; });
  EXPECT_EQ(base_accepts, 0u);
}

// More connections queued than one wake-up accepts (64): the listening socket is level-triggered
// in every engine mode (no oneshot re-arm, no edge to miss), so the loop comes back for the rest.
// The accepting loop is held while they queue, so they all wait in the kernel's queue at once.
TEST(ReusePortAcceptTest, AQueueLongerThanOneAcceptBatchIsAllServed) {
  constexpr int kQueued = 150;
  const std::vector<EngineOptions> engines = {{"epoll", EpollMode::kOneshot},
                                              {"epoll", EpollMode::kLevel},
                                              {"epoll", EpollMode::kEdge},
                                              {"poll", EpollMode::kOneshot}};
  for (AcceptMode mode : {AcceptMode::kReusePort, AcceptMode::kHandoff}) {
    for (const EngineOptions& engine : engines) {
      SCOPED_TRACE(std::string(mode == AcceptMode::kReusePort ? "reuseport " : "handoff ") +
                   engine.name + " " + std::string(epollModeName(engine.epoll_mode)));
      TcpServerOptions o = reusePortOptions(1);
      o.accept_mode = mode;
      o.engine = engine;
      ServerHarness h(o, testing::installEcho);
      ASSERT_TRUE(h.status().ok()) << h.status();
      EventLoop* accepting = mode == AcceptMode::kReusePort ? h.server().loops()[0] : h.baseLoop();
      absl::Notification held, release;
      accepting->queueInLoop([&] {
        held.Notify();
        release.WaitForNotification();
      });
      held.WaitForNotification();
      std::vector<int> fds;
      for (int i = 0; i < kQueued; ++i) {
        const int fd = testing::connectBlocking(h.address());  // completed by the kernel
        ASSERT_GE(fd, 0);
        fds.push_back(fd);
      }
      release.Notify();
      for (int i = 0; i < kQueued; ++i) {
        const std::string msg = "queued " + std::to_string(i);
        ASSERT_TRUE(testing::writeAll(fds[i], msg));
        EXPECT_EQ(testing::readExactly(fds[i], msg.size()), msg);
      }
      EXPECT_EQ(h.server().acceptedTotal(), static_cast<uint64_t>(kQueued));
      for (int fd : fds) ::close(fd);
      EXPECT_TRUE(testing::waitUntil([&] { return h.server().connectionCount() == 0; }));
    }
  }
}

TEST(ReusePortAcceptTest, MaxConnectionsHoldsAcrossLoops) {
  TcpServerOptions o = reusePortOptions(4);
  o.max_connections = 5;
  ServerHarness h(o, testing::installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  std::vector<int> held;
  for (int i = 0; i < 5; ++i) {
    int fd = testing::connectBlocking(h.address());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(testing::writeAll(fd, "x" + std::to_string(i)));
    ASSERT_EQ(testing::readExactly(fd, 2), "x" + std::to_string(i));
    held.push_back(fd);
  }
  // Over the limit, whichever loop takes them: accepted and closed at once.
  for (int i = 0; i < 12; ++i) {
    int fd = testing::connectBlocking(h.address());
    ASSERT_GE(fd, 0);
    EXPECT_EQ(testing::readUntilEof(fd), "");
    ::close(fd);
  }
  EXPECT_EQ(h.server().refusedTotal(), 12u);
  EXPECT_EQ(h.server().acceptedTotal(), 17u);
  EXPECT_EQ(h.server().connectionCount(), 5u);
  for (int fd : held) {
    ASSERT_TRUE(testing::writeAll(fd, "still"));
    EXPECT_EQ(testing::readExactly(fd, 5), "still");
  }
  // A slot freed is a slot taken again.
  ::close(held.back());
  held.pop_back();
  ASSERT_TRUE(testing::waitUntil([&] { return h.server().connectionCount() == 4; }));
  EXPECT_TRUE(echoOnce(h.address(), "again"));
  for (int fd : held) ::close(fd);
}

// Many clients racing for the last slots from every loop at once: never more than the limit.
TEST(ReusePortAcceptTest, ConcurrentConnectsNeverExceedTheLimit) {
  TcpServerOptions o = reusePortOptions(4);
  o.max_connections = 10;
  std::atomic<size_t> peak{0};
  std::atomic<size_t> open{0};
  ServerHarness h(o, [&](TcpServer& s) {
    testing::installEcho(s);
    s.setConnectionCallback([&](const TcpConnectionPtr& conn) {
      if (conn->connected()) {
        size_t now = open.fetch_add(1) + 1;
        size_t p = peak.load();
        while (now > p && !peak.compare_exchange_weak(p, now)) {
        }
      } else {
        open.fetch_sub(1);
      }
    });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  std::vector<std::thread> clients;
  std::atomic<int> served{0};
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&] {
      std::vector<int> fds;
      for (int i = 0; i < 10; ++i) {
        int fd = testing::connectBlocking(h.address(), testing::milliseconds(5000));
        if (fd >= 0) fds.push_back(fd);
      }
      for (int fd : fds) {
        if (testing::writeAll(fd, "ping") && testing::readExactly(fd, 4) == "ping") served++;
        ::close(fd);
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_LE(peak.load(), 10u);
  EXPECT_GE(served.load(), 10);
  EXPECT_EQ(h.server().acceptedTotal(), 80u);
  EXPECT_EQ(h.server().refusedTotal() + static_cast<uint64_t>(served.load()), 80u);
}

TEST(ReusePortAcceptTest, StopClosesEveryListener) {
  ServerHarness h(reusePortOptions(3), testing::installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  const InetAddress addr = h.address();
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(echoOnce(addr, "before stop " + std::to_string(i)));
  h.stop(std::chrono::seconds(5));
  // Were one per-loop socket still listening, the kernel would hand it some of these.
  for (int i = 0; i < 32; ++i) {
    int fd = testing::connectBlocking(addr, testing::milliseconds(1000));
    EXPECT_LT(fd, 0) << "connect " << i << " succeeded after stop";
    if (fd >= 0) ::close(fd);
  }
}

TEST(ReusePortAcceptTest, ZeroThreadsListensOnceOnTheBaseLoop) {
  LoopsSeen seen;
  ServerHarness h(reusePortOptions(0), [&](TcpServer& s) { seen.install(s); });
  ASSERT_TRUE(h.status().ok()) << h.status();
  EXPECT_EQ(h.server().loops(), std::vector<EventLoop*>{h.baseLoop()});
  std::vector<std::string> payloads(10, testing::randomBytes(50000, 3));
  for (const auto& r : testing::runEchoClients(h.address(), payloads, 3)) EXPECT_TRUE(r.exact) << r.error;
  absl::MutexLock lock(&seen.mu);
  EXPECT_EQ(seen.loops.count(h.baseLoop()), 10u);
}

// A port taken by a socket without SO_REUSEPORT: start() fails, naming the address, and no
// listener is left behind.
TEST(ReusePortAcceptTest, BusyPortFailsToStart) {
  int taken = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(taken, 0);
  InetAddress any(0, true);
  ASSERT_EQ(::bind(taken, any.sockAddr(), any.sockLen()), 0);
  ASSERT_EQ(::listen(taken, 16), 0);
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  ::getsockname(taken, reinterpret_cast<sockaddr*>(&bound), &len);
  TcpServerOptions o = reusePortOptions(2);
  o.listen_address = InetAddress(ntohs(bound.sin_port), true);
  ServerHarness h(o, testing::installEcho);
  EXPECT_EQ(h.status().code(), absl::StatusCode::kAlreadyExists) << h.status();
  EXPECT_NE(h.status().message().find("cannot listen on 127.0.0.1:"), std::string::npos);
  ::close(taken);
}

// Two servers in reuseport mode share one port (as two processes do during an upgrade); stopping
// one leaves the other serving every new connection.
TEST(ReusePortAcceptTest, TwoServersShareAPortAndOneStops) {
  ServerHarness first(reusePortOptions(2), testing::installEcho);
  ASSERT_TRUE(first.status().ok()) << first.status();
  TcpServerOptions o = reusePortOptions(2);
  o.listen_address = first.address();
  ServerHarness second(o, testing::installEcho);
  ASSERT_TRUE(second.status().ok()) << second.status();
  for (int i = 0; i < 16; ++i) EXPECT_TRUE(echoOnce(first.address(), "both " + std::to_string(i)));
  first.stop(std::chrono::seconds(5));
  const uint64_t before = second.server().acceptedTotal();
  for (int i = 0; i < 16; ++i) EXPECT_TRUE(echoOnce(first.address(), "one " + std::to_string(i)));
  EXPECT_EQ(second.server().acceptedTotal(), before + 16);
}

}  // namespace
}  // namespace plexus
