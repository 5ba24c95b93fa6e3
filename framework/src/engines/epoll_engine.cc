#include "engines/epoll_engine.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

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
// Never a bit the kernel reports or the engine asks for.
static_assert((kEventFailed & (EPOLLONESHOT | EPOLLET | EPOLLWAKEUP | EPOLLEXCLUSIVE | EPOLLMSG |
                               EPOLLRDNORM | EPOLLRDBAND | EPOLLWRNORM | EPOLLWRBAND)) == 0);

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

absl::StatusOr<std::unique_ptr<EpollEngine>> EpollEngine::create(EpollMode mode,
                                                                  bool batch_rearm) {
  int epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return absl::ErrnoToStatus(errno, "epoll_create1");
  return std::unique_ptr<EpollEngine>(
      new EpollEngine(epfd, mode, mode == EpollMode::kOneshot && batch_rearm));
}

// PLEXUS_EPOLL_BATCH_REARM=0 in the environment turns batching off in every engine the factory
// makes: a switch for comparing the two paths, or for a kernel whose io_uring misbehaves.
static bool batchRearmAllowed() {
  static const bool allowed = [] {
    const char* v = std::getenv("PLEXUS_EPOLL_BATCH_REARM");
    return v == nullptr || std::string_view(v) != "0";
  }();
  return allowed;
}

absl::StatusOr<std::unique_ptr<Engine>> makeEpollEngine(const EngineOptions& options) {
  auto engine =
      EpollEngine::create(options.epoll_mode, options.epoll_batch_rearm && batchRearmAllowed());
  if (!engine.ok()) return engine.status();
  return std::unique_ptr<Engine>(std::move(*engine));
}

EpollEngine::EpollEngine(int epfd, EpollMode mode, bool batch_rearm)
    : Engine(mode == EpollMode::kEdge),
      epfd_(epfd),
      mode_(mode),
      batch_rearm_(batch_rearm),
      name_(absl::StrFormat("epoll (%s)", epollModeName(mode))),
      events_(kInitialEvents) {
  // The creating thread is the loop's: its re-arm ring (an fd) is made now, with the loop, not at
  // the first busy batch, so the process's fd count is the same before and after traffic.
  if (batch_rearm_) (void)EpollRearmRing::forThisThread();
}

EpollEngine::~EpollEngine() { ::close(epfd_); }

bool EpollEngine::batchesRearms() const {
  return batch_rearm_ && EpollRearmRing::forThisThread() != nullptr;
}

// The event's data: the fd and the generation of the add() that registered it. An event whose
// generation is not the fd's current one comes from a registration the engine has forgotten.
namespace {
constexpr uint64_t kDropped = ~uint64_t{0};  // an event of the batch for an fd removed meanwhile

uint64_t tag(int fd, uint32_t generation) {
  return (uint64_t{generation} << 32) | static_cast<uint32_t>(fd);
}
int tagFd(uint64_t data) { return static_cast<int>(static_cast<uint32_t>(data)); }
uint32_t tagGeneration(uint64_t data) { return static_cast<uint32_t>(data >> 32); }
}  // namespace

uint32_t EpollEngine::kernelEvents(uint32_t interest) const {
  uint32_t events = interest & ~kEventLevel;
  if (interest & kEventLevel) return events;
  if (mode_ == EpollMode::kOneshot) events |= EPOLLONESHOT;
  // Edge mode asks for EPOLLRDHUP with EPOLLIN: a reader may stop at a short read, unless the
  // wait reported that a FIN has arrived, which raises no edge of its own once it is queued.
  if (mode_ == EpollMode::kEdge) {
    events |= EPOLLET;
    if (interest & EPOLLIN) events |= EPOLLRDHUP;
  }
  return events;
}

absl::Status EpollEngine::control(int op, int fd, uint32_t interest, uint32_t generation) {
  epoll_event ev{};
  ev.events = kernelEvents(interest);
  // The fd rides in the event; the ctx stays in fds_, so modify() can change it.
  ev.data.u64 = tag(fd, generation);
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
  const uint32_t generation = ++next_generation_;
  // Grow fds_ only for an fd the kernel accepted, not for any number a caller passes.
  if (absl::Status st = control(EPOLL_CTL_ADD, fd, interest, generation); !st.ok()) return st;
  if (static_cast<size_t>(fd) >= fds_.size()) {
    try {
      fds_.resize(static_cast<size_t>(fd) + 1);
    } catch (const std::bad_alloc&) {
      (void)control(EPOLL_CTL_DEL, fd, 0, 0);
      return absl::ResourceExhaustedError(
          absl::StrFormat("epoll engine: no memory to watch fd %d", fd));
    }
  }
  fds_[fd] = FdState{ctx, interest, generation, true, true};
  return absl::OkStatus();
}

