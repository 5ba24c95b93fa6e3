#include "client/bench_timer.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "absl/strings/str_format.h"

namespace plexus::client {

// timerfd's CLOCK_MONOTONIC is the clock behind steady_clock on Linux.
static_assert(std::is_same_v<Clock, std::chrono::steady_clock>);

absl::StatusOr<std::unique_ptr<BenchTimer>> BenchTimer::create(EventLoop* loop,
                                                               std::function<void()> on_due) {
  loop->assertInLoopThread();
  const int fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(absl::StrFormat("timerfd_create: %s", std::strerror(errno)));
  }
  std::unique_ptr<BenchTimer> timer(new BenchTimer(loop, fd, std::move(on_due)));
  if (absl::Status s = timer->channel_.setInterest(kEventRead); !s.ok()) return s;
  return timer;
}

BenchTimer::BenchTimer(EventLoop* loop, int fd, std::function<void()> on_due)
    : fd_(fd), channel_(loop, fd, this), on_due_(std::move(on_due)) {}

BenchTimer::~BenchTimer() {
  channel_.remove();  // out of the engine before the fd is closed
  ::close(fd_);
}

void BenchTimer::armAt(Clock::time_point when) {
  const int64_t ns = std::max<int64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count(), 1);
  itimerspec spec{};  // a zero it_value would disarm it: at least 1 ns
  spec.it_value.tv_sec = ns / 1000000000;
  spec.it_value.tv_nsec = ns % 1000000000;
  ::timerfd_settime(fd_, TFD_TIMER_ABSTIME, &spec, nullptr);
}

void BenchTimer::disarm() {
  itimerspec spec{};
  ::timerfd_settime(fd_, 0, &spec, nullptr);
}

void BenchTimer::handleEvent(uint32_t) {
  uint64_t expirations;
  // One read empties it, which edge-triggered engines need too. EAGAIN: a re-arm raced the wake-up.
  if (::read(fd_, &expirations, sizeof expirations) != sizeof expirations) return;
  on_due_();
}

}  // namespace plexus::client
