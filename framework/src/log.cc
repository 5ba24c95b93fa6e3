#include "plexus/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/synchronization/mutex.h"

namespace plexus {
namespace {

LogLevel initialLevel();
std::atomic<LogLevel> g_level{initialLevel()};

absl::Mutex g_sink_mutex;
std::shared_ptr<LogSink> g_sink ABSL_GUARDED_BY(g_sink_mutex);

constexpr const char* kNames[] = {"trace", "debug", "info", "warn", "error", "fatal", "off"};
constexpr const char* kTags[] = {"TRACE", "DEBUG", "INFO ", "WARN ", "ERROR", "FATAL", "OFF  "};

const char* baseName(const char* file) {
  const char* slash = std::strrchr(file, '/');
  return slash ? slash + 1 : file;
}

void emit(LogLevel level, const char* file, int line, std::string_view message) {
  std::shared_ptr<LogSink> sink;
  {
    absl::MutexLock lock(&g_sink_mutex);
    sink = g_sink;
  }
  timeval tv;
  ::gettimeofday(&tv, nullptr);
  tm t;
  ::localtime_r(&tv.tv_sec, &t);
  char head[96];
  int n = std::snprintf(head, sizeof head, "%04d-%02d-%02d %02d:%02d:%02d.%06ld %s ",
                        t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                        static_cast<long>(tv.tv_usec), kTags[static_cast<int>(level)]);
  std::string out(head, static_cast<size_t>(n));
  out.append(message);
  if (level >= LogLevel::kWarn || level <= LogLevel::kDebug) {
    out.append(" - ");
    out.append(baseName(file));
    out.push_back(':');
    out.append(std::to_string(line));
  }
  if (sink && *sink) {
    (*sink)(level, out);
    return;
  }
  out.push_back('\n');
  // One write(2) per line: lines from different threads never interleave.
  ssize_t ignored = ::write(STDERR_FILENO, out.data(), out.size());
  (void)ignored;
}

LogLevel initialLevel() {
  // PLEXUS_LOG_LEVEL sets the level before any option is parsed (handy in tests).
  const char* env = std::getenv("PLEXUS_LOG_LEVEL");
  if (env == nullptr) return LogLevel::kInfo;
  auto level = parseLogLevel(env);
  return level.ok() ? *level : LogLevel::kInfo;
}

}  // namespace

void setLogLevel(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }
LogLevel logLevel() { return g_level.load(std::memory_order_relaxed); }

absl::StatusOr<LogLevel> parseLogLevel(std::string_view name) {
  std::string lower = absl::AsciiStrToLower(absl::string_view(name.data(), name.size()));
  if (lower == "warning") lower = "warn";
  for (int i = 0; i <= static_cast<int>(LogLevel::kOff); ++i) {
    if (lower == kNames[i]) return static_cast<LogLevel>(i);
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("unknown log level '%s' (known: trace, debug, info, warn, error, off)", name));
}

std::string_view logLevelName(LogLevel level) { return kNames[static_cast<int>(level)]; }

void setLogSink(LogSink sink) {
  auto p = sink ? std::make_shared<LogSink>(std::move(sink)) : nullptr;
  absl::MutexLock lock(&g_sink_mutex);
  g_sink = std::move(p);
}

namespace detail {

void logLine(LogLevel level, const char* file, int line, std::string_view message) {
  emit(level, file, line, message);
}

void logFatal(const char* file, int line, std::string_view message) {
  emit(LogLevel::kFatal, file, line, message);
  std::abort();
}

}  // namespace detail
}  // namespace plexus
