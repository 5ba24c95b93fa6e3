// plexus-server's options: defaults, every option, short forms, the config file, every error.

#include "server_options.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "plexus/plugin_loader.h"

namespace plexus::server {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

absl::StatusOr<ServerCommand> parse(std::vector<std::string> args) {
  args.insert(args.begin(), "plexus-server");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  return parseServerOptions(static_cast<int>(args.size()), argv.data());
}

// Parses a command line that must be valid and returns its config.
ServerConfig config(std::vector<std::string> args) {
  auto command = parse(std::move(args));
  EXPECT_TRUE(command.ok()) << command.status();
  if (!command.ok()) return {};
  EXPECT_EQ(command->action, ServerCommand::Action::kServe);
  return command->config;
}

// The error message of a command line that must be refused.
std::string error(std::vector<std::string> args) {
  auto command = parse(std::move(args));
  EXPECT_FALSE(command.ok());
  if (command.ok()) return "(accepted)";
  EXPECT_EQ(command.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(command.status().message());
}

// `dirs`, then the default plugin directories: --plugin-dir adds to the defaults, searched first.
std::vector<std::string> withDefaultDirs(std::vector<std::string> dirs) {
  for (const std::string& dir : defaultPluginDirs()) dirs.push_back(dir);
  return dirs;
}

class ConfigFile {
 public:
  explicit ConfigFile(const std::string& contents) {
    std::string tmpl = ::testing::TempDir() + "plexus_server_XXXXXX.ini";
    int fd = ::mkstemps(tmpl.data(), 4);
    ::close(fd);
    path_ = tmpl;
    std::ofstream(path_) << contents;
  }
  ~ConfigFile() { std::filesystem::remove(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ServerOptionsTest, Defaults) {
  ServerConfig c = config({});
  EXPECT_EQ(c.server.listen_address.toIpPort(), "0.0.0.0:9000");
  int cpus = static_cast<int>(std::thread::hardware_concurrency());
  EXPECT_EQ(c.server.threads, std::min(cpus, 1024));
  EXPECT_EQ(c.server.engine.name, "epoll");
  EXPECT_EQ(c.server.engine.epoll_mode, EpollMode::kOneshot);
  EXPECT_EQ(c.server.balance, LoadBalance::kRoundRobin);
  EXPECT_EQ(c.server.max_connections, 0u);
  EXPECT_EQ(c.server.connection.idle_timeout, Duration(0));
  EXPECT_EQ(c.server.connection.high_water_mark, 4u * 1024 * 1024);
  EXPECT_EQ(c.plugin, "echo");
  EXPECT_EQ(c.plugin_dirs, defaultPluginDirs());
  EXPECT_TRUE(c.plugin_args.empty());
  EXPECT_EQ(c.shutdown_timeout, seconds(5));
  EXPECT_EQ(c.log_level, LogLevel::kInfo);
  EXPECT_EQ(c.config_file, "");
}

TEST(ServerOptionsTest, EveryOption) {
  ServerConfig c = config({"--port",
                           "7001",
                           "--threads",
                           "3",
                           "--engine",
                           "epoll",
                           "--epoll-mode",
                           "edge",
                           "--balance",
                           "least-connections",
                           "--plugin",
                           "/x/y.so",
                           "--plugin-dir",
                           "/a",
                           "--plugin-dir",
                           "/b",
                           "--plugin-arg",
                           "k=v",
                           "--plugin-arg",
                           "expr=a=b",
                           "--plugin-arg",
                           "empty=",
                           "--max-connections",
                           "100",
                           "--idle-timeout",
                           "2.5",
                           "--high-water-mark",
                           "64K",
                           "--shutdown-timeout",
                           "0.25",
                           "--log-level",
                           "debug"});
  EXPECT_EQ(c.server.listen_address.toIpPort(), "0.0.0.0:7001");
  EXPECT_EQ(c.server.threads, 3);
  EXPECT_EQ(c.server.engine.name, "epoll");
  EXPECT_EQ(c.server.engine.epoll_mode, EpollMode::kEdge);
  EXPECT_EQ(c.server.balance, LoadBalance::kLeastConnections);
  EXPECT_EQ(c.plugin, "/x/y.so");
  EXPECT_EQ(c.plugin_dirs, withDefaultDirs({"/a", "/b"}));
  EXPECT_EQ(c.plugin_args, (PluginArgs{{"k", "v"}, {"expr", "a=b"}, {"empty", ""}}));
  EXPECT_EQ(c.server.max_connections, 100u);
  EXPECT_EQ(c.server.connection.idle_timeout, milliseconds(2500));
  EXPECT_EQ(c.server.connection.high_water_mark, 65536u);
  EXPECT_EQ(c.shutdown_timeout, milliseconds(250));
  EXPECT_EQ(c.log_level, LogLevel::kDebug);
}

// The tests run from the build tree's bin/ directory: the default is the build tree's plugins/
// alone, not a compiled-in install path (an installed binary looks beside itself instead; the
// install tests in tests/integration/install/ check that from a moved prefix).
TEST(ServerOptionsTest, DefaultPluginDirIsTheBuildTreesAlone) {
  EXPECT_EQ(defaultPluginDirs(), std::vector<std::string>{PLEXUS_PLUGIN_DIR});
}

TEST(ServerOptionsTest, PluginDirsAddToTheDefaultsAndComeFirst) {
  const std::vector<std::string> defaults = defaultPluginDirs();
  ASSERT_FALSE(defaults.empty());
  EXPECT_EQ(config({"--plugin-dir", "/a"}).plugin_dirs, withDefaultDirs({"/a"}));
  EXPECT_EQ(config({"--plugin-dir", "/b", "--plugin-dir", "/a"}).plugin_dirs,
            withDefaultDirs({"/b", "/a"}));
  // A directory given twice, or one of the defaults given again, is searched once, at its first
  // place.
  EXPECT_EQ(config({"--plugin-dir", "/a", "--plugin-dir", "/a"}).plugin_dirs, withDefaultDirs({"/a"}));
  std::vector<std::string> first_default = {defaults.front(), "/a"};
  for (size_t i = 1; i < defaults.size(); ++i) first_default.push_back(defaults[i]);
  EXPECT_EQ(config({"--plugin-dir", defaults.front(), "--plugin-dir", "/a"}).plugin_dirs,
            first_default);
  EXPECT_EQ(error({"--plugin-dir", ""}), "empty --plugin-dir");

  // The help says so, and names the default directory on a line of its own (not wrapped).
  auto help = parse({"--help"});
  ASSERT_TRUE(help.ok()) << help.status();
  const std::string& text = help->text;
  // program_options wraps long descriptions: compare with every run of blanks (line breaks and
  // indents included) made one space.
  std::string flat;
  for (char ch : text) {
    if (ch != ' ' && ch != '\n') {
      flat += ch;
    } else if (!flat.empty() && flat.back() != ' ') {
      flat += ' ';
    }
  }
  EXPECT_NE(flat.find("--plugin-dir DIR a directory to look for plugin names in, searched before "
                      "the default plugin directory (repeatable, in the order given)"),
            std::string::npos)
      << text;
  ASSERT_EQ(defaults.size(), 1u);
  EXPECT_NE(text.find("\nDefault plugin directory: " + defaults.front() +
                      " (after the --plugin-dir directories)\n"),
            std::string::npos)
      << text;
}

TEST(ServerOptionsTest, ShortAndEqualsForms) {
  EXPECT_EQ(config({"-p", "7002"}).server.listen_address.port(), 7002);
  EXPECT_EQ(config({"-p7003"}).server.listen_address.port(), 7003);
  EXPECT_EQ(config({"--port=7004"}).server.listen_address.port(), 7004);
  EXPECT_EQ(config({"--engine=select"}).server.engine.name, "select");
}

TEST(ServerOptionsTest, ThreadsRange) {
  EXPECT_EQ(config({"--threads", "0"}).server.threads, 0);
  EXPECT_EQ(config({"--threads", "1024"}).server.threads, 1024);
  EXPECT_EQ(error({"--threads", "-1"}), "invalid --threads '-1' (expected 0-1024)");
  EXPECT_EQ(error({"--threads", "1025"}), "invalid --threads '1025' (expected 0-1024)");
  EXPECT_EQ(error({"--threads", "two"}), "invalid --threads 'two' (expected 0-1024)");
}

TEST(ServerOptionsTest, Listen) {
  EXPECT_EQ(config({"--listen", "127.0.0.1:7005"}).server.listen_address.toIpPort(),
            "127.0.0.1:7005");
  EXPECT_EQ(config({"--listen", ":7006"}).server.listen_address.toIpPort(), "0.0.0.0:7006");
  // A host alone takes --port; --listen's own port wins over --port.
  EXPECT_EQ(config({"--listen", "127.0.0.1", "--port", "7007"}).server.listen_address.toIpPort(),
            "127.0.0.1:7007");
  EXPECT_EQ(
      config({"--port", "7008", "--listen", "127.0.0.1:7009"}).server.listen_address.toIpPort(),
      "127.0.0.1:7009");
  EXPECT_EQ(config({"--listen", "[::1]:7010"}).server.listen_address.toIpPort(), "[::1]:7010");
  EXPECT_EQ(config({"--listen", "localhost:7011"}).server.listen_address.port(), 7011);
  EXPECT_EQ(error({"--listen", "127.0.0.1:0"}), "invalid port '0' (expected 1-65535)");
  EXPECT_EQ(error({"--listen", "127.0.0.1:x"}), "invalid port 'x' (expected 1-65535)");
  EXPECT_EQ(error({"--listen", "[::1"}).rfind("invalid --listen '[::1'", 0), 0u);
  EXPECT_EQ(error({"--listen", "no.such.host.invalid:80"})
                .rfind("invalid --listen 'no.such.host.invalid:80': ", 0),
            0u);
}

TEST(ServerOptionsTest, Sizes) {
  EXPECT_EQ(*parseSize("0"), 0u);
  EXPECT_EQ(*parseSize("100"), 100u);
  EXPECT_EQ(*parseSize("100B"), 100u);
  EXPECT_EQ(*parseSize("64K"), 65536u);
  EXPECT_EQ(*parseSize("64k"), 65536u);
  EXPECT_EQ(*parseSize("64KB"), 65536u);
  EXPECT_EQ(*parseSize("64KiB"), 65536u);
  EXPECT_EQ(*parseSize("4M"), 4u << 20);
  EXPECT_EQ(*parseSize("1G"), 1u << 30);
  for (const char* bad :
       {"", "abc", "K", "-1", "12Q", "64KX", "64KBB", "1.5M", " 1", "99999999999G"}) {
    EXPECT_FALSE(parseSize(bad).ok()) << bad;
  }
  EXPECT_EQ(config({"--high-water-mark", "0"}).server.connection.high_water_mark, 0u);
  EXPECT_EQ(error({"--high-water-mark", "12Q"}),
            "invalid --high-water-mark '12Q' (expected bytes, e.g. 65536, 64K or 4M)");
}

TEST(ServerOptionsTest, BadValues) {
  EXPECT_EQ(error({"--engine", "foo"}), "unknown engine 'foo' (known: epoll, poll, select, uring)");
  EXPECT_EQ(error({"--epoll-mode", "sometimes"}),
            "unknown epoll mode 'sometimes' (known: oneshot, level, edge)");
  // A mode for an engine that has none was accepted silently.
  EXPECT_EQ(error({"--engine", "select", "--epoll-mode", "level"}),
            "--epoll-mode applies to --engine epoll only (the select engine has no modes)");
  EXPECT_EQ(config({"--engine", "poll"}).server.engine.name, "poll");
  EXPECT_EQ(error({"--balance", "random"}),
            "unknown balance 'random' (known: round-robin, least-connections)");
  EXPECT_EQ(error({"--port", "0"}), "invalid port '0' (expected 1-65535)");
  EXPECT_EQ(error({"--port", "70000"}), "invalid port '70000' (expected 1-65535)");
  EXPECT_EQ(error({"--port", "abc"}), "invalid port 'abc' (expected 1-65535)");
  EXPECT_EQ(error({"--port", "80x"}), "invalid port '80x' (expected 1-65535)");
  EXPECT_EQ(error({"--plugin-arg", "novalue"}),
            "invalid --plugin-arg 'novalue' (expected KEY=VALUE)");
  EXPECT_EQ(error({"--plugin-arg", "=v"}), "invalid --plugin-arg '=v' (expected KEY=VALUE)");
  EXPECT_EQ(error({"--plugin-arg", "k=1", "--plugin-arg", "k=2"}),
            "duplicate --plugin-arg key 'k'");
  EXPECT_EQ(error({"--max-connections", "-5"}),
            "invalid --max-connections '-5' (expected a count; 0: no limit)");
  EXPECT_EQ(error({"--idle-timeout", "-1"}),
            "invalid --idle-timeout '-1' (expected seconds >= 0, e.g. 30 or 0.5)");
  EXPECT_EQ(error({"--idle-timeout", "soon"}),
            "invalid --idle-timeout 'soon' (expected seconds >= 0, e.g. 30 or 0.5)");
  EXPECT_EQ(error({"--shutdown-timeout", "inf"}),
            "invalid --shutdown-timeout 'inf' (expected seconds >= 0, e.g. 30 or 0.5)");
  EXPECT_EQ(error({"--log-level", "loud"}),
            "unknown log level 'loud' (known: trace, debug, info, warn, error)");
  EXPECT_EQ(error({"--plugin", ""}), "empty --plugin");
}

TEST(ServerOptionsTest, CommandLineMistakes) {
  EXPECT_EQ(error({"--bogus"}), "unrecognised option '--bogus'");
  EXPECT_EQ(error({"--port"}), "the required argument for option '--port' is missing");
  EXPECT_EQ(error({"--port", "1", "--port", "2"}),
            "option '--port' cannot be specified more than once");
  EXPECT_EQ(error({"stray"}), "unexpected argument 'stray' (options start with --)");
  EXPECT_EQ(error({"--port", "7000", "8000"}),
            "unexpected argument '8000' (options start with --)");
  // No abbreviations: "--thread" is not "--threads".
  EXPECT_EQ(error({"--thread", "2"}), "unrecognised option '--thread'");
}

TEST(ServerOptionsTest, HelpListsEveryOptionWithItsDefault) {
  for (const char* flag : {"--help", "-h"}) {
    auto command = parse({flag});
    ASSERT_TRUE(command.ok()) << command.status();
    EXPECT_EQ(command->action, ServerCommand::Action::kHelp);
    const std::string& text = command->text;
    for (const char* option : {"--port",
                               "-p",
                               "--listen",
                               "--threads",
                               "--engine",
                               "--epoll-mode",
                               "--balance",
                               "--plugin ",
                               "--plugin-dir",
                               "--plugin-arg",
                               "--max-connections",
                               "--idle-timeout",
                               "--high-water-mark",
                               "--shutdown-timeout",
                               "--config",
                               "--log-level",
                               "--help",
                               "-h",
                               "--version",
                               "-v"}) {
      EXPECT_NE(text.find(option), std::string::npos) << option << "\n" << text;
    }
    for (const char* value : {"(=9000)", "(=epoll)", "(=oneshot)", "(=round-robin)", "(=echo)",
                              "(=4M)", "(=5)", "(=info)", "(=0)"}) {
      EXPECT_NE(text.find(value), std::string::npos) << value << "\n" << text;
    }
  }
  // Help wins even next to a bad value.
  auto command = parse({"--engine", "foo", "--help"});
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_EQ(command->action, ServerCommand::Action::kHelp);
}

TEST(ServerOptionsTest, Version) {
  for (const char* flag : {"--version", "-v"}) {
    auto command = parse({flag});
    ASSERT_TRUE(command.ok()) << command.status();
    EXPECT_EQ(command->action, ServerCommand::Action::kVersion);
    EXPECT_EQ(command->text, "plexus-server 0.1.0\n");
  }
}

TEST(ServerOptionsTest, ConfigFileWithCommandLineWinning) {
  ConfigFile file(
      "# a comment\n"
      "port = 7100\n"
      "threads = 1\n"
      "engine = select\n"
      "plugin = testproto\n"
      "plugin-dir = /from/file\n"
      "plugin-arg = greeting=hi\n"
      "plugin-arg = x=y=z\n"
      "idle-timeout = 30\n"
      "high-water-mark = 1M\n"
      "log-level = warn\n");
  ServerConfig c = config({"--config", file.path(), "--port", "7101", "--engine", "poll"});
  EXPECT_EQ(c.config_file, file.path());
  EXPECT_EQ(c.server.listen_address.port(), 7101);  // command line
  EXPECT_EQ(c.server.engine.name, "poll");          // command line
  EXPECT_EQ(c.server.threads, 1);                   // file
  EXPECT_EQ(c.plugin, "testproto");
  EXPECT_EQ(c.plugin_dirs, withDefaultDirs({"/from/file"}));
  EXPECT_EQ(c.plugin_args, (PluginArgs{{"greeting", "hi"}, {"x", "y=z"}}));
  EXPECT_EQ(c.server.connection.idle_timeout, seconds(30));
  EXPECT_EQ(c.server.connection.high_water_mark, 1u << 20);
  EXPECT_EQ(c.log_level, LogLevel::kWarn);

  // A repeatable option given on the command line replaces the file's list, it does not add to it.
  ServerConfig d = config({"--config", file.path(), "--plugin-arg", "greeting=yo"});
  EXPECT_EQ(d.plugin_args, (PluginArgs{{"greeting", "yo"}}));
}

TEST(ServerOptionsTest, ConfigFileErrors) {
  EXPECT_EQ(error({"--config", "/no/such/file.ini"}),
            "cannot read config file '/no/such/file.ini': No such file or directory");
  EXPECT_EQ(error({"--config", ::testing::TempDir()}),
            "cannot read config file '" + ::testing::TempDir() + "': Is a directory");

  ConfigFile unknown("bogus = 1\n");
  EXPECT_EQ(error({"--config", unknown.path()}),
            "config file '" + unknown.path() + "': unrecognised option 'bogus'");

  ConfigFile malformed("port 7000\n");
  std::string message = error({"--config", malformed.path()});
  EXPECT_EQ(message.rfind("config file '" + malformed.path() + "': ", 0), 0u) << message;

  ConfigFile nested("config = other.ini\n");
  EXPECT_EQ(error({"--config", nested.path()}),
            "config file '" + nested.path() + "': unrecognised option 'config'");

  ConfigFile bad_value("engine = kqueue\n");
  EXPECT_EQ(error({"--config", bad_value.path()}),
            "unknown engine 'kqueue' (known: epoll, poll, select, uring)");
}

}  // namespace
}  // namespace plexus::server

namespace plexus::server {
namespace {

TEST(ServerOptionsTest, StatsSwitch) {
  EXPECT_FALSE(config({}).print_stats);
  EXPECT_TRUE(config({"--stats"}).print_stats);
}

}  // namespace
}  // namespace plexus::server

// Several listeners: --listen ADDR [PLUGIN [KEY=VALUE ...]], repeatable, also in the config file.
namespace plexus::server {
namespace {

std::vector<std::string> words(std::string_view text) {
  auto split = splitListenWords(text);
  EXPECT_TRUE(split.ok()) << text << ": " << split.status();
  return split.ok() ? *split : std::vector<std::string>{"(refused)"};
}

std::string wordsError(std::string_view text) {
  auto split = splitListenWords(text);
  EXPECT_FALSE(split.ok()) << text;
  return split.ok() ? "(accepted)" : std::string(split.status().message());
}

using Words = std::vector<std::string>;

TEST(ListenWordsTest, SplitsLikeAShell) {
  EXPECT_EQ(words(""), Words{});
  EXPECT_EQ(words(" \t "), Words{});
  EXPECT_EQ(words(":7000"), Words{":7000"});
  EXPECT_EQ(words("  :7000   echo\t"), (Words{":7000", "echo"}));
  EXPECT_EQ(words(":7000 p k=v x=a=b"), (Words{":7000", "p", "k=v", "x=a=b"}));
  // Blanks, commas, colons and '=' inside quotes; the quotes themselves go.
  EXPECT_EQ(words(":80 http \"route=return:/hello=200 Hello, World!\""),
            (Words{":80", "http", "route=return:/hello=200 Hello, World!"}));
  EXPECT_EQ(words(":80 http 'route=return:/hello=200 Hello, World!'"),
            (Words{":80", "http", "route=return:/hello=200 Hello, World!"}));
  EXPECT_EQ(words("a=\"b c\"'d e'f"), Words{"a=b cd ef"});
  // '' and "" are empty words, not nothing.
  EXPECT_EQ(words("'' \"\""), (Words{"", ""}));
  EXPECT_EQ(words("k="), Words{"k="});
  // Single quotes keep everything, backslashes and double quotes included.
  EXPECT_EQ(words(R"('a\"b\\c')"), Words{R"(a\"b\\c)"});
  // In double quotes \" and \\ are escapes; any other backslash stays.
  EXPECT_EQ(words(R"("say \"hi\" \\ \n")"), Words{R"(say "hi" \ \n)"});
  EXPECT_EQ(words(R"("it's")"), Words{"it's"});
  // Outside quotes a backslash takes the next character as it is: a blank, a quote.
  EXPECT_EQ(words(R"(a\ b \'c \\d)"), (Words{"a b", "'c", R"(\d)"}));
}

TEST(ListenWordsTest, RefusesWhatIsNotClosed) {
  EXPECT_EQ(wordsError("'abc"), "a ' quote is not closed");
  EXPECT_EQ(wordsError(":7000 p \"k=v"), "a \" quote is not closed");
  EXPECT_EQ(wordsError(R"("k=\")"), "a \" quote is not closed");
  EXPECT_EQ(wordsError("abc\\"), "a backslash ends it");
}

TEST(ServerOptionsTest, OneListenerWithoutListen) {
  ServerConfig c = config({});
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].address.toIpPort(), "0.0.0.0:9000");
  EXPECT_EQ(c.listeners[0].plugin, "echo");
  EXPECT_TRUE(c.listeners[0].plugin_args.empty());
  EXPECT_EQ(c.listeners[0].spec, "");

  c = config({"--port", "7001", "--plugin", "p", "--plugin-arg", "k=v"});
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].address.toIpPort(), "0.0.0.0:7001");
  EXPECT_EQ(c.listeners[0].plugin, "p");
  EXPECT_EQ(c.listeners[0].plugin_args, (PluginArgs{{"k", "v"}}));

  // The one-address --listen of before: one listener, on --plugin.
  c = config({"--listen", "127.0.0.1:7005", "--plugin", "p"});
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].address.toIpPort(), "127.0.0.1:7005");
  EXPECT_EQ(c.listeners[0].plugin, "p");
  EXPECT_EQ(c.listeners[0].spec, "127.0.0.1:7005");
  EXPECT_EQ(c.server.listen_address.toIpPort(), "127.0.0.1:7005");
}

TEST(ServerOptionsTest, SeveralListeners) {
  ServerConfig c = config({"--listen", ":7000 echo", "--listen",
                           "127.0.0.1:7001 testproto greeting=hi \"motd=Hello, World!\" x=a:b,c=d",
                           "--listen", "[::1]:7002 /x/y.so", "--threads", "3"});
  ASSERT_EQ(c.listeners.size(), 3u);
  EXPECT_EQ(c.listeners[0].address.toIpPort(), "0.0.0.0:7000");
  EXPECT_EQ(c.listeners[0].plugin, "echo");
  EXPECT_TRUE(c.listeners[0].plugin_args.empty());
  EXPECT_EQ(c.listeners[0].spec, ":7000 echo");
  EXPECT_EQ(c.listeners[1].address.toIpPort(), "127.0.0.1:7001");
  EXPECT_EQ(c.listeners[1].plugin, "testproto");
  EXPECT_EQ(c.listeners[1].plugin_args,
            (PluginArgs{{"greeting", "hi"}, {"motd", "Hello, World!"}, {"x", "a:b,c=d"}}));
  EXPECT_EQ(c.listeners[2].address.toIpPort(), "[::1]:7002");
  EXPECT_EQ(c.listeners[2].plugin, "/x/y.so");
  EXPECT_TRUE(c.listeners[2].plugin_args.empty());
  // Shared by all: the first listener's address stands in server.listen_address.
  EXPECT_EQ(c.server.threads, 3);
  EXPECT_EQ(c.server.listen_address.toIpPort(), "0.0.0.0:7000");

  // An argument with blanks, '=', ',' and ':' (the http plugin's canned replies), split at its
  // first '='.
  c = config({"--listen", ":8080 http \"return:/hello=200 Hello, World!\" root=/srv/www"});
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].plugin, "http");
  EXPECT_EQ(c.listeners[0].plugin_args,
            (PluginArgs{{"return:/hello", "200 Hello, World!"}, {"root", "/srv/www"}}));
  c = config({"--listen", ":8080 http 'return:/a=200 x=y, z'"});
  EXPECT_EQ(c.listeners[0].plugin_args, (PluginArgs{{"return:/a", "200 x=y, z"}}));
}

