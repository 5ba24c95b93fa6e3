#pragma once
// EventLoop: one per thread (enforced), running an Engine and dispatching ready fds to Channels.
//
// Thread safety:
//   any thread: quit(), runInLoop(), queueInLoop(), runAfter(), runEvery(), cancel(),
//               isInLoopThread(), engineDescription(), iterations().
//   loop thread only: run() (the thread that constructed the loop), updateChannel(),
//               removeChannel(), engine().
// Functors queued from other threads are swapped out under the lock and run outside it, once per
// iteration, after the ready fds were handled.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "plexus/buffer.h"
#include "plexus/channel.h"
#include "plexus/engine.h"
#include "plexus/loop_stats.h"

namespace plexus {

namespace detail {
class TimerQueue;
class Wakeup;
}  // namespace detail

using Clock = std::chrono::steady_clock;
using Duration = std::chrono::nanoseconds;

// Identifies a timer for cancel(). Default-constructed ids refer to no timer.
struct TimerId {
  uint64_t seq = 0;
  bool valid() const { return seq != 0; }
};

class EventLoop {
 public:
  using Functor = std::function<void()>;

  // Creates a loop on the calling thread with the default engine (epoll, oneshot). Dies (fatal log)
  // if this thread already has a loop or the engine cannot be made.
  EventLoop();
  // Creates a loop on the calling thread with the given engine.
  explicit EventLoop(std::unique_ptr<Engine> engine);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs until quit(). Loop thread only. A loop can run again after it returned; a quit() that
  // came before run() started is forgotten.
  //
  // A wait that fails (anything but EINTR) is retried after a pause that doubles from 1 ms; after
  // kMaxWaitFailures failures in a row the loop gives up on its engine: it logs the error, calls
  // the failure callback and from then on runs only queued functors (no I/O, no timers) until
  // quit(). run() then returns that error; OkStatus() otherwise.
  absl::Status run();
  static constexpr int kMaxWaitFailures = 10;
  // Called once, on the loop thread, when the loop gives up on its engine (see run()). Set it
  // before run(), or on the loop thread.
  void setFailureCallback(std::function<void(const absl::Status&)> cb) {
    failure_callback_ = std::move(cb);
  }
  // True once the loop has given up on its engine. Any thread.
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  // Makes run() return after the current iteration. Any thread; the loop may be destroyed once
  // run() returned, even while another thread's quit() is finishing (the destructor waits for it).
  void quit();

  // Runs `cb` now when called on the loop thread, else queues it. Any thread.
  void runInLoop(Functor cb);
  // Queues `cb` to run on the loop thread after the current iteration's events. Any thread.
  void queueInLoop(Functor cb);

  // Timers, driven by a timerfd. Any thread. Callbacks run on the loop thread.
  TimerId runAfter(Duration delay, Functor cb);
  TimerId runEvery(Duration interval, Functor cb);
  // Cancels a timer; a repeating timer may cancel itself from its own callback. Any thread. Unknown
  // or already fired ids are ignored.
  void cancel(TimerId id);

  bool isInLoopThread() const { return thread_id_ == std::this_thread::get_id(); }
  // Dies with a message naming both threads when called off the loop thread.
  void assertInLoopThread() const {
    if (!isInLoopThread()) abortNotInLoopThread();
  }

  // The loop of the calling thread, or nullptr.
  static EventLoop* current();

  // Loop thread only: used by Channel.
  absl::Status updateChannel(Channel* channel, uint32_t interest);
  void removeChannel(Channel* channel);
  void removeChannelBeforeClose(Channel* channel);  // see Engine::removeBeforeClose()

  Engine& engine() { return *engine_; }
  // The engine's name, e.g. "epoll (oneshot)". Any thread.
  std::string engineDescription() const { return std::string(engine_->name()); }
  bool edgeTriggered() const { return edge_triggered_; }
  // The engine receives and sends for connections (Engine::completesIo()). Any thread.
  bool completesIo() const { return completes_io_; }
  // A buffer the loop's connections read into while they hold no partial input of their own, so
  // an idle connection keeps no input buffer. Loop thread only; empty between events.
  Buffer& readBuffer() { return read_buffer_; }
  // Number of completed loop iterations (for tests and stats). Any thread.
  uint64_t iterations() const { return iterations_.load(std::memory_order_relaxed); }

