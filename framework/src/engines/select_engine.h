#pragma once
// The select(2) engine: level-triggered and limited to fds below FD_SETSIZE, which it refuses with an
// error rather than writing past an fd_set (as Redis's ae_select.c does). Loop thread only.

#include <sys/select.h>

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "engines/ready_batch.h"
#include "plexus/engine.h"

namespace plexus::detail {

class SelectEngine final : public Engine {
 public:
  SelectEngine();

  std::string_view name() const override { return "select"; }
  absl::Status add(int fd, uint32_t interest, void* ctx) override;
  absl::Status modify(int fd, uint32_t interest, void* ctx) override;
  absl::Status remove(int fd) override;
  absl::StatusOr<int> dispatch(int timeout_ms, ReadyFn fn, void* arg) override;

 private:
  absl::Status checkRange(int fd) const;
  void setInterest(int fd, uint32_t interest);

  fd_set read_set_;
  fd_set write_set_;
  fd_set except_set_;  // fds that asked for kEventPriority
  int max_fd_ = -1;    // highest registered fd
  std::array<bool, FD_SETSIZE> registered_{};
  std::array<void*, FD_SETSIZE> ctxs_{};
  ReadyBatch batch_;
};

}  // namespace plexus::detail
