// Runs build/bin/plexus-server as a process: echoes bytes exactly over raw sockets on every engine,
// stops with exit status 0 on SIGTERM/SIGINT, and refuses bad options, a busy port and a missing
// plugin with exit status 2 and one line on stderr.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "integration/child_process.h"
#include "support/test_util.h"

namespace plexus::testing {
namespace {

using child::Child;
using std::chrono::milliseconds;

const std::string kServer = std::string(PLEXUS_BIN_DIR) + "/plexus-server";
const std::string kEchoPlugin = std::string(PLEXUS_PLUGIN_DIR) + "/echo.so";

// Everything left on `fd` until EOF or `timeout`.
std::string readAll(int fd, milliseconds timeout) {
  std::string out;
  auto deadline = child::SteadyClock::now() + timeout;
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, child::msLeft(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return out;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

// Runs plexus-server to completion (it is expected to exit at once).
child::Outcome runToExit(std::vector<std::string> args) {
  args.insert(args.begin(), kServer);
  Child c = Child::spawn(args, {.pipe_stdin = false, .pipe_stderr = true});
  return child::communicate(c, "", milliseconds(20000));
}

// A plexus-server serving on 127.0.0.1:port (it listens on 0.0.0.0 unless args say otherwise).
class ServerProcess {
 public:
  // `launcher`: a program that runs the server (its first argument), or empty.
  ServerProcess(uint16_t port, std::vector<std::string> args, const std::string& launcher = "")
      : port_(port) {
    args.insert(args.begin(), kServer);
    if (!launcher.empty()) args.insert(args.begin(), launcher);
    child_ = Child::spawn(args, {.pipe_stdin = false, .pipe_stderr = true});
  }

  // Retries connecting until the server accepts, or it exits, or 10 s pass.
  bool waitUntilAccepting() {
    return waitUntil([this] {
             if (exited()) return true;
             int fd = connectBlocking(address());
             if (fd < 0) return false;
             ::close(fd);
             return true;
           }) &&
           !exited();
  }

  InetAddress address() const { return InetAddress(port_, /*loopback_only=*/true); }
  Child& child() { return child_; }

  // Its stderr so far, up to the line that contains `needle`.
  bool stderrContains(const std::string& needle) {
    return child::readUntilContains(child_.err(), &err_, needle, milliseconds(10000));
  }
  const std::string& stderrText() const { return err_; }

  // Sends `sig` and waits for the exit status (-1: still running after `timeout`).
  int stop(int sig, milliseconds timeout = milliseconds(15000)) {
    child_.signal(sig);
    int status = child_.wait(timeout);
    if (status != -1) err_ += readAll(child_.err(), milliseconds(2000));
    return status;
  }

 private:
  bool exited() {
    if (status_) return true;
    int s = child_.wait(milliseconds(0));
    if (s != -1) status_ = s;
    return status_.has_value();
  }

  uint16_t port_;
  Child child_;
  std::string err_;
  std::optional<int> status_;
};

void expectEchoes(const InetAddress& addr, const std::string& data) {
  int fd = connectBlocking(addr);
  ASSERT_GE(fd, 0);
  // Write and read at once, so that a large payload cannot fill both directions' buffers.
  std::thread writer([&] { EXPECT_TRUE(writeAll(fd, data)); });
  EXPECT_EQ(readExactly(fd, data.size()), data);
  writer.join();
  ::close(fd);
}

class ServerProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kServer.c_str(), X_OK) != 0) GTEST_SKIP() << "not built: " << kServer;
  }
};

