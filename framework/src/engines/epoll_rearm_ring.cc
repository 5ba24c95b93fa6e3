#include "engines/epoll_rearm_ring.h"

#include <liburing.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "plexus/log.h"

namespace plexus::detail {

void EpollRearmRing::logFallback(const char* why, int err) {
  static std::atomic<bool> logged{false};
  if (logged.exchange(true, std::memory_order_relaxed)) return;
  LOG_WARN("epoll engine: oneshot re-arms made one epoll_ctl each, not batched in an io_uring: %s%s%s",
           why, err != 0 ? ": " : "", err != 0 ? std::strerror(err) : "");
}

namespace {
struct ThreadRing {
  std::unique_ptr<EpollRearmRing> ring;
  bool made = false;
};
thread_local ThreadRing thread_ring;

// A fork()ed child inherits its forking thread's ring, but not as its own: the ring's memory is
// shared with the parent (an SQE written here would be the parent's to submit) and the kernel
// refuses the child's submissions (single issuer). The child lets go of it and makes its own.
void forgetInheritedRing() {
  thread_ring.ring.reset();  // unmaps and closes the child's references only
  thread_ring.made = false;
}
}  // namespace

EpollRearmRing* EpollRearmRing::forThisThread() {
  ThreadRing& t = thread_ring;
  if (__builtin_expect(!t.made, 0)) {
    static const int at_fork = ::pthread_atfork(nullptr, nullptr, forgetInheritedRing);
    (void)at_fork;
    t.made = true;
    t.ring = create();
  }
  return t.ring != nullptr && !t.ring->broken_ ? t.ring.get() : nullptr;
}

void EpollRearmRing::disable(const char* why) {
  logFallback(why, 0);
  // Kept, not closed (see the header): unused from now on.
  if (thread_ring.ring != nullptr) thread_ring.ring->broken_ = true;
}

std::unique_ptr<EpollRearmRing> EpollRearmRing::create() {
  auto ring = std::make_unique<io_uring>();
  // Newest flags first; a kernel that does not know one refuses the set with EINVAL. Completions
  // (of an operation the kernel handed to a worker) are then run only when the thread waits for
  // them, and never interrupt its other syscalls.
  static constexpr unsigned kFlagSets[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
      IORING_SETUP_SUBMIT_ALL,
      0,
  };
  int ret = -EINVAL;
  for (unsigned flags : kFlagSets) {
    ret = io_uring_queue_init(kEntries, ring.get(), flags);
    if (ret != -EINVAL) break;
  }
  if (ret < 0) {
    logFallback("io_uring_queue_init", -ret);
    return nullptr;
  }
  io_uring_probe* probe = io_uring_get_probe_ring(ring.get());
  const bool supported = probe != nullptr && io_uring_opcode_supported(probe, IORING_OP_EPOLL_CTL);
  if (probe != nullptr) io_uring_free_probe(probe);
  if (!supported) {
    io_uring_queue_exit(ring.get());
    logFallback("the kernel's io_uring has no IORING_OP_EPOLL_CTL", 0);
    return nullptr;
  }
  // io_uring_enter then skips looking up the ring's fd (an fdget) on each call. Optional.
  (void)io_uring_register_ring_fd(ring.get());
  std::unique_ptr<EpollRearmRing> r(new EpollRearmRing(std::move(ring)));
  r->pending_.reserve(kEntries);
  return r;
}

EpollRearmRing::EpollRearmRing(std::unique_ptr<io_uring> ring) : ring_(std::move(ring)) {}

EpollRearmRing::~EpollRearmRing() { io_uring_queue_exit(ring_.get()); }

int EpollRearmRing::submit(std::vector<int>& results) {
  results.assign(pending_.size(), kNotSubmitted);
  int enters = 0;
  for (size_t begin = 0; !broken_ && begin < pending_.size(); begin += kEntries) {
    if (!submitChunk(begin, std::min<size_t>(begin + kEntries, pending_.size()), results, enters)) {
      broken_ = true;
    }
  }
  pending_.clear();
  return enters;
}

bool EpollRearmRing::submitChunk(size_t begin, size_t end, std::vector<int>& results, int& enters) {
  io_uring* ring = ring_.get();
  for (size_t i = begin; i < end; ++i) {
    // Never null: the ring is empty between chunks, and a chunk fits it.
    io_uring_sqe* sqe = io_uring_get_sqe(ring);
    io_uring_prep_epoll_ctl(sqe, pending_[i].epfd, pending_[i].fd, EPOLL_CTL_MOD, &pending_[i].ev);
    sqe->user_data = i;
  }
  const unsigned want = static_cast<unsigned>(end - begin);
  // Submits and waits for all in one call. A wait cut short (a signal) still returns how many
  // were submitted; fewer than `want` (or an error) leaves the rest unsubmitted, and the ring
  // unusable.
  const int submitted = io_uring_submit_and_wait(ring, want);
  ++enters;
  bool ok = submitted == static_cast<int>(want);
  unsigned left = submitted > 0 ? static_cast<unsigned>(submitted) : 0;
  while (left > 0) {
    unsigned head;
    unsigned seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(ring, head, cqe) {
      results[cqe->user_data] = cqe->res;
      ++seen;
    }
    io_uring_cq_advance(ring, seen);
    left -= std::min(left, seen);
    if (left == 0) break;
    // An operation the kernel handed to a worker thread, or a wait a signal cut short: wait for
    // the rest, since none may complete after the caller has moved on.
    const int r = io_uring_submit_and_wait(ring, left);
    ++enters;
    if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
      LOG_ERROR("epoll engine: waiting for %u batched re-arms failed: %s", left, std::strerror(-r));
      return false;
    }
  }
  return ok;
}

}  // namespace plexus::detail
