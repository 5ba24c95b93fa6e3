// Runs build/bin/plexus-client as a process against an echo server process (plexus-server with the
// echo plugin, or examples/embed_echo when the server is not built): stdin streaming, binary data,
// errors and exit codes, and the interactive mode on a pseudo-terminal. Then against scripted
// servers that are not echo servers: streaming to a server that stops reading and closes, and
// `plexus-client bench` against servers that close at once or never reply.

#include <fcntl.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "integration/child_process.h"
#include "support/scripted_server.h"
#include "support/test_util.h"

namespace plexus::testing {
namespace {

using child::Child;
using child::Outcome;
using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::StartsWith;

const std::string kBin = PLEXUS_BIN_DIR;
const std::string kClient = kBin + "/plexus-client";
const std::string kServer = kBin + "/plexus-server";
const std::string kEchoPlugin = std::string(PLEXUS_PLUGIN_DIR) + "/echo.so";
const std::string kEmbedEcho = kBin + "/embed_echo";

bool executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

struct EchoServer {
  Child process;
  uint16_t port = 0;
};

// Starts an echo server on a free loopback port and waits until it accepts connections.
void startEchoServer(EchoServer* server) {
  if (executable(kServer) && ::access(kEchoPlugin.c_str(), R_OK) == 0) {
    server->port = freePort();
    server->process = Child::spawn(
        {kServer, "--listen", absl::StrCat("127.0.0.1:", server->port), "--threads", "2",
         "--plugin", "echo", "--plugin-dir", PLEXUS_PLUGIN_DIR, "--log-level", "warn"},
        {.pipe_stdin = false, .pipe_stdout = false, .pipe_stderr = false});
    ASSERT_TRUE(server->process.started());
    InetAddress addr(server->port, /*loopback_only=*/true);
    ASSERT_TRUE(waitUntil([&] {
      int fd = connectBlocking(addr);
      if (fd >= 0) ::close(fd);
      return fd >= 0;
    })) << "plexus-server did not start listening on port " << server->port;
    return;
  }
  ASSERT_TRUE(executable(kEmbedEcho)) << "neither plexus-server nor embed_echo is built";
  server->process = Child::spawn({kEmbedEcho, "0", "2"}, {.pipe_stdin = false, .pipe_stderr = false});
  ASSERT_TRUE(server->process.started());
  std::string out;
  ASSERT_TRUE(child::readUntilContains(server->process.out(), &out, "\n", milliseconds(10000)));
  uint32_t port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(out.substr(out.rfind(':') + 1, out.find('\n') - out.rfind(':') - 1),
                               &port))
      << out;
  server->port = static_cast<uint16_t>(port);
}

class ClientProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(executable(kClient)) << kClient;
    ASSERT_NO_FATAL_FAILURE(startEchoServer(&server_));
  }

  std::vector<std::string> clientArgs() const {
    return {kClient, "-s", "127.0.0.1", "-p", std::to_string(server_.port)};
  }
  Outcome runClient(const std::string& input) {
    Child c = Child::spawn(clientArgs());
    return child::communicate(c, input);
  }

  EchoServer server_;
};

TEST_F(ClientProcessTest, EchoesALineFromStdin) {
  Outcome o = runClient("hi\n");
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, "hi\n");
  EXPECT_EQ(o.err, "");
}

TEST_F(ClientProcessTest, EmptyStdinExitsZero) {
  Outcome o = runClient("");
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, "");
}

TEST_F(ClientProcessTest, OneMebibyteOfBinaryRoundTripsExactly) {
  std::string data = randomBytes(1 << 20, 42);
  data[0] = '\0';
  data[data.size() / 2] = '\0';
  data[data.size() - 1] = '\0';
  Outcome o = runClient(data);
  EXPECT_EQ(o.status, 0) << o.err;
  ASSERT_EQ(o.out.size(), data.size());
  EXPECT_TRUE(o.out == data) << "the bytes differ";
}

