#pragma once
// Metrics: counters and gauges with labels, kept where they change, and a registry that renders
// them in the Prometheus text exposition format (version 0.0.4).
//
// Threads. A series (MetricCounter, MetricGauge) has one writer: the thread that owns what it
// counts, usually one loop's thread (each loop gets series of its own, told apart by a `loop`
// label). A write is a relaxed load and store, no locked instruction and no lock, so it may sit on
// the per-message path; any thread may read it. Registering (counter(), gauge(), scope(),
// addCollector()) and render() may be called from any thread: they take the registry's lock, so
// look a series up once (when a loop starts, say) and keep the pointer, never per message. Series
// live as long as the registry; a registry outlives everything that writes to its series.
//
// Rendering: one family per name (HELP and TYPE once), families sorted by name, series sorted by
// their labels; series with the same name and labels (registered by two writers, or reported by
// collectors) are summed.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "plexus/loop_stats.h"

namespace plexus {

// Label name/value pairs, e.g. {{"loop", "0"}, {"status", "200"}}.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// A counter with a single writer (see loop_stats.h): only goes up.
using MetricCounter = SingleWriterCounter;

// A gauge with a single writer: set(), add() and sub() on the owning thread; get() anywhere.
class MetricGauge {
 public:
  void set(int64_t v) { v_.store(v, std::memory_order_relaxed); }
  void add(int64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub(int64_t n = 1) { add(-n); }
  int64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

enum class MetricType { kCounter, kGauge };

// Where a plugin, or any per-loop code, registers its series: it adds its own labels (loop,
// listener, plugin) to each. Any thread (the registry's lock); keep the pointers it returns. A
// name registered before with the other type gets a series that is counted but never rendered
// (and one error line). The returned series live as long as the scope.
class MetricsScope {
 public:
  // `name`: [a-zA-Z_:][a-zA-Z0-9_:]*; counters end in "_total" by convention. `help`: one line.
  virtual MetricCounter* counter(std::string_view name, std::string_view help,
                                 const MetricLabels& labels = {}) = 0;
  virtual MetricGauge* gauge(std::string_view name, std::string_view help,
                             const MetricLabels& labels = {}) = 0;

 protected:
  ~MetricsScope() = default;
};

// Values computed when a scrape renders (process figures, sums over a loop's LoopStats): a
// collector writes them to a sink, on the scraping thread.
class MetricSink {
 public:
  virtual void add(std::string_view name, std::string_view help, MetricType type,
                   const MetricLabels& labels, double value) = 0;

 protected:
  ~MetricSink() = default;
};

class MetricsRegistry final : public MetricsScope {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  MetricCounter* counter(std::string_view name, std::string_view help,
                         const MetricLabels& labels = {}) override;
  MetricGauge* gauge(std::string_view name, std::string_view help,
                     const MetricLabels& labels = {}) override;
  // A scope that adds `labels` to every series registered through it (before the series' own).
  // Owned by the registry; the same labels give the same scope.
  MetricsScope* scope(MetricLabels labels);

  // Runs `collect` at each render(), on the rendering thread, with the registry's lock held (so it
  // must not register). Returns an id for removeCollector(); once that has returned, `collect` is
  // not running and never runs again, so what it reads may go.
  using Collector = std::function<void(MetricSink&)>;
  uint64_t addCollector(Collector collect);
  void removeCollector(uint64_t id);

  // Adds the series of the process: process_resident_memory_bytes, process_open_fds,
  // process_start_time_seconds, process_cpu_seconds_total, plexus_build_info{version} (1). Once
  // per registry; later calls do nothing.
  void addProcessMetrics();

  // The whole exposition, ending in a newline (Content-Type: text/plain; version=0.0.4).
  std::string render() const;

  // Text-format helpers, public for tests: a label value with \ " and newline escaped; a HELP
  // text with \ and newline escaped; a sample value (integers without a fraction, NaN, +Inf).
  static std::string escapeLabelValue(std::string_view value);
  static std::string escapeHelp(std::string_view help);
  static std::string formatValue(double value);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace plexus
