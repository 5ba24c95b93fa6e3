#pragma once
// ServerHarness: a TcpServer whose base loop runs on its own thread, for tests. The server is built,
// started and destroyed on that thread, as TcpServer requires.

#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "plexus/event_loop_thread.h"
#include "plexus/tcp_server.h"

namespace plexus::testing {

class ServerHarness {
 public:
  // `setup` runs on the base loop before start(), to install callbacks.
  explicit ServerHarness(TcpServerOptions options,
                         std::function<void(TcpServer&)> setup = nullptr);
  ~ServerHarness();

  // The start() result.
  const absl::Status& status() const { return status_; }
  InetAddress address() const;  // 127.0.0.1:<bound port>
  TcpServer& server() { return *server_; }
  EventLoop* baseLoop() const { return loop_; }
  // Runs `f` on the base loop and waits for it.
  void runSync(const std::function<void()>& f);
  // Graceful stop with `grace`; waits until it completes.
  void stop(Duration grace);

 private:
  EventLoopThread thread_;
  EventLoop* loop_ = nullptr;
  std::unique_ptr<TcpServer> server_;
  absl::Status status_;
};

// A server whose message callback echoes everything back.
void installEcho(TcpServer& server);

}  // namespace plexus::testing