TEST_F(ServerProcessTest, EchoesBytesExactlyAndExitsZeroOnSigterm) {
  const uint16_t port = freePort();
  ServerProcess server(port, {"--port", std::to_string(port), "--threads", "2"});
  ASSERT_TRUE(server.waitUntilAccepting());
  ASSERT_TRUE(server.stderrContains("\n")) << server.stderrText();
  EXPECT_NE(
      server.stderrText().find("plexus-server 0.1.0 listening on 0.0.0.0:" + std::to_string(port) +
                               ": engine epoll (oneshot), 2 threads, plugin echo"),
      std::string::npos)
      << server.stderrText();

  expectEchoes(server.address(), "hello");
  expectEchoes(server.address(), std::string("\0\0a\0b\n\0", 7));
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] { expectEchoes(server.address(), randomBytes(1 << 20, 100 + i)); });
  }
  for (std::thread& t : clients) t.join();

  EXPECT_EQ(server.stop(SIGTERM), 0) << server.stderrText();
}

struct EngineCase {
  const char* engine;
  const char* mode;  // nullptr: no --epoll-mode (poll, select)
  const char* description;
};

// So that gtest names the case instead of dumping its bytes.
void PrintTo(const EngineCase& c, std::ostream* os) { *os << c.description; }

class ServerEngineTest : public ServerProcessTest,
                         public ::testing::WithParamInterface<EngineCase> {};

INSTANTIATE_TEST_SUITE_P(Engines, ServerEngineTest,
                         ::testing::Values(EngineCase{"epoll", "level", "epoll (level)"},
                                           EngineCase{"epoll", "edge", "epoll (edge)"},
                                           EngineCase{"poll", nullptr, "poll"},
                                           EngineCase{"select", nullptr, "select"},
                                           EngineCase{"uring", nullptr, "uring"}),
                         [](const auto& info) {
                           return std::string(info.param.engine) +
                                  (info.param.mode ? std::string("_") + info.param.mode : "");
                         });

TEST_P(ServerEngineTest, EchoesAndExitsZeroOnSigint) {
  const uint16_t port = freePort();
  std::vector<std::string> args = {"--port", std::to_string(port), "--threads", "1", "--engine",
                                   GetParam().engine};
  if (GetParam().mode) args.insert(args.end(), {"--epoll-mode", GetParam().mode});
  ServerProcess server(port, args);
  ASSERT_TRUE(server.waitUntilAccepting());
  ASSERT_TRUE(server.stderrContains("\n"));
  EXPECT_NE(server.stderrText().find(std::string("engine ") + GetParam().description +
                                     ", 1 thread, plugin echo"),
            std::string::npos)
      << server.stderrText();
  expectEchoes(server.address(), randomBytes(300000, 5));
  EXPECT_EQ(server.stop(SIGINT), 0) << server.stderrText();
}

// Where io_uring is refused (seccomp here; kernel.io_uring_disabled or an old kernel alike),
// `--engine uring` says so in one line, whatever the number of loops, and serves on epoll.
TEST_F(ServerProcessTest, UringRefusedFallsBackToEpollWithOneLine) {
  const uint16_t port = freePort();
  ServerProcess server(port, {"--port", std::to_string(port), "--threads", "2", "--engine", "uring"},
                       PLEXUS_DENY_IO_URING);
  ASSERT_TRUE(server.waitUntilAccepting()) << server.stderrText();
  ASSERT_TRUE(server.stderrContains("plugin echo")) << server.stderrText();
  expectEchoes(server.address(), randomBytes(200000, 9));
  EXPECT_EQ(server.stop(SIGTERM), 0) << server.stderrText();
  const std::string& err = server.stderrText();
  const std::string line = "engine uring unavailable (io_uring_setup: Operation not permitted)";
  const size_t first = err.find(line);
  EXPECT_NE(first, std::string::npos) << err;
  EXPECT_EQ(err.find(line, first + 1), std::string::npos) << "said more than once:\n" << err;
  EXPECT_NE(err.find("engine epoll (oneshot)"), std::string::npos) << err;
}