// Well past the client's 1 MiB window of unsent bytes: the backpressure path.
TEST_F(ClientProcessTest, SixteenMebibytesRoundTripExactly) {
  const std::string data = randomBytes(16 << 20, 7);
  Outcome o = runClient(data);
  EXPECT_EQ(o.status, 0) << o.err;
  ASSERT_EQ(o.out.size(), data.size());
  EXPECT_TRUE(o.out == data) << "the bytes differ";
}

TEST_F(ClientProcessTest, InteractiveModeOnATerminal) {
  Child c = Child::spawnOnPty(clientArgs());
  ASSERT_TRUE(c.started());
  std::string screen;
  ASSERT_TRUE(child::readUntilContains(c.out(), &screen, "% ", milliseconds(10000))) << screen;
  const size_t after_prompt = screen.size();
  ASSERT_TRUE(child::writeTo(c.in(), "hello\n"));
  // The reply, then the next prompt (the terminal writes "\n" as "\r\n").
  ASSERT_TRUE(child::readUntilContains(c.out(), &screen, "hello\r\n% ", milliseconds(10000),
                                       after_prompt))
      << screen;
  ASSERT_TRUE(child::writeTo(c.in(), "quit\n"));
  EXPECT_EQ(c.wait(milliseconds(10000)), 0) << screen;
}

TEST_F(ClientProcessTest, InteractiveEofExitsZero) {
  Child c = Child::spawnOnPty(clientArgs());
  std::string screen;
  ASSERT_TRUE(child::readUntilContains(c.out(), &screen, "% ", milliseconds(10000))) << screen;
  ASSERT_TRUE(child::writeTo(c.in(), "\x04"));  // Ctrl-D at the start of a line
  EXPECT_EQ(c.wait(milliseconds(10000)), 0) << screen;
}

TEST_F(ClientProcessTest, InteractiveReportsTheServerClosing) {
  Child c = Child::spawnOnPty(clientArgs());
  std::string screen;
  ASSERT_TRUE(child::readUntilContains(c.out(), &screen, "% ", milliseconds(10000))) << screen;
  server_.process.signal(SIGTERM);  // a graceful stop closes every connection
  ASSERT_TRUE(child::readUntilContains(c.out(), &screen, "connection closed by server",
                                       milliseconds(10000)))
      << screen;
  EXPECT_EQ(c.wait(milliseconds(10000)), 0) << screen;
}

// No server: the tests below run the client alone.
class ClientErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(executable(kClient)) << kClient; }
  Outcome run(std::vector<std::string> args) {
    args.insert(args.begin(), kClient);
    Child c = Child::spawn(args);
    return child::communicate(c, "");
  }
};

TEST_F(ClientErrorsTest, ClosedPortExitsOneWithOneLine) {
  const uint16_t port = freePort();
  Outcome o = run({"-s", "127.0.0.1", "-p", std::to_string(port)});
  EXPECT_EQ(o.status, 1);
  EXPECT_EQ(o.err, absl::StrCat("plexus-client: error: cannot connect to 127.0.0.1:", port,
                                ": Connection refused\n"));
  EXPECT_EQ(o.out, "");
}

TEST_F(ClientErrorsTest, RetriesThenGivesUp) {
  const uint16_t port = freePort();
  Outcome o = run({"--server", "127.0.0.1", "--port", std::to_string(port), "--retry", "2",
                   "--connect-timeout", "1"});
  EXPECT_EQ(o.status, 1);
  EXPECT_THAT(o.err, StartsWith("plexus-client: error: cannot connect to 127.0.0.1:"));
  EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << o.err;
}

TEST_F(ClientErrorsTest, BadOptionsExitTwoWithOneLine) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--bogus"}, {"-p", "0"}, {"-p", "x"}, {"--connect-timeout", "0"},
        {"stray"}}) {
    Outcome o = run(args);
    EXPECT_EQ(o.status, 2) << args[0];
    EXPECT_THAT(o.err, StartsWith("plexus-client: error: ")) << args[0];
    EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << o.err;
    EXPECT_EQ(o.out, "");
  }
}

