#include "connector.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "plexus/log.h"
#include "socket_ops.h"

namespace plexus::detail {

Connector::Connector(EventLoop* loop, const InetAddress& server, const TcpClientOptions& options)
    : loop_(loop), server_(server), options_(options), backoff_(options.initial_backoff) {}

Connector::~Connector() {
  // stop() ran on the loop before the last reference went away (TcpClient sees to that).
  if (fd_ >= 0 && !channel_) closeFd(fd_);
}

void Connector::start() {
  std::weak_ptr<Connector> weak = weak_from_this();
  loop_->runInLoop([weak] {
    if (auto self = weak.lock()) self->startInLoop();
  });
}

void Connector::startInLoop() {
  if (active_ || fd_ >= 0) return;  // connecting already
  active_ = true;
  attempts_ = 0;
  backoff_ = options_.initial_backoff;
  attempt();
}

void Connector::restartAfterBackoff() {
  loop_->assertInLoopThread();
  active_ = true;
  // An attempt in flight, or one already scheduled, goes on: never two at once.
  if (fd_ >= 0 || retry_timer_.valid()) return;
  attempts_ = 0;
  scheduleRetry();
}

void Connector::stop() {
  std::weak_ptr<Connector> weak = weak_from_this();
  auto body = [weak] {
    auto self = weak.lock();
    if (!self) return;
    self->active_ = false;
    self->loop_->cancel(self->retry_timer_);
    self->cleanupAttempt(true);
  };
  loop_->runInLoop(body);
}

void Connector::attempt() {
  ++attempts_;
  absl::StatusOr<int> fd = createNonblockingSocket(server_.family());
  if (!fd.ok()) {
    attemptFailed(errno, "socket");
    return;
  }
  fd_ = *fd;
  int rc = ::connect(fd_, server_.sockAddr(), server_.sockLen());
  int err = rc == 0 ? 0 : errno;
  if (err == 0 || err == EINPROGRESS || err == EINTR) {
    // Wait for writability, which reports the outcome; a connect that finished at once reports it
    // right away too.
    channel_ = std::make_unique<Channel>(loop_, fd_, static_cast<EventHandler*>(this));
    absl::Status s = channel_->setInterest(kEventWrite);
    if (!s.ok()) {
      channel_.reset();
      LOG_ERROR("connect to %s: %s", server_.toIpPort(), s.message());
      attemptFailed(EMFILE, "watch");
      return;
    }
    std::weak_ptr<Connector> weak = weak_from_this();
    timeout_timer_ = loop_->runAfter(options_.connect_timeout, [weak] {
      if (auto self = weak.lock()) {
        self->timeout_timer_ = TimerId{};
        if (self->fd_ >= 0) self->attemptFailed(ETIMEDOUT, "timeout");
      }
    });
    return;
  }
  attemptFailed(err, "connect");
}

void Connector::handleEvent(uint32_t revents) {
  const int fd = fd_;
  // The engine cannot watch the attempt any more: it would only end by its timeout.
  int err = (revents & kEventFailed) ? ENOMEM : socketError(fd);
  if (err == 0 && isSelfConnect(fd)) err = ECONNREFUSED;
  if (err != 0) {
    attemptFailed(err, "connect");
    return;
  }
  // Connected: hand the fd over; it leaves our engine registration first.
  cleanupAttempt(false);
  active_ = false;
  backoff_ = options_.initial_backoff;
  if (connected_) {
    connected_(fd);
  } else {
    closeFd(fd);
  }
}

void Connector::cleanupAttempt(bool close_fd) {
  loop_->cancel(timeout_timer_);
  timeout_timer_ = TimerId{};
  if (channel_) {
    channel_->remove();
    channel_.reset();
  }
  if (fd_ >= 0 && close_fd) closeFd(fd_);
  fd_ = -1;
}

void Connector::attemptFailed(int err, const char* what) {
  cleanupAttempt(true);
  if (!active_) return;
  const bool more = options_.retry && (options_.max_attempts == 0 || attempts_ < options_.max_attempts);
  LOG_DEBUG("connect to %s (attempt %d): %s: %s", server_.toIpPort(), attempts_, what,
            std::strerror(err));
  if (more) {
    scheduleRetry();
    return;
  }
  active_ = false;
  absl::Status status = absl::UnavailableError(
      absl::StrFormat("cannot connect to %s: %s", server_.toIpPort(),
                      err == ETIMEDOUT ? "Connection timed out" : std::strerror(err)));
  if (failed_) failed_(status);
}

void Connector::scheduleRetry() {
  std::weak_ptr<Connector> weak = weak_from_this();
  const Duration delay = backoff_;
  backoff_ = std::min<Duration>(backoff_ * 2, options_.max_backoff);
  retry_timer_ = loop_->runAfter(delay, [weak] {
    if (auto self = weak.lock()) {
      self->retry_timer_ = TimerId{};
      if (self->active_ && self->fd_ < 0) self->attempt();
    }
  });
}

}  // namespace plexus::detail
