// plexus-server under a service manager, the test playing systemd's part (server/systemd.h):
//
// - sd_notify: a unix datagram socket bound to a temporary path (or an abstract name) is given as
//   NOTIFY_SOCKET; "READY=1" arrives once the port accepts, "STOPPING=1" after SIGTERM. With
//   --workers every datagram comes from the supervisor's pid (SO_PASSCRED tells the sender, as
//   systemd checks for NotifyAccess=main): one READY=1 once both workers listen, RELOADING=1 then
//   READY=1 around a SIGHUP, STOPPING=1.
// - Socket activation: a listening socket made here is handed over as fd 3 with LISTEN_PID (set in
//   the child, after fork) and LISTEN_FDS; the server accepts on it without binding. A LISTEN_PID
//   that is not the server's is ignored; an inherited socket that matches no listener is a
//   one-line error.
//
// Every check goes through the real plexus-server process and real sockets.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "integration/child_process.h"
#include "support/test_util.h"

extern char** environ;

namespace plexus::testing {
namespace {

using std::chrono::milliseconds;

const std::string kServer = std::string(PLEXUS_BIN_DIR) + "/plexus-server";
const std::string kEchoPlugin = std::string(PLEXUS_PLUGIN_DIR) + "/echo.so";
constexpr milliseconds kTimeout(20000);

// A listening TCP socket on 127.0.0.1, on a port the kernel picks; close-on-exec.
int listeningSocket(uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
      ::listen(fd, 64) < 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// Writes `value` in decimal at `out` (async-signal-safe, for the child between fork and exec).
void writeDecimal(long value, char* out) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0);
  while (n > 0) *out++ = digits[--n];
  *out = '\0';
}

struct SpawnSpec {
  std::vector<std::string> args = {};  // after the program
  std::vector<std::string> env = {};   // NAME=VALUE added to (or replacing in) the test's environment
  std::vector<int> inherited = {};     // become fds 3, 4, ... in the child
  // LISTEN_PID=<the child's own pid>, written in the child after fork.
  bool listen_pid_self = false;
};

// plexus-server as systemd would start it; its stderr on a pipe.
class Server {
 public:
  explicit Server(const SpawnSpec& spec) {
    std::vector<std::string> argv = {kServer};
    argv.insert(argv.end(), spec.args.begin(), spec.args.end());
    std::vector<std::string> env;
    auto overridden = [&](const std::string& entry) {
      const std::string name = entry.substr(0, entry.find('=') + 1);
      for (const std::string& e : spec.env) {
        if (e.compare(0, name.size(), name) == 0) return true;
      }
      return name == "NOTIFY_SOCKET=" || name == "LISTEN_PID=" || name == "LISTEN_FDS=" ||
             name == "LISTEN_FDNAMES=";
    };
    for (char** e = environ; *e != nullptr; ++e) {
      if (!overridden(*e)) env.emplace_back(*e);
    }
    env.insert(env.end(), spec.env.begin(), spec.env.end());
    if (spec.listen_pid_self) env.push_back("LISTEN_PID=" + std::string(24, ' '));
    std::vector<char*> args_c, env_c;
    for (std::string& a : argv) args_c.push_back(a.data());
    args_c.push_back(nullptr);
    for (std::string& e : env) env_c.push_back(e.data());
    env_c.push_back(nullptr);
    char* listen_pid = spec.listen_pid_self ? env_c[env.size() - 1] + std::strlen("LISTEN_PID=")
                                            : nullptr;
    // Out of the way of fds 3, 4...: the dup2 calls below must not overwrite one another.
    std::vector<int> high;
    for (int fd : spec.inherited) high.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 100));
    int err[2];
    if (::pipe2(err, O_CLOEXEC) < 0) return;
    pid_t pid = ::fork();
    if (pid == 0) {
      // Only async-signal-safe calls from here to exec.
      ::signal(SIGPIPE, SIG_DFL);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      int null_fd = ::open("/dev/null", O_RDONLY);
      ::dup2(null_fd, STDIN_FILENO);
      ::dup2(err[1], STDERR_FILENO);
      for (size_t i = 0; i < high.size(); ++i) ::dup2(high[i], 3 + static_cast<int>(i));
      if (listen_pid != nullptr) writeDecimal(::getpid(), listen_pid);
      ::execve(args_c[0], args_c.data(), env_c.data());
      ::_exit(127);
    }
    for (int fd : high) ::close(fd);
    ::close(err[1]);
    pid_ = pid;
    err_ = err[0];
  }
  ~Server() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (err_ >= 0) ::close(err_);
  }

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // Until its log has `needle` (or it exits, or the time is up).
  bool waitLog(const std::string& needle) {
    return child::readUntilContains(err_, &log_, needle, kTimeout);
  }
  // Until its log has `needle` `n` times.
  bool waitLogCount(const std::string& needle, int n, milliseconds timeout = kTimeout) {
    size_t from = 0;
    for (int i = 0; i < n; ++i) {
      if (!child::readUntilContains(err_, &log_, needle, timeout, from)) return false;
      from = log_.find(needle, from) + needle.size();
    }
    return true;
  }
  const std::string& log() const { return log_; }
  void signal(int sig) { ::kill(pid_, sig); }
  // Its exit status (128 + N for signal N), after reading the rest of its stderr; -1 at timeout.
  int wait() {
    child::readUntilContains(err_, &log_, std::string(1, '\0'), kTimeout);  // until EOF
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(kTimeout.count()));
      ::close(pidfd);
      if (r <= 0) return -1;
    }
    int status = 0;
    if (::waitpid(pid_, &status, 0) != pid_) return -1;
    pid_ = -1;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  int err_ = -1;
  std::string log_;
};

