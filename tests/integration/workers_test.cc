// plexus-server --workers N: a supervisor forks N worker processes sharing the port; a worker
// killed with SIGKILL is replaced and the port keeps echoing byte-exact; SIGHUP is forwarded;
// SIGTERM stops the workers gracefully and everything exits 0; a worker that cannot start (bad
// plugin) makes the supervisor exit 2.

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <filesystem>

#include "integration/upgrade_support.h"
#include "support/test_util.h"

namespace plexus::testing {
namespace {

using upgrade::Server;

// The supervisor's children, from /proc (the kernel lists them per thread: its main thread's).
std::vector<pid_t> childrenOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::vector<pid_t> out;
  for (pid_t p; in >> p;) out.push_back(p);
  std::sort(out.begin(), out.end());
  return out;
}

// `n` connections, each echoing 16..64 bytes; the counts of what went wrong.
upgrade::ChurnCounts churn(uint16_t port, int n) {
  upgrade::ChurnCounts c;
  std::mt19937_64 rng(n);
  for (int i = 0; i < n; ++i) upgrade::churnOnce(port, rng, &c);
  return c;
}

TEST(WorkersTest, AKilledWorkerIsReplacedAndThePortKeepsServing) {
  const uint16_t port = upgrade::freeLoopbackPort();
  Server sup({"--listen", "127.0.0.1:" + std::to_string(port), "--workers", "2", "--threads", "1"});
  ASSERT_TRUE(sup.waitFor("listening on", 2)) << sup.log();
  std::vector<pid_t> workers = childrenOf(sup.pid());
  ASSERT_EQ(workers.size(), 2u) << sup.log();

  upgrade::ChurnCounts before = churn(port, 100);
  EXPECT_EQ(before.ok, 100) << before.first_error;

  const pid_t victim = workers[0];
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  ASSERT_TRUE(sup.waitFor("(pid " + std::to_string(victim) + ") killed by SIGKILL: restarting"))
      << sup.log();
  ASSERT_TRUE(sup.waitFor("listening on", 3)) << sup.log();
  std::vector<pid_t> now;
  ASSERT_TRUE(waitUntil([&] {
    now = childrenOf(sup.pid());
    return now.size() == 2;
  }));
  EXPECT_EQ(std::count(now.begin(), now.end(), victim), 0);
  EXPECT_EQ(std::count(now.begin(), now.end(), workers[1]), 1) << "the other one kept running";

  upgrade::ChurnCounts after = churn(port, 100);
  EXPECT_EQ(after.ok, 100) << after.first_error;

  // SIGHUP goes to every worker; none dies of it.
  ::kill(sup.pid(), SIGHUP);
  ASSERT_TRUE(sup.waitFor("SIGHUP: forwarded to 2 workers")) << sup.log();
  upgrade::ChurnCounts after_hup = churn(port, 20);
  EXPECT_EQ(after_hup.ok, 20) << after_hup.first_error;
  EXPECT_EQ(childrenOf(sup.pid()), now);

  EXPECT_EQ(sup.stop(SIGTERM), 0) << sup.log();
  for (pid_t w : now) {
    EXPECT_NE(sup.log().find("(pid " + std::to_string(w) + ") exited with status 0"),
              std::string::npos)
        << sup.log();
  }
  EXPECT_NE(sup.log().find("supervisor stopped"), std::string::npos);
  // Nothing listens any more.
  upgrade::ChurnCounts gone = churn(port, 1);
  EXPECT_EQ(gone.refused, 1);
}

TEST(WorkersTest, AWorkerThatCannotStartStopsTheSupervisor) {
  const uint16_t port = upgrade::freeLoopbackPort();
  Server sup({"--listen", "127.0.0.1:" + std::to_string(port), "--workers", "2", "--threads", "1",
              "--plugin", "/nonexistent/plugin.so"});
  EXPECT_EQ(sup.stop(0, std::chrono::milliseconds(20000)), 2) << sup.log();
  EXPECT_NE(sup.log().find("(bad configuration): stopping"), std::string::npos) << sup.log();
}

// The greeting line of the reloadable test plugin (tests/plugin/test_plugins/reloadable.cc):
// "reloadable vN tag= loads=1\n", sent on connect.
std::string greetingAt(uint16_t port) {
  const int fd = connectBlocking(InetAddress(port, /*loopback_only=*/true));
  if (fd < 0) return "connect failed";
  std::string line;
  while (line.empty() || line.back() != '\n') {
    std::string c = readExactly(fd, 1);
    if (c.empty()) break;
    line += c;
  }
  ::close(fd);
  return line;
}

// A worker that replaces a crashed one after a reload serves what its reloaded siblings serve: it
// reloads once it listens, instead of serving the settings the supervisor started with.
TEST(WorkersTest, AWorkerRestartedAfterAReloadServesTheReloadedSettings) {
  namespace fs = std::filesystem;
  const std::string dir =
      fs::temp_directory_path() / ("plexus-workers-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string config = dir + "/server.conf";
  const std::string plugin = std::string(PLEXUS_TEST_PLUGIN_DIR) + "/reloadable_v1.so";
  auto writeConfig = [&](const std::string& tag) {
    std::ofstream(config + ".new") << "plugin = " << plugin << "\nplugin-arg = tag=" << tag
                                   << "\n";
    fs::rename(config + ".new", config);
  };
  writeConfig("one");

  const uint16_t port = upgrade::freeLoopbackPort();
  Server sup({"--listen", "127.0.0.1:" + std::to_string(port), "--workers", "2", "--threads", "1",
              "--config", config});
  ASSERT_TRUE(sup.waitFor("listening on", 2)) << sup.log();
  for (int i = 0; i < 10; ++i) ASSERT_EQ(greetingAt(port), "reloadable v1 tag=one loads=1\n");

  writeConfig("two");
  ::kill(sup.pid(), SIGHUP);
  ASSERT_TRUE(sup.waitFor("reload #1 done", 2)) << sup.log();

  std::vector<pid_t> workers = childrenOf(sup.pid());
  ASSERT_EQ(workers.size(), 2u) << sup.log();
  ASSERT_EQ(::kill(workers[0], SIGKILL), 0);
  ASSERT_TRUE(sup.waitFor("killed by SIGKILL: restarting")) << sup.log();
  // The new worker listens, then reloads: its "reload #1 done" is the third.
  ASSERT_TRUE(sup.waitFor("reload #1 done", 3)) << sup.log();
  // Whichever worker the kernel picks, every connection gets the reloaded argument.
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(greetingAt(port), "reloadable v1 tag=two loads=1\n") << "connection " << i;
  }
  EXPECT_EQ(sup.stop(SIGTERM), 0) << sup.log();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace plexus::testing
