#include "engines/uring_engine.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_format.h"
#include "engines/epoll_engine.h"
#include "plexus/log.h"

namespace plexus::detail {

static_assert(kEventRead == static_cast<uint32_t>(POLLIN));
static_assert(kEventWrite == static_cast<uint32_t>(POLLOUT));
static_assert(kEventReadHangup == static_cast<uint32_t>(POLLRDHUP));

// The bytes of one send in flight: the kernel reads them until the send's completion, so they are
// the engine's, freed (or pooled) only then, even if the fd was removed meanwhile.
struct alignas(8) UringEngine::SendOp {
  Buffer bytes;
  int fd = -1;
  uint32_t generation = 0;
  bool orphaned = false;  // its fd was removed: nobody wants the completion
};

namespace {

constexpr unsigned kSqEntries = 1024;
constexpr unsigned kCqEntries = 16384;
constexpr uint16_t kBufferGroup = 0;
constexpr size_t kPooledOps = 256;
constexpr size_t kKeepOpBytes = 64 * 1024;

// The kind of request in a completion's user_data, in its low three bits. Polls and receives carry
// the fd, the generation of its registration (24 bits) and, for a poll, which of the fd's polls it
// is (8 bits): (generation << 40) | (poll << 32) | (fd << 3) | kind. A send carries its SendOp's
// address (8-aligned) | kSend.
enum Kind : uint64_t { kPoll = 1, kRecv = 2, kSend = 3, kControl = 4, kAccept = 5 };
constexpr uint32_t kGenerationMask = 0xffffff;

uint64_t tag(Kind kind, int fd, uint32_t generation, uint8_t poll = 0) {
  return (uint64_t{generation & kGenerationMask} << 40) | (uint64_t{poll} << 32) |
         (uint64_t{static_cast<uint32_t>(fd)} << 3) | kind;
}
Kind tagKind(uint64_t data) { return static_cast<Kind>(data & 7); }
int tagFd(uint64_t data) { return static_cast<int>((data >> 3) & 0x1fffffff); }
uint32_t tagGeneration(uint64_t data) { return static_cast<uint32_t>(data >> 40); }
uint8_t tagPoll(uint64_t data) { return static_cast<uint8_t>(data >> 32); }

constexpr uint32_t kPollBits = kEventRead | kEventWrite | kEventPriority | kEventReadHangup;

bool kernelAtLeast(int major, int minor) {
  utsname u{};
  if (::uname(&u) != 0) return false;
  int ma = 0, mi = 0;
  if (std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
  return ma > major || (ma == major && mi >= minor);
}

}  // namespace

absl::StatusOr<std::unique_ptr<UringEngine>> UringEngine::create() {
  if (!kernelAtLeast(6, 0)) {
    utsname u{};
    ::uname(&u);
    return absl::UnimplementedError(
        absl::StrFormat("io_uring: kernel %s lacks multishot receive (needs 6.0)", u.release));
  }
  std::unique_ptr<UringEngine> engine(new UringEngine());
  if (absl::Status s = engine->setUp(); !s.ok()) return s;
  return engine;
}

// `--engine uring`: the io_uring engine, or epoll (oneshot) with one log line per process when the
// ring cannot be set up here.
absl::StatusOr<std::unique_ptr<Engine>> makeUringEngine(const EngineOptions& options) {
  auto engine = UringEngine::create();
  if (engine.ok()) return std::unique_ptr<Engine>(std::move(*engine));
  static std::atomic<bool> warned{false};
  if (!warned.exchange(true)) {
    LOG_WARN("engine uring unavailable (%s): using epoll (%s) instead", engine.status().message(),
             epollModeName(options.epoll_mode));
  }
  auto fallback = EpollEngine::create(options.epoll_mode);
  if (!fallback.ok()) return fallback.status();
  return std::unique_ptr<Engine>(std::move(*fallback));
}

absl::Status UringEngine::setUp() {
  io_uring_params p{};
  p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
            IORING_SETUP_DEFER_TASKRUN;
  p.cq_entries = kCqEntries;
  int r = io_uring_queue_init_params(kSqEntries, &ring_, &p);
  if (r == -EINVAL) {
    // A kernel without SINGLE_ISSUER / DEFER_TASKRUN (before 6.1): without them.
    p = io_uring_params{};
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
    p.cq_entries = kCqEntries;
    r = io_uring_queue_init_params(kSqEntries, &ring_, &p);
  }
  if (r < 0) return absl::ErrnoToStatus(-r, "io_uring_setup");
  ring_ready_ = true;

  const size_t ring_bytes = kRecvBuffers * sizeof(io_uring_buf);
  void* ring_mem = ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ring_mem == MAP_FAILED) return absl::ErrnoToStatus(errno, "io_uring: mmap of the buffer ring");
  buf_ring_ = static_cast<io_uring_buf_ring*>(ring_mem);
  io_uring_buf_ring_init(buf_ring_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uintptr_t>(ring_mem);
  reg.ring_entries = kRecvBuffers;
  reg.bgid = kBufferGroup;
  r = io_uring_register_buf_ring(&ring_, &reg, 0);
  if (r < 0) return absl::ErrnoToStatus(-r, "io_uring: registering the buffer ring");
  buf_ring_registered_ = true;
  void* mem = ::mmap(nullptr, size_t{kRecvBuffers} * kRecvBufferSize, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return absl::ErrnoToStatus(errno, "io_uring: mmap of the receive buffers");
  buf_memory_ = static_cast<char*>(mem);
  for (unsigned i = 0; i < kRecvBuffers; ++i) {
    io_uring_buf_ring_add(buf_ring_, buf_memory_ + size_t{i} * kRecvBufferSize, kRecvBufferSize,
                          static_cast<unsigned short>(i), io_uring_buf_ring_mask(kRecvBuffers),
                          static_cast<int>(i));
  }
  io_uring_buf_ring_advance(buf_ring_, kRecvBuffers);
  return absl::OkStatus();
}

UringEngine::~UringEngine() {
  bool drained = true;
  if (ring_ready_) {
    // Nothing may still point into our memory once it goes: cancel every request and wait for the
    // last completions (bounded: a request the kernel does not give back leaves its memory
    // behind, unfreed, rather than freed under it).
    if (outstanding_ > 0) {
      if (io_uring_sqe* e = io_uring_get_sqe(&ring_)) {
        io_uring_prep_cancel64(e, 0, IORING_ASYNC_CANCEL_ANY);
        io_uring_sqe_set_data64(e, kControl);
        ++outstanding_;
      }
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      while (outstanding_ > 0 && std::chrono::steady_clock::now() < deadline) {
        __kernel_timespec ts{0, 100 * 1000 * 1000};
        io_uring_cqe* cqe = nullptr;
        io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
        unsigned head;
        unsigned seen = 0;
        io_uring_for_each_cqe(&ring_, head, cqe) {
          ++seen;
          if (cqe->user_data == LIBURING_UDATA_TIMEOUT) continue;
          if (!(cqe->flags & IORING_CQE_F_MORE)) --outstanding_;
          if (tagKind(cqe->user_data) == kSend) {
            auto* op = reinterpret_cast<SendOp*>(cqe->user_data & ~uint64_t{7});
            delete op;
          }
        }
        io_uring_cq_advance(&ring_, seen);
      }
      drained = outstanding_ == 0;
      if (!drained) LOG_WARN("io_uring engine: %zu requests still in flight at exit", outstanding_);
    }
    io_uring_queue_exit(&ring_);
  }
  for (SendOp* op : free_ops_) delete op;
  for (FdState& s : fds_) {
    if (s.sending != nullptr && drained) s.sending = nullptr;  // deleted with its completion
  }
  if (drained) {
    if (buf_memory_ != nullptr) ::munmap(buf_memory_, size_t{kRecvBuffers} * kRecvBufferSize);
    if (buf_ring_ != nullptr) ::munmap(buf_ring_, kRecvBuffers * sizeof(io_uring_buf));
  }
}

io_uring_sqe* UringEngine::sqe() {
  io_uring_sqe* e = io_uring_get_sqe(&ring_);
  if (__builtin_expect(e == nullptr, 0)) {
    // The submission queue is full (a batch with more than kSqEntries re-arms and sends): hand it
    // to the kernel now, one syscall more.
    ctl_calls_.add();
    io_uring_submit(&ring_);
    e = io_uring_get_sqe(&ring_);
    if (e == nullptr) LOG_FATAL("io_uring engine: the submission queue stays full");
  }
  ++outstanding_;
  return e;
}

UringEngine::FdState* UringEngine::current(int fd, uint32_t generation) {
  if (fd < 0 || static_cast<size_t>(fd) >= fds_.size()) return nullptr;
  FdState& s = fds_[fd];
  if (!s.registered || s.generation != generation) return nullptr;
  return &s;
}

uint32_t UringEngine::pollMask(const FdState& s) {
  uint32_t mask = s.interest & kPollBits;
  // A receiving fd learns of input, EOF and errors from its recv; an accepting one of connections
  // from its accept.
  if (receives(s) || accepts(s)) mask &= ~(kEventRead | kEventReadHangup | kEventPriority);
  return mask;
}

void UringEngine::armPoll(int fd, FdState& s) {
  const uint32_t mask = pollMask(s);
  io_uring_sqe* e = sqe();
  io_uring_prep_poll_add(e, fd, mask);
  ++s.poll_seq;
  io_uring_sqe_set_data64(e, tag(kPoll, fd, s.generation, s.poll_seq));
  s.poll_armed = true;
  s.poll_mask = mask;
}

void UringEngine::armRecv(int fd, FdState& s) {
  io_uring_sqe* e = sqe();
  io_uring_prep_recv_multishot(e, fd, nullptr, 0, 0);
  e->flags |= IOSQE_BUFFER_SELECT;
  e->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(e, tag(kRecv, fd, s.generation));
  s.recv_armed = true;
  s.recv_cancelling = false;
}

void UringEngine::armAccept(int fd, FdState& s) {
  io_uring_sqe* e = sqe();
  io_uring_prep_multishot_accept(e, fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(e, tag(kAccept, fd, s.generation));
  s.recv_armed = true;
  s.recv_cancelling = false;
}

void UringEngine::cancel(uint64_t user_data) {
  io_uring_sqe* e = sqe();
  io_uring_prep_cancel64(e, user_data, 0);
  io_uring_sqe_set_data64(e, kControl);
}

// Brings the fd's requests in line with its interest. `dispatching`: its poll completion is being
// handled, and dispatch() re-arms the poll after the handler returns.
void UringEngine::sync(int fd, FdState& s, bool dispatching) {
  if (wantsRecv(s)) {
    if (!s.recv_armed) {
      if (s.stashed) {
        redeliver_.emplace_back(fd, s.generation);
      } else {
        armRecv(fd, s);
      }
    }
    // Armed and being cancelled: its last completion comes soon; sync() after it re-arms.
  } else if (wantsAccept(s)) {
    if (!s.recv_armed) armAccept(fd, s);
  } else if (s.recv_armed && !s.recv_cancelling) {
    cancel(tag(accepts(s) ? kAccept : kRecv, fd, s.generation));
    s.recv_cancelling = true;
  }
  const uint32_t mask = pollMask(s);
  if (s.poll_armed) {
    if (mask != s.poll_mask) {
      // Replaced, not updated: an updated poll waits for the next wake-up, while a new one
      // reports readiness that is there already. The old one's completion is told apart by its
      // poll number, and dropped.
      cancel(tag(kPoll, fd, s.generation, s.poll_seq));
      armPoll(fd, s);
    }
  } else if (!dispatching && mask != 0) {
    armPoll(fd, s);
  }
}

absl::Status UringEngine::add(int fd, uint32_t interest, void* ctx) {
  if (fd < 0 || fd > 0x1fffffff) {
    return absl::InvalidArgumentError(absl::StrFormat("io_uring engine: bad fd %d", fd));
  }
  if (static_cast<size_t>(fd) < fds_.size() && fds_[fd].registered) {
    return absl::AlreadyExistsError(
        absl::StrFormat("io_uring engine: fd %d is already registered", fd));
  }
  // A poll request on a closed fd fails only in its completion: refuse it here, as epoll does
  // (a connection's fd, asking kEventReceive, is fresh from accept4: no syscall for it).
  if (!(interest & kEventReceive) && ::fcntl(fd, F_GETFD) < 0) {
    return absl::ErrnoToStatus(errno, absl::StrFormat("io_uring engine: fd %d", fd));
  }
  if (static_cast<size_t>(fd) >= fds_.size()) {
    try {
      fds_.resize(static_cast<size_t>(fd) + 1);
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(
          absl::StrFormat("io_uring engine: no memory to watch fd %d", fd));
    }
  }
  FdState& s = fds_[fd];
  s.ctx = ctx;
  s.interest = interest;
  next_generation_ = (next_generation_ + 1) & kGenerationMask;
  if (next_generation_ == 0) next_generation_ = 1;
  s.generation = next_generation_;
  s.registered = true;
  if (receives(s) || accepts(s)) {
    sync(fd, s, false);
  } else {
    armPoll(fd, s);  // interest 0 too: errors and hang-ups are still reported
  }
  return absl::OkStatus();
}

absl::Status UringEngine::modify(int fd, uint32_t interest, void* ctx) {
  if (fd < 0 || static_cast<size_t>(fd) >= fds_.size() || !fds_[fd].registered) {
    return absl::NotFoundError(absl::StrFormat("io_uring engine: fd %d is not registered", fd));
  }
  FdState& s = fds_[fd];
  s.ctx = ctx;
  s.interest = interest;
  sync(fd, s, fd == fd_dispatching_);
  return absl::OkStatus();
}

absl::Status UringEngine::remove(int fd) {
  if (fd < 0 || static_cast<size_t>(fd) >= fds_.size() || !fds_[fd].registered) {
    return absl::NotFoundError(absl::StrFormat("io_uring engine: fd %d is not registered", fd));
  }
  FdState& s = fds_[fd];
  // Each request holds the file open until it completes: cancel them, so that closing the fd
  // closes the socket. Their completions carry the old generation and are dropped.
  if (s.poll_armed) cancel(tag(kPoll, fd, s.generation, s.poll_seq));
  if (s.recv_armed && !s.recv_cancelling) {
    cancel(tag(accepts(s) ? kAccept : kRecv, fd, s.generation));
  }
  if (s.sending != nullptr) {
    s.sending->orphaned = true;  // freed with its completion
    cancel(reinterpret_cast<uintptr_t>(s.sending) | kSend);
  }
  if (s.stashed) stash_.erase(fd);
  s = FdState{};
  // An SQE names its fd by number, looked up when the kernel takes it: one still in the queue
  // (a send, a re-arm) would reach whatever socket takes this number after the caller closes it
  // (the next accept, say). So the queue goes to the kernel now, before the close.
  if (io_uring_sq_ready(&ring_) > 0) {
    ctl_calls_.add();
    io_uring_submit(&ring_);
  }
  return absl::OkStatus();
}

absl::Status UringEngine::send(int fd, const char* data, size_t len) {
  if (fd < 0 || static_cast<size_t>(fd) >= fds_.size() || !fds_[fd].registered) {
    return absl::NotFoundError(absl::StrFormat("io_uring engine: fd %d is not registered", fd));
  }
  if (len == 0) return absl::OkStatus();
  FdState& s = fds_[fd];
  s.unsent += len;
  if (s.sending != nullptr) {
    if (!s.queued) s.queued = std::make_unique<Buffer>();
    s.queued->append(data, len);
    return absl::OkStatus();
  }
  SendOp* op;
  if (!free_ops_.empty()) {
    op = free_ops_.back();
    free_ops_.pop_back();
  } else {
    op = new SendOp();
  }
  op->fd = fd;
  op->generation = s.generation;
  op->orphaned = false;
  op->bytes.append(data, len);
  s.sending = op;
  submitSend(op);
  return absl::OkStatus();
}

void UringEngine::submitSend(SendOp* op) {
  io_uring_sqe* e = sqe();
  // MSG_WAITALL: the kernel goes on with a short send itself, so the completion covers it all
  // (or fails).
  io_uring_prep_send(e, op->fd, op->bytes.peek(), op->bytes.readableBytes(),
                     MSG_NOSIGNAL | MSG_WAITALL);
  io_uring_sqe_set_data64(e, reinterpret_cast<uintptr_t>(op) | kSend);
}

void UringEngine::releaseOp(SendOp* op) {
  op->bytes.retrieveAll();
  if (op->bytes.capacity() > kKeepOpBytes) op->bytes.releaseIfEmpty();
  if (free_ops_.size() < kPooledOps) {
    free_ops_.push_back(op);
  } else {
    delete op;
  }
}

void UringEngine::recycle(unsigned bid) {
  io_uring_buf_ring_add(buf_ring_, buf_memory_ + size_t{bid} * kRecvBufferSize, kRecvBufferSize,
                        static_cast<unsigned short>(bid), io_uring_buf_ring_mask(kRecvBuffers), 0);
  io_uring_buf_ring_advance(buf_ring_, 1);
}

void UringEngine::stash(int fd, FdState& s, const IoResult& r) {
  Stashed e;
  if (r.len > 0) e.bytes.assign(r.data, r.len);
  e.err = r.err;
  e.eof = r.len == 0 && r.err == 0;
  stash_[fd].push_back(std::move(e));
  s.stashed = true;
}

// Hands out bytes received while the fd's read interest was off, now that it is back.
int UringEngine::deliverStashed(ReadyFn fn, void* arg) {
  if (redeliver_.empty()) return 0;
  std::vector<std::pair<int, uint32_t>> due;
  due.swap(redeliver_);
  int handled = 0;
  for (const auto& [fd, generation] : due) {
    FdState* s = current(fd, generation);
    while (s != nullptr && s->stashed && receives(*s) && (s->interest & kEventRead)) {
      auto it = stash_.find(fd);
      Stashed e = std::move(it->second.front());
      it->second.erase(it->second.begin());
      if (it->second.empty()) {
        stash_.erase(it);
        s->stashed = false;
      }
      received_ = IoResult{e.bytes.data(), e.bytes.size(), e.err};
      fd_dispatching_ = fd;
      fn(s->ctx, fd, kEventRead | kEventReceive, arg);
      fd_dispatching_ = -1;
      received_ = IoResult{};
      ++handled;
      s = current(fd, generation);
    }
    if (s != nullptr) sync(fd, *s, false);
  }
  return handled;
}

int UringEngine::handle(const Completion& c, ReadyFn fn, void* arg) {
  switch (tagKind(c.user_data)) {
    case kPoll: {
      const int fd = tagFd(c.user_data);
      const uint32_t generation = tagGeneration(c.user_data);
      FdState* s = current(fd, generation);
      // Removed since, or a poll that modify() replaced.
      if (s == nullptr || !s->poll_armed || tagPoll(c.user_data) != s->poll_seq) return 0;
      s->poll_armed = false;
      uint32_t events = c.res >= 0 ? static_cast<uint32_t>(c.res) : kEventError;
      // What was asked when it fired may be more than is asked now (a modify() whose update came
      // too late): only what is asked now, and errors.
      uint32_t keep = pollMask(*s) | kEventError | kEventHangup;
      if (wantsRecv(*s)) keep &= ~kEventHangup;  // the recv reports the end of input
      events &= keep;
      if (events == 0) {
        sync(fd, *s, false);
        return 0;
      }
      fd_dispatching_ = fd;
      fn(s->ctx, fd, events, arg);
      fd_dispatching_ = -1;
      if ((s = current(fd, generation)) != nullptr) sync(fd, *s, false);
      return 1;
    }
    case kRecv: {
      const int fd = tagFd(c.user_data);
      const uint32_t generation = tagGeneration(c.user_data);
      const bool has_buffer = (c.flags & IORING_CQE_F_BUFFER) != 0;
      const unsigned bid = c.flags >> IORING_CQE_BUFFER_SHIFT;
      FdState* s = current(fd, generation);
      if (s == nullptr) {
        if (has_buffer) recycle(bid);
        return 0;
      }
      if (!(c.flags & IORING_CQE_F_MORE)) {
        s->recv_armed = false;
        s->recv_cancelling = false;
      }
      if (c.res == -ENOBUFS || c.res == -ECANCELED) {
        // Out of buffers for a moment (they come back as this batch is handled), or cancelled
        // because read interest went: re-armed if it is wanted.
        if (has_buffer) recycle(bid);
        sync(fd, *s, false);
        return 0;
      }
      IoResult r;
      if (c.res > 0) {
        r.data = buf_memory_ + size_t{bid} * kRecvBufferSize;
        r.len = static_cast<size_t>(c.res);
      } else {
        r.err = c.res < 0 ? -c.res : 0;
        s->recv_ended = true;
      }
      int handled = 0;
      if ((s->interest & kEventRead) && !s->stashed) {
        received_ = r;
        fd_dispatching_ = fd;
        fn(s->ctx, fd, kEventRead | kEventReceive, arg);
        fd_dispatching_ = -1;
        received_ = IoResult{};
        handled = 1;
      } else {
        stash(fd, *s, r);  // read interest is off: kept until it is back
      }
      if (has_buffer) recycle(bid);
      if ((s = current(fd, generation)) != nullptr) sync(fd, *s, false);
      return handled;
    }
    case kSend: {
      auto* op = reinterpret_cast<SendOp*>(c.user_data & ~uint64_t{7});
      if (op->orphaned) {
        releaseOp(op);
        return 0;
      }
      const int fd = op->fd;
      const uint32_t generation = op->generation;
      FdState* s = current(fd, generation);
      if (s == nullptr) {  // cannot happen: remove() orphans the op
        releaseOp(op);
        return 0;
      }
      IoResult r;
      if (c.res > 0 || (c.res == 0 && op->bytes.empty())) {
        const size_t n = std::min(static_cast<size_t>(c.res), op->bytes.readableBytes());
        r.len = n;
        s->unsent -= std::min(s->unsent, n);
        op->bytes.retrieve(n);
        if (!op->bytes.empty()) {
          submitSend(op);  // the rest (MSG_WAITALL makes this rare)
        } else if (s->queued && !s->queued->empty()) {
          op->bytes.swap(*s->queued);
          submitSend(op);
        } else {
          s->sending = nullptr;
          releaseOp(op);
        }
      } else {
        r.err = c.res < 0 ? -c.res : EPIPE;
        s->unsent = 0;
        s->sending = nullptr;
        s->queued.reset();
        releaseOp(op);
      }
      sent_ = r;
      fd_dispatching_ = fd;
      fn(s->ctx, fd, kEventSent, arg);
      fd_dispatching_ = -1;
      sent_ = IoResult{};
      if ((s = current(fd, generation)) != nullptr) sync(fd, *s, false);
      return 1;
    }
    case kAccept: {
      const int fd = tagFd(c.user_data);
      const uint32_t generation = tagGeneration(c.user_data);
      FdState* s = current(fd, generation);
      if (s == nullptr) {
        if (c.res >= 0) ::close(c.res);  // the listener is gone: so is this connection
        return 0;
      }
      if (!(c.flags & IORING_CQE_F_MORE)) {
        s->recv_armed = false;
        s->recv_cancelling = false;
      }
      if (c.res == -ECANCELED) {
        sync(fd, *s, false);
        return 0;
      }
      if (!(s->interest & kEventRead)) {
        // Accepting is paused (the owner sheds load): one completed before the cancel did.
        if (c.res >= 0) ::close(c.res);
        return 0;
      }
      IoResult r;
      if (c.res >= 0) {
        r.fd = c.res;
      } else {
        r.err = -c.res;
      }
      received_ = r;
      fd_dispatching_ = fd;
      fn(s->ctx, fd, kEventRead | kEventAccept, arg);
      fd_dispatching_ = -1;
      received_ = IoResult{};
      if ((s = current(fd, generation)) != nullptr) sync(fd, *s, false);
      return 1;
    }
    case kControl:
      return 0;
  }
  return 0;
}

absl::StatusOr<int> UringEngine::dispatch(int timeout_ms, ReadyFn fn, void* arg) {
  // Completions that are not events (cancels, a replaced poll, a re-armed receive) wake the wait
  // too: wait again, within the timeout, until something is handed out.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 0));
  for (;;) {
    int r;
    int wait_ms = timeout_ms;
    if (timeout_ms > 0) {
      wait_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     deadline - std::chrono::steady_clock::now())
                                     .count());
      if (wait_ms < 0) wait_ms = 0;
    }
    if (!redeliver_.empty() || wait_ms == 0) {
      r = io_uring_submit_and_get_events(&ring_);
    } else if (wait_ms < 0) {
      r = io_uring_submit_and_wait(&ring_, 1);
    } else {
      __kernel_timespec ts{wait_ms / 1000, static_cast<long long>(wait_ms % 1000) * 1000000};
      io_uring_cqe* cqe = nullptr;
      r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    }
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN) {
      return absl::ErrnoToStatus(-r, "io_uring_enter");
    }
    // Copied out first: handlers prepare SQEs (and may submit them) while the batch is handled.
    batch_.clear();
    for (;;) {
      io_uring_cqe* cqes[256];
      const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, 256);
      for (unsigned i = 0; i < n; ++i) {
        const io_uring_cqe* c = cqes[i];
        if (c->user_data == LIBURING_UDATA_TIMEOUT) continue;
        if (!(c->flags & IORING_CQE_F_MORE)) --outstanding_;
        batch_.push_back(Completion{c->user_data, c->res, c->flags});
      }
      io_uring_cq_advance(&ring_, n);
      if (n < 256) break;
    }
    int handled = deliverStashed(fn, arg);
    for (const Completion& c : batch_) handled += handle(c, fn, arg);
    batch_.clear();
    // Done: something was handed out, the time is up, or the wait was interrupted (EINTR gives
    // 0, as the other engines do).
    if (handled > 0 || wait_ms == 0 || r == -ETIME || r == -EINTR) return handled;
    if (timeout_ms > 0 && std::chrono::steady_clock::now() >= deadline) return 0;
  }
}

}  // namespace plexus::detail