// Sends `data` to 127.0.0.1:port and reads as many bytes back, writing and reading at once.
std::string echo(uint16_t port, const std::string& data) {
  int fd = connectBlocking(InetAddress(port, /*loopback_only=*/true));
  if (fd < 0) return "(cannot connect)";
  std::thread writer([&] { EXPECT_TRUE(writeAll(fd, data)); });
  std::string reply = readExactly(fd, data.size());
  writer.join();
  ::close(fd);
  return reply;
}

// systemd's end of NOTIFY_SOCKET: a datagram socket bound to a path in a fresh temp directory, or
// to an abstract name.
class NotifySocket {
 public:
  explicit NotifySocket(bool abstract) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    socklen_t len;
    if (abstract) {
      name_ = "@plexus-notify-test-" + std::to_string(::getpid()) + "-" + std::to_string(++count_);
      std::memcpy(addr.sun_path + 1, name_.data() + 1, name_.size() - 1);
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
    } else {
      std::string dir = ::testing::TempDir() + "plexus_notify_XXXXXX";
      if (::mkdtemp(dir.data()) == nullptr) return;
      dir_ = dir;
      name_ = dir + "/notify";
      std::memcpy(addr.sun_path, name_.data(), name_.size());
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size() + 1);
    }
    // As systemd does: each datagram comes with its sender's credentials.
    const int on = 1;
    if (::setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) < 0 ||
        ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) < 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~NotifySocket() {
    if (fd_ >= 0) ::close(fd_);
    if (!dir_.empty()) {
      ::unlink(name_.c_str());
      ::rmdir(dir_.c_str());
    }
  }
  bool ok() const { return fd_ >= 0; }
  const std::string& name() const { return name_; }
  // The next datagram, or "(none)" after `timeout`; `sender`: the pid of the process that sent it
  // (SCM_CREDENTIALS), -1 if none came.
  std::string receive(milliseconds timeout = kTimeout, pid_t* sender = nullptr) {
    if (sender != nullptr) *sender = -1;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return "(none)";
    char buf[4096];
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd_, &msg, 0);
    if (n < 0) return "(error)";
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (sender != nullptr && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        ucred cred;
        std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
        *sender = cred.pid;
      }
    }
    return std::string(buf, static_cast<size_t>(n));
  }

 private:
  static inline int count_ = 0;
  int fd_ = -1;
  std::string name_;
  std::string dir_;
};

