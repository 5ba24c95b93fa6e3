#include "plexus/event_loop.h"

#include <sstream>

#include "absl/strings/str_format.h"

#include "current_loop.h"
#include "plexus/buffer.h"
#include "plexus/log.h"
#include "timer_queue.h"
#include "wakeup.h"

namespace plexus {

namespace detail {
constinit thread_local EventLoop* t_current_loop = nullptr;
}  // namespace detail

namespace {

std::atomic<uint64_t> g_timer_seq{0};
constexpr int kMaxWaitMs = 10000;

std::unique_ptr<Engine> defaultEngine() {
  auto engine = makeEngine(EngineOptions{});
  if (!engine.ok()) LOG_FATAL("cannot create the default engine: %s", engine.status().message());
  return *std::move(engine);
}

std::string threadIdString(std::thread::id id) {
  std::ostringstream os;
  os << id;
  return os.str();
}

}  // namespace

EventLoop::EventLoop() : EventLoop(defaultEngine()) {}

EventLoop::EventLoop(std::unique_ptr<Engine> engine)
    : thread_id_(std::this_thread::get_id()),
      engine_(std::move(engine)),
      edge_triggered_(engine_->edgeTriggered()),
      completes_io_(engine_->completesIo()) {
  if (detail::t_current_loop != nullptr) {
    LOG_FATAL("another EventLoop already runs in thread %s: one loop per thread",
              threadIdString(thread_id_));
  }
  detail::t_current_loop = this;
  // Sized once for the loop's life: reads into it are a single read(2) (see Buffer::readFd).
  read_buffer_.ensureWritable(Buffer::kReadChunk);
  wakeup_ = std::make_unique<detail::Wakeup>(this);
  timers_ = std::make_unique<detail::TimerQueue>(this);
}

EventLoop::~EventLoop() {
  // Wait for a quit() from another thread that may still be inside wakeup().
  { absl::MutexLock lock(&mutex_); }
  // Timers and the wakeup fd leave the engine before the engine goes.
  timers_.reset();
  wakeup_.reset();
  if (detail::t_current_loop == this) detail::t_current_loop = nullptr;
}

EventLoop* EventLoop::current() { return detail::t_current_loop; }

void EventLoop::abortNotInLoopThread() const {
  LOG_FATAL("EventLoop %p belongs to thread %s but was used from thread %s",
            static_cast<const void*>(this), threadIdString(thread_id_),
            threadIdString(std::this_thread::get_id()));
}

// Inlined into run()'s common iteration.
__attribute__((always_inline)) inline void EventLoop::waitAndDispatch(Engine::ReadyFn fn,
                                                                      int* failures,
                                                                      absl::Status* gave_up) {
  handling_events_ = true;
  // The engine calls `fn` for each ready channel, re-arms oneshot fds, and skips the later events
  // of a channel removed during the batch (it may already be destroyed).
  absl::StatusOr<int> n = engine_->dispatch(kMaxWaitMs, fn, this);
  handling_events_ = false;
  counters_.wait_calls.add();
  if (__builtin_expect(n.ok(), 1)) {
    *failures = 0;
    counters_.events.add(static_cast<uint64_t>(*n));
    return;
  }
  waitFailed(n.status(), failures, gave_up);
}

void EventLoop::waitFailed(const absl::Status& why, int* failures, absl::Status* gave_up) {
  counters_.wait_failures.add();
  if (++*failures < kMaxWaitFailures) {
    // Not at once again: a wait that fails returns at once, and the loop would spin.
    const auto pause = std::chrono::milliseconds(1 << (*failures - 1));
    LOG_ERROR("%s wait failed: %s; retrying in %d ms", engineDescription(), why.message(),
              static_cast<int>(pause.count()));
    std::this_thread::sleep_for(pause);
    return;
  }
  *gave_up = absl::Status(why.code(), absl::StrFormat("%s wait failed %d times in a row: %s",
                                                      engineDescription(), *failures,
                                                      why.message()));
  LOG_ERROR("%s; this loop stops serving I/O", gave_up->message());
  failed_.store(true, std::memory_order_release);
  control_.fetch_or(kGaveUpBit, std::memory_order_relaxed);
  if (failure_callback_) failure_callback_(*gave_up);
}

absl::Status EventLoop::run() {
  assertInLoopThread();
  control_.fetch_and(static_cast<uint8_t>(~kQuitBit), std::memory_order_relaxed);
  int failures = 0;  // waits failed in a row
  absl::Status gave_up;
  for (;;) {
    const uint8_t control = control_.load(std::memory_order_acquire);
    if (__builtin_expect(control == 0, 1)) {
      // The common iteration: one word tested, the untimed handler passed as a constant.
      waitAndDispatch(&EventLoop::handleReady, &failures, &gave_up);
      flushIoCounts();  // a queued functor that reads the counters sees this batch's
      if (has_pending_.load(std::memory_order_acquire)) runPendingFunctors();
    } else {
      if (control & kQuitBit) break;
      slowIteration(control, &failures, &gave_up);
    }
    flushIoCounts();
    iterations_.store(iterations_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  flushIoCounts();
  return gave_up;
}

void EventLoop::slowIteration(uint8_t control, int* failures, absl::Status* gave_up) {
  const bool timing = (control & kTimingBit) != 0;
  if (control & kGaveUpBit) {
    awaitFunctors();
  } else {
    waitAndDispatch(timing ? &EventLoop::handleReadyTimed : &EventLoop::handleReady, failures,
                    gave_up);
    flushIoCounts();
  }
  runPendingFunctors();
  if (timing && batch_start_ != Clock::time_point{}) {
    counters_.handler_ns.add(static_cast<uint64_t>((Clock::now() - batch_start_).count()));
    batch_start_ = Clock::time_point{};
  }
}

// Received before sent: a scrape reads sent first, so it never shows an echo server sending more
// than it received.
void EventLoop::foldIoCounts() {
  counters_.read_calls.add(tally_.reads);
  counters_.write_calls.add(tally_.writes);
  counters_.bytes_received.add(tally_.bytes_received);
  counters_.bytes_sent.add(tally_.bytes_sent);
  tally_ = IoTally{};
}

void EventLoop::awaitFunctors() {
  // Wakeups go through the engine's eventfd, which nobody reads any more: wait on the lock that
  // queueInLoop() and quit() take instead (Await re-checks whenever another thread unlocks it).
  absl::MutexLock lock(&mutex_);
  mutex_.Await(absl::Condition(this, &EventLoop::hasPendingOrQuit));
}

void EventLoop::handleReady(void* ctx, int /*fd*/, uint32_t events, void* /*loop*/) {
  static_cast<Channel*>(ctx)->handleEvent(events);
}

void EventLoop::handleReadyTimed(void* ctx, int fd, uint32_t events, void* loop) {
  auto* self = static_cast<EventLoop*>(loop);
  if (self->batch_start_ == Clock::time_point{}) self->batch_start_ = Clock::now();
  handleReady(ctx, fd, events, loop);
}

void EventLoop::quit() {
  if (isInLoopThread()) {
    control_.fetch_or(kQuitBit, std::memory_order_release);
    return;
  }
  // Under the lock the destructor takes too: once run() has seen the quit bit and returned, the owner may
  // destroy the loop, and must not do so while this thread is still inside wakeup().
  absl::MutexLock lock(&mutex_);
  control_.fetch_or(kQuitBit, std::memory_order_release);
  wakeup();
}

void EventLoop::runInLoop(Functor cb) {
  if (isInLoopThread()) {
    cb();
  } else {
    queueInLoop(std::move(cb));
  }
}

void EventLoop::queueInLoop(Functor cb) {
  {
    absl::MutexLock lock(&mutex_);
    pending_.push_back(std::move(cb));
    has_pending_.store(true, std::memory_order_release);
  }
  // From the loop thread while it handles events, the functors run at the end of this iteration
  // anyway; otherwise the loop may be (or be about to be) blocked in wait.
  if (!isInLoopThread() || !handling_events_ || calling_pending_.load(std::memory_order_relaxed)) {
    wakeup();
  }
}

void EventLoop::wakeup() { wakeup_->wake(); }

void EventLoop::runPendingFunctors() {
  // Most iterations queue nothing: no lock then. A functor queued after this check wakes the loop.
  if (!has_pending_.load(std::memory_order_acquire)) return;
  std::vector<Functor> functors;
  calling_pending_.store(true, std::memory_order_relaxed);
  {
    absl::MutexLock lock(&mutex_);
    functors.swap(pending_);
    has_pending_.store(false, std::memory_order_relaxed);
  }
  for (Functor& f : functors) f();
  calling_pending_.store(false, std::memory_order_relaxed);
}

LoopStats EventLoop::stats() const {
  LoopStats s;
  s.iterations = iterations();
  s.events = counters_.events.get();
  s.wait_calls = counters_.wait_calls.get();
  s.read_calls = counters_.read_calls.get();
  s.write_calls = counters_.write_calls.get();
  s.ctl_calls = engine_->controlCalls();
  s.accept_calls = counters_.accept_calls.get();
  s.other_calls = counters_.other_calls.get();
  s.wait_failures = counters_.wait_failures.get();
  s.interest_failures = counters_.interest_failures.get();
  return s;
}

TimerId EventLoop::runAfter(Duration delay, Functor cb) {
  const uint64_t seq = g_timer_seq.fetch_add(1, std::memory_order_relaxed) + 1;
  const Clock::time_point when = Clock::now() + delay;
  runInLoop([this, seq, when, cb = std::move(cb)]() mutable {
    timers_->add(seq, when, Duration::zero(), std::move(cb));
  });
  return TimerId{seq};
}

TimerId EventLoop::runEvery(Duration interval, Functor cb) {
  if (interval <= Duration::zero()) interval = std::chrono::milliseconds(1);
  const uint64_t seq = g_timer_seq.fetch_add(1, std::memory_order_relaxed) + 1;
  const Clock::time_point when = Clock::now() + interval;
  runInLoop([this, seq, when, interval, cb = std::move(cb)]() mutable {
    timers_->add(seq, when, interval, std::move(cb));
  });
  return TimerId{seq};
}

void EventLoop::cancel(TimerId id) {
  if (!id.valid()) return;
  runInLoop([this, seq = id.seq] { timers_->cancel(seq); });
}

absl::Status EventLoop::updateChannel(Channel* channel, uint32_t interest) {
  assertInLoopThread();
  if (channel->registered()) return engine_->modify(channel->fd(), interest, channel);
  return engine_->add(channel->fd(), interest, channel);
}

void EventLoop::removeChannel(Channel* channel) {
  assertInLoopThread();
  absl::Status s = engine_->remove(channel->fd());
  if (!s.ok()) LOG_ERROR("removing fd %d: %s", channel->fd(), s.message());
}

void EventLoop::removeChannelBeforeClose(Channel* channel) {
  assertInLoopThread();
  absl::Status s = engine_->removeBeforeClose(channel->fd());
  if (!s.ok()) LOG_ERROR("removing fd %d: %s", channel->fd(), s.message());
}

}  // namespace plexus
