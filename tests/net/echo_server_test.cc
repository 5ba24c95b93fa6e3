// TcpServer + TcpConnection over real loopback sockets, for every engine and epoll mode, with 1 and
// 4 sub-reactors.

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <ostream>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "plexus/buffer.h"
#include "plexus/tcp_connection.h"
#include "plexus/tcp_server.h"
#include "support/echo_clients.h"
#include "support/server_harness.h"
#include "support/test_util.h"

namespace plexus {
namespace {

using testing::EchoClientsOptions;
using testing::ServerHarness;

struct Param {
  std::string engine;
  EpollMode mode;
  int threads;
};

std::string paramName(const ::testing::TestParamInfo<Param>& info) {
  // absl::StrCat rather than operator+: GCC 12 at -O3 reports a false -Wrestrict in
  // `"_" + std::string(...)`.
  std::string name = info.param.engine;
  if (name == "epoll") absl::StrAppend(&name, "_", std::string(epollModeName(info.param.mode)));
  return absl::StrCat(name, "_", info.param.threads, "threads");
}

// So that gtest names the case instead of dumping its bytes.
void PrintTo(const Param& p, std::ostream* os) {
  *os << p.engine;
  if (p.engine == "epoll") *os << " (" << epollModeName(p.mode) << ")";
  *os << ", " << p.threads << (p.threads == 1 ? " thread" : " threads");
}

class EchoServerTest : public ::testing::TestWithParam<Param> {
 protected:
  TcpServerOptions options() const {
    TcpServerOptions o;
    o.listen_address = InetAddress(0, true);
    o.threads = GetParam().threads;
    o.engine.name = GetParam().engine;
    o.engine.epoll_mode = GetParam().mode;
    return o;
  }
};

TEST_P(EchoServerTest, HundredClientsRandomPayloadsByteExact) {
  ServerHarness h(options(), testing::installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  std::mt19937_64 rng(42);
  std::vector<std::string> payloads;
  for (int i = 0; i < 100; ++i) {
    // Mostly small, some up to 256 KiB: 1 B .. 256 KiB, log-uniform.
    double exp = std::uniform_real_distribution<double>(0, 18)(rng);
    size_t size = std::max<size_t>(1, static_cast<size_t>(std::pow(2.0, exp)));
    payloads.push_back(testing::randomBytes(size, rng()));
  }
  payloads[0] = testing::randomBytes(256 * 1024, 7);
  payloads[1] = std::string(1, '\0');
  auto results = testing::runEchoClients(h.address(), payloads, 1234);
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_TRUE(results[i].exact) << "client " << i << " (" << payloads[i].size()
                                  << " bytes): " << results[i].error;
  }
  EXPECT_TRUE(testing::waitUntil([&] { return h.server().connectionCount() == 0; }));
}

TEST_P(EchoServerTest, HalfCloseAnswersEverythingThenCloses) {
  ServerHarness h(options(), testing::installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  std::vector<std::string> payloads;
  for (int i = 0; i < 10; ++i) payloads.push_back(testing::randomBytes(1000 + i * 30000, i));
  EchoClientsOptions o;
  o.half_close = true;
  o.timeout_ms = 20000;
  auto results = testing::runEchoClients(h.address(), payloads, 99, o);
  for (size_t i = 0; i < results.size(); ++i) {
    // Every byte back, then EOF from the server (a missing EOF ends in "timed out").
    EXPECT_TRUE(results[i].exact) << "client " << i << ": " << results[i].error;
    EXPECT_EQ(results[i].error, "") << "client " << i;
  }
  EXPECT_TRUE(testing::waitUntil([&] { return h.server().connectionCount() == 0; }));
}

// The FIN comes right behind a small message, so the server often finds both queued when its wait
// returns. In edge mode the reader stops at a short read unless the wait reported the FIN: this
// checks that EOF is never missed (a missed one ends in readUntilEof's timeout).
TEST_P(EchoServerTest, SmallMessageWithFinIsAnsweredThenClosed) {
  ServerHarness h(options(), testing::installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  for (int i = 0; i < 200; ++i) {
    int fd = testing::connectBlocking(h.address(), std::chrono::milliseconds(3000));
    ASSERT_GE(fd, 0);
    const std::string msg = "message " + std::to_string(i);
    ASSERT_TRUE(testing::writeAll(fd, msg));
    ASSERT_EQ(::shutdown(fd, SHUT_WR), 0);
    bool eof = false;
    ASSERT_EQ(testing::readUntilEof(fd, &eof), msg) << "client " << i;
    ASSERT_TRUE(eof) << "client " << i << ": no EOF from the server";
    ::close(fd);
  }
  EXPECT_TRUE(testing::waitUntil([&] { return h.server().connectionCount() == 0; }));
}

TEST_P(EchoServerTest, ResetMidStreamLeavesOthersServed) {
  ServerHarness h(options(), testing::installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  for (int i = 0; i < 20; ++i) {
    int fd = testing::connectBlocking(h.address());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(testing::writeAll(fd, testing::randomBytes(100000, i)));
    testing::closeWithReset(fd);
  }
  std::vector<std::string> payloads(5, testing::randomBytes(50000, 5));
  auto results = testing::runEchoClients(h.address(), payloads, 5);
  for (const auto& r : results) EXPECT_TRUE(r.exact) << r.error;
  EXPECT_TRUE(testing::waitUntil([&] { return h.server().connectionCount() == 0; }));
}

TEST_P(EchoServerTest, ClientThatNeverReadsIsBoundedByHighWaterMark) {
  constexpr size_t kHighWater = 256 * 1024;
  constexpr size_t kTotal = 16 * 1024 * 1024;
  std::atomic<size_t> max_output{0};
  std::atomic<int> high_water_hits{0};
  TcpServerOptions o = options();
  o.connection.high_water_mark = kHighWater;
  ServerHarness h(o, [&](TcpServer& s) {
    s.setMessageCallback([&](const TcpConnectionPtr& conn, Buffer* buf) {
      conn->send(buf);
      size_t out = conn->outputBuffer()->readableBytes() + conn->inputBuffer()->readableBytes();
      size_t prev = max_output.load();
      while (out > prev && !max_output.compare_exchange_weak(prev, out)) {
      }
    });
    s.setHighWaterMarkCallback([&](const TcpConnectionPtr&, size_t) { ++high_water_hits; });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  int fd = testing::connectBlocking(h.address(), std::chrono::milliseconds(30000));
  ASSERT_GE(fd, 0);
  const std::string data = testing::randomBytes(kTotal, 3);
  std::thread writer([&] { EXPECT_TRUE(testing::writeAll(fd, data)); });
  // The peer reads nothing until the server has paused reading from it.
  ASSERT_TRUE(testing::waitUntil([&] { return high_water_hits.load() > 0; }));
  std::string echoed = testing::readExactly(fd, kTotal);
  writer.join();
  ::close(fd);
  EXPECT_EQ(echoed.size(), kTotal);
  EXPECT_TRUE(echoed == data);
  // What the server held for this connection never went past the mark plus one read.
  EXPECT_LE(max_output.load(), kHighWater + 2 * 65536 + 4096);
}

TEST_P(EchoServerTest, ConnectionsSpreadOverAllSubReactors) {
  absl::Mutex mu;
  std::set<EventLoop*> loops;
  ServerHarness h(options(), [&](TcpServer& s) {
    testing::installEcho(s);
    s.setConnectionCallback([&](const TcpConnectionPtr& conn) {
      EXPECT_TRUE(conn->getLoop()->isInLoopThread());
      absl::MutexLock lock(&mu);
      loops.insert(conn->getLoop());
    });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  std::vector<std::string> payloads(40, "ping");
  auto results = testing::runEchoClients(h.address(), payloads, 1);
  for (const auto& r : results) EXPECT_TRUE(r.exact) << r.error;
  absl::MutexLock lock(&mu);
  EXPECT_EQ(loops.size(), static_cast<size_t>(GetParam().threads));
  std::vector<EventLoop*> server_loops = h.server().loops();
  EXPECT_EQ(std::set<EventLoop*>(server_loops.begin(), server_loops.end()), loops);
}

std::vector<Param> allParams() {
  std::vector<Param> out;
  for (int threads : {1, 4}) {
    out.push_back({"epoll", EpollMode::kOneshot, threads});
    out.push_back({"epoll", EpollMode::kLevel, threads});
    out.push_back({"epoll", EpollMode::kEdge, threads});
    out.push_back({"poll", EpollMode::kOneshot, threads});
    out.push_back({"select", EpollMode::kOneshot, threads});
    out.push_back({"uring", EpollMode::kOneshot, threads});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllEngines, EchoServerTest, ::testing::ValuesIn(allParams()), paramName);

}  // namespace
}  // namespace plexus
