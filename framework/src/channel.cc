#include "plexus/channel.h"

#include <cassert>

#include "plexus/event_loop.h"
#include "plexus/log.h"

namespace plexus {

Channel::Channel(EventLoop* loop, int fd, EventHandler* handler)
    : loop_(loop), fd_(fd), handler_(handler) {}

Channel::~Channel() {
  if (registered_) LOG_FATAL("channel for fd %d destroyed while still registered", fd_);
}

absl::Status Channel::setInterest(uint32_t interest) {
  absl::Status s = loop_->updateChannel(this, interest);
  if (s.ok()) {
    interest_ = interest;
    registered_ = true;
  }
  return s;
}

void Channel::remove() {
  if (!registered_) return;
  loop_->removeChannel(this);
  registered_ = false;
  interest_ = 0;
}

void Channel::removeBeforeClose() {
  if (!registered_) return;
  loop_->removeChannelBeforeClose(this);
  registered_ = false;
  interest_ = 0;
}

}  // namespace plexus
