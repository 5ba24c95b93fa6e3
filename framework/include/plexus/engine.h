#pragma once
// The I/O multiplexing engine interface and the factory that makes engines by name.
//
// An engine watches file descriptors for readiness. It is owned by one EventLoop and every method is
// called on that loop's thread only; engines hold no locks.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "plexus/loop_stats.h"

namespace plexus {

// Event bits. They equal the EPOLL* and POLL* values (checked at compile time in the engines), so
// the epoll and poll engines pass them through unchanged.
inline constexpr uint32_t kEventRead = 0x001;        // EPOLLIN / POLLIN
inline constexpr uint32_t kEventPriority = 0x002;    // EPOLLPRI / POLLPRI
inline constexpr uint32_t kEventWrite = 0x004;       // EPOLLOUT / POLLOUT
inline constexpr uint32_t kEventError = 0x008;       // EPOLLERR / POLLERR (reported, never asked)
inline constexpr uint32_t kEventHangup = 0x010;      // EPOLLHUP / POLLHUP (reported, never asked)
inline constexpr uint32_t kEventReadHangup = 0x2000; // EPOLLRDHUP / POLLRDHUP

enum class EpollMode {
  kOneshot,  // EPOLLONESHOT: an fd is disarmed after each event and re-armed by rearm().
  kLevel,    // level-triggered
  kEdge,     // EPOLLET: readers and writers must go on until EAGAIN.
};

absl::StatusOr<EpollMode> parseEpollMode(std::string_view name);
std::string_view epollModeName(EpollMode mode);

struct EngineOptions {
  std::string name = "epoll";  // "epoll", "poll" or "select"
  EpollMode epoll_mode = EpollMode::kOneshot;
};

// One ready fd, as returned by Engine::wait(). `ctx` is the pointer given to add()/modify().
struct ReadyEvent {
  int fd;
  uint32_t events;
  void* ctx;
};

class Engine {
 public:
  virtual ~Engine() = default;

  // "epoll", "poll" or "select".
  virtual std::string_view name() const = 0;
  // A longer description for logs, e.g. "epoll (oneshot)".
  virtual std::string description() const { return std::string(name()); }

  // Starts watching `fd` for `interest` (kEventRead | kEventWrite | ...). `interest` may be 0: the fd
  // is then registered but reports only errors and hang-ups (select: nothing). Fails for an fd already
  // registered, or one the engine cannot watch (select: fd >= FD_SETSIZE).
  virtual absl::Status add(int fd, uint32_t interest, void* ctx) = 0;
  // Changes the interest of a registered fd. For a oneshot engine this also re-arms it.
  virtual absl::Status modify(int fd, uint32_t interest, void* ctx) = 0;
  // Stops watching `fd`. Must be called before the fd is closed. During dispatch(), the fd gets no
  // further call in the batch being handled (an engine that keeps the default dispatch() calls
  // forgetPending(fd) here).
  virtual absl::Status remove(int fd) = 0;

  // Waits up to `timeout_ms` (-1: no limit) and replaces the contents of *out with the ready fds.
  // Returns how many; EINTR gives 0.
  virtual absl::StatusOr<int> wait(int timeout_ms, std::vector<ReadyEvent>* out) = 0;

  // Called once the events that wait() reported for `fd` have been handled, with the interest the fd
  // has now. A oneshot engine re-arms the fd here, unless modify() already did so while the events
  // were handled; other engines do nothing.
  virtual void rearm(int fd, uint32_t interest, void* ctx) {
    (void)fd;
    (void)interest;
    (void)ctx;
  }

  // What dispatch() calls for each ready fd: `ctx` as given to add()/modify(), `events` the
  // kEvent* bits, `arg` as given to dispatch().
  using ReadyFn = void (*)(void* ctx, uint32_t events, void* arg);

  // The event loop's step: waits like wait(), then calls `fn` for each ready fd in turn. An fd
  // removed while the batch is handled gets no further call in it. A oneshot engine re-arms each
  // fd after its call, with the interest it has by then, unless modify() already re-armed it or the
  // fd was removed or has no interest left. Returns how many fds were ready; EINTR gives 0.
  //
  // The default runs wait() and does no re-arming: an engine that needs rearm() overrides this
  // (epoll does, and dispatches straight from the kernel's event array).
  virtual absl::StatusOr<int> dispatch(int timeout_ms, ReadyFn fn, void* arg);

  // True when rearm() does anything (oneshot engines): the loop skips the call otherwise.
  virtual bool needsRearm() const { return false; }

  // True for edge-triggered engines: a reader must read (and a writer write) until EAGAIN.
  virtual bool edgeTriggered() const { return false; }

  // The largest fd this engine can watch plus one, or -1 for no limit (select: FD_SETSIZE).
  virtual int maxFd() const { return -1; }

  // Syscalls made to change interest (epoll_ctl). Any thread.
  uint64_t controlCalls() const { return ctl_calls_.get(); }

 protected:
  // For remove() in engines that keep the default dispatch(): drops the fd's later events from
  // the batch being handled.
  void forgetPending(int fd);

  SingleWriterCounter ctl_calls_;

 private:
  std::vector<ReadyEvent> batch_;  // the default dispatch()'s events
  size_t batch_index_ = 0;
  bool dispatching_ = false;
};

// Makes the engine named in `options`. Errors: unknown name (the message lists the known ones) or
// the engine's own set-up failing (epoll_create1).
absl::StatusOr<std::unique_ptr<Engine>> makeEngine(const EngineOptions& options);

// The names makeEngine() accepts: {"epoll", "poll", "select"}.
const std::vector<std::string>& engineNames();

}  // namespace plexus
