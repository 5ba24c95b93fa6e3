#include "client/bench_worker.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/synchronization/notification.h"
#include "client/bench_timer.h"
#include "plexus/buffer.h"
#include "plexus/tcp_client.h"

namespace plexus::client {

using namespace std::chrono_literals;

namespace {

// Open loop: the send timer is armed for the next scheduled message, but wakes at most this often;
// what is due by then goes out together. Latency counts from the scheduled time either way.
constexpr Duration kMinSendGap = 20us;
constexpr Duration kRampTick = 1ms;

}  // namespace

std::string makeBenchPattern(size_t size) {
  std::string pattern(size + kPatternWindow, '\0');
  uint64_t x = 0x9E3779B97F4A7C15ull;  // xorshift64: the same bytes on every run and thread
  for (char& ch : pattern) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    ch = static_cast<char>(x >> 56);
  }
  return pattern;
}

struct BenchWorker::Conn {
  enum class State : uint8_t { kIdle, kConnecting, kUp, kClosed, kFailed };

  int index = 0;            // global, 0 .. connections-1
  size_t pattern_base = 0;  // where this connection's payloads start in the pattern
  double phase = 0;         // open loop: offset of its timetable, in intervals (index / total)
  std::unique_ptr<TcpClient> client;
  TcpConnectionPtr conn;
  State state = State::kIdle;
  bool running = false;  // traffic started and not yet done
  bool bad = false;      // the message being received differs from what was sent
  uint64_t sent = 0;     // messages sent; the next one's seq
  uint64_t received = 0; // messages completely echoed
  size_t recv_off = 0;   // bytes of message `received` echoed so far
  Clock::time_point send_time;  // closed loop: when the outstanding message left
  uint64_t measured = 0;        // measured round trips
  uint64_t first_measured = 0;  // open loop: first seq scheduled after the warm-up
  uint64_t limit = 0;           // open loop: seqs [0, limit) are scheduled
};

BenchWorker::BenchWorker(int index, const BenchPlan* plan, BenchShared* shared,
                         std::vector<int> connections)
    : plan_(plan),
      opts_(plan->options),
      shared_(shared),
      size_(plan->options.size),
      verify_(plan->options.verify),
      open_loop_(plan->options.openLoop()),
      thread_(plan->options.engine, nullptr, "bench-" + std::to_string(index)),
      conns_(connections.size()) {
  for (size_t i = 0; i < connections.size(); ++i) {
    conns_[i].index = connections[i];
    conns_[i].pattern_base = static_cast<size_t>(connections[i]) * 97;
  }
}

BenchWorker::~BenchWorker() {
  if (loop_ != nullptr) {
    WorkerStats ignored;
    finish(&ignored);
  }
}

absl::Status BenchWorker::start() {
  absl::StatusOr<EventLoop*> loop = thread_.start();
  if (!loop.ok()) return loop.status();
  loop_ = *loop;
  if (!open_loop_) return absl::OkStatus();
  absl::Status status;
  absl::Notification done;
  loop_->runInLoop([this, &status, &done] {
    auto timer = BenchTimer::create(loop_, [this] { sendDue(); });
    if (timer.ok()) {
      send_timer_ = *std::move(timer);
    } else {
      status = timer.status();
    }
    done.Notify();
  });
  done.WaitForNotification();
  return status;
}

std::string BenchWorker::engineDescription() const {
  return loop_ != nullptr ? loop_->engineDescription() : opts_.engine.name;
}

void BenchWorker::connectAll() {
  loop_->runInLoop([this] { connectAllInLoop(); });
}

void BenchWorker::go(Clock::time_point t0) {
  loop_->runInLoop([this, t0] { goInLoop(t0); });
}

void BenchWorker::finish(WorkerStats* out) {
  if (loop_ == nullptr) return;
  absl::Notification done;
  loop_->runInLoop([this, out, &done] {
    finishInLoop(out);
    done.Notify();
  });
  done.WaitForNotification();
  thread_.stop();
  loop_ = nullptr;
}

