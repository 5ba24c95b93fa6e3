#pragma once
// EventLoopThread: a thread that runs its own EventLoop.
//
// Thread safety: start(), stop() and the destructor on the owning thread; loop() after start()
// returns from any thread (the loop itself says which of its methods are thread-safe).

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "plexus/engine.h"
#include "plexus/event_loop.h"

namespace plexus {

class EventLoopThread {
 public:
  using InitCallback = std::function<void(EventLoop*)>;

  explicit EventLoopThread(EngineOptions engine = {}, InitCallback init = nullptr,
                           std::string name = "plexus-loop");
  ~EventLoopThread();  // stop()s
  EventLoopThread(const EventLoopThread&) = delete;
  EventLoopThread& operator=(const EventLoopThread&) = delete;

  // Starts the thread and returns its loop once it runs. Fails if the engine cannot be made; a
  // later start() tries again.
  absl::StatusOr<EventLoop*> start();
  // Quits the loop and joins the thread. Idempotent.
  void stop();
  // The running loop, or nullptr before start() and after the loop stopped.
  EventLoop* loop() const;

 private:
  void threadMain();

  const EngineOptions engine_;
  InitCallback init_;
  const std::string name_;
  std::thread thread_;
  mutable absl::Mutex mutex_;
  EventLoop* loop_ ABSL_GUARDED_BY(mutex_) = nullptr;
};

}  // namespace plexus
