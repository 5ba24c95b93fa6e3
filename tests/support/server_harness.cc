#include "support/server_harness.h"

#include "absl/synchronization/notification.h"
#include "plexus/buffer.h"
#include "plexus/tcp_connection.h"
#include "support/test_util.h"

namespace plexus::testing {

ServerHarness::ServerHarness(TcpServerOptions options, std::function<void(TcpServer&)> setup)
    : thread_(EngineOptions{options.engine}, nullptr, "test-base") {
  auto loop = thread_.start();
  if (!loop.ok()) {
    status_ = loop.status();
    return;
  }
  loop_ = *loop;
  runSync([&] {
    server_ = std::make_unique<TcpServer>(loop_, options);
    if (setup) setup(*server_);
    status_ = server_->start();
  });
}

ServerHarness::~ServerHarness() {
  if (loop_ != nullptr) runSync([this] { server_.reset(); });
  thread_.stop();
}

InetAddress ServerHarness::address() const {
  return InetAddress(server_->listenAddress().port(), /*loopback_only=*/true);
}

void ServerHarness::runSync(const std::function<void()>& f) { testing::runSync(loop_, f); }

void ServerHarness::stop(Duration grace) {
  absl::Notification stopped;
  loop_->runInLoop([&] { server_->stop(grace, [&] { stopped.Notify(); }); });
  awaitOrAbort(stopped, "ServerHarness::stop: the server did not finish stopping",
               std::chrono::duration_cast<milliseconds>(grace) + milliseconds(30000));
}

void installEcho(TcpServer& server) {
  server.setMessageCallback([](const TcpConnectionPtr& conn, Buffer* buf) { conn->send(buf); });
}

}  // namespace plexus::testing
