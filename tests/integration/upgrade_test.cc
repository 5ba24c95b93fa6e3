// Zero-downtime upgrade with --reuseport: a client makes 200 connections per second (connect, send
// 16..64 B, read the echo byte-exact, close) throughout while an old plexus-server serves, a new
// one starts beside it on the same port, and the old one gets SIGTERM and exits 0. Not one
// connection is refused, reset or cut short. Runs in a network namespace of its own with
// net.ipv4.tcp_migrate_req = 1 (root only; skipped otherwise).

#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "integration/upgrade_support.h"

namespace plexus::testing {
namespace {

using std::chrono::milliseconds;
using upgrade::Server;

// "accept_calls":N from the --stats line.
uint64_t acceptCalls(const std::string& log) {
  const std::string key = "\"accept_calls\":";
  size_t at = log.find(key);
  return at == std::string::npos ? 0 : std::stoull(log.substr(at + key.size()));
}

void upgradeUnderLoad(const std::string& accept_mode) {
  upgrade::PrivateNetwork net(/*migrate=*/1);
  if (!net.ok()) GTEST_SKIP() << net.why();
  const uint16_t port = upgrade::freeLoopbackPort();
  const std::vector<std::string> args = {
      "--listen", "127.0.0.1:" + std::to_string(port), "--reuseport", "--threads", "2",
      "--accept-mode", accept_mode, "--stats", "--shutdown-timeout", "5"};

  Server old_server(args);
  ASSERT_TRUE(old_server.waitFor("listening on")) << old_server.log();
  EXPECT_EQ(old_server.log().find("tcp_migrate_req"), std::string::npos)
      << "no warning when it is 1: " << old_server.log();
  const auto begin = std::chrono::steady_clock::now();
  upgrade::Churner client(port, 200);

  std::this_thread::sleep_for(milliseconds(700));  // the old one alone, under load
  Server new_server(args);
  ASSERT_TRUE(new_server.waitFor("listening on")) << new_server.log();
  std::this_thread::sleep_for(milliseconds(500));  // both share the port
  EXPECT_EQ(old_server.stop(SIGTERM), 0) << old_server.log();
  // The rest of ~3 s on the new one alone.
  std::this_thread::sleep_until(begin + milliseconds(3000));
  const upgrade::ChurnCounts c = client.stop();
  EXPECT_EQ(new_server.stop(SIGTERM), 0) << new_server.log();

  EXPECT_GE(c.ok, 300) << "about 200 a second for 3 s (fewer on a busy machine)";
  EXPECT_EQ(c.refused, 0) << c.first_error;
  EXPECT_EQ(c.reset, 0) << c.first_error;
  EXPECT_EQ(c.mismatched, 0) << c.first_error;
  EXPECT_EQ(c.other, 0) << c.first_error;
  EXPECT_GE(c.bytes_echoed, 16u * static_cast<uint64_t>(c.ok));
  // Each one took part.
  EXPECT_GT(acceptCalls(old_server.log()), 0u) << old_server.log();
  EXPECT_GT(acceptCalls(new_server.log()), 0u) << new_server.log();
  std::printf("upgrade (%s accept): %d connections echoed, %llu bytes, %d failed\n",
              accept_mode.c_str(), c.ok, static_cast<unsigned long long>(c.bytes_echoed),
              c.failed());
}

TEST(UpgradeTest, NothingLostWithMainLoopAccept) { upgradeUnderLoad("handoff"); }

TEST(UpgradeTest, NothingLostWithPerThreadAccept) { upgradeUnderLoad("reuseport"); }

// Without migration the server says so at start.
TEST(UpgradeTest, WarnsWhenRequestsCannotMigrate) {
  upgrade::PrivateNetwork net(/*migrate=*/0);
  if (!net.ok()) GTEST_SKIP() << net.why();
  const uint16_t port = upgrade::freeLoopbackPort();
  Server server({"--listen", "127.0.0.1:" + std::to_string(port), "--reuseport", "--threads", "1"});
  ASSERT_TRUE(server.waitFor("listening on")) << server.log();
  EXPECT_NE(server.log().find("net.ipv4.tcp_migrate_req is 0"), std::string::npos) << server.log();
  EXPECT_EQ(server.stop(SIGTERM), 0);
}

}  // namespace
}  // namespace plexus::testing