const char* BenchWorker::payload(const Conn& c, uint64_t seq) const {
  return plan_->pattern.data() + ((c.pattern_base + seq * 31) & (kPatternWindow - 1));
}

Clock::time_point BenchWorker::scheduled(const Conn& c, uint64_t seq) const {
  return t0_ + Duration(std::llround((c.phase + static_cast<double>(seq)) * interval_ns_));
}

uint64_t BenchWorker::firstScheduledAtOrAfter(const Conn& c, Duration offset) const {
  const double estimate =
      std::ceil(static_cast<double>(offset.count()) / interval_ns_ - c.phase);
  uint64_t k = estimate > 0 ? static_cast<uint64_t>(estimate) : 0;
  // The estimate may be off by one from rounding; settle it against scheduled() itself.
  while (k > 0 && scheduled(c, k - 1) - t0_ >= offset) --k;
  while (scheduled(c, k) - t0_ < offset) ++k;
  return k;
}

// Callbacks below capture `this` and a Conn pointer: both outlive every client, which finish()
// destroys on this loop before the worker goes away, and conns_ is never resized.
void BenchWorker::connectAllInLoop() {
  TcpClientOptions client_options;
  client_options.connect_timeout = opts_.connect_timeout;
  client_options.retry = false;
  // No read pause on a large output buffer: an open-loop client must keep reading replies even
  // when the server is slow to take requests, or both sides would wait for each other.
  client_options.connection.high_water_mark = 0;
  client_options.connection.tcp_no_delay = true;
  for (Conn& c : conns_) {
    Conn* cp = &c;
    c.client = std::make_unique<TcpClient>(loop_, plan_->server, client_options);
    c.client->setConnectionCallback([this, cp](const TcpConnectionPtr& conn) {
      if (conn->connected()) {
        onConnected(*cp, conn);
      } else {
        onDisconnected(*cp);
      }
    });
    c.client->setMessageCallback(
        [this, cp](const TcpConnectionPtr&, Buffer* buf) { onMessage(*cp, buf); });
    c.client->setConnectErrorCallback(
        [this, cp](const absl::Status& status) { onConnectError(*cp, status); });
  }
  connect_start_ = Clock::now();
  if (opts_.ramp_up > 0 && conns_.size() > 1) {
    ramp_timer_ = loop_->runEvery(kRampTick, [this] { pumpConnects(); });
  }
  pumpConnects();
}

void BenchWorker::pumpConnects() {
  // A connect may fail at once and call back in here; the outer call's loop goes on instead.
  if (pumping_ || stopping_) return;
  pumping_ = true;
  size_t allowed = conns_.size();
  if (opts_.ramp_up > 0) {
    // This worker's share of the rate; the first connect goes at once.
    const double rate = opts_.ramp_up * static_cast<double>(conns_.size()) /
                        static_cast<double>(plan_->total_connections);
    const double elapsed = std::chrono::duration<double>(Clock::now() - connect_start_).count();
    allowed = std::min(allowed, static_cast<size_t>(elapsed * rate) + 1);
  }
  while (next_connect_ < allowed && connects_in_flight_ < kMaxConnectsInFlight) {
    Conn& c = conns_[next_connect_++];
    c.state = Conn::State::kConnecting;
    ++connects_in_flight_;
    c.client->connect();
  }
  if (next_connect_ == conns_.size() && ramp_timer_.valid()) {
    loop_->cancel(ramp_timer_);
    ramp_timer_ = TimerId{};
  }
  pumping_ = false;
}

void BenchWorker::onConnected(Conn& c, const TcpConnectionPtr& conn) {
  if (c.state != Conn::State::kConnecting) return;
  --connects_in_flight_;
  c.state = Conn::State::kUp;
  c.conn = conn;
  ++stats_.connected;
  progress_.up.store(++up_, std::memory_order_relaxed);
  shared_->settleOne();
  pumpConnects();
}