absl::Status EpollEngine::modify(int fd, uint32_t interest, void* ctx) {
  if (fd < 0 || static_cast<size_t>(fd) >= fds_.size() || !fds_[fd].registered) {
    return absl::NotFoundError(absl::StrFormat("epoll engine: fd %d is not registered", fd));
  }
  FdState& s = fds_[fd];
  if (absl::Status st = control(EPOLL_CTL_MOD, fd, interest, s.generation); !st.ok()) return st;
  s.ctx = ctx;
  s.interest = interest;
  s.armed = true;
  return absl::OkStatus();
}

absl::Status EpollEngine::forget(int fd) {
  if (fd < 0 || static_cast<size_t>(fd) >= fds_.size() || !fds_[fd].registered) {
    return absl::NotFoundError(absl::StrFormat("epoll engine: fd %d is not registered", fd));
  }
  fds_[fd] = FdState{};
  // Its events later in the batch being dispatched must not reach whoever registers the fd next.
  for (int i = 0; i < batch_size_; ++i) {
    if (tagFd(events_[i].data.u64) == fd) events_[i].data.u64 = kDropped;
  }
  return absl::OkStatus();
}

absl::Status EpollEngine::remove(int fd) {
  // Forget the fd even if DEL fails (say the fd was closed first): it is no longer watched anyway.
  if (absl::Status st = forget(fd); !st.ok()) return st;
  return control(EPOLL_CTL_DEL, fd, 0, 0);
}

// No DEL: epoll watches a (file, fd) pair and drops it when the file's last reference closes,
// which the caller's close() is, by the contract of removeBeforeClose(). Should a reference
// survive after all (a fork()ed child that has not exec'd yet, or another thread inside a syscall
// on the fd at that moment), the registration may still report events, tagged with a generation
// the fd no longer has: dispatch() drops them and rebuilds the epoll set without it.
absl::Status EpollEngine::removeBeforeClose(int fd) { return forget(fd); }

// After an fd's events were handled: re-arms it with the interest it has now, unless it was
// removed, re-armed already by modify(), or has no interest left. False when the re-arm failed.
// control() written out: this runs once per event in oneshot mode.
__attribute__((always_inline)) inline bool EpollEngine::rearmAfterDispatch(int fd) {
  // fds_ may have grown while the fd's events were handled: index it afresh.
  FdState& s = fds_[fd];
  if (!s.registered || s.armed || s.interest == 0) return true;
  epoll_event ev;
  ev.events = s.interest | EPOLLONESHOT;
  ev.data.u64 = tag(fd, s.generation);
  ctl_calls_.add();
  if (__builtin_expect(sys::epollCtl(epfd_, EPOLL_CTL_MOD, fd, &ev) < 0, 0)) return false;
  s.armed = true;
  return true;
}

// With the ring: notes that the fd's events were handled, for flushRearms() to re-arm it at the
// end of the batch, with the interest it has by then (an fd is in an epoll_wait batch once).
inline void EpollEngine::queueRearm(int fd) {
  const FdState& s = fds_[fd];
  if (s.registered && !s.armed && s.interest != 0) handled_.push_back(Handled{fd, s.generation});
}

// Re-arms the batch's handled fds that still need it (not removed, not re-armed by a modify(), not
// left without interest: all as of now, after every handler of the batch has run) in one
// io_uring_enter, and waits for all of them; fewer than kRingMinBatch with one epoll_ctl each, which
// costs less than an io_uring_enter for so few. An fd whose re-arm failed gets its kEventFailed
// call.
void EpollEngine::flushRearms(EpollRearmRing& ring, ReadyFn fn, void* arg) {
  for (const Handled& h : handled_) {
    FdState& s = fds_[h.fd];
    if (!s.registered || s.generation != h.generation || s.armed || s.interest == 0) continue;
    s.armed = true;  // until a failed result says otherwise
    queued_.push_back(h);
  }
  handled_.clear();
  if (queued_.empty()) return;  // the handlers re-armed (or removed) every fd themselves
  if (queued_.size() >= kRingMinBatch) {
    for (const Handled& h : queued_) {
      ring.queue(epfd_, h.fd, fds_[h.fd].interest | EPOLLONESHOT, tag(h.fd, h.generation));
    }
    ctl_calls_.add(static_cast<uint64_t>(ring.submit(results_)));
  } else {
    results_.assign(queued_.size(), EpollRearmRing::kNotSubmitted);
  }
  bool refused = false;
  size_t failed = 0;  // queued_[0, failed): the fds whose re-arm failed, with errors in results_
  for (size_t i = 0; i < queued_.size(); ++i) {
    const int fd = queued_[i].fd;
    int err = -results_[i];
    if (results_[i] == EpollRearmRing::kNotSubmitted || err == EINVAL || err == EOPNOTSUPP) {
      // Too few for the ring, never submitted, or perhaps refused by the ring rather than by
      // epoll (which the plain call then tells).
      FdState& s = fds_[fd];
      epoll_event ev;
      ev.events = s.interest | EPOLLONESHOT;
      ev.data.u64 = tag(fd, s.generation);
      ctl_calls_.add();
      if (sys::epollCtl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0) {
        refused = refused || results_[i] != EpollRearmRing::kNotSubmitted;
        continue;
      }
      err = errno;
    } else if (err == 0) {
      continue;
    }
    fds_[fd].armed = false;
    results_[failed] = err;
    queued_[failed++] = queued_[i];
  }
  if (ring.broken() || refused) {
    EpollRearmRing::disable(refused ? "the kernel refused IORING_OP_EPOLL_CTL" : "the ring failed");
  }
  // The fds would never be reported again: their handlers must know (and close, or retry). A
  // handler may remove or re-register others meanwhile; a failed fd stays failed until modify().
  for (size_t i = 0; i < failed; ++i) {
    const int fd = queued_[i].fd;
    const FdState& s = fds_[fd];
    if (!s.registered || s.generation != queued_[i].generation || s.armed) continue;
    LOG_WARN("epoll engine: re-arming fd %d failed: %s", fd, std::strerror(results_[i]));
    fn(s.ctx, fd, kEventFailed, arg);
  }
  queued_.clear();
}

