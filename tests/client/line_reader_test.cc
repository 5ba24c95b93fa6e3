#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "client/fd_io.h"
#include "client/interactive.h"

namespace plexus::client {
namespace {

class LineReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::pipe(pipe_), 0);
    wake_ = ::eventfd(0, EFD_CLOEXEC);
    ASSERT_GE(wake_, 0);
  }
  void TearDown() override {
    ::close(pipe_[0]);
    if (pipe_[1] >= 0) ::close(pipe_[1]);
    ::close(wake_);
  }
  void write(std::string_view s) { ASSERT_TRUE(writeAll(pipe_[1], s)); }
  void closeWriter() {
    ::close(pipe_[1]);
    pipe_[1] = -1;
  }

  int pipe_[2] = {-1, -1};
  int wake_ = -1;
};

TEST_F(LineReaderTest, SplitsLinesAcrossReads) {
  LineReader reader(pipe_[0], wake_);
  std::string line;
  write("hel");
  write("lo\nwor");
  ASSERT_EQ(reader.next(&line), LineReader::Result::kLine);
  EXPECT_EQ(line, "hello");
  write("ld\n\nlast");
  ASSERT_EQ(reader.next(&line), LineReader::Result::kLine);
  EXPECT_EQ(line, "world");
  ASSERT_EQ(reader.next(&line), LineReader::Result::kLine);
  EXPECT_EQ(line, "");
  closeWriter();
  ASSERT_EQ(reader.next(&line), LineReader::Result::kEof);
  EXPECT_EQ(line, "last");
  ASSERT_EQ(reader.next(&line), LineReader::Result::kEof);
  EXPECT_EQ(line, "");
}

TEST_F(LineReaderTest, WakesWhenTheConnectionCloses) {
  LineReader reader(pipe_[0], wake_);
  uint64_t one = 1;
  ASSERT_EQ(::write(wake_, &one, sizeof one), static_cast<ssize_t>(sizeof one));
  std::string line;
  EXPECT_EQ(reader.next(&line), LineReader::Result::kWoken);
}

}  // namespace
}  // namespace plexus::client
