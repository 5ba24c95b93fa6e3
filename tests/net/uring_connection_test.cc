// TcpConnection on the io_uring engine, where the engine receives and sends for the connection:
// the cases where completion I/O differs from readiness. Half-close, a peer that never reads, a
// connection closed while its sends and receives are in flight, reading paused and resumed with
// bytes already received, and fd numbers reused while old requests may still complete. Each
// checks every byte over real loopback sockets.

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include "plexus/buffer.h"
#include "plexus/engine.h"
#include "plexus/event_loop.h"
#include "plexus/tcp_connection.h"
#include "plexus/tcp_server.h"
#include "support/server_harness.h"
#include "support/test_util.h"

namespace plexus {
namespace {

using testing::connectBlocking;
using testing::installEcho;
using testing::randomBytes;
using testing::readExactly;
using testing::readUntilEof;
using testing::ServerHarness;
using testing::waitUntil;
using testing::writeAll;

TcpServerOptions uringOptions(int threads) {
  TcpServerOptions options;
  options.listen_address = InetAddress(0, /*loopback_only=*/true);
  options.threads = threads;
  options.engine.name = "uring";
  return options;
}

int openFds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n;
}

// The tests are about the io_uring engine: skip where the kernel does not let us have it (the
// server would run on epoll instead).
bool uringAvailable() {
  EngineOptions o;
  o.name = "uring";
  auto e = makeEngine(o);
  return e.ok() && (*e)->completesIo();
}

#define REQUIRE_URING() \
  if (!uringAvailable()) GTEST_SKIP() << "io_uring is not available here"

TEST(UringConnectionTest, EchoesAStreamByteExact) {
  REQUIRE_URING();
  ServerHarness h(uringOptions(1), installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  EXPECT_NE(h.server().stats().wait_calls, ~uint64_t{0});
  int fd = connectBlocking(h.address());
  ASSERT_GE(fd, 0);
  // Larger than a receive buffer and than the ring's buffers together: completions split it.
  const std::string data = randomBytes(3 * 1024 * 1024 + 17, 1);
  std::thread writer([&] { EXPECT_TRUE(writeAll(fd, data)); });
  EXPECT_EQ(readExactly(fd, data.size()), data);
  writer.join();
  ::close(fd);
}

// The peer ends its side: every byte it sent comes back, then our EOF.
TEST(UringConnectionTest, HalfCloseGetsEveryReplyThenEof) {
  REQUIRE_URING();
  ServerHarness h(uringOptions(2), installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  for (int i = 0; i < 20; ++i) {
    int fd = connectBlocking(h.address());
    ASSERT_GE(fd, 0);
    const std::string data = randomBytes(1000 + 4099 * i, 10 + i);
    ASSERT_TRUE(writeAll(fd, data));
    ASSERT_EQ(::shutdown(fd, SHUT_WR), 0);
    bool eof = false;
    EXPECT_EQ(readUntilEof(fd, &eof), data) << "connection " << i;
    EXPECT_TRUE(eof);
    ::close(fd);
  }
}

// A peer that sends and never reads: reading from it pauses at the high-water mark (the engine's
// sends count as queued output), other connections are served meanwhile, and once it reads it
// gets every byte back in order.
TEST(UringConnectionTest, PeerThatNeverReadsIsBoundedAndLosesNothing) {
  REQUIRE_URING();
  TcpServerOptions options = uringOptions(1);
  options.connection.high_water_mark = 256 * 1024;
  std::atomic<int> high_water{0};
  ServerHarness h(options, [&](TcpServer& server) {
    installEcho(server);
    server.setHighWaterMarkCallback([&](const TcpConnectionPtr&, size_t) { high_water++; });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  int stuck = connectBlocking(h.address());
  ASSERT_GE(stuck, 0);
  // Write without reading until the server has paused reading (the high-water mark) and the
  // socket takes no more.
  ::fcntl(stuck, F_SETFL, ::fcntl(stuck, F_GETFL) | O_NONBLOCK);
  std::string sent;
  const std::string chunk = randomBytes(64 * 1024, 2);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    const ssize_t n = ::send(stuck, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n > 0) {
      sent.append(chunk.data(), static_cast<size_t>(n));
      continue;
    }
    ASSERT_TRUE(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) << std::strerror(errno);
    if (high_water.load() > 0) break;
    pollfd pfd{stuck, POLLOUT, 0};
    ::poll(&pfd, 1, 100);  // until the socket takes more (the server reads on)
  }
  EXPECT_GE(high_water.load(), 1) << "the server never paused reading, after " << sent.size();
  // Another connection is served meanwhile.
  int other = connectBlocking(h.address());
  ASSERT_GE(other, 0);
  const std::string hello = randomBytes(5000, 3);
  ASSERT_TRUE(writeAll(other, hello));
  EXPECT_EQ(readExactly(other, hello.size()), hello);
  ::close(other);
  // Now it reads: everything comes back, in order.
  ::fcntl(stuck, F_SETFL, ::fcntl(stuck, F_GETFL) & ~O_NONBLOCK);
  EXPECT_EQ(readExactly(stuck, sent.size()), sent);
  ::close(stuck);
}

// Closed while a send waits for a peer that does not read and a receive is armed: the close
// cancels them, the socket really closes (the peer sees it), nothing leaks, and the server goes on.
TEST(UringConnectionTest, CloseWithOperationsInFlight) {
  REQUIRE_URING();
  TcpServerOptions options = uringOptions(1);
  options.connection.high_water_mark = 0;  // the engine holds all the output
  std::atomic<int> closed{0};
  ServerHarness h(options, [&](TcpServer& server) {
    server.setConnectionCallback([&](const TcpConnectionPtr& conn) {
      if (!conn->connected()) closed++;
    });
    server.setMessageCallback([](const TcpConnectionPtr& conn, Buffer* in) {
      if (in->view() == "go") {
        in->retrieveAll();
        // More than the socket buffers take (they grow to a few MiB): a send stays in flight.
        const std::string big(32 * 1024 * 1024, 'x');
        conn->send(big);
        conn->forceClose();
        return;
      }
      conn->send(in);
    });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  const int fds_before = openFds();
  for (int i = 0; i < 10; ++i) {
    int fd = connectBlocking(h.address());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(writeAll(fd, "go"));
    // The close discards the unsent output: the peer sees the end of the stream (EOF or reset)
    // after at most what was sent, never a hang.
    bool eof = false;
    const std::string got = readUntilEof(fd, &eof);
    EXPECT_LT(got.size(), 32u * 1024 * 1024);
    EXPECT_EQ(got.find_first_not_of('x'), std::string::npos);
    ::close(fd);
    ASSERT_TRUE(waitUntil([&] { return closed.load() == i + 1; }));
  }
  // Every socket closed: the fd count is back (the test's own sockets are closed too).
  EXPECT_TRUE(waitUntil([&] { return openFds() <= fds_before; })) << openFds() << " vs "
                                                                   << fds_before;
  int fd = connectBlocking(h.address());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(writeAll(fd, "ping"));
  EXPECT_EQ(readExactly(fd, 4), "ping");
  ::close(fd);
}

// Reading paused after every message and resumed from a timer: bytes the engine received before
// the pause took effect are kept and handed over, in order, once reading resumes.
TEST(UringConnectionTest, PausedReadingKeepsReceivedBytesInOrder) {
  REQUIRE_URING();
  ServerHarness h(uringOptions(1), [](TcpServer& server) {
    server.setMessageCallback([](const TcpConnectionPtr& conn, Buffer* in) {
      conn->send(in);
      conn->stopReading();
      std::weak_ptr<TcpConnection> weak = conn;
      conn->getLoop()->runAfter(std::chrono::microseconds(200), [weak] {
        if (auto c = weak.lock(); c && c->connected()) c->startReading();
      });
    });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  int fd = connectBlocking(h.address());
  ASSERT_GE(fd, 0);
  const std::string data = randomBytes(2 * 1024 * 1024, 4);
  std::thread writer([&] {
    // In many small writes, so that many receives complete while reading is paused.
    for (size_t off = 0; off < data.size(); off += 1500) {
      if (!writeAll(fd, std::string_view(data).substr(off, 1500))) return;
    }
  });
  EXPECT_EQ(readExactly(fd, data.size()), data);
  writer.join();
  ::close(fd);
}

// Connections opened and closed in quick succession reuse fd numbers while completions for the
// old ones may still be on their way: none reaches a new connection. A long stream runs beside.
TEST(UringConnectionTest, FdReuseNeverMixesConnections) {
  REQUIRE_URING();
  ServerHarness h(uringOptions(1), installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  int stream = connectBlocking(h.address());
  ASSERT_GE(stream, 0);
  const std::string long_data = randomBytes(4 * 1024 * 1024, 5);
  std::thread writer([&] { EXPECT_TRUE(writeAll(stream, long_data)); });
  std::string echoed;
  std::thread reader([&] { echoed = readExactly(stream, long_data.size()); });
  for (int i = 0; i < 300; ++i) {
    int fd = connectBlocking(h.address());
    // Not ASSERT: the stream's threads must be joined.
    if (fd < 0) {
      ADD_FAILURE() << "connection " << i << " failed";
      break;
    }
    const std::string msg = randomBytes(1 + (i * 37) % 9000, 100 + i);
    EXPECT_TRUE(writeAll(fd, msg));
    if (i % 3 == 0) {
      testing::closeWithReset(fd);  // gone with its bytes maybe unread: a reset
      continue;
    }
    // On a mismatch, say whose bytes came instead (the previous connection's: a queued SQE
    // reached the socket that took its fd number).
    const std::string got = readExactly(fd, msg.size());
    if (got != msg) {
      std::string whose = "unknown";
      for (int j = 0; j < i; ++j) {
        if (got.substr(0, 16) == randomBytes(1 + (j * 37) % 9000, 100 + j).substr(0, 16)) {
          whose = "connection " + std::to_string(j);
        }
      }
      ADD_FAILURE() << "connection " << i << " got other bytes: " << whose << "'s";
    }
    ::close(fd);
  }
  writer.join();
  reader.join();
  EXPECT_EQ(echoed, long_data);
  ::close(stream);
}

// Many connections at once on two loops, each a different stream: the buffer ring is shared by
// a loop's connections, and bytes must never cross between them.
TEST(UringConnectionTest, SharedBufferRingNeverMixesStreams) {
  REQUIRE_URING();
  ServerHarness h(uringOptions(2), installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  constexpr int kConns = 40;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int c = 0; c < kConns; ++c) {
    threads.emplace_back([&, c] {
      int fd = connectBlocking(h.address());
      if (fd < 0) return;
      const std::string data = randomBytes(256 * 1024 + c, 1000 + c);
      std::thread w([&] { writeAll(fd, data); });
      const bool same = readExactly(fd, data.size()) == data;
      w.join();
      ::close(fd);
      if (same) ok++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kConns);
}

}  // namespace
}  // namespace plexus