// --port gives its port to a --listen HOST; --plugin and --plugin-arg serve each --listen that
// names no plugin. Neither makes a listener of its own beside --listen.
TEST(ServerOptionsTest, ListenWithoutAPluginTakesPluginAndPluginArg) {
  ServerConfig c = config({"--plugin", "p", "--plugin-arg", "k=v", "--port", "7100", "--listen",
                           "127.0.0.1", "--listen", ":7101 echo", "--listen", "[::1]:7102"});
  ASSERT_EQ(c.listeners.size(), 3u);
  EXPECT_EQ(c.listeners[0].address.toIpPort(), "127.0.0.1:7100");
  EXPECT_EQ(c.listeners[0].plugin, "p");
  EXPECT_EQ(c.listeners[0].plugin_args, (PluginArgs{{"k", "v"}}));
  EXPECT_EQ(c.listeners[1].address.toIpPort(), "0.0.0.0:7101");
  EXPECT_EQ(c.listeners[1].plugin, "echo");
  EXPECT_TRUE(c.listeners[1].plugin_args.empty());
  EXPECT_EQ(c.listeners[2].address.toIpPort(), "[::1]:7102");
  EXPECT_EQ(c.listeners[2].plugin, "p");
  EXPECT_EQ(c.listeners[2].plugin_args, (PluginArgs{{"k", "v"}}));

  // A --listen naming echo next to the default --plugin (echo, not given): no conflict.
  EXPECT_EQ(config({"--listen", ":7103 echo"}).listeners.size(), 1u);
}

