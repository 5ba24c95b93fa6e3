// Runs examples/embed_echo as a process: echoes bytes byte-exact over raw sockets, and exits 0 on
// SIGTERM and on SIGINT, also with connections open.

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "integration/child_process.h"
#include "support/test_util.h"

namespace plexus::testing {
namespace {

using child::Child;
using std::chrono::milliseconds;

const std::string kEmbedEcho = std::string(PLEXUS_BIN_DIR) + "/embed_echo";

// Starts embed_echo on a free port and reads the port from its "listening on HOST:PORT" line.
class EmbedEchoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kEmbedEcho.c_str(), X_OK) != 0) GTEST_SKIP() << "not built: " << kEmbedEcho;
    server_ = Child::spawn({kEmbedEcho, "0", "2"}, {.pipe_stdin = false, .pipe_stderr = false});
    ASSERT_TRUE(server_.started());
    std::string out;
    ASSERT_TRUE(child::readUntilContains(server_.out(), &out, "\n", milliseconds(10000))) << out;
    const std::string prefix = "listening on 127.0.0.1:";
    ASSERT_EQ(out.rfind(prefix, 0), 0u) << out;
    uint32_t port = 0;
    ASSERT_TRUE(absl::SimpleAtoi(out.substr(prefix.size(), out.find('\n') - prefix.size()), &port))
        << out;
    ASSERT_GT(port, 0u);
    addr_ = InetAddress(static_cast<uint16_t>(port), /*loopback_only=*/true);
  }

  Child server_;
  InetAddress addr_;
};

TEST_F(EmbedEchoTest, EchoesBytesExactly) {
  int fd = connectBlocking(addr_);
  ASSERT_GE(fd, 0);
  for (size_t size : {1u, 100u, 65536u, 300000u}) {
    const std::string data = randomBytes(size, size);
    ASSERT_TRUE(writeAll(fd, data));
    ASSERT_EQ(readExactly(fd, data.size()), data) << size << " bytes";
  }
  ::close(fd);
  EXPECT_EQ(server_.wait(milliseconds(0)), -1) << "server exited on its own";
}

TEST_F(EmbedEchoTest, ServesConnectionsConcurrently) {
  std::vector<std::thread> threads;
  std::vector<int> ok(8, 0);
  for (size_t i = 0; i < ok.size(); ++i) {
    threads.emplace_back([this, i, &ok] {
      int fd = connectBlocking(addr_);
      if (fd < 0) return;
      const std::string data = randomBytes(100000, 1000 + i);
      ok[i] = writeAll(fd, data) && readExactly(fd, data.size()) == data;
      ::close(fd);
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < ok.size(); ++i) EXPECT_TRUE(ok[i]) << "connection " << i;
}

TEST_F(EmbedEchoTest, SigtermWithAnOpenConnectionExitsZero) {
  int fd = connectBlocking(addr_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(writeAll(fd, "ping"));
  ASSERT_EQ(readExactly(fd, 4), "ping");
  server_.signal(SIGTERM);
  EXPECT_EQ(server_.wait(milliseconds(10000)), 0);
  // The graceful stop closed our connection.
  bool eof = false;
  readUntilEof(fd, &eof);
  EXPECT_TRUE(eof);
  ::close(fd);
}

TEST_F(EmbedEchoTest, SigintExitsZero) {
  server_.signal(SIGINT);
  EXPECT_EQ(server_.wait(milliseconds(10000)), 0);
}

TEST(EmbedEchoUsageTest, BadArgumentsExitTwo) {
  if (::access(kEmbedEcho.c_str(), X_OK) != 0) GTEST_SKIP() << "not built: " << kEmbedEcho;
  Child c = Child::spawn({kEmbedEcho, "notaport"}, {.pipe_stdin = false});
  child::Outcome o = child::communicate(c, "");
  EXPECT_EQ(o.status, 2);
  EXPECT_NE(o.err.find("usage"), std::string::npos) << o.err;
}

}  // namespace
}  // namespace plexus::testing
