// The Engine interface's default dispatch(), for engines that report through wait().

#include "plexus/engine.h"

namespace plexus {

absl::StatusOr<int> Engine::dispatch(int timeout_ms, ReadyFn fn, void* arg) {
  absl::StatusOr<int> n = wait(timeout_ms, &batch_);
  if (!n.ok()) return n;
  dispatching_ = true;
  for (batch_index_ = 0; batch_index_ < batch_.size(); ++batch_index_) {
    const ReadyEvent& ev = batch_[batch_index_];
    // forgetPending() marks a removed fd's later events with fd -1.
    if (ev.fd >= 0) fn(ev.ctx, ev.events, arg);
  }
  dispatching_ = false;
  return n;
}

void Engine::forgetPending(int fd) {
  if (!dispatching_) return;
  for (size_t i = batch_index_ + 1; i < batch_.size(); ++i) {
    if (batch_[i].fd == fd) batch_[i].fd = -1;
  }
}

}  // namespace plexus
