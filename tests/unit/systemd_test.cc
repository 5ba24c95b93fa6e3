// server/systemd.h in process: the datagrams the notify functions send (the test binds the
// NOTIFY_SOCKET), and how inherited sockets are given to listeners. The end-to-end checks with a
// real plexus-server are in tests/integration/systemd_test.cc.

#include "systemd.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "server_options.h"

namespace plexus::server {
namespace {

uint64_t monotonicMicros() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
}

std::string receive(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 5000) <= 0) return "(none)";
  char buf[1024];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  return n < 0 ? "(error)" : std::string(buf, static_cast<size_t>(n));
}

// The notify target is set once per process: one test covers it all.
TEST(SystemdNotifyUnitTest, SendsEachMessageAsOneDatagram) {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  const std::string name = "@plexus-unit-notify-" + std::to_string(::getpid());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data() + 1, name.size() - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr),
                   static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size())),
            0)
      << std::strerror(errno);

  EXPECT_FALSE(sdNotify("READY=1"));  // before takeNotifySocket(): nothing is sent
  ASSERT_EQ(::setenv("NOTIFY_SOCKET", name.c_str(), 1), 0);
  takeNotifySocket();
  EXPECT_EQ(::getenv("NOTIFY_SOCKET"), nullptr);  // taken out of the environment

  notifyReady("listening on 127.0.0.1:7000\nand more");
  EXPECT_EQ(receive(fd), "READY=1\nSTATUS=listening on 127.0.0.1:7000 and more");

  const uint64_t before = monotonicMicros();
  notifyReloading();
  const uint64_t after = monotonicMicros();
  const std::string reloading = receive(fd);
  const std::string prefix = "RELOADING=1\nMONOTONIC_USEC=";
  ASSERT_EQ(reloading.compare(0, prefix.size(), prefix), 0) << reloading;
  const uint64_t usec = std::stoull(reloading.substr(prefix.size()));
  EXPECT_GE(usec, before);
  EXPECT_LE(usec, after);

  notifyStopping();
  EXPECT_EQ(receive(fd), "STOPPING=1");
  ::close(fd);
  // Nobody listens any more: a failure, logged, never fatal.
  EXPECT_FALSE(sdNotify("STATUS=gone"));
}

ServerConfig parse(const std::string& text) {
  auto config = parseServerConfigText(text);
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : ServerConfig{};
}

InheritedSocket socketOn(int fd, const std::string& ip, uint16_t port, std::string name = "") {
  auto addr = InetAddress::fromIp(ip, port);
  EXPECT_TRUE(addr.ok());
  return InheritedSocket{.fd = fd, .name = std::move(name), .address = *addr};
}

TEST(SocketActivationUnitTest, WithoutListenTheInheritedSocketsAreTheListeners) {
  ServerConfig config = parse("plugin = http\nplugin-arg = root=/srv\n");
  ASSERT_TRUE(assignInheritedSockets({socketOn(3, "127.0.0.1", 7000, "web"),
                                      socketOn(4, "::1", 7001)},
                                     &config)
                  .ok());
  ASSERT_EQ(config.listeners.size(), 2u);
  EXPECT_EQ(config.listeners[0].address.toIpPort(), "127.0.0.1:7000");
  EXPECT_EQ(config.listeners[0].inherited_fd, 3);
  EXPECT_EQ(config.listeners[0].plugin, "http");
  EXPECT_EQ(config.listeners[0].plugin_args.at("root"), "/srv");
  EXPECT_EQ(config.listeners[0].spec, "inherited fd 3 (web) 127.0.0.1:7000");
  EXPECT_EQ(config.listeners[1].address.toIpPort(), "[::1]:7001");
  EXPECT_EQ(config.listeners[1].inherited_fd, 4);
  EXPECT_EQ(config.server.listen_address.toIpPort(), "127.0.0.1:7000");
}

TEST(SocketActivationUnitTest, WithListenEachSocketGoesToTheListenerOfItsAddress) {
  ServerConfig config =
      parse("listen = 127.0.0.1:7000 echo\nlisten = 127.0.0.1:7001 http\nlisten = :7002 echo\n");
  ASSERT_TRUE(
      assignInheritedSockets({socketOn(3, "0.0.0.0", 7002), socketOn(4, "127.0.0.1", 7000)}, &config)
          .ok());
  ASSERT_EQ(config.listeners.size(), 3u);
  EXPECT_EQ(config.listeners[0].inherited_fd, 4);
  EXPECT_EQ(config.listeners[1].inherited_fd, -1);  // binds its own
  EXPECT_EQ(config.listeners[2].inherited_fd, 3);
}

TEST(SocketActivationUnitTest, UnmatchedOrDoubledSocketsAreErrors) {
  ServerConfig config = parse("listen = 127.0.0.1:7000 echo\nlisten = 127.0.0.1:7001 echo\n");
  absl::Status s = assignInheritedSockets({socketOn(3, "127.0.0.1", 8000, "web")}, &config);
  EXPECT_EQ(s.message(),
            "inherited socket fd 3 (web) 127.0.0.1:8000 matches no --listen address "
            "(127.0.0.1:7000, 127.0.0.1:7001)");
  // 0.0.0.0 is not 127.0.0.1: addresses are compared as they are, not by what they cover.
  config = parse("listen = 127.0.0.1:7000 echo\n");
  EXPECT_FALSE(assignInheritedSockets({socketOn(3, "0.0.0.0", 7000)}, &config).ok());
  config = parse("listen = 127.0.0.1:7000 echo\n");
  s = assignInheritedSockets({socketOn(3, "127.0.0.1", 7000), socketOn(4, "127.0.0.1", 7000)},
                             &config);
  EXPECT_EQ(s.message(), "inherited sockets fd 3 and fd 4 both listen on 127.0.0.1:7000");
}

TEST(SocketActivationUnitTest, NoSocketsChangeNothing) {
  ServerConfig config = parse("port = 7000\n");
  ASSERT_TRUE(assignInheritedSockets({}, &config).ok());
  ASSERT_EQ(config.listeners.size(), 1u);
  EXPECT_EQ(config.listeners[0].inherited_fd, -1);
  EXPECT_EQ(config.listeners[0].address.toIpPort(), "0.0.0.0:7000");
}

TEST(SocketActivationUnitTest, ListenPidOfAnotherProcessLeavesTheFdsAlone) {
  ::setenv("LISTEN_PID", std::to_string(::getpid() + 1).c_str(), 1);
  ::setenv("LISTEN_FDS", "1", 1);
  auto sockets = takeInheritedSockets();
  ASSERT_TRUE(sockets.ok()) << sockets.status();
  EXPECT_TRUE(sockets->empty());
  EXPECT_EQ(::getenv("LISTEN_PID"), nullptr);
  EXPECT_EQ(::getenv("LISTEN_FDS"), nullptr);
}

}  // namespace
}  // namespace plexus::server
