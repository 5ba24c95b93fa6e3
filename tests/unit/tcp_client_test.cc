// TcpClient (and its Connector) against a real echo server on loopback: connecting, sending from
// another thread, graceful disconnect, refused connects with and without retries, retries that
// succeed, stop(), reconnects and the connect timeout.

#include "plexus/tcp_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "plexus/buffer.h"
#include "plexus/event_loop_thread.h"
#include "plexus/log.h"
#include "plexus/tcp_connection.h"
#include "support/server_harness.h"
#include "support/test_util.h"

namespace plexus {
namespace {

using std::chrono::milliseconds;
using testing::installEcho;
using testing::ServerHarness;

constexpr absl::Duration kWait = absl::Seconds(10);

TcpServerOptions echoServerOptions(uint16_t port = 0) {
  TcpServerOptions o;
  o.listen_address = InetAddress(port, /*loopback_only=*/true);
  o.threads = 0;
  return o;
}

// Log lines captured from every thread while the object lives (level raised to debug, so the
// Connector's per-attempt lines show). The lines live in a shared state the sink holds, so a line
// logged while the capture ends touches nothing freed.
class LogCapture {
 public:
  LogCapture() : saved_level_(logLevel()), state_(std::make_shared<State>()) {
    setLogSink([state = state_](LogLevel, std::string_view line) {
      absl::MutexLock lock(&state->mu);
      state->lines.emplace_back(line);
    });
    setLogLevel(LogLevel::kDebug);
  }
  ~LogCapture() {
    setLogSink(nullptr);
    setLogLevel(saved_level_);
  }
  int count(std::string_view needle) {
    absl::MutexLock lock(&state_->mu);
    return countLocked(needle);
  }
  // Waits until a line containing `needle` has been logged.
  bool waitFor(std::string_view needle, absl::Duration d) {
    absl::MutexLock lock(&state_->mu);
    auto cond = [this, needle]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
      return countLocked(needle) > 0;
    };
    return state_->mu.AwaitWithTimeout(absl::Condition(&cond), d);
  }

 private:
  struct State {
    absl::Mutex mu;
    std::vector<std::string> lines ABSL_GUARDED_BY(mu);
  };
  int countLocked(std::string_view needle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    int n = 0;
    for (const std::string& l : state_->lines) n += l.find(needle) != std::string::npos;
    return n;
  }

  const LogLevel saved_level_;
  const std::shared_ptr<State> state_;
};

// What a client's callbacks saw. Written on the client's loop thread.
struct ClientEvents {
  absl::Mutex mu;
  int ups ABSL_GUARDED_BY(mu) = 0;
  int downs ABSL_GUARDED_BY(mu) = 0;
  bool down_saw_connected ABSL_GUARDED_BY(mu) = false;  // connected() was true in a "down" call
  bool off_loop_thread ABSL_GUARDED_BY(mu) = false;
  std::string received ABSL_GUARDED_BY(mu);
  std::vector<std::string> errors ABSL_GUARDED_BY(mu);

  bool waitUps(int n, absl::Duration d = kWait) {
    absl::MutexLock lock(&mu);
    auto cond = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return ups >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&cond), d);
  }
  bool waitDowns(int n, absl::Duration d = kWait) {
    absl::MutexLock lock(&mu);
    auto cond = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return downs >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&cond), d);
  }
  bool waitReceived(size_t n, absl::Duration d = kWait) {
    absl::MutexLock lock(&mu);
    auto cond = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return received.size() >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&cond), d);
  }
  bool waitErrors(size_t n, absl::Duration d = kWait) {
    absl::MutexLock lock(&mu);
    auto cond = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return errors.size() >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&cond), d);
  }
};

class TcpClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loop = thread_.start();
    ASSERT_TRUE(loop.ok()) << loop.status();
    loop_ = *loop;
  }
  void TearDown() override { destroyClient(); }

  void runSync(const std::function<void()>& f) {
    testing::runSync(loop_, f);
  }

  // Builds the client on its loop thread with callbacks that record into events_.
  void makeClient(const InetAddress& server, TcpClientOptions options = {}) {
    runSync([&] {
      client_ = std::make_unique<TcpClient>(loop_, server, options);
      EventLoop* loop = loop_;
      ClientEvents* ev = &events_;
      client_->setConnectionCallback([loop, ev](const TcpConnectionPtr& conn) {
        absl::MutexLock lock(&ev->mu);
        if (!loop->isInLoopThread()) ev->off_loop_thread = true;
        // The "down" call is the one made once the connection closed; it must say so.
        if (ev->ups > ev->downs) {
          ++ev->downs;
          if (conn->connected()) ev->down_saw_connected = true;
        } else {
          ++ev->ups;
          if (!conn->connected()) ev->down_saw_connected = true;
        }
      });
      client_->setMessageCallback([ev](const TcpConnectionPtr&, Buffer* buf) {
        absl::MutexLock lock(&ev->mu);
        ev->received.append(buf->retrieveAllAsString());
      });
      client_->setConnectErrorCallback([ev](const absl::Status& s) {
        absl::MutexLock lock(&ev->mu);
        ev->errors.push_back(std::string(s.message()));
      });
    });
  }

  // On the loop thread, as TcpClient requires (or while the loop runs).
  void destroyClient() {
    if (client_) runSync([&] { client_.reset(); });
  }

  std::string received() {
    absl::MutexLock lock(&events_.mu);
    return events_.received;
  }
  std::vector<std::string> errors() {
    absl::MutexLock lock(&events_.mu);
    return events_.errors;
  }
  int ups() {
    absl::MutexLock lock(&events_.mu);
    return events_.ups;
  }
  int downs() {
    absl::MutexLock lock(&events_.mu);
    return events_.downs;
  }

  // Declared first: destroyed last, after the client.
  EventLoopThread thread_;
  EventLoop* loop_ = nullptr;
  ClientEvents events_;
  std::unique_ptr<TcpClient> client_;
};

TEST_F(TcpClientTest, ConnectsSendsFromAnotherThreadAndDisconnects) {
  std::atomic<int> server_ups{0};
  std::atomic<int> server_downs{0};
  ServerHarness server(echoServerOptions(), [&](TcpServer& s) {
    installEcho(s);
    s.setConnectionCallback([&](const TcpConnectionPtr& c) {
      (c->connected() ? server_ups : server_downs).fetch_add(1);
    });
  });
  ASSERT_TRUE(server.status().ok()) << server.status();

  makeClient(server.address());
  client_->connect();
  ASSERT_TRUE(events_.waitUps(1));
  TcpConnectionPtr conn = client_->connection();
  ASSERT_NE(conn, nullptr);
  EXPECT_TRUE(conn->connected());
  EXPECT_EQ(conn->peerAddress().toIpPort(), server.address().toIpPort());

  // send() from the test thread: copied and queued to the client's loop.
  conn->send("hello, ");
  conn->send("plexus");
  ASSERT_TRUE(events_.waitReceived(13));
  EXPECT_EQ(received(), "hello, plexus");

  const std::string big = testing::randomBytes(1 << 20, 77);
  conn->send(big);
  ASSERT_TRUE(events_.waitReceived(13 + big.size(), absl::Seconds(30)));
  EXPECT_TRUE(received().substr(13) == big) << "echo differs";

  // Graceful: our write side shuts, the server sees EOF and closes, we see the close.
  client_->disconnect();
  ASSERT_TRUE(events_.waitDowns(1));
  EXPECT_FALSE(conn->connected());
  EXPECT_TRUE(testing::waitUntil([&] { return server_downs.load() == 1; }));
  EXPECT_EQ(server_ups.load(), 1);
  EXPECT_TRUE(testing::waitUntil([&] { return client_->connection() == nullptr; }));
  absl::MutexLock lock(&events_.mu);
  EXPECT_FALSE(events_.down_saw_connected);
  EXPECT_FALSE(events_.off_loop_thread);
  EXPECT_TRUE(events_.errors.empty());
}

TEST_F(TcpClientTest, DestroyWhileConnectedClosesConnection) {
  std::atomic<int> server_downs{0};
  ServerHarness server(echoServerOptions(), [&](TcpServer& s) {
    installEcho(s);
    s.setConnectionCallback([&](const TcpConnectionPtr& c) {
      if (!c->connected()) server_downs.fetch_add(1);
    });
  });
  ASSERT_TRUE(server.status().ok()) << server.status();
  makeClient(server.address());
  client_->connect();
  ASSERT_TRUE(events_.waitUps(1));
  // From the test thread: the destructor hops to the loop and waits.
  client_.reset();
  EXPECT_EQ(downs(), 1);
  EXPECT_TRUE(testing::waitUntil([&] { return server_downs.load() == 1; }));
}

TEST_F(TcpClientTest, ConnectRefusedWithoutRetry) {
  const uint16_t port = testing::freePort();
  TcpClientOptions o;
  o.retry = false;
  makeClient(InetAddress(port, true), o);
  client_->connect();
  ASSERT_TRUE(events_.waitErrors(1));
  EXPECT_EQ(errors()[0], absl::StrFormat("cannot connect to 127.0.0.1:%d: Connection refused", port));
  EXPECT_EQ(ups(), 0);
  EXPECT_EQ(client_->connection(), nullptr);
}

