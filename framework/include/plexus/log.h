#pragma once
// Minimal leveled logging: one line per message, written with a single write(2) so lines from
// different threads never interleave. Thread safety: every function here may be called from any
// thread.

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"

namespace plexus {

enum class LogLevel { kTrace = 0, kDebug, kInfo, kWarn, kError, kFatal, kOff };

void setLogLevel(LogLevel level);
LogLevel logLevel();
absl::StatusOr<LogLevel> parseLogLevel(std::string_view name);
std::string_view logLevelName(LogLevel level);

// Replaces the destination of log lines (default: stderr). The sink gets the level and the formatted
// line without a trailing newline. Pass nullptr to restore stderr. Any thread; the sink itself must
// be thread-safe.
using LogSink = std::function<void(LogLevel, std::string_view)>;
void setLogSink(LogSink sink);

namespace detail {
void logLine(LogLevel level, const char* file, int line, std::string_view message);
[[noreturn]] void logFatal(const char* file, int line, std::string_view message);
}  // namespace detail

}  // namespace plexus

#define PLEXUS_LOG(level, ...)                                                              \
  do {                                                                                      \
    if ((level) >= ::plexus::logLevel())                                                    \
      ::plexus::detail::logLine((level), __FILE__, __LINE__, absl::StrFormat(__VA_ARGS__)); \
  } while (0)

#define LOG_TRACE(...) PLEXUS_LOG(::plexus::LogLevel::kTrace, __VA_ARGS__)
#define LOG_DEBUG(...) PLEXUS_LOG(::plexus::LogLevel::kDebug, __VA_ARGS__)
#define LOG_INFO(...) PLEXUS_LOG(::plexus::LogLevel::kInfo, __VA_ARGS__)
#define LOG_WARN(...) PLEXUS_LOG(::plexus::LogLevel::kWarn, __VA_ARGS__)
#define LOG_ERROR(...) PLEXUS_LOG(::plexus::LogLevel::kError, __VA_ARGS__)
#define LOG_FATAL(...) ::plexus::detail::logFatal(__FILE__, __LINE__, absl::StrFormat(__VA_ARGS__))