void readyThenStopping(bool abstract) {
  NotifySocket notify(abstract);
  ASSERT_TRUE(notify.ok()) << std::strerror(errno);
  const uint16_t port = freePort();
  const std::string address = "127.0.0.1:" + std::to_string(port);
  Server server({.args = {"--listen", address, "--plugin", kEchoPlugin, "--threads", "2"},
                 .env = {"NOTIFY_SOCKET=" + notify.name()}});
  ASSERT_TRUE(server.started());

  EXPECT_EQ(notify.receive(), "READY=1\nSTATUS=listening on " + address);
  // Ready means accepting: the first connection, made without retrying, is served.
  const std::string data = randomBytes(256 * 1024, 7);
  EXPECT_TRUE(echo(port, data) == data) << "256 KiB did not come back as sent";
  // Nothing else is said while it serves.
  EXPECT_EQ(notify.receive(milliseconds(50)), "(none)");

  server.signal(SIGTERM);
  EXPECT_EQ(notify.receive(), "STOPPING=1");
  EXPECT_EQ(server.wait(), 0) << server.log();
  EXPECT_EQ(notify.receive(milliseconds(50)), "(none)");
}

TEST(SystemdNotifyTest, ReadyOnceListeningThenStoppingOnSigterm) { readyThenStopping(false); }

TEST(SystemdNotifyTest, AbstractNotifySocket) { readyThenStopping(true); }

// The supervisor's children (its workers), from /proc.
std::vector<pid_t> childrenOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::vector<pid_t> out;
  for (pid_t p; in >> p;) out.push_back(p);
  std::sort(out.begin(), out.end());
  return out;
}

// The inodes of the TCP sockets listening on `port` (/proc/net/tcp: this network namespace).
std::set<std::string> listeningInodes(uint16_t port) {
  std::ifstream in("/proc/net/tcp");
  std::set<std::string> out;
  std::string line;
  std::getline(in, line);  // the header
  char local_port[8];
  std::snprintf(local_port, sizeof local_port, ":%04X", port);
  while (std::getline(in, line)) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    std::istringstream fields(line);
    std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
    fields >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
    if (state == "0A" && local.size() > 5 && local.substr(local.size() - 5) == local_port) {
      out.insert(inode);
    }
  }
  return out;
}

// How many of `inodes` process `pid` holds open.
int socketsHeld(pid_t pid, const std::set<std::string>& inodes) {
  int held = 0;
  for (const std::string& inode : inodes) {
    const std::string target = "socket:[" + inode + "]";
    const std::string dir = "/proc/" + std::to_string(pid) + "/fd/";
    for (int fd = 0; fd < 1024; ++fd) {
      char link[64];
      const ssize_t n = ::readlink((dir + std::to_string(fd)).c_str(), link, sizeof link);
      if (n > 0 && std::string(link, static_cast<size_t>(n)) == target) {
        ++held;
        break;
      }
    }
  }
  return held;
}

