#pragma once
// ReadyBatch: the fds that one poll(2) or select(2) found ready, handed to the dispatch callback
// one at a time. A remove() during the batch calls forget(), so the removed fd's later entries are
// skipped, even if a new registration reuses its number meanwhile. Loop thread only.

#include <cstdint>
#include <vector>

#include "plexus/engine.h"

namespace plexus::detail {

class ReadyBatch {
 public:
  void clear() { ready_.clear(); }
  void push(int fd, uint32_t events, void* ctx) { ready_.push_back(Ready{fd, events, ctx}); }
  int size() const { return static_cast<int>(ready_.size()); }

  // Calls `fn` for each entry not forgotten, in order, then empties the batch.
  void dispatch(Engine::ReadyFn fn, void* arg) {
    for (next_ = 0; next_ < ready_.size();) {
      const Ready r = ready_[next_++];
      if (r.fd >= 0) fn(r.ctx, r.fd, r.events, arg);
    }
    ready_.clear();
    next_ = 0;
  }

  // Drops the entries of `fd` that dispatch() has not reached yet.
  void forget(int fd) {
    for (size_t i = next_; i < ready_.size(); ++i) {
      if (ready_[i].fd == fd) ready_[i].fd = -1;
    }
  }

 private:
  struct Ready {
    int fd;
    uint32_t events;
    void* ctx;
  };
  std::vector<Ready> ready_;
  size_t next_ = 0;  // the entry dispatch() hands out next
};

}  // namespace plexus::detail