TEST_F(ClientErrorsTest, VersionAndHelp) {
  Outcome o = run({"-v"});
  EXPECT_EQ(o.status, 0);
  EXPECT_EQ(o.out, "plexus-client 0.1.0\n");
  o = run({"--help"});
  EXPECT_EQ(o.status, 0);
  EXPECT_THAT(o.out, HasSubstr("--server"));
  EXPECT_THAT(o.out, HasSubstr("--connect-timeout"));
}

// Streaming to servers that are not echo servers. The client must say so, and fail, when the
// server closed before it had sent all of stdin.
class ClientStreamingTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(executable(kClient)) << kClient; }

  // Runs the client with `input` on a pipe.
  Outcome runPiped(const ScriptedServer& server, const std::string& input) {
    Child c = Child::spawn({kClient, "-p", std::to_string(server.port())});
    return child::communicate(c, input);
  }
  // Runs the client with stdin redirected from a file holding `input`.
  Outcome runFromFile(const ScriptedServer& server, const std::string& input) {
    const std::string path =
        ::testing::TempDir() + "plexus_client_input_" + std::to_string(server.port());
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0) << path;
    EXPECT_TRUE(child::writeTo(fd, input));
    ::close(fd);
    Child c = Child::spawn(
        {"/bin/sh", "-c", "exec \"$0\" -p \"$1\" < \"$2\"", kClient,
         std::to_string(server.port()), path},
        {.pipe_stdin = false});
    Outcome o = child::communicate(c, "");
    ::unlink(path.c_str());
    return o;
  }
};

// The error line when the server closed first: how much was sent, and how much there was when the
// client had read all of stdin.
const char kClosedEarly[] =
    "plexus-client: error: connection closed by server before all input was sent "
    "\\(sent [0-9]+ (of [0-9]+ bytes|bytes, and stdin had not ended)\\)\n";

// The server reads 4 KiB of a 32 MiB upload and closes with the rest unread (a reset): the client
// fails a send or a read mid-stream.
TEST_F(ClientStreamingTest, ServerResettingMidStreamExitsOne) {
  ScriptedServer server([](int fd) { readExactly(fd, 4096); });
  ASSERT_TRUE(server.listening());
  Outcome o = runPiped(server, randomBytes(32 << 20, 11));
  EXPECT_EQ(o.status, 1) << o.err;
  EXPECT_THAT(o.err, MatchesRegex(kClosedEarly));
  EXPECT_EQ(o.out, "");
}

// The server reads 4 KiB, shuts down its write side and reads on: the client sees a graceful EOF
// while it still has input.
TEST_F(ClientStreamingTest, ServerHalfClosingMidStreamExitsOne) {
  ScriptedServer server([](int fd) {
    readExactly(fd, 4096);
    ::shutdown(fd, SHUT_WR);
    readUntilEof(fd);
  });
  ASSERT_TRUE(server.listening());
  Outcome o = runPiped(server, randomBytes(32 << 20, 12));
  EXPECT_EQ(o.status, 1) << o.err;
  EXPECT_THAT(o.err, MatchesRegex(kClosedEarly));
}

// A file of 8 MiB, and one of 512 KiB that the client may read whole, and even write whole to its
// socket, before it sees the reset: the server's TCP acknowledged only part of either.
TEST_F(ClientStreamingTest, ServerClosingBeforeAFileWasSentExitsOne) {
  ScriptedServer server([](int fd) { readExactly(fd, 4096); });
  ASSERT_TRUE(server.listening());
  for (size_t size : {size_t{8} << 20, size_t{512} << 10}) {
    Outcome o = runFromFile(server, randomBytes(size, size));
    EXPECT_EQ(o.status, 1) << size << ": " << o.err;
    EXPECT_THAT(o.err, MatchesRegex(kClosedEarly)) << size;
  }
}

// Not an echo: the server reads to EOF, answers with the byte count and closes. Everything was
// sent, so the client succeeds, with the reply on stdout.
TEST_F(ClientStreamingTest, ServerAnsweringAfterOurEofExitsZero) {
  ScriptedServer server([](int fd) {
    const std::string all = readUntilEof(fd);
    writeAll(fd, absl::StrCat(all.size(), " bytes\n"));
  });
  ASSERT_TRUE(server.listening());
  const std::string data = randomBytes(8 << 20, 13);
  Outcome o = runPiped(server, data);
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, absl::StrCat(data.size(), " bytes\n"));
  EXPECT_EQ(o.err, "");
  o = runFromFile(server, data);
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, absl::StrCat(data.size(), " bytes\n"));
  EXPECT_EQ(o.err, "");
}

