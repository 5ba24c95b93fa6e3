#pragma once
// The I/O multiplexing engine interface and the factory that makes engines by name.
//
// An engine watches file descriptors for readiness and hands each ready one to a callback. It is
// owned by one EventLoop and every method is called on that loop's thread only; engines hold no
// locks. The interface is what the loop needs and nothing more: add, modify, remove, dispatch and
// a name. Tests and benchmarks drive engines through the same five calls.

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
// Reported, never asked, and never from the kernel: the engine could not re-arm the fd after its
// last event (a oneshot epoll_ctl failed), so nothing more will be reported for it until a
// modify() succeeds. Its handler must act: close the connection, or retry with modify().
inline constexpr uint32_t kEventFailed = 1u << 27;
// Asked, never reported: watch this fd level-triggered whatever the engine's mode, so a oneshot
// epoll engine never needs to re-arm it (and an edge one raises no edge to miss). For an fd whose
// handler may leave readiness behind on purpose, such as a listening socket that accepts a
// bounded batch per event. poll and select are level-triggered anyway and ignore it.
inline constexpr uint32_t kEventLevel = 1u << 26;
// Completion I/O, for engines whose completesIo() is true (uring); the others never see these
// bits (a connection asks for them only on such an engine).
// Asked with kEventRead by a stream socket's owner: receive for it. Reported (the same bit, with
// kEventRead): the engine received bytes (or the peer's EOF, or an error) for the fd, which
// Engine::received() holds until `fn` returns.
inline constexpr uint32_t kEventReceive = 1u << 25;
// Asked with kEventRead by a listening socket's owner: accept for it. Reported (the same bit, with
// kEventRead): received().fd is a connection the engine accepted (non-blocking, close-on-exec),
// or received().err why accepting failed.
inline constexpr uint32_t kEventAccept = 1u << 23;
// Reported, never asked: a send() of the fd completed; Engine::sent() holds the result until `fn`
// returns.
inline constexpr uint32_t kEventSent = 1u << 24;

enum class EpollMode {
  kOneshot,  // EPOLLONESHOT: an fd is disarmed by each event; dispatch() re-arms it.
  kLevel,    // level-triggered
  kEdge,     // EPOLLET: readers and writers must go on until EAGAIN.
};

absl::StatusOr<EpollMode> parseEpollMode(std::string_view name);
std::string_view epollModeName(EpollMode mode);

struct EngineOptions {
  std::string name = "epoll";  // one of engineNames()
  EpollMode epoll_mode = EpollMode::kOneshot;  // epoll only
  // epoll oneshot only: a batch's re-arms go to the kernel together, as IORING_OP_EPOLL_CTL in
  // one io_uring_enter, where the kernel allows (else one epoll_ctl each, as with false).
  // PLEXUS_EPOLL_BATCH_REARM=0 in the environment makes makeEngine() take it as false.
  bool epoll_batch_rearm = true;
};

// The result of a completed receive or send (see Engine::received() and Engine::sent()).
struct EngineIoResult {
  const char* data = nullptr;
  size_t len = 0;
  int err = 0;
  int fd = -1;  // an accepted connection (kEventAccept)
};

class Engine {
 public:
  // What dispatch() calls for each ready fd: `ctx` as given to add()/modify(), the fd, `events`
  // the kEvent* bits, `arg` as given to dispatch().
  using ReadyFn = void (*)(void* ctx, int fd, uint32_t events, void* arg);

  virtual ~Engine() = default;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // What the logs show: "epoll (oneshot)", "poll", "select".
  virtual std::string_view name() const = 0;

