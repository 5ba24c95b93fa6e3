#pragma once
// TimerQueue: the timers of one loop, on one timerfd armed for the earliest deadline.
// Loop thread only (EventLoop forwards calls from other threads through runInLoop).

#include <cstdint>
#include <functional>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "plexus/channel.h"
#include "plexus/event_loop.h"

namespace plexus::detail {

class TimerQueue final : private EventHandler {
 public:
  explicit TimerQueue(EventLoop* loop);
  ~TimerQueue();

  void add(uint64_t seq, Clock::time_point when, Duration interval, EventLoop::Functor cb);
  void cancel(uint64_t seq);
  size_t size() const { return timers_.size(); }

 private:
  struct Timer {
    Clock::time_point when;
    Duration interval;
    EventLoop::Functor cb;
  };
  void handleEvent(uint32_t revents) override;
  void resetTimerFd();

  EventLoop* const loop_;
  const int fd_;
  Channel channel_;
  // Ordered by deadline, then by creation; the map holds the callbacks.
  std::set<std::pair<Clock::time_point, uint64_t>> queue_;
  absl::flat_hash_map<uint64_t, Timer> timers_;
  Clock::time_point armed_for_ = Clock::time_point::max();
  uint64_t running_ = 0;            // seq of the timer whose callback runs now
  bool running_cancelled_ = false;  // it cancelled itself
};

}  // namespace plexus::detail
