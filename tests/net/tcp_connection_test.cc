// TcpConnection over real loopback sockets: the input a message callback holds while it closes the
// connection, what send() does once closing began, what a connection does when its engine
// cannot change what it waits for, and that its buffers hold storage only while they hold bytes.

#include "plexus/tcp_connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/synchronization/notification.h"
#include "plexus/buffer.h"
#include "plexus/engine.h"
#include "plexus/event_loop.h"
#include "plexus/tcp_server.h"
#include "support/faulty_engine.h"
#include "support/server_harness.h"
#include "support/test_util.h"

namespace plexus {
namespace {

using testing::connectBlocking;
using testing::FaultyEngine;
using testing::readExactly;
using testing::readUntilEof;
using testing::ServerHarness;
using testing::waitUntil;
using testing::writeAll;

TcpServerOptions loopbackOptions(int threads, EngineOptions engine = {}) {
  TcpServerOptions options;
  options.listen_address = InetAddress(0, /*loopback_only=*/true);
  options.threads = threads;
  options.engine = std::move(engine);
  return options;
}

// A TcpServer with no sub-reactors whose base loop runs on its own thread over a FaultyEngine.
class FaultyServer {
 public:
  explicit FaultyServer(std::function<void(TcpServer&)> setup, EngineOptions inner = {}) {
    absl::Notification ready;
    thread_ = std::thread([&, setup] {
      auto made = makeEngine(inner);
      ASSERT_TRUE(made.ok()) << made.status();
      auto engine = std::make_unique<FaultyEngine>(*std::move(made));
      engine_ = engine.get();
      EventLoop loop(std::move(engine));
      loop_ = &loop;
      TcpServer server(&loop, loopbackOptions(0));
      setup(server);
      status_ = server.start();
      address_ = InetAddress(server.listenAddress().port(), /*loopback_only=*/true);
      ready.Notify();
      if (status_.ok()) run_status_ = loop.run();
    });
    testing::awaitOrAbort(ready, "FaultyServer: the server did not start");
  }
  ~FaultyServer() {
    if (status_.ok()) loop_->quit();
    thread_.join();
  }

  FaultyEngine& engine() { return *engine_; }
  EventLoop* loop() { return loop_; }
  const absl::Status& status() const { return status_; }
  const InetAddress& address() const { return address_; }

