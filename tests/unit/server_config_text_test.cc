// parseServerConfigText() reads a config as `plexus-server --config FILE` reads the same text from
// a file: the same settings and the same errors (the config_parser fuzz target relies on it).

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server_options.h"

namespace plexus::server {
namespace {

// `text` written to a temporary file, read through the command line.
absl::StatusOr<ServerConfig> throughFile(const std::string& text, std::string* path) {
  *path = ::testing::TempDir() + "plexus_config_text_XXXXXX";
  const int fd = ::mkstemp(path->data());
  if (fd < 0) return absl::InternalError("mkstemp failed");
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!written) return absl::InternalError("write failed");
  const char* argv[] = {"plexus-server", "--config", path->c_str(), nullptr};
  auto command = parseServerOptions(3, argv);
  ::unlink(path->c_str());
  if (!command.ok()) return command.status();
  return command->config;
}

// Every field a config file can set.
std::string describe(const ServerConfig& c) {
  std::string args;
  for (const auto& [k, v] : c.plugin_args) absl::StrAppend(&args, k, "=", v, ";");
  std::string listeners;
  for (const ListenerConfig& l : c.listeners) {
    absl::StrAppend(&listeners, "[", l.address.toIpPort(), " ", l.plugin, " ", l.spec);
    for (const auto& [k, v] : l.plugin_args) absl::StrAppend(&listeners, " ", k, "=", v);
    absl::StrAppend(&listeners, "]");
  }
  return absl::StrCat(
      "listen=", c.server.listen_address.toIpPort(), " threads=", c.server.threads,
      " engine=", c.server.engine.name, " mode=", static_cast<int>(c.server.engine.epoll_mode),
      " balance=", static_cast<int>(c.server.balance), " plugin=", c.plugin,
      " dirs=", c.plugin_dirs.size(), " args=", args,
      " max=", c.server.max_connections,
      " idle=", c.server.connection.idle_timeout.count(),
      " hwm=", c.server.connection.high_water_mark, " grace=", c.shutdown_timeout.count(),
      " log=", static_cast<int>(c.log_level), " stats=", c.print_stats,
      " file=", c.config_file, " listeners=", listeners);
}

TEST(ServerConfigTextTest, ReadsAsTheConfigFileDoes) {
  const std::vector<std::string> texts = {
      "",
      "port = 7000\nthreads = 3\nengine = poll\n",
      "listen = 127.0.0.1:7001\nplugin = upper\nplugin-arg = a=1\nplugin-arg = b=\n",
      "engine = epoll\nepoll-mode = edge\nbalance = least-connections\nstats = true\n",
      "idle-timeout = 0.25\nhigh-water-mark = 64K\nshutdown-timeout = 2\nlog-level = warn\n",
      "max-connections = 10\nplugin-dir = /a\nplugin-dir = /b\n# a comment\n",
      "listen = 127.0.0.1:7005 echo\nlisten = :7006 upper 'greeting=hello world'\n",
      // Refused, each with its own message.
      "port = 0\n",
      "engine = kqueue\n",
      "no-such-option = 1\n",
      "plugin-arg = novalue\n",
      "engine = poll\nepoll-mode = edge\n",
      "[section\n",
      "port = 1\nport = 2\n",
      "stats = maybe\n",
  };
  for (const std::string& text : texts) {
    std::string path;
    auto from_file = throughFile(text, &path);
    auto from_text = parseServerConfigText(text, path);
    ASSERT_EQ(from_file.ok(), from_text.ok()) << text << from_file.status() << from_text.status();
    if (from_file.ok()) {
      EXPECT_EQ(describe(*from_file), describe(*from_text)) << text;
    } else {
      EXPECT_EQ(from_file.status(), from_text.status()) << text;
    }
  }
}

TEST(ServerConfigTextTest, NamesTheConfigInErrors) {
  auto refused = parseServerConfigText("bogus = 1\n", "test.ini");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(),
            "config file 'test.ini': unrecognised option 'bogus'");
  auto accepted = parseServerConfigText("port = 7002\n");
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_EQ(accepted->server.listen_address.toIpPort(), "0.0.0.0:7002");
  EXPECT_EQ(accepted->config_file, "<config>");
}

// Boost.program_options' own what() loops forever on these (found by the config_parser fuzz
// target): a placeholder of its messages inside an option's name or value.
TEST(ServerConfigTextTest, PlaceholdersInNamesAndValuesAreQuotedAsTheyAre) {
  auto name = parseServerConfigText("st%original_token%ats = 1\n", "a.ini");
  ASSERT_FALSE(name.ok());
  EXPECT_EQ(name.status().message(),
            "config file 'a.ini': unrecognised option 'st%original_token%ats'");
  auto value = parseServerConfigText("stats = %value%\n", "a.ini");
  ASSERT_FALSE(value.ok());
  EXPECT_EQ(value.status().message(),
            "config file 'a.ini': the argument ('%value%') for option 'stats' is invalid. Valid "
            "choices are 'on|off', 'yes|no', '1|0' and 'true|false'");
  const char* argv[] = {"plexus-server", "--x%canonical_option%", nullptr};
  auto command_line = parseServerOptions(2, argv);
  ASSERT_FALSE(command_line.ok());
  EXPECT_EQ(command_line.status().message(), "unrecognised option '--x%canonical_option%'");
}

}  // namespace
}  // namespace plexus::server
