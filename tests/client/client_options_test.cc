#include "client/client_options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <initializer_list>
#include <vector>

namespace plexus::client {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<ClientCommand> parse(std::initializer_list<const char*> args) {
  std::vector<const char*> argv = {"plexus-client"};
  argv.insert(argv.end(), args);
  return parseClientCommand(static_cast<int>(argv.size()), argv.data());
}

TEST(ClientOptionsTest, Defaults) {
  auto cmd = parse({});
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(cmd->action, ClientCommand::Action::kRun);
  EXPECT_EQ(cmd->options.host, "127.0.0.1");
  EXPECT_EQ(cmd->options.port, 9000);
  EXPECT_EQ(cmd->options.connect_timeout, std::chrono::seconds(3));
  EXPECT_EQ(cmd->options.retries, 0);
}

TEST(ClientOptionsTest, ShortAndLongForms) {
  auto cmd = parse({"-s", "localhost", "-p", "7000"});
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(cmd->options.host, "localhost");
  EXPECT_EQ(cmd->options.port, 7000);

  cmd = parse({"--server=10.0.0.1", "--port", "1", "--connect-timeout", "0.25", "--retry", "4"});
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(cmd->options.host, "10.0.0.1");
  EXPECT_EQ(cmd->options.port, 1);
  EXPECT_EQ(cmd->options.connect_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(cmd->options.retries, 4);
}

TEST(ClientOptionsTest, HelpAndVersion) {
  auto cmd = parse({"-h"});
  ASSERT_TRUE(cmd.ok());
  EXPECT_EQ(cmd->action, ClientCommand::Action::kHelp);
  EXPECT_THAT(cmd->help, HasSubstr("--connect-timeout"));
  cmd = parse({"--version"});
  ASSERT_TRUE(cmd.ok());
  EXPECT_EQ(cmd->action, ClientCommand::Action::kVersion);
}

TEST(ClientOptionsTest, BadOptionsAreOneLineErrors) {
  for (auto args : {std::vector<const char*>{"--bogus"}, {"-p", "0"}, {"-p", "65536"},
                    {"-p", "abc"}, {"--connect-timeout", "0"}, {"--connect-timeout", "-1"},
                    {"--retry", "-1"}, {"extra"}, {"-p"}, {"-s", ""}}) {
    std::vector<const char*> argv = {"plexus-client"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto cmd = parseClientCommand(static_cast<int>(argv.size()), argv.data());
    ASSERT_FALSE(cmd.ok()) << args[0];
    EXPECT_EQ(cmd.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_FALSE(cmd.status().message().empty());
    EXPECT_EQ(cmd.status().message().find('\n'), std::string_view::npos) << cmd.status();
  }
}

}  // namespace
}  // namespace plexus::client
