#pragma once
// EventLoopThreadPool: N threads, each running its own EventLoop (the sub-reactors), next to a base
// loop owned by the caller (the main reactor). With N = 0 the base loop does all the work.
//
// Thread safety: start(), stop(), getNextLoop(), getLeastLoadedLoop() and loops() are called on the
// base loop's thread only. The load counters may be changed from any thread.

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "plexus/engine.h"
#include "plexus/event_loop.h"

namespace plexus {

class EventLoopThreadPool {
 public:
  EventLoopThreadPool(EventLoop* base_loop, int num_threads, EngineOptions engine);
  ~EventLoopThreadPool();  // stop()s
  EventLoopThreadPool(const EventLoopThreadPool&) = delete;
  EventLoopThreadPool& operator=(const EventLoopThreadPool&) = delete;

  // Starts the threads and waits until each loop runs. Fails if an engine cannot be made.
  absl::Status start();
  // Quits every sub-loop and joins its thread. Idempotent.
  void stop();

  // Round-robin over the sub-loops; the base loop when there are none.
  EventLoop* getNextLoop();
  // The sub-loop with the fewest connections counted by addLoad(); ties go round-robin.
  EventLoop* getLeastLoadedLoop();
  // Load accounting for getLeastLoadedLoop(). Any thread.
  void addLoad(EventLoop* loop, int delta);
  int load(EventLoop* loop) const;

  // The sub-loops, or {base loop} when there are none.
  std::vector<EventLoop*> loops() const;
  int numThreads() const { return num_threads_; }
  bool started() const { return started_; }

 private:
  struct Worker;
  int indexOf(EventLoop* loop) const;

  EventLoop* const base_loop_;
  const int num_threads_;
  const EngineOptions engine_;
  bool started_ = false;
  size_t next_ = 0;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<int> base_load_{0};
};

}  // namespace plexus