TEST(SystemdNotifyTest, WorkersReportThroughTheSupervisor) {
  NotifySocket notify(false);
  ASSERT_TRUE(notify.ok()) << std::strerror(errno);
  const uint16_t port = freePort();
  const std::string address = "127.0.0.1:" + std::to_string(port);
  Server server({.args = {"--listen", address, "--plugin", kEchoPlugin, "--threads", "1",
                          "--workers", "2"},
                 .env = {"NOTIFY_SOCKET=" + notify.name()}});
  ASSERT_TRUE(server.started());
  const std::string ready = "READY=1\nSTATUS=2 workers listening on " + address;

  // One READY=1, from the supervisor (systemd's main pid), once both workers listen.
  pid_t from = 0;
  ASSERT_EQ(notify.receive(kTimeout, &from), ready) << server.log();
  EXPECT_EQ(from, server.pid());
  const std::vector<pid_t> workers = childrenOf(server.pid());
  ASSERT_EQ(workers.size(), 2u);
  const std::set<std::string> listening = listeningInodes(port);
  EXPECT_EQ(listening.size(), 2u) << "one SO_REUSEPORT socket per worker";
  for (pid_t w : workers) EXPECT_EQ(socketsHeld(w, listening), 1) << "worker " << w;
  for (int i = 0; i < 20; ++i) {
    const std::string data = randomBytes(4096 + i, static_cast<uint64_t>(i));
    ASSERT_TRUE(echo(port, data) == data) << "connection " << i << " not echoed as sent";
  }
  EXPECT_EQ(notify.receive(milliseconds(50)), "(none)") << "READY=1 once, and nothing else";

  // SIGHUP: RELOADING=1 at once, READY=1 once both workers have reloaded (each logs it first).
  server.signal(SIGHUP);
  const std::string reloading = notify.receive(kTimeout, &from);
  EXPECT_EQ(reloading.rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0u) << reloading;
  EXPECT_EQ(from, server.pid());
  EXPECT_EQ(notify.receive(kTimeout, &from), ready) << server.log();
  EXPECT_EQ(from, server.pid());
  EXPECT_TRUE(server.waitLogCount("reload #1 done", 2, milliseconds(2000))) << server.log();
  EXPECT_EQ(echo(port, "after the reload\n"), "after the reload\n");

  // A worker killed and restarted: STATUS= says so, no READY=1 again.
  ASSERT_EQ(::kill(workers[1], SIGKILL), 0);
  const std::string down = notify.receive(kTimeout, &from);
  EXPECT_EQ(down.rfind("STATUS=1 of 2 workers listening on " + address + "; worker ", 0), 0u)
      << down;
  EXPECT_NE(down.find("(pid " + std::to_string(workers[1]) + ") killed by SIGKILL: restarting"),
            std::string::npos)
      << down;
  EXPECT_EQ(from, server.pid());
  EXPECT_EQ(notify.receive(kTimeout, &from), "STATUS=2 workers listening on " + address)
      << server.log();
  EXPECT_EQ(from, server.pid());
  EXPECT_EQ(echo(port, "restarted\n"), "restarted\n");

  // SIGTERM: STOPPING=1 from the supervisor, which exits 0 with its workers, and nothing more.
  server.signal(SIGTERM);
  EXPECT_EQ(notify.receive(kTimeout, &from), "STOPPING=1");
  EXPECT_EQ(from, server.pid());
  EXPECT_EQ(server.wait(), 0) << server.log();
  EXPECT_EQ(notify.receive(milliseconds(50)), "(none)");
}

TEST(SystemdNotifyTest, UnreachableNotifySocketIsLoggedOnceAndServes) {
  const uint16_t port = freePort();
  Server server({.args = {"--listen", "127.0.0.1:" + std::to_string(port), "--plugin",
                          kEchoPlugin, "--threads", "1"},
                 .env = {"NOTIFY_SOCKET=/nonexistent/plexus/notify"}});
  ASSERT_TRUE(server.waitLog("sd_notify: cannot send READY=1 to NOTIFY_SOCKET "
                             "'/nonexistent/plexus/notify': No such file or directory"))
      << server.log();
  EXPECT_EQ(echo(port, "still serving\n"), "still serving\n");
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(), 0) << server.log();
  // STOPPING=1 failed too, but only the first failure is a warning.
  size_t count = 0;
  for (size_t at = 0; (at = server.log().find("sd_notify:", at)) != std::string::npos; ++at) {
    ++count;
  }
  EXPECT_EQ(count, 1u) << server.log();
}

TEST(SocketActivationTest, InheritedSocketBecomesTheListener) {
  uint16_t port = 0;
  int sock = listeningSocket(&port);
  ASSERT_GE(sock, 0) << std::strerror(errno);
  NotifySocket notify(false);
  ASSERT_TRUE(notify.ok());
  // No --listen: the inherited socket is the listener, served by --plugin.
  Server server({.args = {"--plugin", kEchoPlugin, "--threads", "2"},
                 .env = {"LISTEN_FDS=1", "LISTEN_FDNAMES=plexus-server.socket",
                         "NOTIFY_SOCKET=" + notify.name()},
                 .inherited = {sock},
                 .listen_pid_self = true});
  ::close(sock);  // the server's copy is the only one left
  ASSERT_TRUE(server.started());
  const std::string address = "127.0.0.1:" + std::to_string(port);
  EXPECT_EQ(notify.receive(), "READY=1\nSTATUS=listening on " + address) << server.log();
  ASSERT_TRUE(server.waitLog(" listening on " + address)) << server.log();

  const std::string text = "socket activated\n";
  EXPECT_EQ(echo(port, text), text);
  const std::string data = randomBytes(1 << 20, 11);
  EXPECT_TRUE(echo(port, data) == data) << "1 MiB did not come back as sent";
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(), 0) << server.log();
  // The socket went with the server: nothing listens there any more.
  EXPECT_LT(connectBlocking(InetAddress(port, true)), 0);
}

