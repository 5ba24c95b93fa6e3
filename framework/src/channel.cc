#include "plexus/channel.h"

#include <cassert>

#include "plexus/event_loop.h"
#include "plexus/log.h"

namespace plexus {

Channel::Channel(EventLoop* loop, int fd, EventHandler* handler)
    : loop_(loop), handler_(handler), fd_(fd) {}

Channel::~Channel() {
  if (registered()) LOG_FATAL("channel for fd %d destroyed while still registered", fd_);
}

absl::Status Channel::setInterest(uint32_t interest) {
  absl::Status s = loop_->updateChannel(this, interest);
  if (s.ok()) interest_ = interest | kRegistered;
  return s;
}

void Channel::remove() {
  if (!registered()) return;
  loop_->removeChannel(this);
  interest_ = 0;
}

void Channel::removeBeforeClose() {
  if (!registered()) return;
  loop_->removeChannelBeforeClose(this);
  interest_ = 0;
}

}  // namespace plexus