 private:
  std::thread thread_;
  FaultyEngine* engine_ = nullptr;
  EventLoop* loop_ = nullptr;
  absl::Status status_;
  absl::Status run_status_;
  InetAddress address_;
};

// Regression: a message callback that keeps a view of its input and closes the connection read
// freed memory (the close released the input buffer while the callback ran). The view must stay
// valid until the callback returns, whichever way it closes. The input is the connection's own
// buffer here (a partial message was kept from the read before), which is what the close freed.
class CloseInsideCallbackTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CloseInsideCallbackTest, InputStaysValidUntilTheCallbackReturns) {
  const std::string how = GetParam();
  std::atomic<int> checked{0};
  std::atomic<int> intact{0};
  ServerHarness h(loopbackOptions(1), [&](TcpServer& server) {
    server.setMessageCallback([&](const TcpConnectionPtr& conn, Buffer* input) {
      // Waits for 4096 bytes: the first read leaves its bytes in the connection's input.
      if (input->readableBytes() < 4096) return;
      const std::string_view view = input->view();
      const std::string copy(view);
      if (how == "forceClose") {
        conn->forceClose();
      } else {
        conn->closeAfterFlush();  // nothing queued: closes at once
      }
      // Freed memory here would be reported by ASan, and in a plain build shows as changed bytes.
      if (view == copy) intact.fetch_add(1);
      checked.fetch_add(1);
      input->retrieveAll();
    });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  int fd = connectBlocking(h.address());
  ASSERT_GE(fd, 0);
  const std::string data = testing::randomBytes(4096, 7);
  ASSERT_TRUE(writeAll(fd, data.substr(0, 1000)));
  // Let the first part be read on its own, so that the rest joins it in the connection's input.
  ASSERT_TRUE(waitUntil([&] { return h.server().stats().read_calls >= 1; }));
  ASSERT_TRUE(writeAll(fd, data.substr(1000)));
  bool eof = false;
  EXPECT_EQ(readUntilEof(fd, &eof), "");
  EXPECT_TRUE(eof);
  ::close(fd);
  ASSERT_TRUE(waitUntil([&] { return checked.load() == 1; }));
  EXPECT_EQ(intact.load(), 1);
}

INSTANTIATE_TEST_SUITE_P(Closes, CloseInsideCallbackTest,
                         ::testing::Values("forceClose", "closeAfterFlush"),
                         [](const auto& info) { return info.param; });

// Bytes sent after closeAfterFlush() are dropped; what was queued before it is still written.
TEST(TcpConnectionTest, SendAfterCloseAfterFlushIsDropped) {
  const std::string big(8 << 20, 'b');  // more than the socket takes at once: it queues
  ServerHarness h(loopbackOptions(1), [&](TcpServer& server) {
    server.setMessageCallback([&](const TcpConnectionPtr& conn, Buffer* input) {
      input->retrieveAll();
      conn->send(big);
      conn->closeAfterFlush();
      conn->send("TAIL");
    });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  int fd = connectBlocking(h.address());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(writeAll(fd, "go"));
  bool eof = false;
  const std::string got = readUntilEof(fd, &eof);
  EXPECT_TRUE(eof);
  EXPECT_EQ(got.size(), big.size());
  EXPECT_TRUE(got == big) << "the bytes sent after closeAfterFlush() arrived";
  ::close(fd);
}

// After the peer's EOF the connection flushes what is queued and closes; what the handler sends
// meanwhile (here: from the drain notice) is still written before the close.
TEST(TcpConnectionTest, SendWhileFlushingAfterPeerEofIsWritten) {
  const std::string big(8 << 20, 'q');
  ServerHarness h(loopbackOptions(1), [&](TcpServer& server) {
    server.setMessageCallback([&](const TcpConnectionPtr& conn, Buffer* input) {
      input->retrieveAll();
      conn->send(big);
    });
    server.setWriteCompleteCallback([](const TcpConnectionPtr& conn) { conn->send("END"); });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  int fd = connectBlocking(h.address());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(writeAll(fd, "go"));
  ASSERT_EQ(::shutdown(fd, SHUT_WR), 0);
  bool eof = false;
  const std::string got = readUntilEof(fd, &eof);
  EXPECT_TRUE(eof);
  ASSERT_EQ(got.size(), big.size() + 3);
  EXPECT_TRUE(got.compare(0, big.size(), big) == 0);
  EXPECT_EQ(got.substr(big.size()), "END");
  ::close(fd);
}

// What an idle connection costs is mostly its objects (bench/run --counts measures the bytes):
// an unused Buffer is one pointer, a Channel three words. With make_shared's 16-byte control
// block and malloc's 8-byte header, 168 bytes is the most a TcpConnection may take and still fit
// glibc's 192-byte chunks.
static_assert(sizeof(Buffer) == sizeof(void*));
static_assert(sizeof(void*) != 8 || sizeof(Channel) == 24);
static_assert(sizeof(void*) != 8 || sizeof(TcpConnection) <= 168);

// Buffers hold storage only while they hold bytes: a partial request is kept (and its storage),
// then freed once the handler took it all; queued output is freed once it has drained.
TEST(TcpConnectionTest, BuffersHoldStorageOnlyWhileTheyHoldBytes) {
  const std::string big(8 << 20, 'z');  // more than the socket takes at once: it queues
  TcpConnectionPtr conn;  // base loop only
  std::atomic<int> messages{0};
  ServerHarness h(loopbackOptions(0), [&](TcpServer& server) {
    server.setConnectionCallback([&](const TcpConnectionPtr& c) {
      if (c->connected()) conn = c;
    });
    // Lines: each complete line is echoed, "big" answered with `big`; a partial line waits.
    server.setMessageCallback([&](const TcpConnectionPtr& c, Buffer* input) {
      const std::string_view v = input->view();
      const size_t end = v.rfind('\n');
      if (end != std::string_view::npos) {
        const std::string lines(v.substr(0, end + 1));
        input->retrieve(end + 1);
        c->send(lines == "big\n" ? big : lines);
      }
      ++messages;
    });
  });
  ASSERT_TRUE(h.status().ok()) << h.status();
  int fd = connectBlocking(h.address());
  ASSERT_GE(fd, 0);
  struct Sizes {
    size_t input_bytes, input_capacity, output_bytes, output_capacity;
  };
  auto sizes = [&] {
    Sizes s{};
    h.runSync([&] {
      ASSERT_NE(conn, nullptr);
      s = {conn->inputBuffer()->readableBytes(), conn->inputBuffer()->capacity(),
           conn->pendingOutputBytes(), conn->outputBuffer()->capacity()};
    });
    return s;
  };

  ASSERT_TRUE(writeAll(fd, "abc"));
  ASSERT_TRUE(waitUntil([&] { return messages.load() == 1; }));
  Sizes s = sizes();
  EXPECT_EQ(s.input_bytes, 3u);
  EXPECT_GT(s.input_capacity, 0u);
  EXPECT_EQ(s.output_capacity, 0u);

  ASSERT_TRUE(writeAll(fd, "\n"));
  EXPECT_EQ(readExactly(fd, 4), "abc\n");
  ASSERT_TRUE(waitUntil([&] { return messages.load() == 2; }));
  s = sizes();
  EXPECT_EQ(s.input_bytes, 0u);
  EXPECT_EQ(s.input_capacity, 0u) << "the input buffer kept its storage once emptied";
  EXPECT_EQ(s.output_capacity, 0u);

  ASSERT_TRUE(writeAll(fd, "big\n"));
  ASSERT_TRUE(waitUntil([&] { return messages.load() == 3; }));
  s = sizes();
  EXPECT_GT(s.output_bytes, 0u);
  EXPECT_GT(s.output_capacity, 0u);
  EXPECT_EQ(readExactly(fd, big.size()), big);
  ASSERT_TRUE(waitUntil([&] { return sizes().output_bytes == 0; }));
  s = sizes();
  EXPECT_EQ(s.output_capacity, 0u) << "the output buffer kept its storage once drained";
  EXPECT_EQ(s.input_capacity, 0u);
  h.runSync([&] { conn.reset(); });
  ::close(fd);
}

// Regression: a oneshot re-arm that failed left the connection waiting forever for events that
// never came. Now the connection closes (its client sees EOF) and the failure is counted; the
// other connections go on.
TEST(TcpConnectionTest, FailedRearmClosesTheConnection) {
  std::atomic<int> victim_fd{-1};
  FaultyServer s([&](TcpServer& server) {
    server.setMessageCallback([&](const TcpConnectionPtr& conn, Buffer* input) {
      if (input->view() == "victim") victim_fd.store(conn->fd());
      conn->send(input);
    });
  });
  ASSERT_TRUE(s.status().ok()) << s.status();
  int victim = connectBlocking(s.address());
  int other = connectBlocking(s.address());
  ASSERT_GE(victim, 0);
  ASSERT_GE(other, 0);
  ASSERT_TRUE(writeAll(victim, "victim"));
  ASSERT_EQ(readExactly(victim, 6), "victim");
  // Its next event is its last: the re-arm after it fails. (Set between events, on the loop.)
  testing::runSync(s.loop(), [&] { s.engine().fail_rearm_fd.store(victim_fd.load()); });
  ASSERT_TRUE(writeAll(victim, "again"));
  bool eof = false;
  EXPECT_EQ(readUntilEof(victim, &eof), "again");
  EXPECT_TRUE(eof) << "the connection whose re-arm failed was left open: "  << std::strerror(errno);
  ASSERT_TRUE(writeAll(other, "still here"));
  EXPECT_EQ(readExactly(other, 10), "still here");
  LoopStats stats;
  testing::runSync(s.loop(), [&] { stats = s.loop()->stats(); });
  EXPECT_EQ(stats.interest_failures, 1u);
  ::close(victim);
  ::close(other);
}

// A connection whose output must wait (a client that does not read) but that cannot be watched for
// writing is closed, rather than left with output nobody will ever write.
TEST(TcpConnectionTest, FailedWatchForWritingClosesTheConnection) {
  FaultyServer s([&](TcpServer& server) {
    server.setMessageCallback([&](const TcpConnectionPtr& conn, Buffer* input) {
      input->retrieveAll();
      conn->send(std::string(8 << 20, 'w'));  // queues: the socket takes only part
    });
  });
  ASSERT_TRUE(s.status().ok()) << s.status();
  s.engine().fail_modify_writing.store(true);
  int fd = connectBlocking(s.address());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(writeAll(fd, "go"));
  bool eof = false;
  const std::string got = readUntilEof(fd, &eof);
  EXPECT_TRUE(eof);
  EXPECT_LT(got.size(), size_t{8} << 20);
  ::close(fd);
  s.engine().fail_modify_writing.store(false);
  // The server goes on serving.
  int again = connectBlocking(s.address());
  ASSERT_GE(again, 0);
  ASSERT_TRUE(writeAll(again, "x"));
  EXPECT_EQ(readExactly(again, 1), "w");
  ::close(again);
}

}  // namespace
}  // namespace plexus