TEST(ServerOptionsTest, ListenErrors) {
  EXPECT_EQ(error({"--listen", ""}),
            "empty --listen (expected ADDR [PLUGIN [KEY=VALUE ...]], e.g. ':7000 echo')");
  EXPECT_EQ(error({"--listen", "  "}),
            "empty --listen (expected ADDR [PLUGIN [KEY=VALUE ...]], e.g. ':7000 echo')");
  EXPECT_EQ(error({"--listen", ":7000 p 'k=v"}),
            "invalid --listen ':7000 p 'k=v': a ' quote is not closed");
  EXPECT_EQ(error({"--listen", ":7000 p k=v\\"}),
            "invalid --listen ':7000 p k=v\\': a backslash ends it");
  EXPECT_EQ(error({"--listen", ":0 echo"}), "invalid port '0' (expected 1-65535)");
  EXPECT_EQ(error({"--listen", ":70000 echo"}), "invalid port '70000' (expected 1-65535)");
  EXPECT_EQ(error({"--listen", "[::1 echo"}),
            "invalid --listen '[::1 echo' (expected HOST:PORT, [IPV6]:PORT, :PORT or HOST)");
  EXPECT_EQ(error({"--listen", "1.2.3:80 echo"}),
            "invalid --listen '1.2.3:80 echo': '1.2.3' is not an IPv4 address in dotted-quad "
            "form (like 127.0.0.1)");
  EXPECT_EQ(error({"--listen", ":7000 ''"}), "empty plugin in --listen ':7000 '''");
  EXPECT_EQ(error({"--listen", ":7000 p novalue"}),
            "invalid plugin argument 'novalue' in --listen ':7000 p novalue' (expected KEY=VALUE)");
  EXPECT_EQ(error({"--listen", ":7000 p =v"}),
            "invalid plugin argument '=v' in --listen ':7000 p =v' (expected KEY=VALUE)");
  EXPECT_EQ(error({"--listen", ":7000 p k=1 k=2"}),
            "duplicate plugin argument key 'k' in --listen ':7000 p k=1 k=2'");
  // One address twice, however it is spelled.
  EXPECT_EQ(error({"--listen", ":7000 echo", "--listen", "0.0.0.0:7000 p"}),
            "listen address 0.0.0.0:7000 given twice (--listen ':7000 echo' and --listen "
            "'0.0.0.0:7000 p')");
  EXPECT_EQ(error({"--port", "7000", "--listen", "127.0.0.1", "--listen", "127.0.0.1:7000 p"}),
            "listen address 127.0.0.1:7000 given twice (--listen '127.0.0.1' and --listen "
            "'127.0.0.1:7000 p')");
  // --plugin or --plugin-arg that no listener takes.
  EXPECT_EQ(error({"--plugin", "p", "--listen", ":7000 echo"}),
            "--plugin is not used: every --listen names its own plugin");
  EXPECT_EQ(error({"--plugin-arg", "k=v", "--listen", ":7000 echo", "--listen", ":7001 p"}),
            "--plugin-arg is not used: every --listen names its own plugin (give its arguments "
            "after the plugin in --listen)");
  // The --plugin-arg errors stay as they were.
  EXPECT_EQ(error({"--plugin-arg", "novalue", "--listen", ":7000"}),
            "invalid --plugin-arg 'novalue' (expected KEY=VALUE)");
}

