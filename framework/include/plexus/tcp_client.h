#pragma once
// TcpClient: one outgoing connection, made by a Connector that connects with a timeout and retries
// with exponential backoff.
//
// Thread safety: connect(), disconnect(), stop() and connection() may be called from any thread;
// callbacks are set before connect() and run on the client's loop thread. The loop must outlive the
// client, and the client must be destroyed on the loop thread or after the loop stopped running.

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "plexus/callbacks.h"
#include "plexus/event_loop.h"
#include "plexus/inet_address.h"
#include "plexus/tcp_connection.h"

namespace plexus {

namespace detail {
class Connector;
}

struct TcpClientOptions {
  Duration connect_timeout = std::chrono::seconds(3);
  // Retries after a failed or timed-out attempt, waiting initial_backoff, doubled each time up to
  // max_backoff. max_attempts counts all attempts; 0 means no limit.
  bool retry = false;
  int max_attempts = 0;
  Duration initial_backoff = std::chrono::milliseconds(100);
  Duration max_backoff = std::chrono::seconds(5);
  // Connect again after an established connection closes (uses the same backoff).
  bool reconnect = false;
  ConnectionOptions connection;
};

class TcpClient final : private ConnectionOwner {
 public:
  TcpClient(EventLoop* loop, const InetAddress& server, TcpClientOptions options = {});
  ~TcpClient();
  TcpClient(const TcpClient&) = delete;
  TcpClient& operator=(const TcpClient&) = delete;

  void setConnectionCallback(ConnectionCallback cb) { callbacks_.connection = std::move(cb); }
  void setMessageCallback(MessageCallback cb) { callbacks_.message = std::move(cb); }
  void setWriteCompleteCallback(WriteCompleteCallback cb) { callbacks_.write_complete = std::move(cb); }
  void setHighWaterMarkCallback(HighWaterMarkCallback cb) { callbacks_.high_water_mark = std::move(cb); }
  // Called on the loop thread when connecting gives up (timeout or error with no retries left).
  void setConnectErrorCallback(std::function<void(const absl::Status&)> cb) {
    connect_error_ = std::move(cb);
  }

  // Starts connecting; does nothing while connected or connecting already.
  void connect();
  // Shuts down the write side of the current connection (graceful); no reconnect afterwards.
  void disconnect();
  // Stops connecting (cancels retries); an established connection stays open.
  void stop();

  TcpConnectionPtr connection() const;
  EventLoop* getLoop() const { return loop_; }
  const InetAddress& serverAddress() const { return server_; }

 private:
  void newConnection(int sockfd);
  void connectionClosed(const TcpConnectionPtr& conn) override;

  EventLoop* const loop_;
  const InetAddress server_;
  const TcpClientOptions options_;
  ConnectionCallbacks callbacks_;
  ConnectionSettingsPtr shared_settings_;  // loop thread
  std::function<void(const absl::Status&)> connect_error_;
  std::shared_ptr<detail::Connector> connector_;
  bool connect_wanted_ = false;  // loop thread
  uint64_t next_id_ = 1;
  mutable absl::Mutex mutex_;
  TcpConnectionPtr connection_ ABSL_GUARDED_BY(mutex_);
  // Expires when the client is torn down (on the loop thread): work queued on the loop checks it
  // before touching `this`.
  std::shared_ptr<const bool> alive_ = std::make_shared<const bool>(true);
};

}  // namespace plexus
