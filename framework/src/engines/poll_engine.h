#pragma once
// The poll(2) engine: level-triggered, no fd limit, O(registered fds) per wait. Loop thread only.

#include <poll.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "engines/ready_batch.h"
#include "plexus/engine.h"

namespace plexus::detail {

class PollEngine final : public Engine {
 public:
  PollEngine() = default;

  std::string_view name() const override { return "poll"; }
  absl::Status add(int fd, uint32_t interest, void* ctx) override;
  absl::Status modify(int fd, uint32_t interest, void* ctx) override;
  absl::Status remove(int fd) override;
  absl::StatusOr<int> dispatch(int timeout_ms, ReadyFn fn, void* arg) override;

 private:
  int indexOf(int fd) const;

  // pollfds_[i] and ctxs_[i] belong together; index_[fd] is i, or -1 when fd is not registered.
  std::vector<pollfd> pollfds_;
  std::vector<void*> ctxs_;
  std::vector<int> index_;
  ReadyBatch batch_;
};

}  // namespace plexus::detail