// A registration the engine forgot still reports (see removeBeforeClose()): it cannot be deleted,
// since its fd number is closed or someone else's now, so move every fd the engine does know to
// a fresh epoll set, which then takes the old one's number (libev does the same on a generation
// mismatch). Rare: the old set goes with whatever stale registrations it held.
void EpollEngine::rebuild(ReadyFn fn, void* arg) {
  const int fresh = ::epoll_create1(EPOLL_CLOEXEC);
  if (fresh < 0) {
    LOG_WARN("epoll engine: cannot rebuild the epoll set: %s", std::strerror(errno));
    return;
  }
  std::vector<int> failed;
  for (size_t fd = 0; fd < fds_.size(); ++fd) {
    const FdState& s = fds_[fd];
    if (!s.registered) continue;
    epoll_event ev{};
    // A oneshot fd left disarmed stays quiet but for errors and hang-ups.
    ev.events = s.armed ? kernelEvents(s.interest) : EPOLLONESHOT;
    ev.data.u64 = tag(static_cast<int>(fd), s.generation);
    ctl_calls_.add();
    if (::epoll_ctl(fresh, EPOLL_CTL_ADD, static_cast<int>(fd), &ev) < 0) {
      failed.push_back(static_cast<int>(fd));
    }
  }
  if (::dup3(fresh, epfd_, O_CLOEXEC) < 0) {
    LOG_WARN("epoll engine: cannot rebuild the epoll set: %s", std::strerror(errno));
    ::close(fresh);
    return;
  }
  ::close(fresh);
  // Watched no more: their handlers must know, as after a failed re-arm.
  for (int fd : failed) {
    if (fds_[fd].registered) fn(fds_[fd].ctx, fd, kEventFailed, arg);
  }
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
  bool stale = false;
  // The fd of an event that belongs to a registration the engine knows, or -1.
  auto current = [&](uint64_t data) {
    const int fd = tagFd(data);
    if (__builtin_expect(fd >= 0 && static_cast<size_t>(fd) < fds_.size() &&
                             fds_[fd].registered && fds_[fd].generation == tagGeneration(data),
                         1)) {
      return fd;
    }
    if (data != kDropped) stale = true;
    return -1;
  };
  EpollRearmRing* ring = nullptr;
  if (mode_ == EpollMode::kOneshot) {
    ring = batch_rearm_ ? EpollRearmRing::forThisThread() : nullptr;
    for (int i = 0; i < n; ++i) {
      const int fd = current(events[i].data.u64);
      if (fd < 0) continue;  // removed while this batch was handled, or stale
      // A level-triggered fd (kEventLevel) stays armed: it needs no re-arm.
      if (!(fds_[fd].interest & kEventLevel)) fds_[fd].armed = false;
      fn(fds_[fd].ctx, fd, events[i].events, arg);
      if (ring != nullptr) {
        queueRearm(fd);
      } else if (!rearmAfterDispatch(fd)) {
        // The fd would never be reported again: its handler must know (and close it, or retry).
        const int err = errno;
        LOG_WARN("epoll engine: re-arming fd %d failed: %s", fd, std::strerror(err));
        fn(fds_[fd].ctx, fd, kEventFailed, arg);
      }
    }
  } else {
    for (int i = 0; i < n; ++i) {
      const int fd = current(events[i].data.u64);
      if (fd >= 0) fn(fds_[fd].ctx, fd, events[i].events, arg);
    }
  }
  batch_size_ = 0;
  if (!handled_.empty()) flushRearms(*ring, fn, arg);
  if (__builtin_expect(stale, 0)) rebuild(fn, arg);
  // A full array may have left ready fds behind; make room for them next time.
  if (static_cast<size_t>(n) == events_.size()) events_.resize(events_.size() * 2);
  return n;
}

}  // namespace plexus::detail