TEST(ServerOptionsTest, ListenersInTheConfigFile) {
  ConfigFile file(
      "threads = 2\n"
      "plugin = p\n"
      "plugin-arg = k=v\n"
      "listen = :7200 echo\n"
      "listen =   127.0.0.1:7201   testproto \"greeting=Hello, World!\" 'x=a:b'  \n"
      "listen = [::1]:7202\n");
  ServerConfig c = config({"--config", file.path()});
  ASSERT_EQ(c.listeners.size(), 3u);
  EXPECT_EQ(c.listeners[0].address.toIpPort(), "0.0.0.0:7200");
  EXPECT_EQ(c.listeners[0].plugin, "echo");
  EXPECT_TRUE(c.listeners[0].plugin_args.empty());
  EXPECT_EQ(c.listeners[1].address.toIpPort(), "127.0.0.1:7201");
  EXPECT_EQ(c.listeners[1].plugin, "testproto");
  EXPECT_EQ(c.listeners[1].plugin_args,
            (PluginArgs{{"greeting", "Hello, World!"}, {"x", "a:b"}}));
  EXPECT_EQ(c.listeners[2].address.toIpPort(), "[::1]:7202");
  EXPECT_EQ(c.listeners[2].plugin, "p");
  EXPECT_EQ(c.listeners[2].plugin_args, (PluginArgs{{"k", "v"}}));
  EXPECT_EQ(c.server.threads, 2);

  // --listen on the command line replaces the file's listeners, as every repeatable option does.
  ServerConfig d = config({"--config", file.path(), "--listen", ":7300"});
  ASSERT_EQ(d.listeners.size(), 1u);
  EXPECT_EQ(d.listeners[0].address.toIpPort(), "0.0.0.0:7300");
  EXPECT_EQ(d.listeners[0].plugin, "p");

  ConfigFile twice("listen = :7400 echo\nlisten = :7400 echo\n");
  EXPECT_EQ(error({"--config", twice.path()}),
            "listen address 0.0.0.0:7400 given twice (--listen ':7400 echo' and --listen ':7400 "
            "echo')");
  ConfigFile open_quote("listen = :7400 p 'k=v\n");
  EXPECT_EQ(error({"--config", open_quote.path()}),
            "invalid --listen ':7400 p 'k=v': a ' quote is not closed");
}

