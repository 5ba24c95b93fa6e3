// TcpServerOptions::listen_fd: a TcpServer accepts on a socket that is already listening (socket
// activation) instead of binding, and refuses an fd that is not a listening TCP socket.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "support/server_harness.h"
#include "support/test_util.h"

namespace plexus::testing {
namespace {

// A blocking, inheritable TCP socket bound to 127.0.0.1:0, as a service manager hands it over;
// listening when `listen` says so.
int boundSocket(bool listen) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) return -1;
  if (listen && ::listen(fd, 16) < 0) return -1;
  return fd;
}

TEST(TcpServerListenFdTest, AcceptsOnTheGivenSocket) {
  const int fd = boundSocket(true);
  ASSERT_GE(fd, 0);
  TcpServerOptions options;
  options.listen_address = InetAddress(9, /*loopback_only=*/true);  // not used: never bound
  options.listen_fd = fd;
  options.threads = 1;
  ServerHarness harness(options, installEcho);
  ASSERT_TRUE(harness.status().ok()) << harness.status();
  // Its address is the socket's, made non-blocking and close-on-exec.
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  EXPECT_EQ(harness.server().listenAddress().port(), ntohs(addr.sin_port));
  EXPECT_TRUE(::fcntl(fd, F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);

  int conn = connectBlocking(harness.address());
  ASSERT_GE(conn, 0);
  const std::string data = randomBytes(64 * 1024, 5);
  ASSERT_TRUE(writeAll(conn, data));
  EXPECT_TRUE(readExactly(conn, data.size()) == data);
  ::close(conn);
  harness.stop(std::chrono::seconds(1));
  // The server owned it: closed with the server.
  EXPECT_LT(::fcntl(fd, F_GETFD), 0);
}

TEST(TcpServerListenFdTest, RefusesASocketThatDoesNotListen) {
  const int fd = boundSocket(false);
  ASSERT_GE(fd, 0);
  TcpServerOptions options;
  options.listen_fd = fd;
  ServerHarness harness(options, installEcho);
  EXPECT_EQ(harness.status().message(),
            "cannot accept on fd " + std::to_string(fd) + ": not a listening socket");
  EXPECT_LT(::fcntl(fd, F_GETFD), 0);  // taken, and closed
}

TEST(TcpServerListenFdTest, RefusesAnFdThatIsNotATcpSocket) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  TcpServerOptions options;
  options.listen_fd = pipe_fds[0];
  ServerHarness harness(options, installEcho);
  EXPECT_EQ(harness.status().message(),
            "cannot accept on fd " + std::to_string(pipe_fds[0]) + ": not a TCP socket");
  ::close(pipe_fds[1]);
}

}  // namespace
}  // namespace plexus::testing
