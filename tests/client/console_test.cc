// Console: the bytes it writes for the prompt and the server's output, on a terminal and not, and
// that output from another thread never lands inside the prompt or splits a line.

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/console.h"
#include "support/terminal_screen.h"

namespace plexus::client {
namespace {

using plexus::testing::renderTerminal;
using plexus::testing::showScreen;

constexpr char kErase[] = "\r\033[K";

class ConsoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK), 0);
    // Room for everything a test writes, so nothing blocks without a reader.
    ASSERT_GT(::fcntl(pipe_[1], F_SETPIPE_SZ, 1 << 20), 0);
  }
  void TearDown() override {
    ::close(pipe_[0]);
    ::close(pipe_[1]);
  }
  // What was written since the last call.
  std::string written() {
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(pipe_[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }

  int pipe_[2] = {-1, -1};
};

TEST_F(ConsoleTest, OutputReplacesThePromptAndThePromptComesBackAfterIt) {
  Console console(pipe_[1], /*terminal=*/true);
  ASSERT_TRUE(console.prompt());
  EXPECT_EQ(written(), "% ");
  ASSERT_TRUE(console.prompt());  // already showing
  EXPECT_EQ(written(), "");
  console.lineEntered();
  ASSERT_TRUE(console.prompt());
  EXPECT_EQ(written(), "% ");
  ASSERT_TRUE(console.print("11\n"));
  EXPECT_EQ(written(), absl::StrCat(kErase, "11\n% "));
  // Two lines, then one cut short: the prompt goes on a line of its own.
  ASSERT_TRUE(console.print("a\nb\n"));
  EXPECT_EQ(written(), absl::StrCat(kErase, "a\nb\n% "));
  ASSERT_TRUE(console.print("no newline"));
  EXPECT_EQ(written(), absl::StrCat(kErase, "no newline\n% "));
  // Output that comes after Enter, before the next prompt(): nothing to erase.
  console.lineEntered();
  ASSERT_TRUE(console.print("4\n"));
  EXPECT_EQ(written(), "4\n% ");
  ASSERT_TRUE(console.prompt());
  EXPECT_EQ(written(), "");
}

TEST_F(ConsoleTest, OutputBeforeTheFirstPromptIsPrintedAsItIs) {
  Console console(pipe_[1], /*terminal=*/true);
  ASSERT_TRUE(console.print("welcome"));
  ASSERT_TRUE(console.print(", stranger"));
  EXPECT_EQ(written(), "welcome, stranger");
  ASSERT_TRUE(console.prompt());
  EXPECT_EQ(written(), "\n% ");
  ASSERT_TRUE(console.print(""));
  EXPECT_EQ(written(), "");
}

TEST_F(ConsoleTest, ANoticeTakesThePromptsPlaceAndEndsThePrompting) {
  Console console(pipe_[1], /*terminal=*/true);
  ASSERT_TRUE(console.prompt());
  ASSERT_TRUE(console.notice("connection closed by server"));
  EXPECT_EQ(written(), absl::StrCat("% ", kErase, "connection closed by server\n"));
  ASSERT_TRUE(console.print("late\n"));
  EXPECT_EQ(written(), "late\n");
}

TEST_F(ConsoleTest, LeavingEndsThePromptsLine) {
  Console console(pipe_[1], /*terminal=*/true);
  ASSERT_TRUE(console.prompt());
  ASSERT_TRUE(console.leave());
  EXPECT_EQ(written(), "% \n");
  ASSERT_TRUE(console.print("late\n"));
  EXPECT_EQ(written(), "late\n");
  ASSERT_TRUE(console.leave());
  EXPECT_EQ(written(), "");
}

// Not a terminal (stdout redirected): no control sequences; the prompt's line is ended instead.
TEST_F(ConsoleTest, WithoutATerminalTheOutputGoesOnTheNextLine) {
  Console console(pipe_[1], /*terminal=*/false);
  ASSERT_TRUE(console.prompt());
  ASSERT_TRUE(console.print("11\n"));
  ASSERT_TRUE(console.notice("connection closed by server"));
  EXPECT_EQ(written(), "% \n11\n% \nconnection closed by server\n");
}

TEST_F(ConsoleTest, WriteErrorsAreReported) {
  Console console(pipe_[1], /*terminal=*/true);
  ::close(pipe_[0]);
  pipe_[0] = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // keeps TearDown simple
  ::signal(SIGPIPE, SIG_IGN);
  EXPECT_FALSE(console.prompt());
  EXPECT_FALSE(console.print("x\n"));
}

// The loop thread prints lines while the main thread keeps asking for the prompt: every line shows
// whole, in order, and the screen ends with one prompt.
TEST_F(ConsoleTest, OutputFromAnotherThreadNeverMixesWithThePrompt) {
  Console console(pipe_[1], /*terminal=*/true);
  constexpr int kLines = 2000;
  std::thread loop([&] {
    for (int i = 0; i < kLines; ++i) ASSERT_TRUE(console.print(absl::StrCat("line ", i, "\n")));
  });
  for (int i = 0; i < kLines; ++i) ASSERT_TRUE(console.prompt());
  loop.join();
  ASSERT_TRUE(console.prompt());
  // The pipe holds it all (F_SETPIPE_SZ above). A terminal would write each "\n" as "\r\n".
  std::vector<std::string> lines = renderTerminal(absl::StrReplaceAll(written(), {{"\n", "\r\n"}}));
  ASSERT_EQ(lines.size(), static_cast<size_t>(kLines) + 1) << showScreen(lines);
  for (int i = 0; i < kLines; ++i) EXPECT_EQ(lines[i], absl::StrCat("line ", i));
  EXPECT_EQ(lines.back(), "% ");
}

}  // namespace
}  // namespace plexus::client
