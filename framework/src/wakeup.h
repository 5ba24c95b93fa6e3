#pragma once
// Wakeup: an eventfd watched by the loop; other threads write to it to end the loop's wait.
// wake() from any thread; the rest on the loop thread.

#include "plexus/channel.h"

namespace plexus::detail {

class Wakeup final : private EventHandler {
 public:
  explicit Wakeup(EventLoop* loop);
  ~Wakeup();
  void wake();

 private:
  void handleEvent(uint32_t revents) override;

  EventLoop* const loop_;
  const int fd_;
  Channel channel_;
};

}  // namespace plexus::detail
