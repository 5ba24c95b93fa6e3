#pragma once
// The epoll(7) engine, in one of three modes (see EpollMode). Loop thread only, like every engine.

#include <sys/epoll.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "plexus/engine.h"

namespace plexus::detail {

class EpollEngine final : public Engine {
 public:
  // Use create(): epoll_create1 can fail.
  static absl::StatusOr<std::unique_ptr<EpollEngine>> create(EpollMode mode = EpollMode::kOneshot);
  ~EpollEngine() override;

  std::string_view name() const override { return name_; }
  absl::Status add(int fd, uint32_t interest, void* ctx) override;
  absl::Status modify(int fd, uint32_t interest, void* ctx) override;
  absl::Status remove(int fd) override;
  absl::StatusOr<int> dispatch(int timeout_ms, ReadyFn fn, void* arg) override;

  EpollMode mode() const { return mode_; }

 private:
  struct FdState {
    void* ctx = nullptr;
    uint32_t interest = 0;
    bool registered = false;
    bool armed = false;  // oneshot: false once reported, until modify() or dispatch() re-arms it
  };

  EpollEngine(int epfd, EpollMode mode);
  absl::Status control(int op, int fd, uint32_t interest);
  bool rearmAfterDispatch(int fd);

  const int epfd_;
  const EpollMode mode_;
  const std::string name_;  // "epoll (oneshot)"
  std::vector<epoll_event> events_;
  int batch_size_ = 0;  // events_ being dispatched; remove() marks the fd's ones with data.fd -1
  std::vector<FdState> fds_;  // indexed by fd
};

}  // namespace plexus::detail
