#include "acceptor.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "plexus/log.h"
#include "socket_ops.h"

namespace plexus::detail {
namespace {
int openReserveFd() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

// Level-triggered in every engine mode: a oneshot engine need not re-arm the listening socket
// after each wake-up, and connections left in the queue after a batch wake the loop again.
constexpr uint32_t kListenInterest = kEventRead | kEventLevel;
// Connections accepted per wake-up, at most: so a flood of connections cannot keep the loop from
// its other fds; level-triggered, the socket wakes the loop again for the rest. Below that bound
// accepting goes on until EAGAIN, one failing accept4 per wake-up (as libev and libuv do): a
// smaller bound saves that accept4 only by adding an epoll_wait per connection once more than
// the bound are queued, which costs more (measured with a bound of 1: accept4 1.13 -> 1.00, and
// epoll_wait 0.27 -> 1.02 per connection; bench/results/connrate-2026-12-03-*.md).
constexpr int kAcceptBatch = 64;
}  // namespace

uint32_t Acceptor::listenInterest() const {
  return kListenInterest | (loop_->completesIo() ? kEventAccept : 0);
}

Acceptor::Acceptor(EventLoop* loop, const InetAddress& listen_address, bool reuse_port, int backlog)
    : loop_(loop), bound_(listen_address), reuse_port_(reuse_port), backlog_(backlog) {}

Acceptor::~Acceptor() { close(); }

absl::Status Acceptor::listen() {
  loop_->assertInLoopThread();
  auto fail = [this](const char* what, int err) {
    std::string msg = absl::StrFormat("cannot listen on %s: %s%s", bound_.toIpPort(),
                                      std::strerror(err), what);
    if (fd_ >= 0) {
      closeFd(fd_);
      fd_ = -1;
    }
    return err == EADDRINUSE ? absl::AlreadyExistsError(msg) : absl::InternalError(msg);
  };
  absl::StatusOr<int> fd = createNonblockingSocket(bound_.family());
  if (!fd.ok()) return fd.status();
  fd_ = *fd;
  int one = 1;
  ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port_ && ::setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    return fail(" (SO_REUSEPORT)", errno);
  }
  if (::bind(fd_, bound_.sockAddr(), bound_.sockLen()) < 0) return fail("", errno);
  if (::listen(fd_, backlog_) < 0) return fail("", errno);
  bound_ = localAddressOf(fd_);
  reserve_fd_ = openReserveFd();
  channel_owner_ = std::make_unique<Channel>(loop_, fd_, static_cast<EventHandler*>(this));
  channel_ = channel_owner_.get();
  absl::Status s = channel_->setInterest(listenInterest());
  if (!s.ok()) {
    channel_owner_.reset();
    channel_ = nullptr;
    closeFd(fd_);
    fd_ = -1;
    return absl::InternalError(
        absl::StrFormat("cannot listen on %s: %s", bound_.toIpPort(), s.message()));
  }
  return absl::OkStatus();
}

absl::Status Acceptor::adopt(int fd) {
  loop_->assertInLoopThread();
  auto option = [fd](int name) {
    int value = -1;
    socklen_t len = sizeof value;
    return ::getsockopt(fd, SOL_SOCKET, name, &value, &len) == 0 ? value : -1;
  };
  auto fail = [fd](const std::string& why) {
    closeFd(fd);
    return absl::InvalidArgumentError(absl::StrFormat("cannot accept on fd %d: %s", fd, why));
  };
  if (::fcntl(fd, F_GETFD) < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot accept on fd %d: %s", fd, std::strerror(errno)));
  }
  const int domain = option(SO_DOMAIN);
  if (option(SO_TYPE) != SOCK_STREAM || option(SO_PROTOCOL) != IPPROTO_TCP ||
      (domain != AF_INET && domain != AF_INET6)) {
    return fail("not a TCP socket");
  }
  if (option(SO_ACCEPTCONN) != 1) return fail("not a listening socket");
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
      ::fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
    return fail(std::strerror(errno));
  }
  fd_ = fd;
  bound_ = localAddressOf(fd_);
  reserve_fd_ = openReserveFd();
  channel_owner_ = std::make_unique<Channel>(loop_, fd_, static_cast<EventHandler*>(this));
  channel_ = channel_owner_.get();
  if (absl::Status s = channel_->setInterest(listenInterest()); !s.ok()) {
    channel_owner_.reset();
    channel_ = nullptr;
    fd_ = -1;
    closeFd(reserve_fd_);
    reserve_fd_ = -1;
    return fail(std::string(s.message()));
  }
  return absl::OkStatus();
}

