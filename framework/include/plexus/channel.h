#pragma once
// A Channel ties one fd to its EventLoop and to the object that handles the fd's events. It owns
// neither the fd nor the handler, and holds no engine state: the engine keeps its own per-fd data.
//
// Thread safety: loop thread only, every method.

#include <cstdint>

#include "absl/status/status.h"
#include "plexus/engine.h"

namespace plexus {

class EventLoop;

class EventHandler {
 public:
  // Called on the loop thread with the events the engine reported (kEvent* bits).
  virtual void handleEvent(uint32_t revents) = 0;

 protected:
  ~EventHandler() = default;
};

class Channel {
 public:
  Channel(EventLoop* loop, int fd, EventHandler* handler);
  ~Channel();  // must not be registered any more
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  int fd() const { return fd_; }
  EventLoop* loop() const { return loop_; }
  uint32_t interest() const { return interest_; }
  bool registered() const { return registered_; }
  bool isReading() const { return (interest_ & kEventRead) != 0; }
  bool isWriting() const { return (interest_ & kEventWrite) != 0; }

  // Sets the interest and registers the fd with the loop's engine if it is not registered yet. Fails
  // when the engine refuses the fd (select: fd >= FD_SETSIZE); the channel then stays unregistered.
  absl::Status setInterest(uint32_t interest);
  void enableReading() { update(interest_ | kEventRead); }
  void disableReading() { update(interest_ & ~kEventRead); }
  void enableWriting() { update(interest_ | kEventWrite); }
  void disableWriting() { update(interest_ & ~kEventWrite); }

  // Removes the fd from the engine. Call before closing the fd. Safe to call when not registered.
  void remove();

  // Used by EventLoop: dispatches to the handler.
  void handleEvent(uint32_t revents) { handler_->handleEvent(revents); }

 private:
  void update(uint32_t interest);

  EventLoop* const loop_;
  const int fd_;
  uint32_t interest_ = 0;
  bool registered_ = false;
  EventHandler* const handler_;
};

}  // namespace plexus
