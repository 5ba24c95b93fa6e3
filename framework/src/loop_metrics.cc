#include "loop_metrics.h"

#include <atomic>
#include <map>
#include <memory>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "plexus/event_loop.h"
#include "plexus/metrics.h"

namespace plexus::detail {

namespace {

// How often each loop's lag probe fires.
constexpr Duration kLagProbeInterval = std::chrono::milliseconds(500);

// The lag probe of one loop: a timer that measures how late it fired, and re-arms itself until
// stopped. Written on the loop thread, read by scrapes.
struct LagProbe : std::enable_shared_from_this<LagProbe> {
  explicit LagProbe(EventLoop* l) : loop(l) {}
  void arm() {
    const Clock::time_point due = Clock::now() + kLagProbeInterval;
    std::weak_ptr<LagProbe> weak = weak_from_this();
    timer = loop->runAfter(kLagProbeInterval, [weak, due] {
      auto self = weak.lock();
      if (!self || self->stopped.load(std::memory_order_acquire)) return;
      self->lag_ns.store((Clock::now() - due).count(), std::memory_order_relaxed);
      self->arm();
    });
  }
  EventLoop* const loop;
  std::atomic<bool> stopped{false};
  std::atomic<int64_t> lag_ns{0};
  TimerId timer;  // loop thread only (set by arm())
};

struct Attached {
  int users = 0;
  uint64_t collector = 0;
  std::shared_ptr<LagProbe> probe;
};

absl::Mutex g_mutex;
std::map<std::pair<MetricsRegistry*, EventLoop*>, Attached>& attachedLoops() {
  static auto* m = new std::map<std::pair<MetricsRegistry*, EventLoop*>, Attached>;
  return *m;
}

void collectLoop(const EventLoop& loop, const LagProbe& probe, const std::string& label,
                 MetricSink& sink) {
  const LoopStats s = loop.stats();
  const EventLoop::Counters& c = loop.counters();
  const MetricLabels l = {{"loop", label}};
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    sink.add(name, help, MetricType::kCounter, l, static_cast<double>(v));
  };
  counter("plexus_loop_iterations_total", "Loop iterations completed.", s.iterations);
  counter("plexus_loop_wakeups_total", "Waits for events (epoll_wait, poll or select calls).",
          s.wait_calls);
  counter("plexus_loop_events_total",
          "Ready fds handled; divided by wakeups it gives the events per wakeup.", s.events);
  counter("plexus_loop_wait_failures_total", "Waits that failed (other than EINTR).",
          s.wait_failures);
  const char* kSyscallsHelp = "System calls the loop made, by kind.";
  const std::pair<const char*, uint64_t> calls[] = {
      {"wait", s.wait_calls},     {"read", s.read_calls},     {"write", s.write_calls},
      {"ctl", s.ctl_calls},       {"accept", s.accept_calls}, {"other", s.other_calls}};
  for (const auto& [kind, v] : calls) {
    sink.add("plexus_loop_syscalls_total", kSyscallsHelp, MetricType::kCounter,
             {{"loop", label}, {"call", kind}}, static_cast<double>(v));
  }
  // Sent before received: a scrape of an echo server never shows more sent than received.
  const uint64_t sent = c.bytes_sent.get();
  counter("plexus_loop_bytes_received_total", "Bytes read from the loop's connections.",
          c.bytes_received.get());
  counter("plexus_loop_bytes_sent_total", "Bytes written to the loop's connections.", sent);
  sink.add("plexus_loop_handler_seconds_total",
           "Time the loop spent handling ready fds and queued work, from the first ready fd of a "
           "wakeup to the end of its queued functors (seconds).",
           MetricType::kCounter, l, static_cast<double>(c.handler_ns.get()) / 1e9);
  sink.add("plexus_loop_lag_seconds",
           "How late the loop's 500 ms probe timer fired last time: how long ready work kept the "
           "loop from its timers (seconds).",
           MetricType::kGauge, l,
           static_cast<double>(probe.lag_ns.load(std::memory_order_relaxed)) / 1e9);
}

}  // namespace

void attachLoopMetrics(MetricsRegistry* registry, EventLoop* loop, const std::string& label) {
  absl::MutexLock lock(&g_mutex);
  Attached& a = attachedLoops()[{registry, loop}];
  if (a.users++ > 0) return;
  a.probe = std::make_shared<LagProbe>(loop);
  loop->runInLoop([probe = a.probe] { probe->arm(); });
  loop->setHandlerTiming(true);
  a.collector = registry->addCollector(
      [loop, probe = a.probe, label](MetricSink& sink) {
        collectLoop(*loop, *probe, label, sink);
      });
}

void detachLoopMetrics(MetricsRegistry* registry, EventLoop* loop) {
  uint64_t collector = 0;
  std::shared_ptr<LagProbe> probe;
  {
    absl::MutexLock lock(&g_mutex);
    auto it = attachedLoops().find({registry, loop});
    if (it == attachedLoops().end() || --it->second.users > 0) return;
    collector = it->second.collector;
    probe = std::move(it->second.probe);
    attachedLoops().erase(it);
  }
  registry->removeCollector(collector);
  probe->stopped.store(true, std::memory_order_release);
  // Cancelled on the loop thread, where the probe's timer id lives; a firing already queued sees
  // `stopped`.
  loop->runInLoop([probe] { probe->loop->cancel(probe->timer); });
  loop->setHandlerTiming(false);
}

}  // namespace plexus::detail
