#include "plexus/event_loop_thread_pool.h"

#include <limits>

#include "absl/strings/str_format.h"
#include "plexus/event_loop_thread.h"
#include "plexus/log.h"

namespace plexus {

struct EventLoopThreadPool::Worker {
  Worker(const EngineOptions& engine, int index)
      : thread(engine, nullptr, absl::StrFormat("plexus-io-%d", index)) {}
  EventLoopThread thread;
  EventLoop* loop = nullptr;
  std::atomic<int> load{0};
};

EventLoopThreadPool::EventLoopThreadPool(EventLoop* base_loop, int num_threads, EngineOptions engine)
    : base_loop_(base_loop), num_threads_(num_threads), engine_(std::move(engine)) {}

EventLoopThreadPool::~EventLoopThreadPool() { stop(); }

absl::Status EventLoopThreadPool::start() {
  base_loop_->assertInLoopThread();
  if (started_) return absl::OkStatus();
  for (int i = 0; i < num_threads_; ++i) {
    auto worker = std::make_unique<Worker>(engine_, i);
    absl::StatusOr<EventLoop*> loop = worker->thread.start();
    if (!loop.ok()) {
      stop();
      return loop.status();
    }
    worker->loop = *loop;
    workers_.push_back(std::move(worker));
  }
  started_ = true;
  return absl::OkStatus();
}

void EventLoopThreadPool::stop() {
  for (auto& w : workers_) w->thread.stop();
  workers_.clear();
  started_ = false;
}

// Both choosers skip a loop that gave up on its engine (EventLoop::failed()), unless every loop has.
EventLoop* EventLoopThreadPool::getNextLoop() {
  base_loop_->assertInLoopThread();
  if (workers_.empty()) return base_loop_;
  for (size_t k = 0; k < workers_.size(); ++k) {
    EventLoop* loop = workers_[next_]->loop;
    next_ = (next_ + 1) % workers_.size();
    if (!loop->failed()) return loop;
  }
  return workers_[next_]->loop;
}

EventLoop* EventLoopThreadPool::getLeastLoadedLoop() {
  base_loop_->assertInLoopThread();
  if (workers_.empty()) return base_loop_;
  // Start the scan where round-robin would, so ties rotate.
  size_t best = next_;
  int best_load = std::numeric_limits<int>::max();
  for (size_t k = 0; k < workers_.size(); ++k) {
    size_t i = (next_ + k) % workers_.size();
    if (workers_[i]->loop->failed()) continue;
    int l = workers_[i]->load.load(std::memory_order_relaxed);
    if (l < best_load) {
      best_load = l;
      best = i;
    }
  }
  next_ = (best + 1) % workers_.size();
  return workers_[best]->loop;
}

int EventLoopThreadPool::indexOf(EventLoop* loop) const {
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (workers_[i]->loop == loop) return static_cast<int>(i);
  }
  return -1;
}

void EventLoopThreadPool::addLoad(EventLoop* loop, int delta) {
  int i = indexOf(loop);
  if (i < 0) {
    base_load_.fetch_add(delta, std::memory_order_relaxed);
  } else {
    workers_[static_cast<size_t>(i)]->load.fetch_add(delta, std::memory_order_relaxed);
  }
}

int EventLoopThreadPool::load(EventLoop* loop) const {
  int i = indexOf(loop);
  if (i < 0) return base_load_.load(std::memory_order_relaxed);
  return workers_[static_cast<size_t>(i)]->load.load(std::memory_order_relaxed);
}

std::vector<EventLoop*> EventLoopThreadPool::loops() const {
  std::vector<EventLoop*> out;
  if (workers_.empty()) {
    out.push_back(base_loop_);
  } else {
    for (const auto& w : workers_) out.push_back(w->loop);
  }
  return out;
}

}  // namespace plexus
