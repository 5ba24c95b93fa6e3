#include "engines/epoll_engine.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "fast_syscalls.h"
#include "plexus/log.h"

namespace plexus::detail {

static_assert(kEventRead == static_cast<uint32_t>(EPOLLIN));
static_assert(kEventPriority == static_cast<uint32_t>(EPOLLPRI));
static_assert(kEventWrite == static_cast<uint32_t>(EPOLLOUT));
static_assert(kEventError == static_cast<uint32_t>(EPOLLERR));
static_assert(kEventHangup == static_cast<uint32_t>(EPOLLHUP));
static_assert(kEventReadHangup == static_cast<uint32_t>(EPOLLRDHUP));

namespace {

constexpr size_t kInitialEvents = 16;

const char* opName(int op) {
  switch (op) {
    case EPOLL_CTL_ADD: return "ADD";
    case EPOLL_CTL_MOD: return "MOD";
    case EPOLL_CTL_DEL: return "DEL";
  }
  return "?";
}

}  // namespace

absl::StatusOr<std::unique_ptr<EpollEngine>> EpollEngine::create(EpollMode mode) {
  int epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return absl::ErrnoToStatus(errno, "epoll_create1");
  return std::unique_ptr<EpollEngine>(new EpollEngine(epfd, mode));
}

EpollEngine::EpollEngine(int epfd, EpollMode mode)
    : epfd_(epfd), mode_(mode), events_(kInitialEvents) {}

EpollEngine::~EpollEngine() { ::close(epfd_); }

std::string EpollEngine::description() const {
  return absl::StrFormat("epoll (%s)", epollModeName(mode_));
}

absl::Status EpollEngine::control(int op, int fd, uint32_t interest) {
  epoll_event ev{};
  ev.events = interest;
  if (mode_ == EpollMode::kOneshot) ev.events |= EPOLLONESHOT;
  // Edge mode asks for EPOLLRDHUP with EPOLLIN: a reader may stop at a short read, unless the
  // wait reported that a FIN has arrived, which raises no edge of its own once it is queued.
  if (mode_ == EpollMode::kEdge) {
    ev.events |= EPOLLET;
    if (interest & EPOLLIN) ev.events |= EPOLLRDHUP;
  }
  // The fd rides in the event; the ctx stays in fds_, so modify() can change it.
  ev.data.fd = fd;
  ctl_calls_.add();
  if (sys::epollCtl(epfd_, op, fd, &ev) < 0) {
    return absl::ErrnoToStatus(errno, absl::StrFormat("epoll_ctl(%s, fd %d)", opName(op), fd));
  }
  return absl::OkStatus();
}

absl::Status EpollEngine::add(int fd, uint32_t interest, void* ctx) {
  if (fd < 0) return absl::InvalidArgumentError(absl::StrFormat("epoll engine: bad fd %d", fd));
  if (static_cast<size_t>(fd) < fds_.size() && fds_[fd].registered) {
    return absl::AlreadyExistsError(absl::StrFormat("epoll engine: fd %d is already registered", fd));
  }
  // Grow fds_ only for an fd the kernel accepted, not for any number a caller passes.
  if (absl::Status st = control(EPOLL_CTL_ADD, fd, interest); !st.ok()) return st;
  if (static_cast<size_t>(fd) >= fds_.size()) fds_.resize(static_cast<size_t>(fd) + 1);
  fds_[fd] = FdState{ctx, interest, true, true};
  return absl::OkStatus();
}

absl::Status EpollEngine::modify(int fd, uint32_t interest, void* ctx) {
  if (fd < 0 || static_cast<size_t>(fd) >= fds_.size() || !fds_[fd].registered) {
    return absl::NotFoundError(absl::StrFormat("epoll engine: fd %d is not registered", fd));
  }
  if (absl::Status st = control(EPOLL_CTL_MOD, fd, interest); !st.ok()) return st;
  fds_[fd].ctx = ctx;
  fds_[fd].interest = interest;
  fds_[fd].armed = true;
  return absl::OkStatus();
}

absl::Status EpollEngine::remove(int fd) {
  if (fd < 0 || static_cast<size_t>(fd) >= fds_.size() || !fds_[fd].registered) {
    return absl::NotFoundError(absl::StrFormat("epoll engine: fd %d is not registered", fd));
  }
  // Forget the fd even if DEL fails (say the fd was closed first): it is no longer watched anyway.
  fds_[fd] = FdState{};
  // Its events later in the batch being dispatched must not reach whoever registers the fd next.
  for (int i = 0; i < batch_size_; ++i) {
    if (events_[i].data.fd == fd) events_[i].data.fd = -1;
  }
  return control(EPOLL_CTL_DEL, fd, 0);
}

absl::StatusOr<int> EpollEngine::wait(int timeout_ms, std::vector<ReadyEvent>* out) {
  int n = sys::epollWait(epfd_, events_.data(), static_cast<int>(events_.size()), timeout_ms);
  if (n < 0) {
    const int err = errno;
    out->clear();
    if (err == EINTR) return 0;
    return absl::ErrnoToStatus(err, "epoll_wait");
  }
  // Written in place: no per-event capacity checks on the loop's hot path.
  if (out->size() != static_cast<size_t>(n)) out->resize(static_cast<size_t>(n));
  ReadyEvent* ready = out->data();
  FdState* fds = fds_.data();
  const bool oneshot = mode_ == EpollMode::kOneshot;
  for (int i = 0; i < n; ++i) {
    const int fd = events_[i].data.fd;
    FdState& s = fds[fd];
    if (oneshot) s.armed = false;
    ready[i] = ReadyEvent{fd, events_[i].events, s.ctx};
  }
  // A full array may have left ready fds behind; make room for them next time.
  if (static_cast<size_t>(n) == events_.size()) events_.resize(events_.size() * 2);
  return n;
}

// After an fd's events were handled (dispatch() and rearm()): re-arms it with the interest it has
// now, unless it was removed, re-armed already by modify(), or has no interest left. control()
// written out: this runs once per event in oneshot mode.
__attribute__((always_inline)) inline void EpollEngine::rearmAfterDispatch(int fd) {
  // fds_ may have grown while the fd's events were handled: index it afresh.
  FdState& s = fds_[fd];
  if (!s.registered || s.armed || s.interest == 0) return;
  epoll_event ev;
  ev.events = s.interest | EPOLLONESHOT;
  ev.data.fd = fd;
  ctl_calls_.add();
  if (sys::epollCtl(epfd_, EPOLL_CTL_MOD, fd, &ev) < 0) {
    LOG_ERROR("epoll engine: rearm of fd %d failed: %s", fd, std::strerror(errno));
    return;
  }
  s.armed = true;
}

absl::StatusOr<int> EpollEngine::dispatch(int timeout_ms, ReadyFn fn, void* arg) {
  const int n = sys::epollWait(epfd_, events_.data(), static_cast<int>(events_.size()), timeout_ms);
  if (n < 0) {
    const int err = errno;
    if (err == EINTR) return 0;
    return absl::ErrnoToStatus(err, "epoll_wait");
  }
  // Straight from the kernel's array: the loop's step costs no copy of the events. The ctx is read
  // at dispatch time, so a modify() made earlier in the batch is seen.
  batch_size_ = n;
  epoll_event* events = events_.data();
  if (mode_ == EpollMode::kOneshot) {
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd < 0) continue;  // removed while this batch was handled
      fds_[fd].armed = false;
      fn(fds_[fd].ctx, events[i].events, arg);
      rearmAfterDispatch(fd);
    }
  } else {
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd >= 0) fn(fds_[fd].ctx, events[i].events, arg);
    }
  }
  batch_size_ = 0;
  // A full array may have left ready fds behind; make room for them next time.
  if (static_cast<size_t>(n) == events_.size()) events_.resize(events_.size() * 2);
  return n;
}

void EpollEngine::rearm(int fd, uint32_t interest, void* ctx) {
  if (mode_ != EpollMode::kOneshot || fd < 0 || static_cast<size_t>(fd) >= fds_.size()) return;
  FdState& s = fds_[fd];
  // Armed already: modify() ran while the events were handled. Interest 0: nothing to wait for,
  // the next modify() arms it.
  if (!s.registered || s.armed || interest == 0) return;
  s.ctx = ctx;
  s.interest = interest;
  rearmAfterDispatch(fd);
}

}  // namespace plexus::detail