void BenchWorker::onConnectError(Conn& c, const absl::Status& status) {
  if (c.state != Conn::State::kConnecting) return;
  --connects_in_flight_;
  c.state = Conn::State::kFailed;
  ++stats_.connect_errors;
  if (stats_.first_connect_error.empty()) stats_.first_connect_error = std::string(status.message());
  shared_->settleOne();
  pumpConnects();
}

void BenchWorker::onDisconnected(Conn& c) {
  if (c.state != Conn::State::kUp) return;
  c.state = Conn::State::kClosed;
  c.conn.reset();
  progress_.up.store(--up_, std::memory_order_relaxed);
  if (stopping_) return;
  ++stats_.disconnects;
  if (c.running) {
    stats_.unanswered += unansweredOf(c);
    markDone(c);
  }
}

void BenchWorker::goInLoop(Clock::time_point t0) {
  started_ = true;
  t0_ = t0;
  measure_start_ = t0 + std::chrono::duration_cast<Duration>(
                            std::chrono::duration<double>(opts_.warmup_s));
  measure_end_ = measure_start_ + std::chrono::duration_cast<Duration>(
                                      std::chrono::duration<double>(opts_.duration_s));
  if (open_loop_) interval_ns_ = 1e9 * plan_->total_connections / opts_.rate;

  int64_t running = 0;
  for (Conn& c : conns_) {
    if (c.state != Conn::State::kUp || stopping_) continue;
    c.running = true;
    ++running;
    if (open_loop_) {
      // Connection i of C starts i/C of an interval after t0: the whole client sends evenly.
      c.phase = static_cast<double>(c.index) / plan_->total_connections;
      c.first_measured = firstScheduledAtOrAfter(c, measure_start_ - t0_);
      c.limit = opts_.count > 0 ? c.first_measured + opts_.count
                                : firstScheduledAtOrAfter(c, measure_end_ - t0_);
    }
  }
  running_ = running;
  shared_->addRunning(running);
  if (open_loop_) {
    for (const Conn& c : conns_) {
      if (c.running) send_end_ = std::max(send_end_, c.limit);
    }
    sendDue();
  } else {
    for (Conn& c : conns_) {
      if (!c.running) continue;
      c.send_time = Clock::now();
      sendNext(c);
    }
  }
  shared_->doneOne();  // this worker's token
}

void BenchWorker::sendNext(Conn& c) {
  const uint64_t seq = c.sent++;
  // On the loop thread: written straight to the socket, copied only if it does not take it all.
  c.conn->send(std::string_view(payload(c, seq), size_));
}

void BenchWorker::sendDue() {
  if (stopping_) return;
  const Clock::time_point now = Clock::now();
  // The connections' timetables interleave in a fixed order (conns_ is sorted by phase), so one
  // cursor (period k, connection j) walks all of them: each message costs O(1), and the next due
  // time is the cursor's. Everything due goes now, whether or not earlier replies are outstanding.
  while (cursor_k_ < send_end_ && running_ > 0) {
    Conn& c = conns_[cursor_j_];
    if (c.running && cursor_k_ < c.limit) {
      const Clock::time_point due = scheduled(c, cursor_k_);
      if (due > now) {
        send_timer_->armAt(std::max(due, now + kMinSendGap));
        return;
      }
      sendNext(c);  // c.sent == cursor_k_; may close the connection
      if (c.running && c.sent >= c.limit && c.received == c.sent) markDone(c);
    }
    if (++cursor_j_ == conns_.size()) {
      cursor_j_ = 0;
      ++cursor_k_;
    }
  }
}