TEST_F(TcpClientTest, RetryGivesUpAfterMaxAttempts) {
  const uint16_t port = testing::freePort();
  LogCapture logs;
  TcpClientOptions o;
  o.retry = true;
  o.max_attempts = 3;
  o.initial_backoff = milliseconds(30);
  o.max_backoff = milliseconds(1000);
  makeClient(InetAddress(port, true), o);
  const auto start = std::chrono::steady_clock::now();
  client_->connect();
  ASSERT_TRUE(events_.waitErrors(1));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  // Backoff 30 ms, then 60 ms, before attempts 2 and 3.
  EXPECT_GE(elapsed, milliseconds(30 + 60));
  EXPECT_EQ(errors()[0], absl::StrFormat("cannot connect to 127.0.0.1:%d: Connection refused", port));
  const std::string attempt_line = absl::StrFormat("connect to 127.0.0.1:%d (attempt", port);
  EXPECT_EQ(logs.count(attempt_line), 3);
  EXPECT_EQ(logs.count(attempt_line + " 3)"), 1);
  // No fourth attempt, no second error.
  runSync([] {});
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(errors().size(), 1u);
  EXPECT_EQ(logs.count(attempt_line), 3);
}

TEST_F(TcpClientTest, RetrySucceedsOnceServerListens) {
  const uint16_t port = testing::freePort();
  const std::string first_failure = absl::StrFormat("connect to 127.0.0.1:%d (attempt 1)", port);
  LogCapture logs;
  TcpClientOptions o;
  o.retry = true;
  o.max_attempts = 0;
  o.initial_backoff = milliseconds(50);
  o.max_backoff = milliseconds(200);
  makeClient(InetAddress(port, true), o);
  client_->connect();
  ASSERT_TRUE(logs.waitFor(first_failure, kWait));
  EXPECT_EQ(ups(), 0);

  ServerHarness server(echoServerOptions(port), installEcho);
  ASSERT_TRUE(server.status().ok()) << server.status() << " (port " << port << " taken meanwhile?)";
  ASSERT_TRUE(events_.waitUps(1));
  TcpConnectionPtr conn = client_->connection();
  ASSERT_NE(conn, nullptr);
  conn->send("after retry");
  ASSERT_TRUE(events_.waitReceived(11));
  EXPECT_EQ(received(), "after retry");
  EXPECT_TRUE(errors().empty());
  destroyClient();
}

TEST_F(TcpClientTest, StopCancelsRetries) {
  const uint16_t port = testing::freePort();
  const std::string attempt_line = absl::StrFormat("connect to 127.0.0.1:%d (attempt", port);
  LogCapture logs;
  TcpClientOptions o;
  o.retry = true;
  o.initial_backoff = milliseconds(10);
  o.max_backoff = milliseconds(10);
  makeClient(InetAddress(port, true), o);
  client_->connect();
  ASSERT_TRUE(logs.waitFor(attempt_line + " 2)", kWait));
  client_->stop();
  runSync([] {});  // stop() has run
  const int attempts = logs.count(attempt_line);
  // Proving that nothing more happens: several backoff periods pass.
  absl::SleepFor(absl::Milliseconds(80));
  EXPECT_EQ(logs.count(attempt_line), attempts);
  EXPECT_TRUE(errors().empty());
}

TEST_F(TcpClientTest, ReconnectsAfterServerCloses) {
  std::mutex server_conn_mu;
  TcpConnectionPtr server_conn;
  ServerHarness server(echoServerOptions(), [&](TcpServer& s) {
    installEcho(s);
    s.setConnectionCallback([&](const TcpConnectionPtr& c) {
      std::lock_guard<std::mutex> lock(server_conn_mu);
      if (c->connected()) server_conn = c;
    });
  });
  ASSERT_TRUE(server.status().ok());
  TcpClientOptions o;
  o.reconnect = true;
  o.initial_backoff = milliseconds(10);
  makeClient(server.address(), o);
  client_->connect();
  ASSERT_TRUE(events_.waitUps(1));

  TcpConnectionPtr first;
  ASSERT_TRUE(testing::waitUntil([&] {
    std::lock_guard<std::mutex> lock(server_conn_mu);
    first = server_conn;
    return first != nullptr;
  }));
  first->forceClose();
  ASSERT_TRUE(events_.waitDowns(1));
  ASSERT_TRUE(events_.waitUps(2));
  TcpConnectionPtr conn = client_->connection();
  ASSERT_NE(conn, nullptr);
  conn->send("second");
  ASSERT_TRUE(events_.waitReceived(6));

  // After disconnect() there is no reconnect.
  client_->disconnect();
  ASSERT_TRUE(events_.waitDowns(2));
  absl::SleepFor(absl::Milliseconds(60));  // several backoffs
  EXPECT_EQ(ups(), 2);
  std::lock_guard<std::mutex> lock(server_conn_mu);
  server_conn.reset();
}

