#pragma once
// Connector: makes one outgoing TCP connection with a timeout, retrying with exponential backoff.
// Held by shared_ptr; timers and queued tasks hold weak references. Loop thread only, except
// start() and stop(), which may be called from any thread.

#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "plexus/channel.h"
#include "plexus/event_loop.h"
#include "plexus/inet_address.h"
#include "plexus/tcp_client.h"

namespace plexus::detail {

class Connector final : public std::enable_shared_from_this<Connector>, private EventHandler {
 public:
  using ConnectedCallback = std::function<void(int sockfd)>;
  using FailedCallback = std::function<void(const absl::Status&)>;

  Connector(EventLoop* loop, const InetAddress& server, const TcpClientOptions& options);
  ~Connector();

  void setConnectedCallback(ConnectedCallback cb) { connected_ = std::move(cb); }
  void setFailedCallback(FailedCallback cb) { failed_ = std::move(cb); }

  // Starts connecting (attempts and backoff start afresh).
  void start();
  // Starts again after `delay` (used for reconnects); keeps the backoff state.
  void restartAfterBackoff();
  // Gives up: cancels the attempt in flight and any retry.
  void stop();

 private:
  void startInLoop();
  void attempt();
  void handleEvent(uint32_t revents) override;
  void attemptFailed(int err, const char* what);
  void cleanupAttempt(bool close_fd);
  void scheduleRetry();

  EventLoop* const loop_;
  const InetAddress server_;
  const TcpClientOptions options_;
  ConnectedCallback connected_;
  FailedCallback failed_;
  bool active_ = false;
  int fd_ = -1;
  std::unique_ptr<Channel> channel_;
  int attempts_ = 0;
  Duration backoff_;
  TimerId timeout_timer_;
  TimerId retry_timer_;
};

}  // namespace plexus::detail