TEST_F(ServerProcessTest, AllOnTheMainLoopWithAConfigFile) {
  const uint16_t port = freePort();
  const std::string config =
      ::testing::TempDir() + "plexus_server_" + std::to_string(port) + ".ini";
  std::ofstream(config) << "port = " << port << "\nthreads = 0\nplugin = " << kEchoPlugin << "\n";
  ServerProcess server(port, {"--config", config});
  ASSERT_TRUE(server.waitUntilAccepting());
  expectEchoes(server.address(), randomBytes(100000, 6));
  EXPECT_EQ(server.stop(SIGTERM), 0) << server.stderrText();
  EXPECT_NE(server.stderrText().find("0 threads"), std::string::npos) << server.stderrText();
  std::filesystem::remove(config);
}

// Regression: SIGHUP's default action ended the server (exit 129, every connection cut). Now it
// reloads (tests/integration/reload_test.cc), and the connection open across it goes on.
TEST_F(ServerProcessTest, SighupReloadsAndServesOn) {
  const uint16_t port = freePort();
  ServerProcess server(port, {"--port", std::to_string(port), "--threads", "1"});
  ASSERT_TRUE(server.waitUntilAccepting());
  int fd = connectBlocking(server.address());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(writeAll(fd, "before"));
  EXPECT_EQ(readExactly(fd, 6), "before");
  server.child().signal(SIGHUP);
  ASSERT_TRUE(server.stderrContains("reload #1 done in ")) << server.stderrText();
  ASSERT_TRUE(writeAll(fd, "after"));
  EXPECT_EQ(readExactly(fd, 5), "after");
  expectEchoes(server.address(), "a new connection");
  ::close(fd);
  EXPECT_EQ(server.stop(SIGTERM), 0) << server.stderrText();
}

TEST_F(ServerProcessTest, StopsGracefullyWithConnectionsOpen) {
  const uint16_t port = freePort();
  ServerProcess server(port, {"--port", std::to_string(port), "--threads", "2"});
  ASSERT_TRUE(server.waitUntilAccepting());
  int fd = connectBlocking(server.address());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(writeAll(fd, "still here"));
  EXPECT_EQ(readExactly(fd, 10), "still here");
  EXPECT_EQ(server.stop(SIGTERM), 0) << server.stderrText();
  bool eof = false;
  readUntilEof(fd, &eof);
  EXPECT_TRUE(eof);
  ::close(fd);
}

// A client that sends but never reads keeps output queued, so a graceful stop would wait the whole
// grace period; a second signal stops at once.
TEST_F(ServerProcessTest, SecondSignalStopsAtOnce) {
  const uint16_t port = freePort();
  ServerProcess server(port, {"--port", std::to_string(port), "--threads", "1",
                              "--shutdown-timeout", "120", "--high-water-mark", "64K"});
  ASSERT_TRUE(server.waitUntilAccepting());
  int fd = connectBlocking(server.address());
  ASSERT_GE(fd, 0);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  const std::string chunk(65536, 'z');
  for (;;) {  // until neither the server nor the socket buffers take more
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 300) <= 0) break;
    if (::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0 && errno != EAGAIN) break;
  }
  EXPECT_EQ(server.stop(SIGTERM, milliseconds(1000)), -1) << "did not wait for the output to drain";
  EXPECT_EQ(server.stop(SIGTERM, milliseconds(10000)), 0) << server.stderrText();
  ::close(fd);
}

struct BadCase {
  std::vector<std::string> args;
  std::string message;
};

