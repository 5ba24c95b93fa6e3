#pragma once
// Counters of what a loop asks of the kernel, kept by the loop itself, for "syscalls per message"
// figures. Each counter has one writer (its loop thread) and may be read from any thread.

#include <atomic>
#include <cstdint>
#include <string>

namespace plexus {

// A counter with a single writing thread: a plain load and store (no locked instruction) on the
// hot path, still race-free to read from other threads.
class SingleWriterCounter {
 public:
  void add(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// A snapshot of one loop's counters, or a sum over loops.
struct LoopStats {
  uint64_t iterations = 0;
  uint64_t events = 0;        // ready fds handled
  uint64_t wait_calls = 0;    // epoll_wait / poll / select
  uint64_t read_calls = 0;    // read/readv on connections
  uint64_t write_calls = 0;   // write/send on connections
  uint64_t ctl_calls = 0;     // epoll_ctl (poll and select change interest without a syscall)
  uint64_t accept_calls = 0;  // accept4, EAGAIN included
  uint64_t other_calls = 0;   // eventfd (wake-up) and timerfd reads
  uint64_t wait_failures = 0;      // waits that failed (other than EINTR)
  uint64_t interest_failures = 0;  // connections closed because their interest could not change

  uint64_t syscalls() const {
    return wait_calls + read_calls + write_calls + ctl_calls + accept_calls + other_calls;
  }
  LoopStats& operator+=(const LoopStats& o);
  // {"iterations":...,"events":...,...,"syscalls":...,"wait_failures":...,"interest_failures":...}
  std::string toJson() const;
};

}  // namespace plexus
