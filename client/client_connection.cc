#include "client/client_connection.h"

#include <fcntl.h>
#include <linux/tcp.h>  // tcp_info with tcpi_bytes_acked (glibc's <netinet/tcp.h> lacks it)
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>

#include "absl/synchronization/notification.h"
#include "plexus/buffer.h"

namespace plexus::client {
namespace {

// The connector's errors read "<what failed>: <reason>"; the caller prints its own context, so keep
// only the reason ("Connection refused").
absl::Status reasonOnly(const absl::Status& status) {
  absl::string_view msg = status.message();
  if (size_t colon = msg.rfind(": "); colon != absl::string_view::npos) msg.remove_prefix(colon + 2);
  return absl::Status(status.code(), msg);
}

// Of the `written` bytes written to the socket `fd`, how many the peer's TCP acknowledged; `written`
// when it cannot be asked.
uint64_t acknowledgedBytes(int fd, uint64_t written) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (fd < 0 || ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 ||
      len < offsetof(tcp_info, tcpi_bytes_acked) + sizeof info.tcpi_bytes_acked) {
    return written;
  }
  // tcpi_bytes_acked counts our SYN, and our FIN once everything before it was acknowledged.
  const uint64_t acked = info.tcpi_bytes_acked;
  return std::min<uint64_t>(acked > 0 ? acked - 1 : 0, written);
}

}  // namespace

ClientConnection::ClientConnection(Options options, DataSink sink)
    : options_(std::move(options)),
      sink_(std::move(sink)),
      closed_fd_(::eventfd(0, EFD_CLOEXEC)),
      loop_thread_(EngineOptions{}, nullptr, "plexus-client") {}

ClientConnection::~ClientConnection() {
  if (loop_ != nullptr) {
    if (TcpConnectionPtr conn = connectionIfOpen()) {
      conn->forceClose();
      absl::MutexLock lock(&mutex_);
      auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
        return state_ != State::kConnected;
      };
      mutex_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(2));
    }
    // The client is destroyed on its loop thread, as TcpClient asks. Joining the thread afterwards
    // also guarantees no callback (they capture `this`) runs once the members below are gone.
    runOnLoopAndWait([this] {
      if (client_) client_->stop();
      client_.reset();
    });
    loop_thread_.stop();
  }
  if (probe_fd_ >= 0) ::close(probe_fd_);  // the loop thread has stopped
  if (closed_fd_ >= 0) ::close(closed_fd_);
}

absl::Status ClientConnection::connect() {
  if (closed_fd_ < 0) return absl::InternalError("cannot create an eventfd");
  absl::StatusOr<EventLoop*> loop = loop_thread_.start();
  if (!loop.ok()) return loop.status();
  loop_ = *loop;
  {
    absl::MutexLock lock(&mutex_);
    state_ = State::kConnecting;
  }

  TcpClientOptions copts;
  copts.connect_timeout = options_.connect_timeout;
  copts.retry = options_.retries > 0;
  copts.max_attempts = options_.retries + 1;
  runOnLoopAndWait([this, &copts] {
    client_ = std::make_unique<TcpClient>(loop_, options_.server, copts);
    client_->setConnectionCallback([this](const TcpConnectionPtr& c) { onConnection(c); });
    client_->setMessageCallback([this](const TcpConnectionPtr& c, Buffer* b) { onMessage(c, b); });
    client_->setWriteCompleteCallback([this](const TcpConnectionPtr& c) { onWriteComplete(c); });
    client_->setConnectErrorCallback([this](const absl::Status& s) { onConnectError(s); });
    client_->connect();
  });

  // TcpClient enforces the timeout of each attempt; this outer deadline (every attempt and backoff,
  // plus slack) only guards against a connect that never reports back.
  Duration budget = std::chrono::seconds(2);
  Duration backoff = copts.initial_backoff;
  for (int i = 0; i < copts.max_attempts; ++i) {
    budget += copts.connect_timeout + backoff;
    backoff = std::min<Duration>(backoff * 2, copts.max_backoff);
  }
  bool decided_in_time;
  {
    absl::MutexLock lock(&mutex_);
    auto decided = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return state_ != State::kConnecting;
    };
    decided_in_time = mutex_.AwaitWithTimeout(absl::Condition(&decided), absl::FromChrono(budget));
  }
  if (!decided_in_time) runOnLoopAndWait([this] { client_->stop(); });
  absl::MutexLock lock(&mutex_);
  if (state_ == State::kConnecting) {
    state_ = State::kFailed;
    connect_error_ = absl::DeadlineExceededError("Connection timed out");
  }
  switch (state_) {
    case State::kConnected:
      return absl::OkStatus();
    case State::kClosed:  // accepted, then closed before we got to look
      return absl::OkStatus();
    default:
      return connect_error_.ok() ? absl::UnavailableError("connection failed") : connect_error_;
  }
}

