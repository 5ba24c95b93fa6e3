// plexus-client's interactive mode on a pseudo-terminal, against scripted servers that are not echo
// servers: replies of other lengths, several replies or none to a line, a reply without a newline,
// a message the server sends unasked. Replies must show as soon as they arrive, and the prompt must
// come back after them on a line of its own, never inside them.
//
// The terminal echoes what the test types, as a user's terminal does, and the test reads the screen
// through a small renderer (support/terminal_screen.h), so it checks what a user would see.

#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "integration/child_process.h"
#include "support/scripted_server.h"
#include "support/terminal_screen.h"
#include "support/test_util.h"

namespace plexus::testing {
namespace {

using child::Child;
using std::chrono::milliseconds;

const std::string kClient = std::string(PLEXUS_BIN_DIR) + "/plexus-client";

// Start-up (a process, a connect) may take a while on a loaded machine.
constexpr milliseconds kStartWait{10000};
// A reply, and the prompt after it, must show well within the 2 s an echo-minded client would wait
// for as many bytes as it sent.
constexpr milliseconds kReplyWait{1000};

std::string show(const std::string& screen) {
  return "screen:\n" + showScreen(renderTerminal(screen));
}

// Reads the terminal into *screen until the rendered screen ends with `tail`, or `timeout`.
::testing::AssertionResult waitForScreen(int fd, std::string* screen,
                                          const std::vector<std::string>& tail,
                                          milliseconds timeout) {
  const auto deadline = child::SteadyClock::now() + timeout;
  char buf[4096];
  for (;;) {
    if (screenEndsWith(renderTerminal(*screen), tail)) return ::testing::AssertionSuccess();
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, child::msLeft(deadline));
    if (r < 0 && errno == EINTR) continue;
    ssize_t n = r > 0 ? ::read(fd, buf, sizeof buf) : 0;
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      return ::testing::AssertionFailure()
             << (r == 0 ? "timed out" : "the terminal closed") << " waiting for the tail\n"
             << showScreen(tail) << "\n"
             << show(*screen);
    }
    screen->append(buf, static_cast<size_t>(n));
  }
}

// A line protocol that is not echo. Per line: "quiet" gets no reply; "many N" gets N replies,
// written one by one; "bare" gets a reply without a newline; any other line gets its length in
// decimal (shorter than the line from 3 bytes on).
void answerLines(int fd) {
  std::string pending, line;
  while (readLine(fd, &pending, &line)) {
    line.pop_back();  // the '\n'
    int n = 0;
    if (line == "quiet") continue;
    if (line == "bare") {
      writeAll(fd, "no newline here");
    } else if (absl::StartsWith(line, "many ") && absl::SimpleAtoi(line.substr(5), &n)) {
      for (int i = 1; i <= n; ++i) writeAll(fd, absl::StrCat("reply ", i, " of ", n, "\n"));
    } else {
      writeAll(fd, absl::StrCat(line.size(), "\n"));
    }
  }
}

class ClientInteractiveTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::access(kClient.c_str(), X_OK), 0) << kClient; }

  // Starts the client on a terminal that echoes input, and waits for the first prompt.
  void start(const ScriptedServer& server) {
    ASSERT_TRUE(server.listening());
    client_ = Child::spawnOnPty({kClient, "-s", "127.0.0.1", "-p", std::to_string(server.port())});
    ASSERT_TRUE(client_.started());
    // The slave's settings, through the master (Linux applies them to the slave): echo typed input.
    termios tio{};
    ASSERT_EQ(::tcgetattr(client_.in(), &tio), 0);
    tio.c_lflag |= ECHO;
    ASSERT_EQ(::tcsetattr(client_.in(), TCSANOW, &tio), 0);
    ASSERT_TRUE(waitForScreen(client_.out(), &screen_, {"% "}, kStartWait));
  }
  // Types `line` and Enter, then waits for the screen to end with `tail`.
  ::testing::AssertionResult type(const std::string& line, const std::vector<std::string>& tail) {
    if (!child::writeTo(client_.in(), line + "\n")) {
      return ::testing::AssertionFailure() << "cannot type " << line;
    }
    return waitForScreen(client_.out(), &screen_, tail, kReplyWait);
  }
  void quit() {
    ASSERT_TRUE(child::writeTo(client_.in(), "quit\n"));
    EXPECT_EQ(client_.wait(kStartWait), 0) << show(screen_);
  }

  Child client_;
  std::string screen_;
};

TEST_F(ClientInteractiveTest, RepliesOfOtherLengthsShowAtOnceWithAPromptAfterThem) {
  ScriptedServer server(answerLines);
  ASSERT_NO_FATAL_FAILURE(start(server));
  EXPECT_TRUE(type("hello world", {"% hello world", "11", "% "}));
  EXPECT_TRUE(type("quiet", {"% quiet", "% "}));
  EXPECT_TRUE(type("many 3", {"% many 3", "reply 1 of 3", "reply 2 of 3", "reply 3 of 3", "% "}));
  EXPECT_TRUE(type("bare", {"% bare", "no newline here", "% "}));
  EXPECT_TRUE(type("a", {"% a", "1", "% "}));
  quit();
}

TEST_F(ClientInteractiveTest, AMessageTheServerSendsUnaskedShowsAboveAFreshPrompt) {
  absl::Notification speak;
  ScriptedServer server([&speak](int fd) {
    if (!speak.WaitForNotificationWithTimeout(absl::Seconds(10))) return;
    writeAll(fd, "news: the server speaks first\n");
    answerLines(fd);
  });
  ASSERT_NO_FATAL_FAILURE(start(server));
  speak.Notify();  // the prompt is on the screen: the message arrives while it waits for input
  EXPECT_TRUE(waitForScreen(client_.out(), &screen_, {"news: the server speaks first", "% "},
                             kReplyWait));
  EXPECT_TRUE(type("abcd", {"% abcd", "4", "% "}));
  quit();
}

// Ctrl-D after a partial line (twice: the first hands the partial line over) sends it and leaves at
// once, the prompt's line ended; nothing waits for a reply.
TEST_F(ClientInteractiveTest, CtrlDAfterAPartialLineSendsItAndLeaves) {
  absl::Mutex mutex;
  std::string received;
  ScriptedServer server([&](int fd) {
    std::string all = readUntilEof(fd);
    absl::MutexLock lock(&mutex);
    received = std::move(all);
  });
  ASSERT_NO_FATAL_FAILURE(start(server));
  ASSERT_TRUE(child::writeTo(client_.in(), "last words\x04\x04"));
  EXPECT_EQ(client_.wait(kReplyWait), 0) << show(screen_);
  EXPECT_TRUE(waitForScreen(client_.out(), &screen_, {"% last words", ""}, kStartWait));
  EXPECT_TRUE(waitUntil([&] {
    absl::MutexLock lock(&mutex);
    return received == "last words\n";
  }));
}

TEST_F(ClientInteractiveTest, TheServerClosingEndsThePromptWithANotice) {
  ScriptedServer server([](int fd) {
    std::string pending, line;
    if (readLine(fd, &pending, &line)) writeAll(fd, "goodbye\n");  // and close
  });
  ASSERT_NO_FATAL_FAILURE(start(server));
  EXPECT_TRUE(type("bye", {"% bye", "goodbye", "connection closed by server", ""}));
  EXPECT_EQ(client_.wait(kStartWait), 0) << show(screen_);
}

}  // namespace
}  // namespace plexus::testing
