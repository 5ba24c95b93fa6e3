// The Prometheus text format of MetricsRegistry: HELP/TYPE once per family, label escaping, sums
// of series with the same labels, collectors, and what a bad registration does.

#include "plexus/metrics.h"
#include "plexus/version.h"

#include <cmath>
#include <limits>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace plexus {
namespace {

TEST(MetricsTest, EmptyRegistryRendersNothing) {
  MetricsRegistry r;
  EXPECT_EQ(r.render(), "");
}

TEST(MetricsTest, CounterAndGaugeWithHelpAndType) {
  MetricsRegistry r;
  r.counter("requests_total", "Requests served.")->add(3);
  MetricGauge* g = r.gauge("queue_depth", "Items waiting.");
  g->set(7);
  g->sub(2);
  EXPECT_EQ(r.render(),
            "# HELP queue_depth Items waiting.\n"
            "# TYPE queue_depth gauge\n"
            "queue_depth 5\n"
            "# HELP requests_total Requests served.\n"
            "# TYPE requests_total counter\n"
            "requests_total 3\n");
}

TEST(MetricsTest, OneFamilyPerNameSeriesSortedByLabels) {
  MetricsRegistry r;
  r.counter("hits_total", "Hits.", {{"loop", "1"}})->add(2);
  r.counter("hits_total", "Hits.", {{"loop", "0"}})->add(1);
  EXPECT_EQ(r.render(),
            "# HELP hits_total Hits.\n"
            "# TYPE hits_total counter\n"
            "hits_total{loop=\"0\"} 1\n"
            "hits_total{loop=\"1\"} 2\n");
}

TEST(MetricsTest, SameSeriesTwiceIsOneCell) {
  MetricsRegistry r;
  MetricCounter* a = r.counter("x_total", "X.", {{"a", "1"}, {"b", "2"}});
  MetricCounter* b = r.counter("x_total", "X.", {{"b", "2"}, {"a", "1"}});  // other order
  EXPECT_EQ(a, b);
}

TEST(MetricsTest, LabelValuesAndHelpAreEscaped) {
  MetricsRegistry r;
  r.gauge("g", "line one\nback\\slash \"quoted\"", {{"path", "a\\b\"c\nd"}})->set(1);
  EXPECT_EQ(r.render(),
            "# HELP g line one\\nback\\\\slash \"quoted\"\n"
            "# TYPE g gauge\n"
            "g{path=\"a\\\\b\\\"c\\nd\"} 1\n");
  EXPECT_EQ(MetricsRegistry::escapeLabelValue("plain"), "plain");
}

TEST(MetricsTest, ScopesAddTheirLabelsAndCollectorsSumWithTheSameLabels) {
  MetricsRegistry r;
  MetricsScope* loop0 = r.scope({{"loop", "0"}});
  MetricsScope* loop1 = r.scope({{"loop", "1"}});
  EXPECT_EQ(r.scope({{"loop", "1"}}), loop1);  // the same labels, the same scope
  loop0->counter("cmd_total", "Commands.", {{"command", "get"}})->add(4);
  loop1->counter("cmd_total", "Commands.", {{"command", "get"}})->add(5);
  // A collector reporting a series that a cell has too: summed into one line.
  r.addCollector([](MetricSink& sink) {
    sink.add("cmd_total", "Commands.", MetricType::kCounter, {{"loop", "0"}, {"command", "get"}},
             10);
  });
  EXPECT_EQ(r.render(),
            "# HELP cmd_total Commands.\n"
            "# TYPE cmd_total counter\n"
            "cmd_total{command=\"get\",loop=\"0\"} 14\n"
            "cmd_total{command=\"get\",loop=\"1\"} 5\n");
}

TEST(MetricsTest, RemovedCollectorsNoLongerRun) {
  MetricsRegistry r;
  int runs = 0;
  const uint64_t id = r.addCollector([&runs](MetricSink& sink) {
    ++runs;
    sink.add("up", "Up.", MetricType::kGauge, {}, 1);
  });
  EXPECT_EQ(r.render(), "# HELP up Up.\n# TYPE up gauge\nup 1\n");
  r.removeCollector(id);
  EXPECT_EQ(r.render(), "");
  EXPECT_EQ(runs, 1);
}

TEST(MetricsTest, ValuesFormat) {
  EXPECT_EQ(MetricsRegistry::formatValue(0), "0");
  EXPECT_EQ(MetricsRegistry::formatValue(12345678901234.0), "12345678901234");
  EXPECT_EQ(MetricsRegistry::formatValue(-3), "-3");
  EXPECT_EQ(MetricsRegistry::formatValue(0.25), "0.25");
  EXPECT_EQ(MetricsRegistry::formatValue(std::nan("")), "NaN");
  EXPECT_EQ(MetricsRegistry::formatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(MetricsRegistry::formatValue(-std::numeric_limits<double>::infinity()), "-Inf");
}

TEST(MetricsTest, ATypeClashOrABadNameIsCountedButNotExported) {
  MetricsRegistry r;
  r.counter("dual", "As a counter.")->add(1);
  MetricGauge* clash = r.gauge("dual", "As a gauge.");
  ASSERT_NE(clash, nullptr);
  clash->set(99);
  MetricCounter* bad = r.counter("9bad name", "Not a name.");
  ASSERT_NE(bad, nullptr);
  bad->add();
  EXPECT_EQ(r.render(), "# HELP dual As a counter.\n# TYPE dual counter\ndual 1\n");
}

TEST(MetricsTest, ProcessSeriesAreThereOnce) {
  MetricsRegistry r;
  r.addProcessMetrics();
  r.addProcessMetrics();
  const std::string text = r.render();
  for (const char* name : {"process_resident_memory_bytes", "process_open_fds",
                           "process_start_time_seconds", "process_cpu_seconds_total"}) {
    const std::string type_line = std::string("# TYPE ") + name;
    EXPECT_NE(text.find(type_line), std::string::npos) << name;
    EXPECT_EQ(text.find(type_line), text.rfind(type_line)) << name;
  }
  EXPECT_NE(text.find("plexus_build_info{version=\"" PLEXUS_VERSION_STRING "\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("process_resident_memory_bytes 0\n"), std::string::npos) << text;
}

// One writer per cell, a reader rendering meanwhile: the totals come out exact (and TSan-clean).
TEST(MetricsTest, SingleWritersAndAConcurrentReader) {
  MetricsRegistry r;
  MetricCounter* a = r.counter("n_total", "N.", {{"loop", "0"}});
  MetricCounter* b = r.counter("n_total", "N.", {{"loop", "1"}});
  std::thread wa([a] {
    for (int i = 0; i < 100000; ++i) a->add();
  });
  std::thread wb([b] {
    for (int i = 0; i < 100000; ++i) b->add(2);
  });
  for (int i = 0; i < 50; ++i) (void)r.render();
  wa.join();
  wb.join();
  EXPECT_EQ(r.render(),
            "# HELP n_total N.\n# TYPE n_total counter\n"
            "n_total{loop=\"0\"} 100000\nn_total{loop=\"1\"} 200000\n");
}

}  // namespace
}  // namespace plexus