TEST_F(ServerProcessTest, BadOptionsExitTwoWithOneLine) {
  const std::vector<BadCase> cases = {
      {{"--engine", "foo"}, "unknown engine 'foo' (known: epoll, poll, select, uring)"},
      {{"--epoll-mode", "x"}, "unknown epoll mode 'x' (known: oneshot, level, edge)"},
      {{"--engine", "poll", "--epoll-mode", "edge"},
       "--epoll-mode applies to --engine epoll only (the poll engine has no modes)"},
      {{"--listen", "1.2.3:80"},
       "invalid --listen '1.2.3:80': '1.2.3' is not an IPv4 address in dotted-quad form (like "
       "127.0.0.1)"},
      {{"--port", "0"}, "invalid port '0' (expected 1-65535)"},
      {{"--port", "70000"}, "invalid port '70000' (expected 1-65535)"},
      {{"--port", "abc"}, "invalid port 'abc' (expected 1-65535)"},
      {{"--threads", "-1"}, "invalid --threads '-1' (expected 0-1024)"},
      {{"--threads", "5000"}, "invalid --threads '5000' (expected 0-1024)"},
      {{"--bogus"}, "unrecognised option '--bogus'"},
      {{"--config", "/no/such/plexus.ini"},
       "cannot read config file '/no/such/plexus.ini': No such file or directory"},
      {{"--plugin-arg", "novalue"}, "invalid --plugin-arg 'novalue' (expected KEY=VALUE)"},
      {{"--high-water-mark", "lots"},
       "invalid --high-water-mark 'lots' (expected bytes, e.g. 65536, 64K or 4M)"},
      // --plugin-dir adds to the default directory (the build tree's, for build/bin/plexus-server).
      {{"--plugin", "nope", "--plugin-dir", "/no/such/dir"},
       "plugin 'nope' not found (searched: /no/such/dir, " PLEXUS_PLUGIN_DIR ")"},
      {{"--plugin-arg", "a=b"},
       "plugin 'echo' rejected its arguments: echo takes no arguments, got 'a'"},
  };
  for (const BadCase& c : cases) {
    child::Outcome o = runToExit(c.args);
    EXPECT_EQ(o.status, 2) << c.message;
    EXPECT_EQ(o.err, "plexus-server: error: " + c.message + "\n");
    EXPECT_EQ(o.out, "");
  }
}

TEST_F(ServerProcessTest, NotAPluginExitsTwo) {
  const std::string path = ::testing::TempDir() + "plexus_not_a_plugin.so";
  std::ofstream(path) << "text\n";
  child::Outcome o = runToExit({"--plugin", path, "--port", std::to_string(freePort())});
  EXPECT_EQ(o.status, 2);
  EXPECT_EQ(
      o.err.rfind("plexus-server: error: '" + path + "' is not a loadable shared object: ", 0), 0u)
      << o.err;
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
  std::filesystem::remove(path);
}

TEST_F(ServerProcessTest, PortInUseExitsTwo) {
  int busy = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(busy, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  ASSERT_EQ(::bind(busy, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(busy, 1), 0);
  socklen_t len = sizeof a;
  ::getsockname(busy, reinterpret_cast<sockaddr*>(&a), &len);
  const std::string port = std::to_string(ntohs(a.sin_port));

  child::Outcome o = runToExit({"--port", port});
  EXPECT_EQ(o.status, 2);
  EXPECT_EQ(o.err, "plexus-server: error: cannot listen on 0.0.0.0:" + port +
                       ": Address already in use\n");
  ::close(busy);
}

TEST_F(ServerProcessTest, HelpAndVersion) {
  child::Outcome help = runToExit({"--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_EQ(help.err, "");
  for (const char* option :
       {"--port", "--listen", "--threads", "--engine", "--epoll-mode", "--balance", "--plugin-dir",
        "--plugin-arg", "--max-connections", "--idle-timeout", "--high-water-mark",
        "--shutdown-timeout", "--config", "--log-level", "--version"}) {
    EXPECT_NE(help.out.find(option), std::string::npos) << option;
  }
  child::Outcome version = runToExit({"--version"});
  EXPECT_EQ(version.status, 0);
  EXPECT_EQ(version.out, "plexus-server 0.1.0\n");
  child::Outcome short_version = runToExit({"-v"});
  EXPECT_EQ(short_version.out, "plexus-server 0.1.0\n");
}

}  // namespace
}  // namespace plexus::testing
