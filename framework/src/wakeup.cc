#include "wakeup.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "plexus/event_loop.h"
#include "plexus/log.h"
#include "socket_ops.h"

namespace plexus::detail {
namespace {
int makeEventFd() {
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) LOG_FATAL("eventfd: %s", std::strerror(errno));
  return fd;
}
}  // namespace

Wakeup::Wakeup(EventLoop* loop) : loop_(loop), fd_(makeEventFd()), channel_(loop, fd_, this) {
  absl::Status s = channel_.setInterest(kEventRead);
  if (!s.ok()) LOG_FATAL("cannot watch the wakeup eventfd: %s", s.message());
}

Wakeup::~Wakeup() {
  channel_.remove();
  closeFd(fd_);
}

void Wakeup::wake() {
  // A wake-up that is lost leaves the loop asleep with work queued: try again on a failure. EAGAIN
  // means the counter is full, so the loop will wake anyway.
  uint64_t one = 1;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (::write(fd_, &one, sizeof one) == sizeof one || errno == EAGAIN) return;
  }
  LOG_ERROR("eventfd write: %s: a wake-up may be late", std::strerror(errno));
}

void Wakeup::handleEvent(uint32_t revents) {
  if (revents & kEventFailed) {
    // Not re-armed: without it the loop would never wake for queued work again.
    if (absl::Status s = channel_.setInterest(kEventRead); !s.ok()) {
      LOG_ERROR("cannot re-arm the wakeup eventfd: %s", s.message());
    }
    return;
  }
  // A failed read leaves the counter set: the fd stays readable and is read on the next pass.
  uint64_t value;
  ssize_t n = ::read(fd_, &value, sizeof value);
  loop_->counters().other_calls.add();
  if (n != sizeof value && errno != EAGAIN) LOG_WARN("eventfd read: %s", std::strerror(errno));
}

}  // namespace plexus::detail
