#include "client/bench_options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <initializer_list>
#include <thread>
#include <vector>

namespace plexus::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

absl::StatusOr<BenchCommand> parse(std::initializer_list<const char*> args) {
  std::vector<const char*> argv = {"bench"};
  argv.insert(argv.end(), args);
  return parseBenchCommand(static_cast<int>(argv.size()), argv.data());
}

TEST(BenchOptionsTest, Defaults) {
  auto cmd = parse({});
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  const BenchOptions& o = cmd->options;
  EXPECT_EQ(cmd->action, BenchCommand::Action::kRun);
  EXPECT_EQ(o.host, "127.0.0.1");
  EXPECT_EQ(o.port, 9000);
  EXPECT_EQ(o.connections, 100);
  EXPECT_EQ(o.size, 16u);
  EXPECT_EQ(o.duration_s, 10);
  EXPECT_EQ(o.warmup_s, 1);
  EXPECT_EQ(o.count, 0u);
  EXPECT_FALSE(o.openLoop());
  EXPECT_FALSE(o.verify);
  EXPECT_FALSE(o.json);
  EXPECT_FALSE(o.quiet);
  EXPECT_EQ(o.ramp_up, 0);
  EXPECT_EQ(o.connect_timeout, std::chrono::seconds(3));
  EXPECT_EQ(o.engine.name, "epoll");
  EXPECT_EQ(o.engine.epoll_mode, EpollMode::kOneshot);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_EQ(o.threads, cores);
}

TEST(BenchOptionsTest, EveryOption) {
  auto cmd = parse({"-s", "localhost", "-p", "7700", "--connections", "1000", "--size", "4K",
                    "--duration", "2.5", "--threads", "3", "--warmup", "0", "--rate", "20000",
                    "--verify", "--json", "--quiet", "--ramp-up", "500", "--connect-timeout",
                    "0.5", "--engine", "epoll", "--epoll-mode", "edge"});
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  const BenchOptions& o = cmd->options;
  EXPECT_EQ(o.host, "localhost");
  EXPECT_EQ(o.port, 7700);
  EXPECT_EQ(o.connections, 1000);
  EXPECT_EQ(o.size, 4096u);
  EXPECT_EQ(o.duration_s, 2.5);
  EXPECT_EQ(o.threads, 3);
  EXPECT_EQ(o.warmup_s, 0);
  EXPECT_TRUE(o.openLoop());
  EXPECT_EQ(o.rate, 20000);
  EXPECT_TRUE(o.verify);
  EXPECT_TRUE(o.json);
  EXPECT_TRUE(o.quiet);
  EXPECT_EQ(o.ramp_up, 500);
  EXPECT_EQ(o.connect_timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(o.engine.epoll_mode, EpollMode::kEdge);

  cmd = parse({"--engine", "select"});
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(cmd->options.engine.name, "select");
}

TEST(BenchOptionsTest, CountMeansNoWarmupUnlessGiven) {
  auto cmd = parse({"--count", "100"});
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(cmd->options.count, 100u);
  EXPECT_EQ(cmd->options.warmup_s, 0);
  cmd = parse({"--count", "100", "--warmup", "0.25"});
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(cmd->options.warmup_s, 0.25);
}

TEST(BenchOptionsTest, Sizes) {
  EXPECT_EQ(*parseSize("16"), 16u);
  EXPECT_EQ(*parseSize("4K"), 4096u);
  EXPECT_EQ(*parseSize("64k"), 65536u);
  EXPECT_EQ(*parseSize("4KiB"), 4096u);
  EXPECT_EQ(*parseSize("1M"), 1048576u);
  EXPECT_EQ(*parseSize("64M"), 64u << 20);
  for (const char* bad : {"", "0", "K", "-1", "1.5K", "3X", "65M", "99999999999999", "4 K"}) {
    EXPECT_FALSE(parseSize(bad).ok()) << bad;
  }
}

TEST(BenchOptionsTest, Help) {
  auto cmd = parse({"--help"});
  ASSERT_TRUE(cmd.ok());
  EXPECT_EQ(cmd->action, BenchCommand::Action::kHelp);
  EXPECT_THAT(cmd->help, HasSubstr("--rate"));
  EXPECT_THAT(cmd->help, HasSubstr("--ramp-up"));
}

TEST(BenchOptionsTest, BadOptionsAreOneLineErrors) {
  for (auto args : std::vector<std::vector<const char*>>{
           {"--bogus"}, {"-p", "0"}, {"-p", "70000"}, {"--connections", "0"},
           {"--connections", "x"}, {"--size", "0"}, {"--size", "1G"}, {"--duration", "0"},
           {"--duration", "-1"}, {"--duration", "nan"}, {"--threads", "0"}, {"--warmup", "-1"},
           {"--count", "0"}, {"--count", "-5"}, {"--count", "5", "--duration", "3"},
           {"--rate", "0"}, {"--rate", "-10"}, {"--idle", "-1"}, {"--idle", "x"}, {"--ramp-up", "-1"}, {"--connect-timeout", "0"},
           {"--engine", "kqueue"}, {"--epoll-mode", "sometimes"},
           {"--engine", "poll", "--epoll-mode", "edge"}, {"extra"}, {"-s", ""}, {"--size"}}) {
    std::vector<const char*> argv = {"bench"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto cmd = parseBenchCommand(static_cast<int>(argv.size()), argv.data());
    ASSERT_FALSE(cmd.ok()) << args[0];
    EXPECT_EQ(cmd.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_FALSE(cmd.status().message().empty());
    EXPECT_THAT(std::string(cmd.status().message()), Not(HasSubstr("\n"))) << args[0];
  }
}

}  // namespace
}  // namespace plexus::client
