// One plexus-server process with several listeners (--listen ADDR PLUGIN [KEY=VALUE ...], or
// `listen = ...` lines in its config file): each address served byte-exactly by its own plugin,
// all of them by one set of --threads sub-reactors; a graceful stop of every listener on SIGTERM;
// and exit status 2 with one line, and nothing left listening, when one of them cannot start.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <optional>
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
const std::string kTestProto = PLEXUS_TESTPROTO_PLUGIN;

InetAddress loopback(uint16_t port) { return InetAddress(port, /*loopback_only=*/true); }

// What stays on `fd` until EOF or `timeout`.
std::string drain(int fd, milliseconds timeout) {
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

// True when nothing accepts on 127.0.0.1:port (the connect is refused).
bool refused(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool is_refused = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 &&
                          errno == ECONNREFUSED;
  ::close(fd);
  return is_refused;
}

// A plexus-server process, stderr piped.
class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> args) {
    args.insert(args.begin(), kServer);
    child_ = Child::spawn(args, {.pipe_stdin = false, .pipe_stderr = true});
  }

  // Waits for the start line (logged once every listener listens): false if it exits first.
  bool waitUntilListening() { return stderrContains(" listening on "); }

  bool stderrContains(const std::string& needle) {
    return child::readUntilContains(child_.err(), &err_, needle, milliseconds(10000));
  }
  const std::string& stderrText() const { return err_; }

  // The names of its threads (/proc/PID/task/*/comm).
  std::vector<std::string> threadNames() const {
    std::vector<std::string> names;
    const std::string dir = "/proc/" + std::to_string(child_.pid()) + "/task";
    for (const auto& task : std::filesystem::directory_iterator(dir)) {
      std::string name;
      std::getline(std::ifstream(task.path() / "comm"), name);
      names.push_back(name);
    }
    return names;
  }

  // Sends `sig` and waits for the exit status (-1: still running after `timeout`).
  int stop(int sig, milliseconds timeout = milliseconds(15000)) {
    child_.signal(sig);
    return wait(timeout);
  }
  int wait(milliseconds timeout) {
    int status = child_.wait(timeout);
    if (status != -1) err_ += drain(child_.err(), milliseconds(2000));
    return status;
  }

 private:
  Child child_;
  std::string err_;
};

// Runs plexus-server to completion (it is expected to exit at once).
child::Outcome runToExit(std::vector<std::string> args) {
  args.insert(args.begin(), kServer);
  Child c = Child::spawn(args, {.pipe_stdin = false, .pipe_stderr = true});
  return child::communicate(c, "", milliseconds(20000));
}

// Connects and reads `greeting` first (testproto's, sent on connect), then has `data` echoed.
void expectServed(const InetAddress& addr, const std::string& data,
                  const std::string& greeting = "") {
  int fd = connectBlocking(addr);
  ASSERT_GE(fd, 0);
  if (!greeting.empty()) {
    EXPECT_EQ(readExactly(fd, greeting.size()), greeting);
  }
  // Write and read at once, so that a large payload cannot fill both directions' buffers.
  std::thread writer([&] { EXPECT_TRUE(writeAll(fd, data)); });
  const std::string back = readExactly(fd, data.size());
  // Not EXPECT_EQ: a megabyte of random bytes makes no readable diff.
  EXPECT_TRUE(back == data) << "sent " << data.size() << " bytes to " << addr.toIpPort()
                            << ", got " << back.size() << " back, first difference at "
                            << (std::mismatch(back.begin(), back.end(), data.begin()).first -
                                back.begin());
  writer.join();
  ::close(fd);
}

// Random bytes but '!', which makes testproto's handler throw (and its connection close).
std::string randomProtoBytes(size_t n, uint64_t seed) {
  std::string bytes = randomBytes(n, seed);
  std::replace(bytes.begin(), bytes.end(), '!', '?');
  return bytes;
}

std::string writeConfig(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << contents;
  return path;
}

class ListenersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kServer.c_str(), X_OK) != 0) GTEST_SKIP() << "not built: " << kServer;
    if (::access(kTestProto.c_str(), R_OK) != 0) GTEST_SKIP() << "not built: " << kTestProto;
  }
};