  // What this loop asked of the kernel so far. Any thread.
  LoopStats stats() const;
  // Counters the loop's channels add to. Loop thread only; reading them (get()) is fine from any
  // thread.
  struct Counters {
    SingleWriterCounter events, wait_calls, read_calls, write_calls, accept_calls, other_calls;
    SingleWriterCounter wait_failures, interest_failures;
    // Bytes the loop's connections read and wrote (read_calls, write_calls and these are folded in
    // once per iteration, see noteReadCall()); time spent handling ready fds and queued
    // functors (only while handler timing is on, see setHandlerTiming()).
    SingleWriterCounter bytes_received, bytes_sent, handler_ns;
  };
  Counters& counters() { return counters_; }
  const Counters& counters() const { return counters_; }
  // Times each iteration that had ready fds, from the first ready fd to the end of the queued
  // functors, into counters().handler_ns: two clock reads per wakeup, so off unless metrics ask
  // for it. Any thread; takes effect at the next iteration.
  void setHandlerTiming(bool on) {
    if (on) {
      control_.fetch_or(kTimingBit, std::memory_order_relaxed);
    } else {
      control_.fetch_and(static_cast<uint8_t>(~kTimingBit), std::memory_order_relaxed);
    }
  }

  // What a connection of this loop did on its socket: a read or write call, bytes read or written.
  // Plain adds here, folded into counters() (read_calls, write_calls, bytes_received, bytes_sent)
  // after the ready fds of each iteration, after its queued functors, when run() returns, and by
  // flushIoCounts(): the per-message path pays one add each instead of an atomic's load and store.
  // Loop thread only.
  void noteReadCall() { ++tally_.reads; }
  void noteWriteCall() { ++tally_.writes; }
  void addBytesReceived(uint64_t n) { tally_.bytes_received += n; }
  void addBytesSent(uint64_t n) { tally_.bytes_sent += n; }
  // Folds the tallies above into counters() now (a connection does before it reports its close,
  // so a scrape that sees the close sees its bytes). Loop thread only.
  void flushIoCounts() {
    // Bytes come with a call: the calls alone tell whether there is anything to fold.
    if ((tally_.reads | tally_.writes) != 0) foldIoCounts();
  }

 private:
  void abortNotInLoopThread() const;
  void wakeup();
  void runPendingFunctors();
  // One iteration with handler timing on or after the engine failed (see run()).
  void slowIteration(uint8_t control, int* failures, absl::Status* gave_up);
  void waitAndDispatch(Engine::ReadyFn fn, int* failures, absl::Status* gave_up);
  void waitFailed(const absl::Status& why, int* failures, absl::Status* gave_up);
  void foldIoCounts();
  static void handleReady(void* ctx, int fd, uint32_t events, void* loop);
  // handleReady() that first notes when the iteration's first ready fd came (handler timing).
  static void handleReadyTimed(void* ctx, int fd, uint32_t events, void* loop);
  // After the engine failed for good: waits for queued functors or quit(), without the engine.
  void awaitFunctors();
  bool hasPendingOrQuit() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return !pending_.empty() || (control_.load(std::memory_order_relaxed) & kQuitBit) != 0;
  }

  const std::thread::id thread_id_;
  std::unique_ptr<Engine> engine_;
  const bool edge_triggered_;
  const bool completes_io_;
  Buffer read_buffer_;  // by value: one load fewer on each read
  // What run() checks once per iteration: zero in the common case (no quit, no handler timing,
  // the engine working), so the common iteration tests one word.
  static constexpr uint8_t kQuitBit = 1, kTimingBit = 2, kGaveUpBit = 4;
  std::atomic<uint8_t> control_{0};
  std::atomic<uint64_t> iterations_{0};
  Counters counters_;
  struct IoTally {  // see noteReadCall()
    uint64_t reads = 0, writes = 0, bytes_received = 0, bytes_sent = 0;
  };
  IoTally tally_;
  Clock::time_point batch_start_{};  // handler timing: the first ready fd of this iteration
  bool handling_events_ = false;
  std::unique_ptr<detail::Wakeup> wakeup_;
  std::unique_ptr<detail::TimerQueue> timers_;
  std::function<void(const absl::Status&)> failure_callback_;
  std::atomic<bool> failed_{false};

  absl::Mutex mutex_;
  std::vector<Functor> pending_ ABSL_GUARDED_BY(mutex_);
  // Set while the loop thread runs the swapped-out functors: a functor queued then must wake the
  // loop again, or it would wait for the next event.
  std::atomic<bool> calling_pending_{false};
  std::atomic<bool> has_pending_{false};  // pending_ is not empty
};

}  // namespace plexus
