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
  // Called on the loop thread with the events the engine reported (kEvent* bits). With
  // kEventFailed the fd will report nothing more until its interest is set again (see engine.h):
  // retry, or close.
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
  uint32_t interest() const { return interest_ & ~kRegistered; }
  bool registered() const { return (interest_ & kRegistered) != 0; }
  bool isReading() const { return (interest_ & kEventRead) != 0; }
  bool isWriting() const { return (interest_ & kEventWrite) != 0; }

  // Sets the interest, registering the fd with the loop's engine first if it is not registered
  // yet. Fails when the engine refuses (select: fd >= FD_SETSIZE; epoll_ctl failed; no memory);
  // the channel then keeps its old interest, and stays unregistered if it was. The owner decides
  // what to do with an fd whose interest cannot change: a connection closes.
  absl::Status setInterest(uint32_t interest);
  // setInterest() with one bit more or less; nothing to do (OK) when the bit is as asked.
  absl::Status enableReading() { return update(interest_ | kEventRead); }
  absl::Status disableReading() { return update(interest_ & ~kEventRead); }
  absl::Status enableWriting() { return update(interest_ | kEventWrite); }
  absl::Status disableWriting() { return update(interest_ & ~kEventWrite); }

  // Removes the fd from the engine. Call before closing the fd. Safe to call when not registered.
  void remove();
  // remove() when the caller closes the fd right after and no other fd refers to its socket
  // (opened with CLOEXEC, never dup'd): the epoll engine then skips the epoll_ctl DEL, since the
  // close drops the fd from the epoll set (see Engine::removeBeforeClose()).
  void removeBeforeClose();

  // Used by EventLoop: dispatches to the handler. kEventFailed in `revents`: the engine could not
  // re-arm the fd, so it reports nothing more until setInterest() succeeds.
  void handleEvent(uint32_t revents) { handler_->handleEvent(revents); }

 private:
  // Kept in interest_, beside the kEvent* bits (none of which is this one): 24 bytes a channel,
  // and one compare says "registered with this interest already".
  static constexpr uint32_t kRegistered = 1u << 31;
  static_assert((kRegistered & (kEventRead | kEventPriority | kEventWrite | kEventError |
                                kEventHangup | kEventReadHangup | kEventFailed | kEventLevel)) == 0);

  absl::Status update(uint32_t interest) {
    if ((interest | kRegistered) == interest_) return absl::OkStatus();
    return setInterest(interest & ~kRegistered);
  }

  EventLoop* const loop_;
  EventHandler* const handler_;
  const int fd_;
  uint32_t interest_ = 0;  // the kEvent* bits, and kRegistered
};

}  // namespace plexus
