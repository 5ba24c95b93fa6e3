// plexus-server's --reuseport, --accept-mode and --workers: defaults, values, config file keys and
// errors.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "server_options.h"

namespace plexus::server {
namespace {

absl::StatusOr<ServerCommand> parse(std::vector<std::string> args) {
  args.insert(args.begin(), "plexus-server");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  return parseServerOptions(static_cast<int>(args.size()), argv.data());
}

ServerConfig config(std::vector<std::string> args) {
  auto command = parse(std::move(args));
  EXPECT_TRUE(command.ok()) << command.status();
  return command.ok() ? command->config : ServerConfig{};
}

std::string error(std::vector<std::string> args) {
  auto command = parse(std::move(args));
  return command.ok() ? "(accepted)" : std::string(command.status().message());
}

TEST(ServerUpgradeOptionsTest, Defaults) {
  ServerConfig c = config({});
  EXPECT_FALSE(c.server.reuse_port);
  EXPECT_EQ(c.server.accept_mode, AcceptMode::kHandoff);
  EXPECT_EQ(c.workers, 0);
}

TEST(ServerUpgradeOptionsTest, CommandLine) {
  EXPECT_TRUE(config({"--reuseport"}).server.reuse_port);
  EXPECT_EQ(config({"--accept-mode", "reuseport"}).server.accept_mode, AcceptMode::kReusePort);
  EXPECT_EQ(config({"--accept-mode", "handoff"}).server.accept_mode, AcceptMode::kHandoff);
  ServerConfig c = config({"--workers", "3"});
  EXPECT_EQ(c.workers, 3);
  EXPECT_TRUE(c.server.reuse_port) << "workers share the port";
  EXPECT_EQ(config({"--workers", "256"}).workers, 256);
}

TEST(ServerUpgradeOptionsTest, ConfigFileKeys) {
  auto c = parseServerConfigText("reuseport = true\naccept-mode = reuseport\nworkers = 2\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->server.reuse_port);
  EXPECT_EQ(c->server.accept_mode, AcceptMode::kReusePort);
  EXPECT_EQ(c->workers, 2);
}

TEST(ServerUpgradeOptionsTest, Errors) {
  EXPECT_EQ(error({"--accept-mode", "steal"}),
            "unknown accept mode 'steal' (known: handoff, reuseport)");
  EXPECT_EQ(error({"--workers", "-1"}), "invalid --workers '-1' (expected 0-256)");
  EXPECT_EQ(error({"--workers", "257"}), "invalid --workers '257' (expected 0-256)");
  EXPECT_EQ(error({"--workers", "many"}), "invalid --workers 'many' (expected 0-256)");
}

}  // namespace
}  // namespace plexus::server
