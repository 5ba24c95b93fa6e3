#pragma once
// The io_uring engine (`--engine uring`). Loop thread only, like every engine: the ring is made
// with IORING_SETUP_SINGLE_ISSUER where the kernel has it, so the thread that creates the engine
// is the one that dispatches.
//
// Readiness, for every fd: a one-shot poll request (IORING_OP_POLL_ADD) per fd, re-armed after
// each event as an SQE, not a syscall. That makes it a oneshot engine whose re-arm is free, and
// level-triggered as its handlers see it (a fresh poll reports readiness that is already there).
//
// Completion I/O, for stream sockets whose owner asks kEventReceive (TcpConnection does), and
// listening sockets whose owner asks kEventAccept (the Acceptor does: one multishot accept):
//   - receive: one multishot recv per fd into a ring of provided buffers that the loop's fds
//     share (IORING_REGISTER_PBUF_RING); each completion is handed to the owner as kEventRead |
//     kEventReceive with the bytes in received(), and the buffer goes back to the ring once the
//     owner's call returns. Read interest dropped: the recv is cancelled, and bytes that
//     completed before the cancel are kept (copied) until read interest comes back, never lost.
//   - send: send() copies the bytes into a buffer of the engine's and submits one IORING_OP_SEND
//     (MSG_WAITALL: the kernel completes it whole, or fails) per fd at a time; bytes sent while
//     one is in flight wait behind it, in order. Completions are reported as kEventSent.
//   - close: remove() cancels what the fd has in flight; memory a request points at is freed
//     only after its last completion.
// Each dispatch() is one io_uring_enter: it submits every SQE prepared since the last one
// (re-arms, sends, cancels) and waits for completions.
//
// Needs Linux 6.0 (multishot recv) and io_uring allowed (kernel.io_uring_disabled, seccomp);
// makeUringEngine() falls back to epoll with one log line otherwise.

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "plexus/buffer.h"
#include "plexus/engine.h"

namespace plexus::detail {

class UringEngine final : public Engine {
 public:
  // Fails when the ring or its buffer ring cannot be set up, or the kernel is older than 6.0.
  static absl::StatusOr<std::unique_ptr<UringEngine>> create();
  ~UringEngine() override;

  std::string_view name() const override { return "uring"; }
  absl::Status add(int fd, uint32_t interest, void* ctx) override;
  absl::Status modify(int fd, uint32_t interest, void* ctx) override;
  absl::Status remove(int fd) override;
  absl::StatusOr<int> dispatch(int timeout_ms, ReadyFn fn, void* arg) override;

  bool completesIo() const override { return true; }
  const IoResult& received() const override { return received_; }
  const IoResult& sent() const override { return sent_; }
  absl::Status send(int fd, const char* data, size_t len) override;
  size_t sendingBytes(int fd) const override {
    return fd >= 0 && static_cast<size_t>(fd) < fds_.size() ? fds_[fd].unsent : 0;
  }

  // Buffers in the receive ring, and the size of each.
  static constexpr unsigned kRecvBuffers = 512;
  static constexpr unsigned kRecvBufferSize = 4096;

 private:
  struct SendOp;  // the bytes of one send in flight
  struct FdState {
    void* ctx = nullptr;
    uint32_t interest = 0;
    uint32_t generation = 0;
    uint32_t poll_mask = 0;       // of the poll in flight
    uint8_t poll_seq = 0;         // which of the fd's polls is in flight (its user_data has it)
    bool registered = false;
    bool poll_armed = false;      // a poll request is in flight
    bool recv_armed = false;      // a multishot recv is in flight
    bool recv_cancelling = false; // and its cancel is asked
    bool recv_ended = false;      // EOF or an error received: no more receiving
    bool stashed = false;         // received bytes wait in stash_ for read interest
    SendOp* sending = nullptr;    // the send in flight
    size_t unsent = 0;            // bytes send() took, not yet reported sent
    std::unique_ptr<Buffer> queued;  // bytes behind it
  };
  struct Stashed {
    std::string bytes;
    int err = 0;
    bool eof = false;
  };
  struct Completion {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
  };

  UringEngine() = default;
  absl::Status setUp();
  io_uring_sqe* sqe();
  FdState* current(int fd, uint32_t generation);
  static bool receives(const FdState& s) { return (s.interest & kEventReceive) != 0; }
  static bool wantsRecv(const FdState& s) {
    return receives(s) && (s.interest & kEventRead) && !s.recv_ended;
  }
  // A listening socket the engine accepts for (multishot accept), in the recv_* fields.
  static bool accepts(const FdState& s) { return (s.interest & kEventAccept) != 0; }
  static bool wantsAccept(const FdState& s) { return accepts(s) && (s.interest & kEventRead); }
  static uint32_t pollMask(const FdState& s);
  void armPoll(int fd, FdState& s);
  void armRecv(int fd, FdState& s);
  void armAccept(int fd, FdState& s);
  void cancel(uint64_t user_data);
  void sync(int fd, FdState& s, bool dispatching);
  void submitSend(SendOp* op);
  void recycle(unsigned bid);
  void stash(int fd, FdState& s, const IoResult& r);
  int deliverStashed(ReadyFn fn, void* arg);
  int handle(const Completion& c, ReadyFn fn, void* arg);
  void releaseOp(SendOp* op);

  io_uring ring_{};
  bool ring_ready_ = false;
  io_uring_buf_ring* buf_ring_ = nullptr;
  char* buf_memory_ = nullptr;
  bool buf_ring_registered_ = false;
  std::vector<FdState> fds_;  // indexed by fd
  uint32_t next_generation_ = 0;
  std::vector<Completion> batch_;
  // fds whose stashed bytes are due (their read interest came back): (fd, generation).
  std::vector<std::pair<int, uint32_t>> redeliver_;
  absl::flat_hash_map<int, std::vector<Stashed>> stash_;
  std::vector<SendOp*> free_ops_;
  size_t outstanding_ = 0;  // requests whose last completion has not come yet
  IoResult received_;
  IoResult sent_;
  int fd_dispatching_ = -1;  // the fd whose event is being handled: re-armed after it
};

}  // namespace plexus::detail