  // Starts watching `fd` for `interest` (kEventRead | kEventWrite | ...). `interest` may be 0: the fd
  // is then registered but reports only errors and hang-ups (select: nothing). Fails for an fd
  // already registered, or one the engine cannot watch (select: fd >= FD_SETSIZE), or when the
  // engine cannot grow (the kernel's or our own memory); the fd is then not registered.
  virtual absl::Status add(int fd, uint32_t interest, void* ctx) = 0;
  // Changes the interest and ctx of a registered fd; a oneshot engine also re-arms it. On failure
  // the fd keeps its registration, but a oneshot fd may stay disarmed: the caller should give up
  // on the fd (or try again).
  virtual absl::Status modify(int fd, uint32_t interest, void* ctx) = 0;
  // Stops watching `fd`. Must be called before the fd is closed. During dispatch(), the fd gets no
  // further call in the batch being handled, even if its number is registered again meanwhile.
  virtual absl::Status remove(int fd) = 0;
  // remove() for an fd the caller closes right after, and that no other fd refers to (never
  // dup'd, never inherited by a child still running): closing it is then the kernel's last
  // reference to the file, which drops it from an epoll set by itself, so an engine may skip the
  // syscall and only forget the fd. Same guarantees as remove() for the batch being dispatched.
  // The default is remove().
  virtual absl::Status removeBeforeClose(int fd) { return remove(fd); }

  // The event loop's step: waits up to `timeout_ms` (-1: no limit) for ready fds, then calls `fn`
  // for each in turn. An fd removed while the batch is handled gets no further call in it. A
  // oneshot engine re-arms each fd after its call with the interest it has by then, unless the
  // call re-armed it already (modify()), removed it or left it no interest; if that re-arm fails,
  // `fn` is called once more for the fd with kEventFailed. Returns how many fds were ready; EINTR
  // gives 0. An error means the wait itself failed (nothing was dispatched).
  virtual absl::StatusOr<int> dispatch(int timeout_ms, ReadyFn fn, void* arg) = 0;

  // Completion I/O (see kEventReceive). True for an engine that receives into memory of its own
  // and sends from it, so that reading and writing a message costs no syscall of its own.
  virtual bool completesIo() const { return false; }
  // What a kEventReceive event received: `len` bytes at `data` (valid until `fn` returns), or
  // len 0 and err 0 for the peer's EOF, or err (an errno) for a failed receive.
  using IoResult = EngineIoResult;
  virtual const IoResult& received() const { return no_result_; }
  // What a kEventSent event completed: `len` bytes sent, or err (an errno: the connection failed;
  // bytes after it are not sent).
  virtual const IoResult& sent() const { return no_result_; }
  // Queues `len` bytes to be sent on the registered `fd`, behind those queued before; the engine
  // copies them, so `data` may go at once. Each completion is reported as kEventSent, with the
  // bytes it covered. remove() drops what is not sent yet. Unimplemented unless completesIo().
  virtual absl::Status send(int fd, const char* data, size_t len) {
    (void)fd, (void)data, (void)len;
    return absl::UnimplementedError("this engine does not send");
  }
  // Bytes send() took for `fd` whose completion has not been reported yet (0 once removed).
  virtual size_t sendingBytes(int fd) const {
    (void)fd;
    return 0;
  }

  // True for edge-triggered engines: a reader must read (and a writer write) until EAGAIN.
  bool edgeTriggered() const { return edge_triggered_; }
  // Syscalls made to change interest: epoll_ctl, and the io_uring_enter that submits a batch of
  // oneshot re-arms (one per batch). Any thread.
  uint64_t controlCalls() const { return ctl_calls_.get(); }

 protected:
  explicit Engine(bool edge_triggered = false) : edge_triggered_(edge_triggered) {}

  SingleWriterCounter ctl_calls_;

 private:
  static inline const IoResult no_result_{};
  const bool edge_triggered_;
};

// Makes the engine named in `options`. Errors: unknown name (the message lists the known ones) or
// the engine's own set-up failing (epoll_create1).
absl::StatusOr<std::unique_ptr<Engine>> makeEngine(const EngineOptions& options);

// The names makeEngine() accepts, in the order of the factory's list: {"epoll", "poll", "select"}.
const std::vector<std::string>& engineNames();

}  // namespace plexus
