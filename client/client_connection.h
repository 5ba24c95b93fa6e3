#pragma once
// ClientConnection: one plexus::TcpClient on its own loop thread, driven by blocking calls from the
// main thread. The received bytes go to a sink on the loop thread as they arrive; sends are bounded
// (at most `max_unsent` bytes queued and not yet written), so a fast producer waits for the network
// instead of filling memory.
//
// Thread safety: connect() and the destructor on the owning thread; every other method from any one
// thread other than the loop thread (they block). The sink runs on the loop thread.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "plexus/event_loop.h"
#include "plexus/event_loop_thread.h"
#include "plexus/inet_address.h"
#include "plexus/tcp_client.h"
#include "plexus/tcp_connection.h"

namespace plexus::client {

class ClientConnection {
 public:
  struct Options {
    InetAddress server;
    Duration connect_timeout = std::chrono::seconds(3);
    int retries = 0;  // connect attempts after the first
    size_t max_unsent = 1024 * 1024;
  };
  // Gets each chunk of received bytes, in order, on the loop thread. Returning false (e.g. stdout
  // is gone) closes the connection.
  using DataSink = std::function<bool(std::string_view)>;

  ClientConnection(Options options, DataSink sink);
  ~ClientConnection();  // closes at once if still connected, then stops the loop thread
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  // Starts the loop thread and connects, blocking until connected or given up. The error message is
  // the reason alone, e.g. "Connection refused".
  absl::Status connect();

  // Queues bytes for the server, first waiting while more than max_unsent bytes are still
  // unwritten. False once the connection has closed (the bytes are dropped).
  bool send(std::string_view data);
  // Once closed(): how many of the bytes send() took the server's TCP acknowledged, asked of the
  // socket as it closed (the bytes written to it, where that cannot be asked). Short of all that
  // send() took, the rest was lost with the connection. Bytes the server's kernel acknowledged and
  // its program then dropped unread (closing with a reset) are not seen. 0 before the close.
  uint64_t bytesAcknowledged() const;
  // Shuts down the write side once everything sent before has been written; reading goes on.
  void shutdownWrite();
  // Graceful close: stops reading, flushes, closes. Waits up to `timeout`, then closes at once.
  void close(absl::Duration timeout);

  void waitClosed();
  bool closed() const;
  // Closed, and not by close(): the server closed or reset it.
  bool closedByPeer() const;
  // The sink refused bytes (so the connection was closed).
  bool sinkFailed() const;
  // Readable once the connection has closed: poll() it next to stdin to stop waiting for input.
  int closedFd() const { return closed_fd_; }

 private:
  enum class State { kIdle, kConnecting, kConnected, kClosed, kFailed };

  void onConnection(const TcpConnectionPtr& conn);
  void onMessage(const TcpConnectionPtr& conn, Buffer* buf);
  void onWriteComplete(const TcpConnectionPtr& conn);
  void onConnectError(const absl::Status& status);
  TcpConnectionPtr connectionIfOpen();
  // Runs `fn` on the loop thread and waits for it.
  void runOnLoopAndWait(const std::function<void()>& fn);
  size_t unsentLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return static_cast<size_t>(handed_ - processed_) + output_pending_;
  }

  const Options options_;
  const DataSink sink_;
  int closed_fd_ = -1;  // an eventfd
  EventLoopThread loop_thread_;
  EventLoop* loop_ = nullptr;
  std::unique_ptr<TcpClient> client_;  // made, used and destroyed on the loop thread

  mutable absl::Mutex mutex_;
  State state_ ABSL_GUARDED_BY(mutex_) = State::kIdle;
  absl::Status connect_error_ ABSL_GUARDED_BY(mutex_);
  TcpConnectionPtr conn_ ABSL_GUARDED_BY(mutex_);
  bool closing_ ABSL_GUARDED_BY(mutex_) = false;  // close() asked for it
  bool sink_failed_ ABSL_GUARDED_BY(mutex_) = false;
  // Unsent bytes = handed to the loop but not yet given to the connection (handed_ - processed_)
  // + what the connection's output buffer held after the last send (output_pending_). The output
  // buffer is only re-measured when it has drained completely, so this over-counts, never under.
  uint64_t handed_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t processed_ ABSL_GUARDED_BY(mutex_) = 0;
  size_t output_pending_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t acknowledged_ ABSL_GUARDED_BY(mutex_) = 0;
  // Loop thread: a duplicate of the connection's fd, so that the socket outlives the connection's
  // own close() until onConnection() has asked it how much the server acknowledged (see there).
  int probe_fd_ = -1;
};

}  // namespace plexus::client