void BenchWorker::onMessage(Conn& c, Buffer* buf) {
  const Clock::time_point now = Clock::now();
  const char* p = buf->peek();
  size_t n = buf->readableBytes();
  stats_.bytes_received += n;
  // Echo keeps the order, so the bytes are the outstanding messages back to back.
  while (n > 0) {
    if (c.received == c.sent) {
      ++stats_.mismatches;  // bytes we never sent
      break;
    }
    const size_t take = std::min(n, size_ - c.recv_off);
    if (verify_ && std::memcmp(p, payload(c, c.received) + c.recv_off, take) != 0) c.bad = true;
    p += take;
    n -= take;
    c.recv_off += take;
    if (c.recv_off == size_) {
      c.recv_off = 0;
      completeMessage(c, now);
    }
  }
  buf->retrieveAll();
  progress_.completed.store(completed_, std::memory_order_relaxed);
  if (!c.running || c.received != c.sent) return;
  if (open_loop_) {
    if (c.sent >= c.limit) markDone(c);
    return;
  }
  const bool more = opts_.count > 0 ? c.measured < opts_.count : now < measure_end_;
  if (more && !stopping_) {
    c.send_time = now;
    sendNext(c);
  } else {
    markDone(c);
  }
}

void BenchWorker::completeMessage(Conn& c, Clock::time_point now) {
  const uint64_t seq = c.received++;
  ++completed_;
  if (c.bad) {
    c.bad = false;
    ++stats_.mismatches;
  }
  if (stopping_) return;
  Clock::time_point sent_at;
  if (open_loop_) {
    if (seq < c.first_measured || seq >= c.limit) return;
    sent_at = scheduled(c, seq);  // the intended time, not when the timer got to it
  } else {
    sent_at = c.send_time;
    if (sent_at < measure_start_) return;
    if (opts_.count > 0 ? c.measured >= opts_.count : sent_at >= measure_end_) return;
  }
  stats_.latency.record((now - sent_at).count());
  ++stats_.messages;
  ++c.measured;
  stats_.last_completion = now;
}

void BenchWorker::markDone(Conn& c) {
  if (!c.running) return;
  c.running = false;
  --running_;
  shared_->doneOne();
}

uint64_t BenchWorker::unansweredOf(const Conn& c) const {
  if (!started_) return 0;
  if (open_loop_) {
    const uint64_t lo = std::max(c.received, c.first_measured);
    const uint64_t hi = std::min(c.sent, c.limit);
    return hi > lo ? hi - lo : 0;
  }
  if (c.sent == c.received || c.send_time < measure_start_) return 0;
  return (opts_.count > 0 || c.send_time < measure_end_) ? 1 : 0;
}

// A measured message still unanswered at the end is the tail itself (an overloaded server's
// slowest replies are the ones that never came back in time): it enters the latency figures with
// the time it has waited so far, a lower bound of its latency, instead of vanishing from them.
// It is not a round trip: `messages` and the throughput leave it out.
void BenchWorker::recordUnanswered(const Conn& c, Clock::time_point now) {
  if (!started_) return;
  if (open_loop_) {
    const uint64_t hi = std::min(c.sent, c.limit);
    for (uint64_t seq = std::max(c.received, c.first_measured); seq < hi; ++seq) {
      stats_.latency.record((now - scheduled(c, seq)).count());
    }
  } else if (unansweredOf(c) > 0) {
    stats_.latency.record((now - c.send_time).count());
  }
}

void BenchWorker::finishInLoop(WorkerStats* out) {
  const Clock::time_point now = Clock::now();
  stopping_ = true;
  loop_->cancel(ramp_timer_);
  send_timer_.reset();
  for (Conn& c : conns_) {
    // A connect still in flight now never made it in time.
    if (c.state == Conn::State::kConnecting) {
      ++stats_.connect_errors;
      if (stats_.first_connect_error.empty()) stats_.first_connect_error = "connect did not finish";
    }
    stats_.sent += c.sent;
    if (!c.running) continue;
    stats_.unanswered += unansweredOf(c);
    recordUnanswered(c, now);
    c.running = false;
  }
  stats_.completed = completed_;
  *out = stats_;
  closeAll();
}

void BenchWorker::closeAll() {
  // Each client closes its connection; our connection callback sees stopping_ and counts nothing.
  for (Conn& c : conns_) {
    c.client.reset();
    c.conn.reset();
  }
}

}  // namespace plexus::client
