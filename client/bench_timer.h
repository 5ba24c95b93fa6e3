#pragma once
// BenchTimer: wakes its loop at an exact steady-clock time, on a timerfd of its own.
//
// The open-loop sender re-arms it for every next scheduled message. The loop's own timers would
// do, but they allocate on every arm; this one costs one timerfd_settime(2) and one read(2) per
// wake-up and nothing else.
//
// Thread safety: loop thread only, construction and destruction included.

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "plexus/channel.h"
#include "plexus/event_loop.h"

namespace plexus::client {

class BenchTimer final : private EventHandler {
 public:
  // Fails when no timerfd can be made or the loop's engine refuses it.
  static absl::StatusOr<std::unique_ptr<BenchTimer>> create(EventLoop* loop,
                                                            std::function<void()> on_due);
  ~BenchTimer();
  BenchTimer(const BenchTimer&) = delete;
  BenchTimer& operator=(const BenchTimer&) = delete;

  // Runs on_due once, at `when` (at once if it has passed). Replaces an earlier arming.
  void armAt(Clock::time_point when);
  void disarm();

 private:
  BenchTimer(EventLoop* loop, int fd, std::function<void()> on_due);
  void handleEvent(uint32_t revents) override;

  const int fd_;
  Channel channel_;
  std::function<void()> on_due_;
};

}  // namespace plexus::client
