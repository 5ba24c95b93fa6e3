#pragma once
// plexus-server's command line and config file, parsed apart from main() so that tests can check
// every option. Boost.program_options stays in server_options.cc.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "plexus/log.h"
#include "plexus/plugin.h"
#include "plexus/tcp_server.h"

namespace plexus::server {

inline constexpr uint16_t kDefaultPort = 9000;
inline constexpr int kMaxThreads = 1024;
inline constexpr int kMaxWorkers = 256;

// One listening address and the plugin that serves it. Each listener is a TcpServer of its own; all
// of them share the base loop and the --threads sub-reactors.
struct ListenerConfig {
  InetAddress address;
  std::string plugin;  // a name or a path
  PluginArgs plugin_args;
  // The --listen value (or config file line) it came from; empty for the one listener made from
  // --port, --plugin and --plugin-arg alone.
  std::string spec;
  // A listening socket inherited through socket activation (server/systemd.h) to serve instead of
  // binding `address`; -1: none.
  int inherited_fd = -1;
};

struct ServerConfig {
  // threads, engine, balance, max connections, per-connection limits: the same for every listener.
  // Its listen_address is the first listener's.
  TcpServerOptions server;
  // --plugin and --plugin-arg: the plugin of every listener whose --listen names none.
  std::string plugin = "echo";           // a name or a path
  // Where a plugin name is looked for, in order: the --plugin-dir directories, then
  // defaultPluginDirs() (plexus/plugin_loader.h).
  std::vector<std::string> plugin_dirs;
  PluginArgs plugin_args;
  // Never empty: one per --listen, in the order given, or the one on --port with --plugin.
  std::vector<ListenerConfig> listeners;
  Duration shutdown_timeout = std::chrono::seconds(5);
  LogLevel log_level = LogLevel::kInfo;
  bool print_stats = false;  // --stats
  // --workers: worker processes under a supervisor (server/supervisor.h); 0: none, serve here.
  int workers = 0;
  bool supervised = false;  // set in a --workers worker (not an option)
  // Set in a --workers worker started after the supervisor forwarded a SIGHUP (not an option): it
  // reloads once it listens, so that it serves what its reloaded siblings serve.
  bool reload_at_start = false;
  // --admin-listen HOST:PORT: where /metrics and /healthz are served; unset: no admin listener.
  std::optional<InetAddress> admin_listen;
  std::string config_file;  // empty: none was given
  // The command line it was parsed from (argv[0] first), to parse again on reload (SIGHUP): the
  // config file is read anew and the command line still wins over it. Empty for a config made by
  // parseServerConfigText().
  std::vector<std::string> argv;
};

struct ServerCommand {
  enum class Action { kServe, kHelp, kVersion };
  Action action = Action::kServe;
  ServerConfig config;  // kServe only
  std::string text;     // kHelp / kVersion: what to print on stdout
};

// Parses the command line (argv[0] is the program name) and the --config file, if any; the command
// line wins over the file. Errors are one line, without the program name, e.g.
// "unknown engine 'foo' (known: epoll, poll, select, uring)"; main prints "plexus-server: error: " before.
absl::StatusOr<ServerCommand> parseServerOptions(int argc, const char* const argv[]);

// Splits a --listen value into words the way a POSIX shell splits unquoted text, so that a plugin
// argument may hold blanks: words are separated by blanks (space, tab, CR, LF); '...' is literal;
// in "...", \" and \\ stand for " and \ (any other backslash stays); outside quotes, \c is c.
// "'" or "\"" without its closing quote, or a backslash at the end, is an error.
absl::StatusOr<std::vector<std::string>> splitListenWords(std::string_view text);

// Parses `text` as the contents of a --config file given alone on the command line
// (`plexus-server --config NAME`): the same settings, defaults and errors, `name` standing for the
// file in them. For tests and the config_parser fuzz target (tests/fuzz/), which need no file.
absl::StatusOr<ServerConfig> parseServerConfigText(std::string_view text,
                                                   std::string_view name = "<config>");

// "65536", "64K", "4M", "1G" (also "64k", "64KB", "64KiB"): bytes, with binary suffixes.
absl::StatusOr<size_t> parseSize(const std::string& text);

}  // namespace plexus::server