// echo on one port, testproto (an echo that greets) on another, with a greeting that holds blanks,
// '=', ',' and ':': each port gets its own protocol, byte for byte, from 2 threads in all.
TEST_F(ListenersTest, TwoPluginsOnTwoPortsShareTheThreads) {
  const uint16_t echo_port = freePort();
  const uint16_t proto_port = freePort();
  ASSERT_NE(echo_port, proto_port);
  const std::string greeting = "Hello, World! k=v:1,2";
  ServerProcess server({"--threads", "2", "--stats", "--listen",
                        "127.0.0.1:" + std::to_string(echo_port) + " echo", "--listen",
                        "127.0.0.1:" + std::to_string(proto_port) + " " + kTestProto +
                            " 'greeting=" + greeting + "'"});
  ASSERT_TRUE(server.waitUntilListening()) << server.stderrText();
  ASSERT_TRUE(server.stderrContains("\n")) << server.stderrText();
  EXPECT_NE(server.stderrText().find(
                "plexus-server 0.1.0 listening on 127.0.0.1:" + std::to_string(echo_port) +
                " (plugin echo), 127.0.0.1:" + std::to_string(proto_port) +
                " (plugin testproto): engine epoll (oneshot), 2 threads\n"),
            std::string::npos)
      << server.stderrText();

  // One pool for both listeners: the main thread and 2 sub-reactors, not 2 per listener.
  std::vector<std::string> threads = server.threadNames();
  EXPECT_EQ(std::count_if(threads.begin(), threads.end(),
                          [](const std::string& n) { return n.rfind("plexus-io-", 0) == 0; }),
            2)
      << ::testing::PrintToString(threads);

  expectServed(loopback(echo_port), "hello");
  expectServed(loopback(proto_port), "hello", greeting);
  expectServed(loopback(echo_port), std::string("\0\0a\0b\n\0", 7));
  std::vector<std::thread> clients;
  for (int i = 0; i < 3; ++i) {
    clients.emplace_back(
        [&, i] { expectServed(loopback(echo_port), randomBytes(1 << 20, 200 + i)); });
    clients.emplace_back(
        [&, i] {
          expectServed(loopback(proto_port), randomProtoBytes(300000, 300 + i), greeting);
        });
  }
  for (std::thread& t : clients) t.join();

  // A connection left open on each listener: the stop lets both finish, then closes them.
  int open_echo = connectBlocking(loopback(echo_port));
  int open_proto = connectBlocking(loopback(proto_port));
  ASSERT_GE(open_echo, 0);
  ASSERT_GE(open_proto, 0);
  EXPECT_EQ(readExactly(open_proto, greeting.size()), greeting);
  ASSERT_TRUE(writeAll(open_echo, "still here"));
  EXPECT_EQ(readExactly(open_echo, 10), "still here");

  EXPECT_EQ(server.stop(SIGTERM), 0) << server.stderrText();
  for (int fd : {open_echo, open_proto}) {
    bool eof = false;
    EXPECT_EQ(readUntilEof(fd, &eof), "");
    EXPECT_TRUE(eof);
    ::close(fd);
  }
  EXPECT_TRUE(refused(echo_port));
  EXPECT_TRUE(refused(proto_port));
  // Each listener stopped, and the stats cover both: at least the 12 connections made above were
  // accepted (the loops are shared, so each is counted once).
  const std::string& err = server.stderrText();
  size_t stopping = 0;
  for (size_t at = err.find("stopping: "); at != std::string::npos;
       at = err.find("stopping: ", at + 1)) {
    ++stopping;
  }
  EXPECT_EQ(stopping, 2u) << err;
  const size_t stats = err.find("stats: {");
  ASSERT_NE(stats, std::string::npos) << err;
  const size_t accepts = err.find("\"accept_calls\":", stats);
  ASSERT_NE(accepts, std::string::npos) << err;
  EXPECT_GE(std::stoul(err.substr(accepts + 15)), 12u) << err;
  EXPECT_NE(err.find("plexus-server stopped"), std::string::npos) << err;
}

// The config file form, with echo loaded twice (by name and by path), all on the main loop.
TEST_F(ListenersTest, EchoTwiceFromAConfigFile) {
  const uint16_t a = freePort();
  const uint16_t b = freePort();
  ASSERT_NE(a, b);
  const std::string config = writeConfig(
      "plexus_listeners_" + std::to_string(a) + ".ini",
      "threads = 0\n"
      "# one line per listener\n"
      "listen = 127.0.0.1:" + std::to_string(a) + " echo\n"
      "listen = 127.0.0.1:" + std::to_string(b) + " " + kEchoPlugin + "\n");
  ServerProcess server({"--config", config});
  ASSERT_TRUE(server.waitUntilListening()) << server.stderrText();
  ASSERT_TRUE(server.stderrContains("\n")) << server.stderrText();
  EXPECT_NE(server.stderrText().find("listening on 127.0.0.1:" + std::to_string(a) +
                                     " (plugin echo), 127.0.0.1:" + std::to_string(b) +
                                     " (plugin echo): engine epoll (oneshot), 0 threads (all "
                                     "on the main loop)\n"),
            std::string::npos)
      << server.stderrText();
  std::thread on_a([&] { expectServed(loopback(a), randomBytes(500000, 7)); });
  std::thread on_b([&] { expectServed(loopback(b), randomBytes(500000, 8)); });
  on_a.join();
  on_b.join();
  expectServed(loopback(b), "b");
  EXPECT_EQ(server.stop(SIGINT), 0) << server.stderrText();
  std::filesystem::remove(config);
}

