// The loops' own syscall counters, in strict 16 B pingpong: one read and one write per message in
// every epoll mode, plus one epoll_ctl per message in oneshot mode (the rearm) and none in level
// mode.

#include <unistd.h>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include <atomic>

#include "plexus/tcp_connection.h"
#include "plexus/tcp_server.h"
#include "support/server_harness.h"
#include "support/test_util.h"

namespace plexus {
namespace {

struct Pingpong {
  LoopStats stats;
  uint64_t messages = 0;
};

Pingpong runPingpong(EpollMode mode, int connections, int rounds) {
  TcpServerOptions o;
  o.listen_address = InetAddress(0, true);
  o.threads = 1;
  o.engine.epoll_mode = mode;
  std::atomic<int> established{0};
  testing::ServerHarness h(o, [&](TcpServer& s) {
    testing::installEcho(s);
    s.setConnectionCallback([&](const TcpConnectionPtr& c) { established += c->connected(); });
  });
  EXPECT_TRUE(h.status().ok());
  std::vector<int> fds;
  for (int i = 0; i < connections; ++i) fds.push_back(testing::connectBlocking(h.address()));
  // Wait until the sub-loop has set every connection up: its wake-ups are not part of the figures.
  EXPECT_TRUE(testing::waitUntil([&] { return established.load() == connections; }));
  LoopStats before;
  h.runSync([&] { before = h.server().stats(); });
  const std::string msg(16, 'p');
  Pingpong out;
  for (int r = 0; r < rounds; ++r) {
    for (int fd : fds) {
      EXPECT_TRUE(testing::writeAll(fd, msg));
      EXPECT_EQ(testing::readExactly(fd, msg.size()), msg);
      ++out.messages;
    }
  }
  // Let each sub-loop finish the iteration that sent the last reply before reading its counters.
  for (EventLoop* loop : h.server().loops()) {
    absl::Notification idle;
    loop->queueInLoop([&] { idle.Notify(); });
    testing::awaitOrAbort(idle, "a sub-loop did not run a queued task");
  }
  LoopStats after;
  h.runSync([&] { after = h.server().stats(); });
  for (int fd : fds) ::close(fd);
  out.stats.wait_calls = after.wait_calls - before.wait_calls;
  out.stats.read_calls = after.read_calls - before.read_calls;
  out.stats.write_calls = after.write_calls - before.write_calls;
  out.stats.ctl_calls = after.ctl_calls - before.ctl_calls;
  out.stats.events = after.events - before.events;
  return out;
}

TEST(LoopStatsTest, LevelTriggeredPingpongIsOneReadOneWritePerMessage) {
  Pingpong p = runPingpong(EpollMode::kLevel, 10, 100);
  EXPECT_EQ(p.stats.read_calls, p.messages);
  EXPECT_EQ(p.stats.write_calls, p.messages);
  EXPECT_EQ(p.stats.ctl_calls, 0u);  // level-triggered: no rearm
  EXPECT_LE(p.stats.wait_calls, p.messages + 5);
}

TEST(LoopStatsTest, OneshotPingpongAddsOneRearmPerMessage) {
  Pingpong p = runPingpong(EpollMode::kOneshot, 10, 100);
  EXPECT_EQ(p.stats.read_calls, p.messages);
  EXPECT_EQ(p.stats.write_calls, p.messages);
  // Plus at most the rearms of the two wake-ups the test itself caused to read the counters.
  EXPECT_GE(p.stats.ctl_calls, p.messages);
  EXPECT_LE(p.stats.ctl_calls, p.messages + 2);
}

TEST(LoopStatsTest, LoopStatsAddUpAndPrintAsJson) {
  LoopStats a;
  a.read_calls = 3;
  a.wait_calls = 1;
  LoopStats b = a;
  b += a;
  EXPECT_EQ(b.read_calls, 6u);
  EXPECT_EQ(b.syscalls(), 8u);
  EXPECT_NE(b.toJson().find("\"read_calls\":6"), std::string::npos);
}

}  // namespace
}  // namespace plexus
