#include "engines/epoll_engine.h"

#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_format.h"
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
  if (mode_ == EpollMode::kEdge) ev.events |= EPOLLET;
  // The fd rides in the event; the ctx stays in fds_, so modify() can change it.
  ev.data.fd = fd;
  ctl_calls_.add();
  if (::epoll_ctl(epfd_, op, fd, &ev) < 0) {
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
  fds_[fd] = FdState{ctx, true, true};
  return absl::OkStatus();
}

absl::Status EpollEngine::modify(int fd, uint32_t interest, void* ctx) {
  if (fd < 0 || static_cast<size_t>(fd) >= fds_.size() || !fds_[fd].registered) {
    return absl::NotFoundError(absl::StrFormat("epoll engine: fd %d is not registered", fd));
  }
  if (absl::Status st = control(EPOLL_CTL_MOD, fd, interest); !st.ok()) return st;
  fds_[fd].ctx = ctx;
  fds_[fd].armed = true;
  return absl::OkStatus();
}

absl::Status EpollEngine::remove(int fd) {
  if (fd < 0 || static_cast<size_t>(fd) >= fds_.size() || !fds_[fd].registered) {
    return absl::NotFoundError(absl::StrFormat("epoll engine: fd %d is not registered", fd));
  }
  // Forget the fd even if DEL fails (say the fd was closed first): it is no longer watched anyway.
  fds_[fd] = FdState{};
  return control(EPOLL_CTL_DEL, fd, 0);
}

absl::StatusOr<int> EpollEngine::wait(int timeout_ms, std::vector<ReadyEvent>* out) {
  int n = ::epoll_wait(epfd_, events_.data(), static_cast<int>(events_.size()), timeout_ms);
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

void EpollEngine::rearm(int fd, uint32_t interest, void* ctx) {
  if (mode_ != EpollMode::kOneshot || fd < 0 || static_cast<size_t>(fd) >= fds_.size()) return;
  FdState& s = fds_[fd];
  // Armed already: modify() ran while the events were handled. Interest 0: nothing to wait for,
  // the next modify() arms it.
  if (!s.registered || s.armed || interest == 0) return;
  if (absl::Status st = control(EPOLL_CTL_MOD, fd, interest); !st.ok()) {
    LOG_ERROR("epoll engine: rearm failed: %s", st.ToString());
    return;
  }
  s.ctx = ctx;
  s.armed = true;
}

}  // namespace plexus::detail
