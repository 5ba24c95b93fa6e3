#include "plexus/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "plexus/log.h"
#include "plexus/version.h"

namespace plexus {

namespace {

// "{a=\"1\",b=\"2\"}" with the keys sorted (so that the same labels in another order are the same
// series), or "" without labels.
std::string labelText(MetricLabels labels) {
  if (labels.empty()) return std::string();
  std::stable_sort(labels.begin(), labels.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ',';
    absl::StrAppend(&out, labels[i].first, "=\"",
                    MetricsRegistry::escapeLabelValue(labels[i].second), "\"");
  }
  out += '}';
  return out;
}

const char* typeName(MetricType type) {
  return type == MetricType::kCounter ? "counter" : "gauge";
}

// One family while rendering: its samples by label text, summed.
struct RenderFamily {
  std::string help;
  MetricType type = MetricType::kGauge;
  std::map<std::string, double> samples;
};

class RenderSink final : public MetricSink {
 public:
  void add(std::string_view name, std::string_view help, MetricType type,
           const MetricLabels& labels, double value) override {
    auto [it, inserted] = families_.try_emplace(std::string(name));
    RenderFamily& f = it->second;
    if (inserted) {
      f.help = std::string(help);
      f.type = type;
    } else if (f.type != type) {
      return;  // told once, at registration (collectors are the program's own)
    }
    f.samples[labelText(labels)] += value;
  }
  // A family with no series still has its HELP and TYPE.
  void declare(std::string_view name, std::string_view help, MetricType type) {
    auto [it, inserted] = families_.try_emplace(std::string(name));
    if (inserted) {
      it->second.help = std::string(help);
      it->second.type = type;
    }
  }
  std::string text() const {
    std::string out;
    for (const auto& [name, f] : families_) {
      absl::StrAppend(&out, "# HELP ", name, " ", MetricsRegistry::escapeHelp(f.help), "\n");
      absl::StrAppend(&out, "# TYPE ", name, " ", typeName(f.type), "\n");
      for (const auto& [labels, value] : f.samples) {
        absl::StrAppend(&out, name, labels, " ", MetricsRegistry::formatValue(value), "\n");
      }
    }
    return out;
  }

 private:
  std::map<std::string, RenderFamily> families_;
};

bool validName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                    (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

}  // namespace

struct MetricsRegistry::State {
  struct Family {
    std::string help;
    MetricType type;
  };
  struct Series {
    std::string family;
    MetricLabels labels;
    MetricCounter* counter = nullptr;
    MetricGauge* gauge = nullptr;
  };
  // A scope adds its labels in front of the series' own.
  class Scoped final : public MetricsScope {
   public:
    Scoped(MetricsRegistry* r, MetricLabels labels) : registry_(r), labels_(std::move(labels)) {}
    MetricCounter* counter(std::string_view name, std::string_view help,
                           const MetricLabels& labels) override {
      return registry_->counter(name, help, join(labels));
    }
    MetricGauge* gauge(std::string_view name, std::string_view help,
                       const MetricLabels& labels) override {
      return registry_->gauge(name, help, join(labels));
    }

   private:
    MetricLabels join(const MetricLabels& own) const {
      MetricLabels all = labels_;
      all.insert(all.end(), own.begin(), own.end());
      return all;
    }
    MetricsRegistry* const registry_;
    const MetricLabels labels_;
  };

  mutable absl::Mutex mutex;
  std::map<std::string, Family, std::less<>> families ABSL_GUARDED_BY(mutex);
  // Keyed by name + label text: the same series asked for again is the same cell.
  std::map<std::string, Series> series ABSL_GUARDED_BY(mutex);
  // Stable addresses: cells are handed out and written without the lock.
  std::deque<MetricCounter> counters ABSL_GUARDED_BY(mutex);
  std::deque<MetricGauge> gauges ABSL_GUARDED_BY(mutex);
  std::deque<Scoped> scopes ABSL_GUARDED_BY(mutex);
  // By label text: a server started again (a reload) gets the scopes it had.
  std::map<std::string, Scoped*> scope_by_labels ABSL_GUARDED_BY(mutex);
  std::map<uint64_t, Collector> collectors ABSL_GUARDED_BY(mutex);
  uint64_t next_collector ABSL_GUARDED_BY(mutex) = 1;
  bool process_added ABSL_GUARDED_BY(mutex) = false;

