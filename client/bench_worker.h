#pragma once
// BenchWorker: one client loop thread of `plexus-client bench` and the connections it owns.
//
// Each worker runs its own EventLoopThread; its connections, counters and histogram are touched on
// that thread only, so the hot path takes no lock. The controlling thread talks to it through
// runInLoop (connectAll, go, finish) and reads two relaxed atomics for the progress line.
//
// Per connection, the payload of message `seq` is kPatternWindow-periodic pattern bytes starting
// at an offset that depends on the connection and seq: every connection sends its own
// deterministic byte sequence, from one shared read-only buffer, with no per-message copy.
//
// Thread safety: start(), finish() and the destructor on the controlling thread; connectAll(), go(),
// completed(), up() from any thread.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "client/bench_histogram.h"
#include "client/bench_options.h"
#include "plexus/event_loop.h"
#include "plexus/event_loop_thread.h"
#include "plexus/inet_address.h"
#include "plexus/tcp_connection.h"

namespace plexus {
class TcpClient;
}

namespace plexus::client {

class BenchTimer;

inline constexpr size_t kPatternWindow = 4096;  // a power of two

// The shared payload source: `size + kPatternWindow` deterministic pseudo-random bytes.
std::string makeBenchPattern(size_t size);

// What every worker of one run shares. Written once per connection (never per message).
class BenchShared {
 public:
  explicit BenchShared(int connections) : connections_(connections) {}

  // Once per connection: it connected or failed.
  void settleOne() {
    if (settled_.fetch_add(1, std::memory_order_acq_rel) + 1 == connections_) all_settled_.Notify();
  }
  int settled() const { return settled_.load(std::memory_order_acquire); }
  absl::Notification& allSettled() { return all_settled_; }

  // Counts what still runs traffic: each worker holds one token until it has started its
  // connections, so the count cannot reach zero before every worker has added its own.
  void setTokens(int64_t n) { running_.store(n, std::memory_order_release); }
  void addRunning(int64_t n) { running_.fetch_add(n, std::memory_order_acq_rel); }
  void doneOne() {
    if (running_.fetch_sub(1, std::memory_order_acq_rel) == 1) all_done_.Notify();
  }
  absl::Notification& allDone() { return all_done_; }

 private:
  const int connections_;
  std::atomic<int> settled_{0};
  absl::Notification all_settled_;
  std::atomic<int64_t> running_{0};
  absl::Notification all_done_;
};

// Fixed for one run.
struct BenchPlan {
  BenchOptions options;
  InetAddress server;
  int total_connections = 0;
  std::string_view pattern;  // makeBenchPattern(options.size), outlives the workers
};

// One worker's figures, merged by the caller.
struct WorkerStats {
  LatencyHistogram latency;
  uint64_t messages = 0;      // measured round trips
  uint64_t mismatches = 0;    // echoed messages that differ from what was sent (all phases)
  uint64_t disconnects = 0;   // connections closed by the peer or an error during the run
  uint64_t connect_errors = 0;
  uint64_t connected = 0;     // connections that were established
  // Measured messages whose reply had not come back at the end; each is in `latency` too, with
  // the time it had waited by then.
  uint64_t unanswered = 0;
  uint64_t sent = 0;          // messages sent (all phases)
  uint64_t completed = 0;     // round trips completed (all phases)
  uint64_t bytes_received = 0;  // (all phases)
  Clock::time_point last_completion{};  // of a measured message
  std::string first_connect_error;
};

class BenchWorker {
 public:
  // `connections` lists the global indices of the connections this worker owns.
  BenchWorker(int index, const BenchPlan* plan, BenchShared* shared, std::vector<int> connections);
  ~BenchWorker();
  BenchWorker(const BenchWorker&) = delete;
  BenchWorker& operator=(const BenchWorker&) = delete;

  // Starts the loop thread (fails if the engine or the open-loop timer cannot be made).
  absl::Status start();
  std::string engineDescription() const;
  // Starts connecting, at most kMaxConnectsInFlight at a time (and at --ramp-up's pace).
  void connectAll();
  // Starts traffic on every established connection; t0 is the common start of the timetable.
  void go(Clock::time_point t0);
  // Stops traffic, copies the figures out, closes the connections and stops the thread. Waits.
  void finish(WorkerStats* out);

  // For the progress line: round trips completed so far (any phase) and connections up.
  uint64_t completed() const { return progress_.completed.load(std::memory_order_relaxed); }
  int up() const { return progress_.up.load(std::memory_order_relaxed); }

  static constexpr int kMaxConnectsInFlight = 64;

 private:
  struct Conn;

  // All below: loop thread only.
  void connectAllInLoop();
  void pumpConnects();
  void onConnected(Conn& c, const TcpConnectionPtr& conn);
  void onDisconnected(Conn& c);
  void onConnectError(Conn& c, const absl::Status& status);
  void goInLoop(Clock::time_point t0);
  void onMessage(Conn& c, Buffer* buf);
  void completeMessage(Conn& c, Clock::time_point now);
  void sendNext(Conn& c);
  void sendDue();
  void markDone(Conn& c);
  uint64_t unansweredOf(const Conn& c) const;
  void recordUnanswered(const Conn& c, Clock::time_point now);
  void finishInLoop(WorkerStats* out);
  void closeAll();

  const char* payload(const Conn& c, uint64_t seq) const;
  Clock::time_point scheduled(const Conn& c, uint64_t seq) const;
  uint64_t firstScheduledAtOrAfter(const Conn& c, Duration offset) const;

  const BenchPlan* const plan_;
  const BenchOptions& opts_;
  BenchShared* const shared_;
  const size_t size_;
  const bool verify_;
  const bool open_loop_;
  EventLoopThread thread_;
  EventLoop* loop_ = nullptr;
  std::vector<Conn> conns_;  // sized once: callbacks hold pointers to its elements

  // Loop thread state.
  size_t next_connect_ = 0;
  int connects_in_flight_ = 0;
  bool pumping_ = false;
  int up_ = 0;
  Clock::time_point connect_start_;
  TimerId ramp_timer_;
  std::unique_ptr<BenchTimer> send_timer_;  // open loop: armed for the next scheduled message
  bool started_ = false;   // go() ran
  bool stopping_ = false;  // finish() ran: callbacks no longer count anything
  int64_t running_ = 0;    // connections running traffic
  // Open loop: the next message to send is seq cursor_k_ of conns_[cursor_j_]; seqs below
  // send_end_ (the largest limit) remain.
  uint64_t cursor_k_ = 0;
  size_t cursor_j_ = 0;
  uint64_t send_end_ = 0;
  Clock::time_point t0_;
  Clock::time_point measure_start_;
  Clock::time_point measure_end_;  // duration mode
  double interval_ns_ = 0;         // open loop: per-connection message interval
  WorkerStats stats_;
  uint64_t completed_ = 0;

  struct alignas(64) Progress {
    std::atomic<uint64_t> completed{0};
    std::atomic<int> up{0};
  };
  Progress progress_;
};

}  // namespace plexus::client
