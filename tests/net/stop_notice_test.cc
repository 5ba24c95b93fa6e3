// TcpServer::stop() and connections that have not sent anything yet: the client's first request,
// on its way when the stop came, is answered before the stop notice closes the connection; a
// connection that stays silent is told after the first-bytes window (1 s), not at the end of the
// grace period. Both accept modes.

#include <unistd.h>

#include <chrono>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "plexus/tcp_server.h"
#include "support/server_harness.h"
#include "support/test_util.h"

namespace plexus {
namespace {

using testing::ServerHarness;

class StopNoticeTest : public ::testing::TestWithParam<AcceptMode> {
 protected:
  TcpServerOptions options() const {
    TcpServerOptions o;
    o.listen_address = InetAddress(0, true);
    o.threads = 2;
    o.accept_mode = GetParam();
    return o;
  }
};

TEST_P(StopNoticeTest, AFirstRequestOnItsWayIsAnsweredThenTheConnectionCloses) {
  ServerHarness h(options(), testing::installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  int fd = testing::connectBlocking(h.address());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(testing::waitUntil([&] { return h.server().connectionCount() == 1; }));
  absl::Notification stopped;
  h.runSync([&] { h.server().stop(std::chrono::seconds(30), [&] { stopped.Notify(); }); });
  // The stop has begun (its listeners are closed) before the request is sent.
  ASSERT_TRUE(testing::writeAll(fd, "late request"));
  EXPECT_EQ(testing::readExactly(fd, 12), "late request");
  bool eof = false;
  EXPECT_EQ(testing::readUntilEof(fd, &eof), "");
  EXPECT_TRUE(eof);
  ::close(fd);
  EXPECT_TRUE(stopped.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST_P(StopNoticeTest, ASilentNewConnectionIsToldAfterTheWindowNotTheGrace) {
  ServerHarness h(options(), testing::installEcho);
  ASSERT_TRUE(h.status().ok()) << h.status();
  int fd = testing::connectBlocking(h.address(), std::chrono::milliseconds(20000));
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(testing::waitUntil([&] { return h.server().connectionCount() == 1; }));
  absl::Notification stopped;
  const auto begin = std::chrono::steady_clock::now();
  h.runSync([&] { h.server().stop(std::chrono::seconds(30), [&] { stopped.Notify(); }); });
  bool eof = false;
  EXPECT_EQ(testing::readUntilEof(fd, &eof), "");
  EXPECT_TRUE(eof);
  const auto took = std::chrono::steady_clock::now() - begin;
  EXPECT_LT(took, std::chrono::seconds(10)) << "waited for the grace period";
  EXPECT_GE(took, std::chrono::milliseconds(900)) << "not given its first-bytes window";
  ::close(fd);
  EXPECT_TRUE(stopped.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

INSTANTIATE_TEST_SUITE_P(AcceptModes, StopNoticeTest,
                         ::testing::Values(AcceptMode::kHandoff, AcceptMode::kReusePort),
                         [](const auto& info) {
                           return info.param == AcceptMode::kHandoff ? "Handoff" : "ReusePort";
                         });

}  // namespace
}  // namespace plexus
