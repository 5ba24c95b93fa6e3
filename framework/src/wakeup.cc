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
  uint64_t one = 1;
  ssize_t n = ::write(fd_, &one, sizeof one);
  if (n != sizeof one && errno != EAGAIN) LOG_ERROR("eventfd write: %s", std::strerror(errno));
}

void Wakeup::handleEvent(uint32_t) {
  uint64_t value;
  ssize_t n = ::read(fd_, &value, sizeof value);
  loop_->counters().other_calls.add();
  if (n != sizeof value && errno != EAGAIN) LOG_ERROR("eventfd read: %s", std::strerror(errno));
}

}  // namespace plexus::detail
