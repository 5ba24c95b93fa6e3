#pragma once
// FaultyEngine: an engine that wraps a real one and fails on demand, for tests of what the loop
// and its connections do when the engine lets them down. Loop thread only, like every engine,
// except the switches, which any thread may flip.
//
//   fail_modify_writing: modify() that asks for kEventWrite fails (as an epoll_ctl that cannot
//                        allocate would), registering nothing.
//   fail_rearm_fd:       after that fd's next call, the fd is silenced and handed over once more
//                        with kEventFailed, as when a oneshot re-arm fails; then reset to -1. Set
//                        it on the loop thread (runSync), or it may hit the event being handled.
//   fail_waits:          that many dispatch() calls fail (EBADF) before waiting; -1: all of them.

#include <atomic>
#include <memory>
#include <string_view>

#include "plexus/engine.h"

namespace plexus::testing {

class FaultyEngine final : public Engine {
 public:
  explicit FaultyEngine(std::unique_ptr<Engine> inner)
      : Engine(inner->edgeTriggered()), inner_(std::move(inner)) {}

  std::atomic<bool> fail_modify_writing{false};
  std::atomic<int> fail_rearm_fd{-1};
  std::atomic<int> fail_waits{0};
  std::atomic<int> dispatch_calls{0};

  std::string_view name() const override { return inner_->name(); }
  absl::Status add(int fd, uint32_t interest, void* ctx) override {
    return inner_->add(fd, interest, ctx);
  }
  absl::Status modify(int fd, uint32_t interest, void* ctx) override {
    if ((interest & kEventWrite) && fail_modify_writing.load()) {
      return absl::ResourceExhaustedError("injected: cannot watch for writing");
    }
    return inner_->modify(fd, interest, ctx);
  }
  absl::Status remove(int fd) override { return inner_->remove(fd); }
  absl::Status removeBeforeClose(int fd) override { return inner_->removeBeforeClose(fd); }

  absl::StatusOr<int> dispatch(int timeout_ms, ReadyFn fn, void* arg) override {
    dispatch_calls.fetch_add(1);
    int left = fail_waits.load();
    if (left != 0) {
      if (left > 0) fail_waits.store(left - 1);
      return absl::InternalError("injected: epoll_wait: Bad file descriptor");
    }
    Call call{this, fn, arg};
    return inner_->dispatch(timeout_ms, &FaultyEngine::onReady, &call);
  }

 private:
  struct Call {
    FaultyEngine* self;
    ReadyFn fn;
    void* arg;
  };
  static void onReady(void* ctx, int fd, uint32_t events, void* arg) {
    auto* call = static_cast<Call*>(arg);
    call->fn(ctx, fd, events, call->arg);
    int target = fd;
    if (call->self->fail_rearm_fd.compare_exchange_strong(target, -1)) {
      // What a failed oneshot re-arm leaves: an fd that reports nothing, and its handler told.
      (void)call->self->inner_->modify(fd, 0, ctx);
      call->fn(ctx, fd, kEventFailed, call->arg);
    }
  }

  std::unique_ptr<Engine> inner_;
};

}  // namespace plexus::testing
