#include "plexus/event_loop_thread.h"

#include <pthread.h>

#include "absl/synchronization/notification.h"
#include "plexus/log.h"

namespace plexus {

EventLoopThread::EventLoopThread(EngineOptions engine, InitCallback init, std::string name)
    : engine_(std::move(engine)), init_(std::move(init)), name_(std::move(name)) {}

EventLoopThread::~EventLoopThread() { stop(); }

absl::StatusOr<EventLoop*> EventLoopThread::start() {
  if (thread_.joinable()) return loop();
  // This attempt's outcome only: a start() after a failed one tries afresh.
  absl::Status start_status;
  absl::Notification started;
  thread_ = std::thread([this, &started, &start_status] {
    ::pthread_setname_np(::pthread_self(), name_.substr(0, 15).c_str());
    auto engine = makeEngine(engine_);
    if (!engine.ok()) {
      start_status = engine.status();
      started.Notify();
      return;
    }
    EventLoop loop(*std::move(engine));
    if (init_) init_(&loop);
    {
      absl::MutexLock lock(&mutex_);
      loop_ = &loop;
    }
    // Notify from inside the loop, so the caller gets a loop that already runs.
    loop.queueInLoop([&started] { started.Notify(); });
    // A loop that gave up on its engine has reported it through its failure callback already.
    (void)loop.run();
    absl::MutexLock lock(&mutex_);
    loop_ = nullptr;
  });
  started.WaitForNotification();
  if (!start_status.ok()) {
    thread_.join();
    return start_status;
  }
  absl::MutexLock lock(&mutex_);
  return loop_;
}

void EventLoopThread::stop() {
  if (!thread_.joinable()) return;
  {
    // The loop thread clears loop_ under the lock before its loop is destroyed.
    absl::MutexLock lock(&mutex_);
    if (loop_ != nullptr) loop_->quit();
  }
  thread_.join();
}

EventLoop* EventLoopThread::loop() const {
  absl::MutexLock lock(&mutex_);
  return loop_;
}

}  // namespace plexus