// Regression: connect(), disconnect() and stop() from another thread queue work that captured the
// client; a client destroyed on its loop before that work ran left it pointing at freed memory
// (AddressSanitizer: heap-use-after-free). The queued work must see the client is gone.
TEST_F(TcpClientTest, DestroyedOnItsLoopWithWorkStillQueued) {
  std::atomic<int> server_ups{0};
  ServerHarness server(echoServerOptions(), [&](TcpServer& s) {
    s.setConnectionCallback([&](const TcpConnectionPtr& c) {
      if (c->connected()) server_ups.fetch_add(1);
    });
  });
  ASSERT_TRUE(server.status().ok());
  makeClient(server.address());
  absl::Notification in_task;
  absl::Notification queued;
  loop_->queueInLoop([&] {
    in_task.Notify();
    testing::awaitOrAbort(queued, "the test thread did not queue its calls");
    client_.reset();  // on the loop thread, with the calls below still queued behind this task
  });
  ASSERT_TRUE(in_task.WaitForNotificationWithTimeout(kWait));
  client_->connect();
  client_->disconnect();
  client_->stop();
  queued.Notify();
  runSync([] {});  // the queued calls have run (and found the client gone)
  EXPECT_EQ(client_, nullptr);
  EXPECT_EQ(ups(), 0);
  EXPECT_EQ(server_ups.load(), 0);
}

// Regression (ThreadSanitizer): connect() from another thread wrote the callbacks the loop thread
// reads while it reconnects. The loop thread now takes the snapshot itself.
TEST_F(TcpClientTest, ConnectFromAnotherThreadWhileReconnecting) {
  ServerHarness server(echoServerOptions(), [&](TcpServer& s) {
    s.setConnectionCallback([&](const TcpConnectionPtr& c) {
      if (c->connected()) c->forceClose();  // every connection ends at once: the client reconnects
    });
  });
  ASSERT_TRUE(server.status().ok());
  TcpClientOptions o;
  o.reconnect = true;
  o.initial_backoff = milliseconds(1);
  o.max_backoff = milliseconds(1);
  makeClient(server.address(), o);
  client_->connect();
  for (int i = 0; i < 50; ++i) {
    client_->connect();
    ASSERT_TRUE(events_.waitUps(i + 2));
  }
  client_->stop();
  destroyClient();
}

// The connect timeout, with a listener whose accept queue is full: Linux then drops new SYNs, so a
// connect stays in progress (SYN retransmits 1 s apart) well past a short timeout.
TEST_F(TcpClientTest, ConnectTimeout) {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  InetAddress any_port(0, true);
  ASSERT_EQ(::bind(listener, any_port.sockAddr(), any_port.sockLen()), 0);
  ASSERT_EQ(::listen(listener, 0), 0);  // never accepted from
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&bound), &len);
  const InetAddress addr(bound);

  // One connection fills the queue; check that the next one hangs, else skip.
  int filler = testing::connectBlocking(addr, milliseconds(1000));
  ASSERT_GE(filler, 0);
  int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(probe, 0);
  ::connect(probe, addr.sockAddr(), addr.sockLen());
  pollfd pfd{probe, POLLOUT, 0};
  const bool probe_connected = ::poll(&pfd, 1, 100) > 0;
  if (probe_connected) {
    ::close(probe);
    ::close(filler);
    ::close(listener);
    GTEST_SKIP() << "this kernel completed a connect to a full accept queue";
  }

  TcpClientOptions o;
  o.retry = false;
  o.connect_timeout = milliseconds(200);
  makeClient(addr, o);
  const auto start = std::chrono::steady_clock::now();
  client_->connect();
  ASSERT_TRUE(events_.waitErrors(1));
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(200));
  EXPECT_EQ(errors()[0],
            absl::StrFormat("cannot connect to %s: Connection timed out", addr.toIpPort()));
  EXPECT_EQ(ups(), 0);
  destroyClient();
  ::close(probe);
  ::close(filler);
  ::close(listener);
}

}  // namespace
}  // namespace plexus
