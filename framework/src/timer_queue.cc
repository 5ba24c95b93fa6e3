#include "timer_queue.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "plexus/log.h"
#include "socket_ops.h"

namespace plexus::detail {
namespace {
int makeTimerFd() {
  int fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) LOG_FATAL("timerfd_create: %s", std::strerror(errno));
  return fd;
}
}  // namespace

TimerQueue::TimerQueue(EventLoop* loop) : loop_(loop), fd_(makeTimerFd()), channel_(loop, fd_, this) {
  absl::Status s = channel_.setInterest(kEventRead);
  if (!s.ok()) LOG_FATAL("cannot watch the timerfd: %s", s.message());
}

TimerQueue::~TimerQueue() {
  channel_.remove();
  closeFd(fd_);
}

void TimerQueue::add(uint64_t seq, Clock::time_point when, Duration interval,
                     EventLoop::Functor cb) {
  loop_->assertInLoopThread();
  timers_.emplace(seq, Timer{when, interval, std::move(cb)});
  queue_.emplace(when, seq);
  if (when < armed_for_) resetTimerFd();
}

void TimerQueue::cancel(uint64_t seq) {
  loop_->assertInLoopThread();
  if (seq == running_) {
    running_cancelled_ = true;
    return;
  }
  auto it = timers_.find(seq);
  if (it == timers_.end()) return;
  queue_.erase({it->second.when, seq});
  timers_.erase(it);
  // The timerfd may stay armed for a cancelled deadline; that expiry finds nothing and re-arms.
}

void TimerQueue::resetTimerFd() {
  itimerspec spec{};
  if (queue_.empty()) {
    armed_for_ = Clock::time_point::max();
  } else {
    armed_for_ = queue_.begin()->first;
    auto delta = std::chrono::duration_cast<std::chrono::nanoseconds>(armed_for_ - Clock::now());
    // A zero it_value would disarm the timer: fire in at least 1 µs.
    int64_t ns = std::max<int64_t>(delta.count(), 1000);
    spec.it_value.tv_sec = ns / 1000000000;
    spec.it_value.tv_nsec = ns % 1000000000;
  }
  if (::timerfd_settime(fd_, 0, &spec, nullptr) < 0) {
    LOG_ERROR("timerfd_settime: %s", std::strerror(errno));
  }
}

void TimerQueue::handleEvent(uint32_t revents) {
  if (revents & kEventFailed) {
    // Not re-armed: without it no timer of this loop would fire again.
    if (absl::Status s = channel_.setInterest(kEventRead); !s.ok()) {
      LOG_ERROR("cannot re-arm the timerfd: %s", s.message());
    }
    return;
  }
  uint64_t expirations;
  ssize_t n = ::read(fd_, &expirations, sizeof expirations);
  (void)n;
  loop_->counters().other_calls.add();
  armed_for_ = Clock::time_point::max();
  const Clock::time_point now = Clock::now();
  std::vector<uint64_t> due;
  while (!queue_.empty() && queue_.begin()->first <= now) {
    due.push_back(queue_.begin()->second);
    queue_.erase(queue_.begin());
  }
  for (uint64_t seq : due) {
    auto it = timers_.find(seq);
    if (it == timers_.end()) continue;  // cancelled by an earlier callback of this batch
    running_ = seq;
    running_cancelled_ = false;
    // Move the callback out: the callback may add timers, which may rehash timers_.
    EventLoop::Functor cb = std::move(it->second.cb);
    const Duration interval = it->second.interval;
    cb();
    running_ = 0;
    it = timers_.find(seq);
    if (interval.count() > 0 && !running_cancelled_ && it != timers_.end()) {
      it->second.cb = std::move(cb);
      it->second.when = now + interval;
      queue_.emplace(it->second.when, seq);
    } else if (it != timers_.end()) {
      timers_.erase(it);
    }
  }
  resetTimerFd();
}

}  // namespace plexus::detail
