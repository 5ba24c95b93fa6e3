// End-to-end runs of `plexus-client bench` (runBench) against in-process servers.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "client/bench.h"
#include "client/bench_report.h"
#include "plexus/buffer.h"
#include "plexus/tcp_connection.h"
#include "plexus/tcp_server.h"
#include "support/server_harness.h"
#include "support/test_util.h"

namespace plexus::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using plexus::testing::ServerHarness;

TcpServerOptions serverOptions() {
  TcpServerOptions o;
  o.listen_address = InetAddress(0, /*loopback_only=*/true);
  o.threads = 1;
  return o;
}

BenchOptions benchOptions(const ServerHarness& h) {
  BenchOptions o;
  o.port = h.address().port();
  o.threads = 2;
  o.warmup_s = 0;
  o.quiet = true;
  return o;
}

absl::StatusOr<BenchResult> run(const BenchOptions& o) {
  absl::StatusOr<InetAddress> server = InetAddress::resolve(o.host, o.port);
  if (!server.ok()) return server.status();
  return runBench(o, *server);
}

// A server that echoes every chunk with its first byte flipped: same length, wrong bytes.
void installCorruptingEcho(TcpServer& server) {
  server.setMessageCallback([](const TcpConnectionPtr& conn, Buffer* buf) {
    std::string data = buf->retrieveAllAsString();
    if (!data.empty()) data[0] = static_cast<char>(data[0] ^ 0x5a);
    conn->send(data);
  });
}

// Every engine of the client loops, with every epoll mode: "epoll/edge", "poll", ...
class BenchEngineTest : public ::testing::TestWithParam<std::string> {
 protected:
  EngineOptions engine() const {
    EngineOptions e;
    const std::string& p = GetParam();
    const size_t slash = p.find('/');
    e.name = p.substr(0, slash);
    if (slash != std::string::npos) e.epoll_mode = *parseEpollMode(p.substr(slash + 1));
    return e;
  }
};

