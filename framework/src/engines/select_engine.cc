#include "engines/select_engine.h"

#include <sys/time.h>

#include <cerrno>

#include "absl/strings/str_format.h"

namespace plexus::detail {

absl::StatusOr<std::unique_ptr<Engine>> makeSelectEngine(const EngineOptions&) {
  return std::make_unique<SelectEngine>();
}

SelectEngine::SelectEngine() {
  FD_ZERO(&read_set_);
  FD_ZERO(&write_set_);
  FD_ZERO(&except_set_);
}

absl::Status SelectEngine::checkRange(int fd) const {
  if (fd < 0) return absl::InvalidArgumentError(absl::StrFormat("select engine: bad fd %d", fd));
  if (fd >= FD_SETSIZE) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "select engine cannot watch fd %d: fds must be below FD_SETSIZE (%d)", fd, FD_SETSIZE));
  }
  return absl::OkStatus();
}

// Only ever called with 0 <= fd < FD_SETSIZE.
void SelectEngine::setInterest(int fd, uint32_t interest) {
  if (interest & kEventRead) FD_SET(fd, &read_set_); else FD_CLR(fd, &read_set_);
  if (interest & kEventWrite) FD_SET(fd, &write_set_); else FD_CLR(fd, &write_set_);
  if (interest & kEventPriority) FD_SET(fd, &except_set_); else FD_CLR(fd, &except_set_);
}

absl::Status SelectEngine::add(int fd, uint32_t interest, void* ctx) {
  if (absl::Status st = checkRange(fd); !st.ok()) return st;
  if (registered_[fd]) {
    return absl::AlreadyExistsError(absl::StrFormat("select engine: fd %d is already registered", fd));
  }
  registered_[fd] = true;
  ctxs_[fd] = ctx;
  setInterest(fd, interest);
  if (fd > max_fd_) max_fd_ = fd;
  return absl::OkStatus();
}

absl::Status SelectEngine::modify(int fd, uint32_t interest, void* ctx) {
  if (absl::Status st = checkRange(fd); !st.ok()) return st;
  if (!registered_[fd]) {
    return absl::NotFoundError(absl::StrFormat("select engine: fd %d is not registered", fd));
  }
  ctxs_[fd] = ctx;
  setInterest(fd, interest);
  return absl::OkStatus();
}

absl::Status SelectEngine::remove(int fd) {
  if (fd < 0 || fd >= FD_SETSIZE || !registered_[fd]) {
    return absl::NotFoundError(absl::StrFormat("select engine: fd %d is not registered", fd));
  }
  setInterest(fd, 0);
  registered_[fd] = false;
  ctxs_[fd] = nullptr;
  batch_.forget(fd);
  while (max_fd_ >= 0 && !registered_[max_fd_]) --max_fd_;
  return absl::OkStatus();
}

absl::StatusOr<int> SelectEngine::dispatch(int timeout_ms, ReadyFn fn, void* arg) {
  // select() overwrites its sets: hand it copies.
  fd_set rfds = read_set_;
  fd_set wfds = write_set_;
  fd_set efds = except_set_;
  timeval tv{};
  timeval* tvp = nullptr;
  if (timeout_ms >= 0) {
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    tvp = &tv;
  }
  int n = ::select(max_fd_ + 1, &rfds, &wfds, &efds, tvp);
  if (n < 0) {
    if (errno == EINTR) return 0;
    return absl::ErrnoToStatus(errno, "select");
  }
  // n counts set bits, so an fd both readable and writable counts twice; scan every registered fd.
  // Collected first: handlers add and remove fds while the batch is handled.
  batch_.clear();
  for (int fd = 0; fd <= max_fd_ && n > 0; ++fd) {
    if (!registered_[fd]) continue;
    uint32_t events = 0;
    // A hang-up shows as readability: the read then returns 0 (or the error).
    if (FD_ISSET(fd, &rfds)) events |= kEventRead;
    if (FD_ISSET(fd, &wfds)) events |= kEventWrite;
    if (FD_ISSET(fd, &efds)) events |= kEventPriority;
    if (events == 0) continue;
    batch_.push(fd, events, ctxs_[fd]);
  }
  const int ready = batch_.size();
  batch_.dispatch(fn, arg);
  return ready;
}

}  // namespace plexus::detail