  // The series `name{labels}` of `type`: found, or made. A name taken by the other type, or not a
  // valid name, gets a cell of its own that is never rendered.
  Series* find(std::string_view name, std::string_view help, MetricType type,
               const MetricLabels& labels) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) {
    const bool valid = validName(name);
    auto fit = families.find(name);
    if (!valid) {
      LOG_ERROR("metric name '%s' is not valid: its series is not exported", name);
    } else if (fit == families.end()) {
      fit = families.emplace(std::string(name), Family{std::string(help), type}).first;
    } else if (fit->second.type != type) {
      LOG_ERROR("metric '%s' is a %s already: this %s series is not exported", name,
                typeName(fit->second.type), typeName(type));
    }
    const bool exported = valid && fit->second.type == type;
    // Gauges before counters: a scrape reads a gauge of connections open before the counter of
    // those accepted, so it never sees more open than accepted.
    const std::string key = std::string(exported ? "" : "!") +
                            (type == MetricType::kGauge ? "1 " : "2 ") +
                            std::string(name) + labelText(labels);
    auto [it, inserted] = series.try_emplace(key);
    Series& s = it->second;
    if (inserted) {
      s.family = exported ? std::string(name) : std::string();
      s.labels = labels;
      if (type == MetricType::kCounter) {
        s.counter = &counters.emplace_back();
      } else {
        s.gauge = &gauges.emplace_back();
      }
    }
    return &s;
  }
};

MetricsRegistry::MetricsRegistry() : state_(std::make_unique<State>()) {}
MetricsRegistry::~MetricsRegistry() = default;

MetricCounter* MetricsRegistry::counter(std::string_view name, std::string_view help,
                                        const MetricLabels& labels) {
  absl::MutexLock lock(&state_->mutex);
  return state_->find(name, help, MetricType::kCounter, labels)->counter;
}

MetricGauge* MetricsRegistry::gauge(std::string_view name, std::string_view help,
                                    const MetricLabels& labels) {
  absl::MutexLock lock(&state_->mutex);
  return state_->find(name, help, MetricType::kGauge, labels)->gauge;
}

MetricsScope* MetricsRegistry::scope(MetricLabels labels) {
  absl::MutexLock lock(&state_->mutex);
  State::Scoped*& s = state_->scope_by_labels[labelText(labels)];
  if (s == nullptr) s = &state_->scopes.emplace_back(this, std::move(labels));
  return s;
}

uint64_t MetricsRegistry::addCollector(Collector collect) {
  absl::MutexLock lock(&state_->mutex);
  const uint64_t id = state_->next_collector++;
  state_->collectors.emplace(id, std::move(collect));
  return id;
}

void MetricsRegistry::removeCollector(uint64_t id) {
  // Under the lock render() holds while collecting: once this returns, no collector runs.
  Collector gone;
  {
    absl::MutexLock lock(&state_->mutex);
    auto it = state_->collectors.find(id);
    if (it == state_->collectors.end()) return;
    gone = std::move(it->second);
    state_->collectors.erase(it);
  }
}

std::string MetricsRegistry::render() const {
  RenderSink sink;
  absl::MutexLock lock(&state_->mutex);
  for (const auto& [name, f] : state_->families) sink.declare(name, f.help, f.type);
  for (const auto& [key, s] : state_->series) {
    if (s.family.empty()) continue;
    const auto& f = state_->families.find(s.family)->second;
    const double v = s.counter ? static_cast<double>(s.counter->get())
                               : static_cast<double>(s.gauge->get());
    sink.add(s.family, f.help, f.type, s.labels, v);
  }
  for (const auto& [id, collect] : state_->collectors) collect(sink);
  return sink.text();
}

std::string MetricsRegistry::escapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string MetricsRegistry::escapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string MetricsRegistry::formatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Whole numbers up to 2^53 exactly, without an exponent or a fraction.
  if (value == std::floor(value) && std::fabs(value) < 9007199254740992.0) {
    return absl::StrFormat("%.0f", value);
  }
  // The shortest text that reads back as the same double.
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, r.ptr);
}

namespace {

// Resident set size in bytes, from /proc/self/statm (pages).
double residentBytes() {
  std::ifstream in("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

double openFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  double n = 0;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n - 1;  // the directory's own fd
}

// Fields of /proc/self/stat after the command name: [0] is the state (field 3).
std::vector<std::string> statFields() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  std::vector<std::string> out;
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return out;
  std::istringstream rest(line.substr(close + 1));
  std::string f;
  while (rest >> f) out.push_back(f);
  return out;
}

double bootTime() {
  std::ifstream in("/proc/stat");
  std::string key;
  double value = 0;
  while (in >> key) {
    if (key == "btime") {
      in >> value;
      return value;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

}  // namespace

void MetricsRegistry::addProcessMetrics() {
  {
    absl::MutexLock lock(&state_->mutex);
    if (state_->process_added) return;
    state_->process_added = true;
  }
  // Worked out once: the start does not change.
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const std::vector<std::string> fields = statFields();
  // starttime is field 22: index 19 after the state (field 3).
  const double start =
      fields.size() > 19 ? bootTime() + std::strtod(fields[19].c_str(), nullptr) / ticks : 0;
  addCollector([start, ticks](MetricSink& sink) {
    sink.add("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::kGauge,
             {}, residentBytes());
    sink.add("process_open_fds", "Number of open file descriptors.", MetricType::kGauge, {},
             openFds());
    sink.add("process_start_time_seconds",
             "Start time of the process since unix epoch in seconds.", MetricType::kGauge, {},
             start);
    const std::vector<std::string> now = statFields();
    if (now.size() > 12) {
      // utime and stime: fields 14 and 15.
      const double cpu = (std::strtod(now[11].c_str(), nullptr) +
                          std::strtod(now[12].c_str(), nullptr)) / ticks;
      sink.add("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
               MetricType::kCounter, {}, cpu);
    }
    sink.add("plexus_build_info", "Plexus version this process runs (always 1).",
             MetricType::kGauge, {{"version", PLEXUS_VERSION_STRING}}, 1);
  });
}

}  // namespace plexus