TEST(SocketActivationTest, InheritedSocketsMatchTheirListenersByAddress) {
  uint16_t port_a = 0, port_b = 0;
  int a = listeningSocket(&port_a);
  int b = listeningSocket(&port_b);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  const uint16_t port_own = freePort();
  const std::string addr_a = "127.0.0.1:" + std::to_string(port_a);
  const std::string addr_b = "127.0.0.1:" + std::to_string(port_b);
  const std::string addr_own = "127.0.0.1:" + std::to_string(port_own);
  // fd 3 is b's, fd 4 a's: the order of the fds does not matter, their addresses do. The third
  // listener has no inherited socket and binds its own.
  Server server({.args = {"--listen", addr_a + " " + kEchoPlugin, "--listen",
                          addr_own + " " + kEchoPlugin, "--listen", addr_b + " " + kEchoPlugin,
                          "--threads", "1"},
                 .env = {"LISTEN_FDS=2"},
                 .inherited = {b, a},
                 .listen_pid_self = true});
  ASSERT_TRUE(server.waitLog(" listening on ")) << server.log();
  ::close(a);
  ::close(b);
  EXPECT_EQ(echo(port_a, "to a\n"), "to a\n");
  EXPECT_EQ(echo(port_b, "to b\n"), "to b\n");
  EXPECT_EQ(echo(port_own, "to own\n"), "to own\n");
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(), 0) << server.log();
}

TEST(SocketActivationTest, ListenPidOfAnotherProcessIsIgnored) {
  uint16_t inherited_port = 0;
  int sock = listeningSocket(&inherited_port);
  ASSERT_GE(sock, 0);
  const uint16_t port = freePort();
  // LISTEN_PID names this test process: the fds are not for the server, which binds its own.
  Server server({.args = {"--listen", "127.0.0.1:" + std::to_string(port), "--plugin",
                          kEchoPlugin, "--threads", "1"},
                 .env = {"LISTEN_PID=" + std::to_string(::getpid()), "LISTEN_FDS=1"},
                 .inherited = {sock}});
  ASSERT_TRUE(server.waitLog(" listening on 127.0.0.1:" + std::to_string(port))) << server.log();
  EXPECT_EQ(echo(port, "own port\n"), "own port\n");
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(), 0) << server.log();
  ::close(sock);
}

TEST(SocketActivationTest, InheritedSocketMatchingNoListenerIsAnError) {
  uint16_t inherited_port = 0;
  int sock = listeningSocket(&inherited_port);
  ASSERT_GE(sock, 0);
  const uint16_t port = freePort();
  Server server({.args = {"--listen", "127.0.0.1:" + std::to_string(port), "--plugin",
                          kEchoPlugin},
                 .env = {"LISTEN_FDS=1", "LISTEN_FDNAMES=web"},
                 .inherited = {sock},
                 .listen_pid_self = true});
  ::close(sock);
  EXPECT_EQ(server.wait(), 2);
  EXPECT_EQ(server.log(), "plexus-server: error: inherited socket fd 3 (web) 127.0.0.1:" +
                              std::to_string(inherited_port) +
                              " matches no --listen address (127.0.0.1:" + std::to_string(port) +
                              ")\n");
}

TEST(SocketActivationTest, InheritedFdThatIsNotATcpSocketIsAnError) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  Server server({.args = {"--plugin", kEchoPlugin}, .env = {"LISTEN_FDS=1"},
                 .inherited = {pipe_fds[0]},
                 .listen_pid_self = true});
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  EXPECT_EQ(server.wait(), 2);
  EXPECT_EQ(server.log(),
            "plexus-server: error: inherited fd 3 is not a TCP socket (plexus-server listens on "
            "IPv4 and IPv6 only)\n");
}

TEST(SocketActivationTest, MalformedListenFdsIsAnError) {
  Server server({.args = {"--plugin", kEchoPlugin}, .env = {"LISTEN_FDS=two"},
                 .listen_pid_self = true});
  EXPECT_EQ(server.wait(), 2);
  EXPECT_EQ(server.log(),
            "plexus-server: error: invalid LISTEN_FDS 'two' (expected a count of sockets)\n");
}

}  // namespace
}  // namespace plexus::testing