// A graceful stop waits for every listener: while one still has output to flush, the server runs
// on after the other has finished; once its client reads everything, it exits 0.
TEST_F(ListenersTest, GracefulStopWaitsForEveryListener) {
  const uint16_t idle_port = freePort();
  const uint16_t busy_port = freePort();
  ASSERT_NE(idle_port, busy_port);
  ServerProcess server({"--threads", "1", "--shutdown-timeout", "120", "--high-water-mark", "64K",
                        "--listen", "127.0.0.1:" + std::to_string(idle_port) + " echo", "--listen",
                        "127.0.0.1:" + std::to_string(busy_port) + " echo"});
  ASSERT_TRUE(server.waitUntilListening()) << server.stderrText();
  int fd = connectBlocking(loopback(busy_port));
  ASSERT_GE(fd, 0);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  // Sends without reading until neither the server nor the socket buffers take more: the echo
  // output waits in the server.
  const std::string chunk(65536, 'z');
  size_t sent = 0;
  for (;;) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 300) <= 0) break;
    ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN) break;
    if (n > 0) sent += static_cast<size_t>(n);
  }
  ASSERT_GT(sent, 0u);
  EXPECT_EQ(server.stop(SIGTERM, milliseconds(1000)), -1) << "did not wait for the busy listener";
  EXPECT_TRUE(refused(idle_port));  // the idle listener has stopped listening meanwhile
  ASSERT_TRUE(server.stderrContains("SIGTERM: stopping")) << server.stderrText();
  // Reading the echo lets the server flush it and close; then it exits by itself. (The close may
  // come as a reset: the input the server had not read when it stopped is dropped.)
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  const std::string echoed = readUntilEof(fd);
  EXPECT_LE(echoed.size(), sent);
  EXPECT_EQ(echoed.find_first_not_of('z'), std::string::npos);
  ::close(fd);
  EXPECT_EQ(server.wait(milliseconds(10000)), 0) << server.stderrText();
}

// The second listener's port is taken: the server exits 2 with the one line that names the
// address, and the first listener, already listening, is gone with it.
TEST_F(ListenersTest, PortInUseExitsTwoWithNoListenerLeft) {
  int busy = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(busy, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  ASSERT_EQ(::bind(busy, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(busy, 1), 0);
  socklen_t len = sizeof addr;
  ::getsockname(busy, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string taken = std::to_string(ntohs(addr.sin_port));
  const uint16_t first = freePort();

  child::Outcome o = runToExit({"--threads", "2", "--listen",
                                "127.0.0.1:" + std::to_string(first) + " echo", "--listen",
                                ":" + taken + " echo"});
  EXPECT_EQ(o.status, 2);
  EXPECT_EQ(o.err, "plexus-server: error: cannot listen on 0.0.0.0:" + taken +
                       ": Address already in use\n");
  EXPECT_EQ(o.out, "");
  EXPECT_TRUE(refused(first));
  ::close(busy);
}

TEST_F(ListenersTest, BadListenersExitTwoWithOneLine) {
  const std::string p1 = std::to_string(freePort());
  const std::string p2 = std::to_string(freePort());
  struct BadCase {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<BadCase> cases = {
      {{"--listen", ":" + p1 + " echo", "--listen", "0.0.0.0:" + p1},
       "listen address 0.0.0.0:" + p1 + " given twice (--listen ':" + p1 +
           " echo' and --listen '0.0.0.0:" + p1 + "')"},
      {{"--listen", ":" + p1 + " echo", "--listen", ":" + p2 + " nope", "--plugin-dir",
        "/no/such/dir"},
       "listener 0.0.0.0:" + p2 + ": plugin 'nope' not found (searched: /no/such/dir, " +
           PLEXUS_PLUGIN_DIR + ")"},
      {{"--listen", ":" + p1 + " echo", "--listen", ":" + p2 + " echo 'a=b c'"},
       "listener 0.0.0.0:" + p2 + ": plugin 'echo' rejected its arguments: echo takes no "
       "arguments, got 'a'"},
      {{"--listen", ":" + p1 + " echo \"greeting=hi"},
       "invalid --listen ':" + p1 + " echo \"greeting=hi': a \" quote is not closed"},
      {{"--listen", ":" + p1 + " echo greeting"},
       "invalid plugin argument 'greeting' in --listen ':" + p1 +
           " echo greeting' (expected KEY=VALUE)"},
      {{"--listen", ":0 echo"}, "invalid port '0' (expected 1-65535)"},
      {{"--plugin", "echo", "--listen", ":" + p1 + " echo"},
       "--plugin is not used: every --listen names its own plugin"},
  };
  for (const BadCase& c : cases) {
    child::Outcome o = runToExit(c.args);
    EXPECT_EQ(o.status, 2) << c.message;
    EXPECT_EQ(o.err, "plexus-server: error: " + c.message + "\n");
    EXPECT_EQ(o.out, "");
  }
}

}  // namespace
}  // namespace plexus::testing