void Acceptor::close() {
  if (fd_ < 0) return;
  loop_->assertInLoopThread();
  loop_->cancel(resume_timer_);
  // Out of the engine first, then close.
  channel_->remove();
  channel_owner_.reset();
  channel_ = nullptr;
  closeFd(fd_);
  fd_ = -1;
  if (reserve_fd_ >= 0) {
    closeFd(reserve_fd_);
    reserve_fd_ = -1;
  }
}

void Acceptor::handleEvent(uint32_t revents) {
  if (revents & kEventFailed) {
    if (absl::Status s = channel_->setInterest(listenInterest()); !s.ok()) {
      LOG_ERROR("accept on %s: cannot re-arm the listening socket: %s; retrying shortly",
                bound_.toIpPort(), s.message());
      pause();
    }
    return;
  }
  if (revents & kEventAccept) {
    // The engine accepted it (io_uring's multishot accept): no accept4 here.
    const Engine::IoResult& r = loop_->engine().received();
    if (r.fd >= 0) {
      admit(r.fd, peerAddressOf(r.fd));
    } else {
      acceptFailed(r.err);
    }
    return;
  }
  for (int accepted = 0; accepted < kAcceptBatch;) {
    sockaddr_in6 addr{};
    socklen_t len = sizeof addr;
    int conn = ::accept4(fd_, reinterpret_cast<sockaddr*>(&addr), &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
    loop_->counters().accept_calls.add();
    if (conn >= 0) {
      admit(conn, addr.sin6_family == AF_INET
                      ? InetAddress(*reinterpret_cast<sockaddr_in*>(&addr))
                      : InetAddress(addr));
      // The callback may have closed us (server stopping).
      if (fd_ < 0) return;
      ++accepted;
      continue;
    }
    const int err = errno;
    if (err == EAGAIN) return;
    if (!acceptFailed(err)) return;
  }
}

void Acceptor::admit(int conn, const InetAddress& peer) {
  if (shedding_) {
    LOG_WARN("accepting again on %s after shedding %u connections for lack of fds",
             bound_.toIpPort(), shed_in_burst_);
    shedding_ = false;
    shed_in_burst_ = 0;
  }
  if (new_connection_) {
    new_connection_(conn, peer);
  } else {
    closeFd(conn);
  }
}

// An accept failed with `err`: true when accepting may go on now.
bool Acceptor::acceptFailed(int err) {
  switch (err) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case EPERM:
      return true;  // that connection is gone; the next may be fine
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
      if (!shedding_) {
        LOG_WARN("accept on %s: %s: shedding new connections until fds free up",
                 bound_.toIpPort(), std::strerror(err));
        shedding_ = true;
      }
      shedOne();
      return fd_ >= 0 && !resume_timer_.valid();  // false: paused
    default:
      LOG_ERROR("accept on %s: %s", bound_.toIpPort(), std::strerror(err));
      return false;
  }
}

void Acceptor::shedOne() {
  if (reserve_fd_ >= 0) {
    closeFd(reserve_fd_);
    int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn >= 0) {
      closeFd(conn);
      ++shed_in_burst_;
      shed_total_.add();
      if (shed_also_ != nullptr) shed_also_->add();
    }
    reserve_fd_ = openReserveFd();
    if (conn >= 0) return;
  }
  // No reserve fd to spend (another thread took it): stop watching for a short while instead of
  // spinning on a listening socket that stays readable.
  pause();
}

void Acceptor::pause() {
  if (resume_timer_.valid()) return;
  // Interest 0 rather than remove(): the fd stays registered, and a failure here changes nothing
  // (a oneshot fd that could not be re-armed is silent anyway).
  (void)channel_->disableReading();
  resume_timer_ = loop_->runAfter(std::chrono::milliseconds(100), [this] {
    resume_timer_ = TimerId{};
    if (channel_ == nullptr) return;
    if (reserve_fd_ < 0) reserve_fd_ = openReserveFd();
    if (absl::Status s = channel_->setInterest(listenInterest()); !s.ok()) {
      LOG_ERROR("accept on %s: cannot watch the listening socket: %s; retrying shortly",
                bound_.toIpPort(), s.message());
      pause();
    }
  });
}

}  // namespace plexus::detail