// The server reads the one line there is, answers and closes without waiting for our EOF. All of
// stdin (a file, so its end is there to see) was sent: success.
TEST_F(ClientStreamingTest, ServerClosingRightAfterTheWholeInputExitsZero) {
  ScriptedServer server([](int fd) {
    std::string pending, line;
    if (readLine(fd, &pending, &line)) writeAll(fd, "bye\n");
  });
  ASSERT_TRUE(server.listening());
  for (int i = 0; i < 5; ++i) {
    Outcome o = runFromFile(server, "hi\n");
    EXPECT_EQ(o.status, 0) << o.err;
    EXPECT_EQ(o.out, "bye\n");
    EXPECT_EQ(o.err, "");
  }
}

// `plexus-client bench` against servers that make it measure nothing: exit 1 and one line saying
// why.
class ClientBenchTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(executable(kClient)) << kClient; }
  Outcome runBench(const ScriptedServer& server,
                   std::vector<std::string> mode = {"--duration", "0.2", "--warmup", "0"}) {
    std::vector<std::string> args = {kClient, "bench", "-p", std::to_string(server.port()),
                                     "--connections", "3", "--threads", "1", "-q"};
    args.insert(args.end(), mode.begin(), mode.end());
    Child c = Child::spawn(args);
    return child::communicate(c, "");
  }
};

TEST_F(ClientBenchTest, ServerThatClosesAtOnceExitsOne) {
  ScriptedServer server([](int) {});  // accepts, and closes
  ASSERT_TRUE(server.listening());
  Outcome o = runBench(server);
  EXPECT_EQ(o.status, 1) << o.err;
  EXPECT_THAT(o.err, MatchesRegex("plexus-client: error: bench measured 0 messages: the server "
                                  "closed all 3 connections before any reply came back\n"));
  EXPECT_THAT(o.out, HasSubstr("round trips  0"));
}

TEST_F(ClientBenchTest, ServerThatNeverRepliesExitsOne) {
  ScriptedServer server([](int fd) { readUntilEof(fd); });  // reads everything, answers nothing
  ASSERT_TRUE(server.listening());
  Outcome o = runBench(server);
  EXPECT_EQ(o.status, 1) << o.err;
  EXPECT_THAT(o.err, MatchesRegex("plexus-client: error: bench measured 0 messages: no reply came "
                                  "back \\(3 messages sent on 3 connections\\)\n"));
  EXPECT_EQ(server.accepted(), 3);
}

// --count has no end of its own: against a server that stops answering it gives up after
// --stall-timeout instead of waiting for ever.
TEST_F(ClientBenchTest, CountRunGivesUpWhenTheServerStopsAnswering) {
  ScriptedServer silent([](int fd) { readUntilEof(fd); });
  ASSERT_TRUE(silent.listening());
  Outcome o = runBench(silent, {"--count", "5", "--stall-timeout", "0.3"});
  EXPECT_EQ(o.status, 1) << o.err;
  EXPECT_THAT(o.err, MatchesRegex("plexus-client: error: bench measured 0 messages: no reply came "
                                  "back \\(3 messages sent on 3 connections\\); gave up after "
                                  "0.3 s of waiting\n"));

  // Answers the first 16-byte message of each connection, then nothing more.
  ScriptedServer once([](int fd) {
    std::string first = readExactly(fd, 16);
    writeAll(fd, first);
    readUntilEof(fd);
  });
  ASSERT_TRUE(once.listening());
  o = runBench(once, {"--count", "5", "--stall-timeout", "0.3"});
  EXPECT_EQ(o.status, 1) << o.err;
  EXPECT_THAT(o.err, MatchesRegex("plexus-client: error: bench gave up: no round trip completed "
                                  "for 0.3 s \\(3 of 15 round trips done\\)\n"));
}

}  // namespace
}  // namespace plexus::testing