bool ClientConnection::send(std::string_view data) {
  TcpConnectionPtr conn;
  {
    absl::MutexLock lock(&mutex_);
    const size_t n = data.size();
    auto room = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      const size_t unsent = unsentLocked();
      return state_ != State::kConnected || unsent == 0 || unsent + n <= options_.max_unsent;
    };
    mutex_.Await(absl::Condition(&room));
    if (state_ != State::kConnected) return false;
    handed_ += n;
    conn = conn_;
  }
  // Sending on the loop thread ourselves (rather than TcpConnection::send from here) lets us read the
  // output buffer right after, and keeps the order with shutdownWrite().
  loop_->runInLoop([this, conn = std::move(conn), bytes = std::string(data)] {
    conn->send(bytes);
    absl::MutexLock lock(&mutex_);
    processed_ += bytes.size();
    output_pending_ = conn->outputBuffer()->readableBytes();
  });
  return true;
}

uint64_t ClientConnection::bytesAcknowledged() const {
  absl::MutexLock lock(&mutex_);
  return acknowledged_;
}

void ClientConnection::shutdownWrite() {
  if (TcpConnectionPtr conn = connectionIfOpen()) {
    loop_->runInLoop([conn] { conn->shutdown(); });
  }
}

void ClientConnection::close(absl::Duration timeout) {
  TcpConnectionPtr conn;
  {
    absl::MutexLock lock(&mutex_);
    if (state_ != State::kConnected) return;
    closing_ = true;
    conn = conn_;
  }
  loop_->runInLoop([conn] { conn->closeAfterFlush(); });
  bool closed_in_time;
  {
    absl::MutexLock lock(&mutex_);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return state_ != State::kConnected;
    };
    closed_in_time = mutex_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }
  if (!closed_in_time) conn->forceClose();
}

void ClientConnection::waitClosed() {
  absl::MutexLock lock(&mutex_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return state_ != State::kConnected; };
  mutex_.Await(absl::Condition(&done));
}

bool ClientConnection::closed() const {
  absl::MutexLock lock(&mutex_);
  return state_ == State::kClosed;
}

bool ClientConnection::closedByPeer() const {
  absl::MutexLock lock(&mutex_);
  return state_ == State::kClosed && !closing_ && !sink_failed_;
}

bool ClientConnection::sinkFailed() const {
  absl::MutexLock lock(&mutex_);
  return sink_failed_;
}

TcpConnectionPtr ClientConnection::connectionIfOpen() {
  absl::MutexLock lock(&mutex_);
  return state_ == State::kConnected ? conn_ : nullptr;
}

void ClientConnection::runOnLoopAndWait(const std::function<void()>& fn) {
  absl::Notification done;
  loop_->runInLoop([&fn, &done] {
    fn();
    done.Notify();
  });
  done.WaitForNotification();
}

void ClientConnection::onConnection(const TcpConnectionPtr& conn) {
  if (conn->connected()) {
    // The connection closes its fd before it reports the close; this duplicate keeps the socket,
    // and so its TCP_INFO, until we have read it below. It is never polled: the engine watches the
    // connection's own fd, which the connection takes out of the engine before closing.
    probe_fd_ = ::fcntl(conn->fd(), F_DUPFD_CLOEXEC, 0);
    absl::MutexLock lock(&mutex_);
    state_ = State::kConnected;
    conn_ = conn;
    return;
  }
  const uint64_t acknowledged = acknowledgedBytes(probe_fd_, conn->bytesSent());
  if (probe_fd_ >= 0) ::close(probe_fd_);  // the socket's last reference: our FIN or RST goes now
  probe_fd_ = -1;
  {
    absl::MutexLock lock(&mutex_);
    state_ = State::kClosed;
    conn_.reset();
    acknowledged_ = acknowledged;
  }
  uint64_t one = 1;
  ssize_t ignored = ::write(closed_fd_, &one, sizeof one);
  (void)ignored;
}

void ClientConnection::onMessage(const TcpConnectionPtr& conn, Buffer* buf) {
  bool ok;
  {
    absl::MutexLock lock(&mutex_);
    ok = !sink_failed_;
  }
  // The sink may block (a slow stdout): that stalls this loop, and so the server, which is the
  // backpressure we want.
  if (ok) ok = sink_(buf->view());
  buf->retrieveAll();
  if (ok) return;
  {
    absl::MutexLock lock(&mutex_);
    sink_failed_ = true;
  }
  // Outside the lock: closing runs onConnection() at once, which takes it.
  conn->forceClose();
}

void ClientConnection::onWriteComplete(const TcpConnectionPtr& conn) {
  // Measured, not assumed 0: a send queued before this callback may have refilled the buffer.
  const size_t pending = conn->outputBuffer()->readableBytes();
  absl::MutexLock lock(&mutex_);
  output_pending_ = pending;
}

void ClientConnection::onConnectError(const absl::Status& status) {
  absl::MutexLock lock(&mutex_);
  state_ = State::kFailed;
  connect_error_ = reasonOnly(status);
}

}  // namespace plexus::client
