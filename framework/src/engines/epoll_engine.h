#pragma once
// The epoll(7) engine, in one of three modes (see EpollMode). Loop thread only, like every engine.

#include <sys/epoll.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engines/epoll_rearm_ring.h"
#include "plexus/engine.h"

namespace plexus::detail {

class EpollEngine final : public Engine {
 public:
  // Use create(): epoll_create1 can fail. `batch_rearm`: see EngineOptions::epoll_batch_rearm.
  static absl::StatusOr<std::unique_ptr<EpollEngine>> create(EpollMode mode = EpollMode::kOneshot,
                                                               bool batch_rearm = true);
  ~EpollEngine() override;

  std::string_view name() const override { return name_; }
  absl::Status add(int fd, uint32_t interest, void* ctx) override;
  absl::Status modify(int fd, uint32_t interest, void* ctx) override;
  absl::Status remove(int fd) override;
  // Forgets the fd without an epoll_ctl DEL: the caller's close() removes it from the epoll set.
  absl::Status removeBeforeClose(int fd) override;
  absl::StatusOr<int> dispatch(int timeout_ms, ReadyFn fn, void* arg) override;

  EpollMode mode() const { return mode_; }
  // Fewer re-arms than this in a batch are made with epoll_ctl even with the ring: an
  // io_uring_enter costs about as much as three epoll_ctl MODs (measured on Linux 6.18), and
  // each re-arm in it about 0.6 of one.
  static constexpr size_t kRingMinBatch = 4;
  // True when dispatch() re-arms through the thread's io_uring (oneshot mode, batching asked for,
  // a kernel that allows it). Makes the thread's ring if it has none yet.
  bool batchesRearms() const;

 private:
  struct FdState {
    void* ctx = nullptr;
    uint32_t interest = 0;
    uint32_t generation = 0;  // of the add() that registered it; rides in each event with the fd
    bool registered = false;
    bool armed = false;  // oneshot: false once reported, until modify() or dispatch() re-arms it
  };

  EpollEngine(int epfd, EpollMode mode, bool batch_rearm);
  uint32_t kernelEvents(uint32_t interest) const;
  absl::Status control(int op, int fd, uint32_t interest, uint32_t generation);
  bool rearmAfterDispatch(int fd);
  void queueRearm(int fd);
  void flushRearms(EpollRearmRing& ring, ReadyFn fn, void* arg);
  absl::Status forget(int fd);
  void rebuild(ReadyFn fn, void* arg);

  const int epfd_;
  const EpollMode mode_;
  const bool batch_rearm_;  // oneshot with EngineOptions::epoll_batch_rearm
  const std::string name_;  // "epoll (oneshot)"
  std::vector<epoll_event> events_;
  int batch_size_ = 0;  // events_ being dispatched; remove() marks the fd's ones kDropped
  std::vector<FdState> fds_;  // indexed by fd
  uint32_t next_generation_ = 0;
  // Batched re-arms: the fds handled in the batch being dispatched, with their generation; those
  // handed to the ring, and its results.
  struct Handled {
    int fd;
    uint32_t generation;
  };
  std::vector<Handled> handled_;
  std::vector<Handled> queued_;
  std::vector<int> results_;
};

}  // namespace plexus::detail