TEST_P(BenchEngineTest, ClosedLoopCountDoesExactlyThatManyRoundTrips) {
  ServerHarness h(serverOptions(), testing::installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  BenchOptions o = benchOptions(h);
  o.connections = 10;
  o.count = 100;
  o.warmup_s = 0;
  o.verify = true;
  o.engine = engine();
  auto r = run(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->messages, 1000u);
  EXPECT_EQ(r->latency.count(), 1000u);
  EXPECT_EQ(r->mismatches, 0u);
  EXPECT_EQ(r->connected, 10);
  EXPECT_EQ(r->connect_errors, 0u);
  EXPECT_EQ(r->disconnects, 0u);
  EXPECT_EQ(r->unanswered, 0u);
  EXPECT_GT(r->duration_s, 0);
  EXPECT_GT(r->msgs_per_sec, 0);
  EXPECT_GT(r->latency.percentile(50), 0);
  EXPECT_LE(r->latency.percentile(50), r->latency.percentile(99));
  EXPECT_THAT(r->engine, HasSubstr(o.engine.name));
  EXPECT_EQ(benchExitStatus(*r), 0);
}

TEST_P(BenchEngineTest, OpenLoopCountDoesExactlyThatManyRoundTrips) {
  ServerHarness h(serverOptions(), testing::installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  BenchOptions o = benchOptions(h);
  o.connections = 4;
  o.count = 10;
  o.rate = 2000;
  o.verify = true;
  o.engine = engine();
  auto r = run(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->messages, 40u);
  EXPECT_EQ(r->mismatches, 0u);
  EXPECT_EQ(r->unanswered, 0u);
}

INSTANTIATE_TEST_SUITE_P(Engines, BenchEngineTest,
                         ::testing::Values("epoll/oneshot", "epoll/level", "epoll/edge", "poll",
                                           "select", "uring"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& ch : name) ch = ch == '/' ? '_' : ch;
                           return name;
                         });

// --idle: silent connections held open during the run, beside the active ones.
TEST(BenchRunTest, IdleConnectionsStayOpenAndSilent) {
  ServerHarness h(serverOptions(), testing::installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  BenchOptions o = benchOptions(h);
  o.connections = 4;
  o.idle = 30;
  o.duration_s = 0.5;
  o.verify = true;
  // The server sees all 34 connections while the active ones run (for half a second).
  std::atomic<bool> seen_all{false};
  std::thread watch([&] {
    seen_all = testing::waitUntil([&] { return h.server().connectionCount() == 34; });
  });
  absl::StatusOr<BenchResult> r = run(o);
  watch.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->idle, 30);
  EXPECT_EQ(r->idle_connected, 30);
  EXPECT_EQ(r->connected, 4);
  EXPECT_GT(r->messages, 0u);
  EXPECT_EQ(r->connect_errors, 0u);
  EXPECT_EQ(r->mismatches, 0u);
  EXPECT_TRUE(seen_all);
  EXPECT_NE(formatJson(*r).find("\"idle\":30,\"idle_connected\":30"), std::string::npos);
  // All closed once the run is over.
  EXPECT_TRUE(testing::waitUntil([&] { return h.server().connectionCount() == 0; }));
}

TEST(BenchRunTest, LargeMessagesWithWarmupAndVerify) {
  ServerHarness h(serverOptions(), testing::installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  BenchOptions o = benchOptions(h);
  o.connections = 4;
  o.size = 64 * 1024;  // arrives in several reads per message
  o.count = 20;
  o.warmup_s = 0.05;
  o.verify = true;
  auto r = run(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->messages, 80u);
  EXPECT_EQ(r->mismatches, 0u);
  EXPECT_NEAR(r->mib_per_sec, r->msgs_per_sec / 16.0, r->mib_per_sec * 1e-9);
}

TEST(BenchRunTest, VerifyCatchesACorruptingServer) {
  ServerHarness h(serverOptions(), installCorruptingEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  BenchOptions o = benchOptions(h);
  o.connections = 4;
  o.count = 20;
  o.verify = true;
  auto r = run(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->messages, 80u);  // the lengths are right, so every round trip completes
  EXPECT_GT(r->mismatches, 0u);
  EXPECT_EQ(benchExitStatus(*r), 1);
  EXPECT_THAT(formatSummary(*r), HasSubstr("mismatches"));

  // Without --verify the bytes are not looked at.
  o.verify = false;
  r = run(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->mismatches, 0u);
  EXPECT_EQ(benchExitStatus(*r), 0);
}

TEST(BenchRunTest, ClosedLoopDurationMeasuresTheWindowOnly) {
  ServerHarness h(serverOptions(), testing::installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  BenchOptions o = benchOptions(h);
  o.connections = 4;
  o.duration_s = 0.3;
  o.warmup_s = 0.1;
  auto r = run(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->messages, 0u) << "connected " << r->connected << ", connect errors "
                             << r->connect_errors << " (" << r->first_connect_error
                             << "), disconnects " << r->disconnects << ", sent " << r->sent
                             << ", completed " << r->completed;
  EXPECT_DOUBLE_EQ(r->duration_s, 0.3);
  EXPECT_DOUBLE_EQ(r->msgs_per_sec, static_cast<double>(r->messages) / 0.3);
  EXPECT_EQ(r->latency.count(), r->messages);
  EXPECT_EQ(r->unanswered, 0u);
}

TEST(BenchRunTest, OpenLoopSendsOnTheTimetable) {
  ServerHarness h(serverOptions(), testing::installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  BenchOptions o = benchOptions(h);
  o.connections = 4;
  o.rate = 400;
  o.duration_s = 0.5;
  o.warmup_s = 0.1;
  o.verify = true;
  auto r = run(o);
  ASSERT_TRUE(r.ok()) << r.status();
  // 400/s for 0.5 s: 200 scheduled in the window, give or take one per connection.
  EXPECT_NEAR(static_cast<double>(r->messages), 200, 4);
  EXPECT_DOUBLE_EQ(r->duration_s, 0.5);
  EXPECT_EQ(r->mismatches, 0u);
  EXPECT_EQ(r->unanswered, 0u);
  EXPECT_TRUE(r->open_loop);
  EXPECT_THAT(formatJson(*r), HasSubstr("\"mode\":\"open-loop\""));
}

TEST(BenchRunTest, OpenLoopCountTakesCountOverRate) {
  ServerHarness h(serverOptions(), testing::installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  BenchOptions o = benchOptions(h);
  o.connections = 4;
  o.rate = 1000;
  o.count = 25;
  o.warmup_s = 0;
  auto r = run(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->messages, 100u);
  // 100 messages at 1000/s: the last one is scheduled about 0.1 s after the first.
  EXPECT_GT(r->duration_s, 0.09);
  EXPECT_LT(r->duration_s, 1.0);
}

// Coordinated omission, both halves: latency counts from the scheduled send time, and a message
// whose reply never comes back stays in the figures (with the time it waited) instead of leaving
// only the fast replies in the percentiles.
TEST(BenchRunTest, OpenLoopUnansweredMessagesStayInTheTail) {
  // Echoes the first message of each connection, then swallows everything.
  auto echoed_by_conn = std::make_shared<std::map<const TcpConnection*, size_t>>();
  ServerHarness h(serverOptions(), [echoed_by_conn](TcpServer& s) {
    s.setMessageCallback([echoed_by_conn](const TcpConnectionPtr& conn, Buffer* buf) {
      size_t& echoed = (*echoed_by_conn)[conn.get()];  // one server thread: no lock
      const size_t n = std::min(buf->readableBytes(), 16 - echoed);
      if (n > 0) conn->send(std::string_view(buf->peek(), n));
      echoed += n;
      buf->retrieveAll();
    });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  BenchOptions o = benchOptions(h);
  o.connections = 2;
  o.rate = 100;
  o.duration_s = 0.3;  // about 30 scheduled, then 2 s of drain waiting for the rest
  o.warmup_s = 0;
  o.verify = true;
  auto r = run(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->messages, 2u);
  EXPECT_NEAR(static_cast<double>(r->unanswered), 28, 3);
  EXPECT_EQ(r->latency.count(), r->messages + r->unanswered);
  // Every unanswered message waited through the whole drain (2 s) at least.
  EXPECT_GE(r->latency.percentile(50), 1'900'000'000);
  EXPECT_GE(r->latency.percentile(99.9), 1'900'000'000);
  EXPECT_LT(r->latency.min(), 1'000'000'000);  // the two answered ones
  EXPECT_EQ(r->mismatches, 0u);
}

TEST(BenchRunTest, OpenLoopSendsWhileRepliesAreOutstanding) {
  // Holds every byte until all 20 messages of the connection are in, then echoes them at once: a
  // client that waited for replies before sending (coordinated omission) would never finish.
  ServerHarness h(serverOptions(), [](TcpServer& s) {
    s.setMessageCallback([](const TcpConnectionPtr& conn, Buffer* buf) {
      if (buf->readableBytes() >= 20 * 16) conn->send(buf->retrieveAllAsString());
    });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  BenchOptions o = benchOptions(h);
  o.connections = 1;
  o.threads = 1;
  o.rate = 100;  // one every 10 ms: the last is scheduled 190 ms after the first
  o.count = 20;
  o.warmup_s = 0;
  o.verify = true;
  auto r = run(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->messages, 20u);
  EXPECT_EQ(r->unanswered, 0u);
  EXPECT_EQ(r->mismatches, 0u);
  ASSERT_EQ(r->latency.count(), 20u);
  // From its scheduled time, message k waited about (19 - k) * 10 ms: the first about 190 ms, the
  // last almost nothing.
  EXPECT_GE(r->latency.max(), 180'000'000);
  EXPECT_LT(r->latency.min(), 60'000'000);
  EXPECT_GE(r->latency.percentile(50), 70'000'000);
  EXPECT_LE(r->latency.percentile(50), 150'000'000);
}

TEST(BenchRunTest, ConnectionsTheServerClosesAreDisconnects) {
  ServerHarness h(serverOptions(), [](TcpServer& s) {
    s.setMessageCallback([](const TcpConnectionPtr& conn, Buffer* buf) {
      buf->retrieveAll();
      conn->forceClose();  // no reply
    });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  BenchOptions o = benchOptions(h);
  o.connections = 4;
  o.count = 10;
  auto r = run(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->connected, 4);
  EXPECT_EQ(r->disconnects, 4u);
  EXPECT_EQ(r->messages, 0u);
  EXPECT_EQ(r->unanswered, 4u);  // the first message of each
}

// Measuring nothing is a failure, and the reason says what the bench saw.
TEST(BenchRunTest, AServerClosingEveryConnectionAtOnceFailsTheRun) {
  ServerHarness h(serverOptions(), [](TcpServer& s) {
    s.setConnectionCallback([](const TcpConnectionPtr& conn) {
      if (conn->connected()) conn->forceClose();
    });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  BenchOptions o = benchOptions(h);
  o.connections = 4;
  o.duration_s = 0.2;
  auto r = run(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->connected, 4);
  EXPECT_EQ(r->disconnects, 4u);
  EXPECT_EQ(r->messages, 0u);
  EXPECT_EQ(r->completed, 0u);
  EXPECT_EQ(benchExitStatus(*r), 1);
  EXPECT_EQ(benchFailure(*r),
            "bench measured 0 messages: the server closed all 4 connections before any reply came "
            "back");
}

TEST(BenchRunTest, AServerThatNeverRepliesFailsTheRun) {
  ServerHarness h(serverOptions(), [](TcpServer& s) {
    s.setMessageCallback([](const TcpConnectionPtr&, Buffer* buf) { buf->retrieveAll(); });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  BenchOptions o = benchOptions(h);
  o.connections = 4;
  o.duration_s = 0.2;  // then up to 2 s of drain, waiting for the replies in flight
  auto r = run(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->connected, 4);
  EXPECT_EQ(r->messages, 0u);
  EXPECT_EQ(r->sent, 4u);  // closed loop: one each, never answered
  EXPECT_EQ(r->unanswered, 4u);
  // They stay in the latency figures, with the time they waited (the window and the drain).
  EXPECT_EQ(r->latency.count(), 4u);
  EXPECT_GE(r->latency.min(), 1'900'000'000);
  EXPECT_EQ(benchExitStatus(*r), 1);
  EXPECT_EQ(benchFailure(*r),
            "bench measured 0 messages: no reply came back (4 messages sent on 4 connections)");
}

TEST(BenchRunTest, AServerAnsweringShortFailsTheRun) {
  ServerHarness h(serverOptions(), [](TcpServer& s) {
    s.setMessageCallback([](const TcpConnectionPtr& conn, Buffer* buf) {
      for (; buf->readableBytes() >= 16; buf->retrieve(16)) conn->send("+OK\n");  // per message
    });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  BenchOptions o = benchOptions(h);
  o.connections = 1;
  o.duration_s = 0.2;
  auto r = run(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->messages, 0u);
  EXPECT_EQ(benchExitStatus(*r), 1);
  EXPECT_EQ(benchFailure(*r),
            "bench measured 0 messages: no reply was as long as the message sent (4 bytes came "
            "back for 1 message of 16 B on 1 connection)");
}

TEST(BenchRunTest, FailureReasonsFromTheCounters) {
  BenchResult r;
  r.server = "127.0.0.1:1";
  r.connections = 3;
  r.size = 16;
  EXPECT_EQ(benchFailure(r), "no connection to 127.0.0.1:1 could be made");
  r.first_connect_error = "Connection refused";
  EXPECT_EQ(benchFailure(r), "no connection could be made: Connection refused");
  r.connected = 3;
  r.sent = 3;
  r.disconnects = 1;
  EXPECT_EQ(benchFailure(r),
            "bench measured 0 messages: no reply came back (3 messages sent on 3 connections; the "
            "server closed 1 of them)");
  r.completed = 7;  // all in the warm-up
  EXPECT_EQ(benchFailure(r),
            "bench measured 0 messages: no round trip completed inside the measured window (7 "
            "outside it)");
  r.disconnects = 3;
  EXPECT_EQ(benchFailure(r),
            "bench measured 0 messages: the server closed all 3 connections before the measured "
            "window");
  r.connected = 1;
  r.disconnects = 1;
  r.completed = 0;
  EXPECT_EQ(benchFailure(r),
            "bench measured 0 messages: the server closed the connection before any reply came "
            "back");
  r.disconnects = 0;
  r.messages = 5;
  EXPECT_EQ(benchFailure(r), "");
  EXPECT_EQ(benchExitStatus(r), 0);
  r.mismatches = 2;
  EXPECT_EQ(benchFailure(r), "2 echoed messages differ from what was sent");
  EXPECT_EQ(benchExitStatus(r), 1);
}

TEST(BenchRunTest, NoServerMeansConnectErrorsAndExitOne) {
  BenchOptions o;
  o.port = testing::freePort();
  o.connections = 5;
  o.threads = 2;
  o.duration_s = 0.2;
  o.quiet = true;
  auto r = run(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->connected, 0);
  EXPECT_EQ(r->connect_errors, 5u);
  EXPECT_EQ(r->messages, 0u);
  EXPECT_EQ(r->duration_s, 0);
  EXPECT_THAT(r->first_connect_error, HasSubstr("refused"));
  EXPECT_EQ(benchExitStatus(*r), 1);
}

TEST(BenchRunTest, JsonIsOneObjectWithTheDocumentedKeys) {
  BenchResult r;
  r.server = "127.0.0.1:1";
  r.engine = "epoll (oneshot)";
  r.connections = 2;
  r.connected = 2;
  r.threads = 1;
  r.size = 16;
  r.duration_s = 1;
  r.messages = 10;
  r.msgs_per_sec = 10;
  r.latency.record(1500);
  const std::string json = formatJson(r);
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.substr(json.size() - 2), "}\n");
  EXPECT_THAT(json.substr(0, json.size() - 1), Not(HasSubstr("\n")));
  for (const char* key :
       {"\"mode\":\"closed-loop\"", "\"connections\":2", "\"size\":16", "\"threads\":1",
        "\"duration_s\":", "\"messages\":10", "\"msgs_per_sec\":", "\"mib_per_sec\":",
        "\"latency_us\":{\"p50\":1.5,\"p90\":1.5,\"p99\":1.5,\"p999\":1.5,\"max\":1.5,\"mean\":1.5}",
        "\"connect_errors\":0", "\"mismatches\":0", "\"disconnects\":0", "\"verify\":false"}) {
    EXPECT_THAT(json, HasSubstr(key));
  }
}

}  // namespace
}  // namespace plexus::client
