// plexus-client bench --churn against the in-process echo server: every connection echoes
// byte-exact and is counted; a server that corrupts bytes or closes early is caught; a port nobody
// listens on gives connect errors and no connection.

#include "client/bench_churn.h"

#include <gtest/gtest.h>

#include <atomic>

#include "plexus/buffer.h"
#include "plexus/tcp_server.h"
#include "support/server_harness.h"

namespace plexus::client {
namespace {

BenchOptions churnOptions(uint16_t port) {
  BenchOptions o;
  o.port = port;
  o.churn = true;
  o.connections = 4;
  o.threads = 2;
  o.size = 16;
  o.duration_s = 0.3;
  o.warmup_s = 0.1;
  return o;
}

TcpServerOptions loopback(AcceptMode mode) {
  TcpServerOptions o;
  o.listen_address = InetAddress(0, true);
  o.threads = 2;
  o.accept_mode = mode;
  return o;
}

TEST(BenchChurnTest, CountsWholeConnectionsAgainstAnEchoServer) {
  for (AcceptMode mode : {AcceptMode::kHandoff, AcceptMode::kReusePort}) {
    testing::ServerHarness h(loopback(mode), testing::installEcho);
    ASSERT_TRUE(h.status().ok()) << h.status();
    auto r = runChurn(churnOptions(h.address().port()), h.address());
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_GT(r->connections, 10u);
    EXPECT_EQ(r->connect_errors, 0u) << r->first_error;
    EXPECT_EQ(r->resets, 0u) << r->first_error;
    EXPECT_EQ(r->mismatches, 0u) << r->first_error;
    EXPECT_GT(r->perSecond(), 0);
    // Every measured connection was accepted (and warm-up ones too).
    EXPECT_GE(h.server().acceptedTotal(), r->connections);
    EXPECT_NE(formatChurn(churnOptions(0), *r).find("connections/s: "), std::string::npos);
  }
}

TEST(BenchChurnTest, CatchesBytesThatDiffer) {
  testing::ServerHarness h(loopback(AcceptMode::kHandoff), [](TcpServer& s) {
    s.setMessageCallback([](const TcpConnectionPtr& conn, Buffer* in) {
      std::string data = in->retrieveAllAsString();
      data[0] = static_cast<char>(data[0] ^ 1);
      conn->send(data);
    });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  auto r = runChurn(churnOptions(h.address().port()), h.address());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->connections, 0u);
  EXPECT_GT(r->mismatches, 0u);
  EXPECT_EQ(r->first_error, "echoed bytes differ");
}

TEST(BenchChurnTest, CountsAServerThatClosesBeforeTheEcho) {
  testing::ServerHarness h(loopback(AcceptMode::kReusePort), [](TcpServer& s) {
    s.setConnectionCallback([](const TcpConnectionPtr& conn) {
      if (conn->connected()) conn->shutdown();
    });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  auto r = runChurn(churnOptions(h.address().port()), h.address());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->connections, 0u);
  EXPECT_GT(r->resets, 0u);
}

TEST(BenchChurnTest, NobodyListeningGivesConnectErrors) {
  uint16_t port = 0;
  {
    testing::ServerHarness h(loopback(AcceptMode::kHandoff), testing::installEcho);
    ASSERT_TRUE(h.status().ok());
    port = h.address().port();
  }
  BenchOptions o = churnOptions(port);
  auto r = runChurn(o, InetAddress(port, true));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->connections, 0u);
  EXPECT_GT(r->connect_errors, 0u);
  EXPECT_NE(r->first_error.find("Connection refused"), std::string::npos) << r->first_error;
}

}  // namespace
}  // namespace plexus::client
