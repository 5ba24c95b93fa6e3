#pragma once
// The oneshot epoll engine's batched re-arms: a small io_uring whose only work is
// IORING_OP_EPOLL_CTL, so that a batch's EPOLL_CTL_MODs cost one io_uring_enter instead of one
// epoll_ctl each.
//
// One ring per thread, made on its first use and closed when the thread exits, shared by the
// thread's epoll engines; only its own thread uses it (the ring is single-issuer). Not one per
// engine: closing a ring the thread has submitted to makes the kernel interrupt that thread's
// next blocking call with EINTR (the ring's exit work reaches the thread through task_work), which
// a loop's next epoll_wait would take for a wake-up with nothing to do.
//
// A fork()ed child makes a ring of its own (the inherited one is the parent's).
//
// Nothing stays in flight between calls: submit() returns only once every queued operation has
// completed, so no re-arm can land after the caller has moved on (say, closed the fd and let its
// number be reused).

#include <sys/epoll.h>

#include <cstdint>
#include <memory>
#include <vector>

struct io_uring;

namespace plexus::detail {

class EpollRearmRing {
 public:
  static constexpr unsigned kEntries = 256;
  // A result of submit() for an operation the kernel never took (the ring failed as a whole).
  static constexpr int kNotSubmitted = 1;

  // The calling thread's ring, made on the first call; null when the kernel will not have one (no
  // io_uring, kernel.io_uring_disabled, seccomp, RLIMIT_MEMLOCK, no IORING_OP_EPOLL_CTL) or after
  // disable(). The first failure in the process is logged, in one line; callers then use
  // epoll_ctl.
  static EpollRearmRing* forThisThread();
  // Stops the calling thread's ring being used (it failed, or the kernel refused an operation).
  static void disable(const char* why);
  // Logs, once per process, why the engine re-arms with plain epoll_ctl from now on.
  static void logFallback(const char* why, int err);
  ~EpollRearmRing();
  EpollRearmRing(const EpollRearmRing&) = delete;
  EpollRearmRing& operator=(const EpollRearmRing&) = delete;

  // Queues an EPOLL_CTL_MOD of `fd` in the epoll set `epfd` to `events`, with `data` as the
  // event's data.
  void queue(int epfd, int fd, uint32_t events, uint64_t data) {
    Op& op = pending_.emplace_back();
    op.epfd = epfd;
    op.fd = fd;
    op.ev.events = events;
    op.ev.data.u64 = data;
  }
  size_t queued() const { return pending_.size(); }

  // Submits the queued operations (one io_uring_enter per kEntries of them, more only when a
  // signal interrupts the wait) and waits until all have completed. results[i] is the i-th
  // queued operation's: 0, -errno, or kNotSubmitted when the ring failed (the caller then makes
  // those calls itself, and should drop the ring). Returns the io_uring_enter calls made. The
  // queue is empty afterwards.
  int submit(std::vector<int>& results);
  // True once submit() found the ring broken, or after disable(): every later result would be
  // kNotSubmitted.
  bool broken() const { return broken_; }

 private:
  static std::unique_ptr<EpollRearmRing> create();

  struct Op {
    int epfd;
    int fd;
    epoll_event ev;  // read by the kernel while the SQE is submitted
  };
  explicit EpollRearmRing(std::unique_ptr<io_uring> ring);
  // Submits ops [begin, end) and reaps their results; false when the ring failed.
  bool submitChunk(size_t begin, size_t end, std::vector<int>& results, int& enters);

  std::unique_ptr<io_uring> ring_;
  bool broken_ = false;
  std::vector<Op> pending_;
};

}  // namespace plexus::detail
