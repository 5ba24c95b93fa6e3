// Logging: level names, filtering by level, the sink, and one line per message across threads.

#include "plexus/log.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"

namespace plexus {
namespace {

struct Captured {
  LogLevel level;
  std::string line;
};

// Installs a capturing sink and restores the sink and the level afterwards.
class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_level_ = logLevel();
    setLogSink([this](LogLevel level, std::string_view line) {
      absl::MutexLock lock(&mu_);
      lines_.push_back({level, std::string(line)});
    });
  }
  void TearDown() override {
    setLogSink(nullptr);
    setLogLevel(saved_level_);
  }
  std::vector<Captured> lines() {
    absl::MutexLock lock(&mu_);
    return lines_;
  }

  LogLevel saved_level_ = LogLevel::kInfo;
  absl::Mutex mu_;
  std::vector<Captured> lines_ ABSL_GUARDED_BY(mu_);
};

TEST(LogLevelTest, ParseNames) {
  const std::pair<const char*, LogLevel> cases[] = {
      {"trace", LogLevel::kTrace}, {"debug", LogLevel::kDebug}, {"info", LogLevel::kInfo},
      {"warn", LogLevel::kWarn},   {"warning", LogLevel::kWarn}, {"error", LogLevel::kError},
      {"fatal", LogLevel::kFatal}, {"off", LogLevel::kOff},      {"INFO", LogLevel::kInfo},
      {"Warning", LogLevel::kWarn}, {"DeBuG", LogLevel::kDebug},
  };
  for (const auto& [name, level] : cases) {
    absl::StatusOr<LogLevel> got = parseLogLevel(name);
    ASSERT_TRUE(got.ok()) << name << ": " << got.status();
    EXPECT_EQ(*got, level) << name;
  }
}

TEST(LogLevelTest, ParseErrors) {
  for (const char* bad : {"", "verbose", "inf", "warn ", "3"}) {
    absl::StatusOr<LogLevel> got = parseLogLevel(bad);
    ASSERT_FALSE(got.ok()) << bad;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(got.status().message().find("known:"), std::string::npos) << got.status();
  }
  absl::StatusOr<LogLevel> got = parseLogLevel("verbose");
  EXPECT_NE(got.status().message().find("'verbose'"), std::string::npos) << got.status();
}

TEST(LogLevelTest, NamesRoundTrip) {
  for (LogLevel level : {LogLevel::kTrace, LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn,
                         LogLevel::kError, LogLevel::kFatal, LogLevel::kOff}) {
    absl::StatusOr<LogLevel> back = parseLogLevel(logLevelName(level));
    ASSERT_TRUE(back.ok()) << logLevelName(level);
    EXPECT_EQ(*back, level);
  }
  EXPECT_EQ(logLevelName(LogLevel::kWarn), "warn");
}

TEST_F(LogTest, SetLogLevelFilters) {
  setLogLevel(LogLevel::kWarn);
  EXPECT_EQ(logLevel(), LogLevel::kWarn);
  LOG_TRACE("trace %d", 1);
  LOG_DEBUG("debug %d", 2);
  LOG_INFO("info %d", 3);
  LOG_WARN("warn %d", 4);
  LOG_ERROR("error %d", 5);
  std::vector<Captured> got = lines();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].level, LogLevel::kWarn);
  EXPECT_NE(got[0].line.find("warn 4"), std::string::npos) << got[0].line;
  EXPECT_EQ(got[1].level, LogLevel::kError);
  EXPECT_NE(got[1].line.find("error 5"), std::string::npos) << got[1].line;

  setLogLevel(LogLevel::kOff);
  LOG_ERROR("hidden");
  EXPECT_EQ(lines().size(), 2u);

  setLogLevel(LogLevel::kTrace);
  LOG_TRACE("now visible");
  got = lines();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[2].level, LogLevel::kTrace);
}

TEST_F(LogTest, FilteredArgumentsAreNotEvaluated) {
  setLogLevel(LogLevel::kError);
  int evaluated = 0;
  auto count = [&] { return ++evaluated; };
  LOG_INFO("value %d", count());
  EXPECT_EQ(evaluated, 0);
  LOG_ERROR("value %d", count());
  EXPECT_EQ(evaluated, 1);
}

TEST_F(LogTest, OneLinePerMessageWithLevelTag) {
  setLogLevel(LogLevel::kTrace);
  LOG_INFO("hello %s", std::string("world"));
  LOG_WARN("careful");
  LOG_DEBUG("details");
  std::vector<Captured> got = lines();
  ASSERT_EQ(got.size(), 3u);
  for (const Captured& c : got) {
    EXPECT_EQ(c.line.find('\n'), std::string::npos) << "sink lines carry no newline: " << c.line;
  }
  EXPECT_EQ(got[0].level, LogLevel::kInfo);
  EXPECT_NE(got[0].line.find("INFO  hello world"), std::string::npos) << got[0].line;
  // Info lines carry no source location; warnings and debug lines do.
  EXPECT_EQ(got[0].line.find("log_test.cc"), std::string::npos) << got[0].line;
  EXPECT_NE(got[1].line.find("WARN  careful - log_test.cc:"), std::string::npos) << got[1].line;
  EXPECT_NE(got[2].line.find("DEBUG details - log_test.cc:"), std::string::npos) << got[2].line;
}

TEST_F(LogTest, ConcurrentLinesAreWhole) {
  setLogLevel(LogLevel::kInfo);
  constexpr int kThreads = 4;
  constexpr int kLines = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < kLines; ++i) LOG_INFO("thread %d line %d end", t, i);
    });
  }
  for (auto& th : threads) th.join();
  std::vector<Captured> got = lines();
  ASSERT_EQ(got.size(), static_cast<size_t>(kThreads * kLines));
  std::vector<int> next(kThreads, 0);
  for (const Captured& c : got) {
    int t = -1;
    int i = -1;
    size_t at = c.line.find("thread ");
    ASSERT_NE(at, std::string::npos) << c.line;
    ASSERT_EQ(std::sscanf(c.line.c_str() + at, "thread %d line %d end", &t, &i), 2) << c.line;
    ASSERT_TRUE(t >= 0 && t < kThreads);
    EXPECT_EQ(i, next[static_cast<size_t>(t)]++) << "per-thread order";
  }
}

TEST_F(LogTest, NullSinkRestoresStderr) {
  setLogLevel(LogLevel::kInfo);
  setLogSink(nullptr);
  ::testing::internal::CaptureStderr();
  LOG_WARN("to stderr %d", 42);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("WARN  to stderr 42"), std::string::npos) << err;
  EXPECT_EQ(err.back(), '\n');
  EXPECT_TRUE(lines().empty());
}

TEST(LogDeathTest, FatalAborts) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH(LOG_FATAL("boom %d", 7), "FATAL boom 7");
}

}  // namespace
}  // namespace plexus