TEST(ServerOptionsTest, HelpShowsTheListenerForm) {
  auto help = parse({"--help"});
  ASSERT_TRUE(help.ok()) << help.status();
  const std::string& text = help->text;
  EXPECT_NE(text.find("--listen ADDR [PLUGIN [KEY=VALUE ...]]"), std::string::npos) << text;
  EXPECT_NE(text.find("plexus-server --listen ':7000 echo' --listen"), std::string::npos) << text;
  EXPECT_NE(text.find("'listen = :7000 echo'"), std::string::npos) << text;
}

}  // namespace
}  // namespace plexus::server

namespace plexus::server {
namespace {

TEST(ServerOptionsAdminTest, AdminListenIsOffByDefaultAndParsed) {
  EXPECT_FALSE(config({}).admin_listen.has_value());
  ServerConfig c = config({"--admin-listen", "127.0.0.1:9100"});
  ASSERT_TRUE(c.admin_listen.has_value());
  EXPECT_EQ(c.admin_listen->toIpPort(), "127.0.0.1:9100");
  EXPECT_EQ(config({"--admin-listen", "127.0.0.1:0"}).admin_listen->port(), 0);
  EXPECT_EQ(error({"--admin-listen", "127.0.0.1:99999"})
                .rfind("invalid --admin-listen '127.0.0.1:99999'", 0),
            0u);
}

TEST(ServerOptionsAdminTest, AdminListenFromTheConfigFile) {
  ConfigFile file("admin-listen = 127.0.0.1:9101\n");
  ServerConfig c = config({"--config", file.path()});
  ASSERT_TRUE(c.admin_listen.has_value());
  EXPECT_EQ(c.admin_listen->toIpPort(), "127.0.0.1:9101");
}

}  // namespace
}  // namespace plexus::server
