#include "server_options.h"

#include <algorithm>
#include <boost/program_options.hpp>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "plexus/engine.h"
#include "plexus/plugin_loader.h"
#include "plexus/version.h"

namespace plexus::server {

namespace po = boost::program_options;

namespace {

constexpr const char* kUsage =
    "Usage: plexus-server [options]\n"
    "A multi-reactor TCP server; a protocol plugin (echo by default) serves each connection.\n"
    "Every option except --help, --version and --config may also be set in the --config file\n"
    "(INI: 'port = 9000', 'plugin-arg = key=value'); the command line wins over the file.\n"
    "Several listeners, each with its own address and plugin, share the --threads loops:\n"
    "  plexus-server --listen ':7000 echo' --listen '127.0.0.1:7001 NAME k=v \"text=Hi, you\"'\n"
    "or in the --config file, one line per listener: 'listen = :7000 echo'.\n";

template <typename T>
bool parseInteger(const std::string& text, T* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end && !text.empty();
}

absl::StatusOr<uint16_t> parsePort(const std::string& text) {
  int port = 0;
  if (!parseInteger(text, &port) || port < 1 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid port '%s' (expected 1-65535)", text));
  }
  return static_cast<uint16_t>(port);
}

absl::StatusOr<Duration> parseSeconds(const std::string& option, const std::string& text) {
  double seconds = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, seconds);
  // Up to ten years: far below what a nanosecond count can hold.
  if (ec != std::errc() || ptr != end || text.empty() || !std::isfinite(seconds) || seconds < 0 ||
      seconds > 10 * 365 * 86400.0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid --%s '%s' (expected seconds >= 0, e.g. 30 or 0.5)", option, text));
  }
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(seconds));
}

// HOST:PORT, [V6]:PORT, :PORT, HOST or [V6] (then with `port`). `shown`: the --listen value the
// address came from, for the error messages.
absl::StatusOr<InetAddress> parseListen(const std::string& text, uint16_t port,
                                        const std::string& shown) {
  std::string host = text;
  std::optional<std::string> port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || (close + 1 < text.size() && text[close + 1] != ':')) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "invalid --listen '%s' (expected HOST:PORT, [IPV6]:PORT, :PORT or HOST)", shown));
    }
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) port_text = text.substr(close + 2);
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    size_t colon = text.find(':');
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }  // else a host alone, or a bare IPv6 address: the port comes from --port
  if (port_text) {
    auto parsed = parsePort(*port_text);
    if (!parsed.ok()) return parsed.status();
    port = *parsed;
  }
  if (host.empty()) return InetAddress(port);
  auto addr = InetAddress::resolve(host, port);
  if (!addr.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid --listen '%s': %s", shown, addr.status().message()));
  }
  return addr;
}

// `listen`: the --listen value the items came from; empty for --plugin-arg's.
absl::StatusOr<PluginArgs> parsePluginArgs(const std::vector<std::string>& items,
                                           const std::string& listen = {}) {
  PluginArgs args;
  for (const std::string& item : items) {
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          listen.empty()
              ? absl::StrFormat("invalid --plugin-arg '%s' (expected KEY=VALUE)", item)
              : absl::StrFormat(
                    "invalid plugin argument '%s' in --listen '%s' (expected KEY=VALUE)", item,
                    listen));
    }
    if (!args.emplace(item.substr(0, eq), item.substr(eq + 1)).second) {
      return absl::InvalidArgumentError(
          listen.empty() ? absl::StrFormat("duplicate --plugin-arg key '%s'", item.substr(0, eq))
                         : absl::StrFormat("duplicate plugin argument key '%s' in --listen '%s'",
                                           item.substr(0, eq), listen));
    }
  }
  return args;
}

// One --listen value: ADDR [PLUGIN [KEY=VALUE ...]]. A value that names no plugin is served by
// `default_plugin` with `default_args` (and sets *took_defaults).
absl::StatusOr<ListenerConfig> parseListener(const std::string& value, uint16_t default_port,
                                             const std::string& default_plugin,
                                             const PluginArgs& default_args, bool* took_defaults) {
  auto words = splitListenWords(value);
  if (!words.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid --listen '%s': %s", value, words.status().message()));
  }
  if (words->empty()) {
    return absl::InvalidArgumentError(
        "empty --listen (expected ADDR [PLUGIN [KEY=VALUE ...]], e.g. ':7000 echo')");
  }
  ListenerConfig listener;
  listener.spec = value;
  auto addr = parseListen((*words)[0], default_port, value);
  if (!addr.ok()) return addr.status();
  listener.address = *addr;
  if (words->size() == 1) {
    listener.plugin = default_plugin;
    listener.plugin_args = default_args;
    *took_defaults = true;
    return listener;
  }
  listener.plugin = (*words)[1];
  if (listener.plugin.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat("empty plugin in --listen '%s'", value));
  }
  auto args = parsePluginArgs(std::vector<std::string>(words->begin() + 2, words->end()), value);
  if (!args.ok()) return args.status();
  listener.plugin_args = *std::move(args);
  return listener;
}

int defaultThreads() {
  return std::min(static_cast<int>(std::thread::hardware_concurrency()), kMaxThreads);
}

std::string toString(const std::vector<std::string>& v) { return absl::StrJoin(v, ", "); }

// Boost.program_options (1.74) makes an error's message by replacing each of its placeholders
// ("%canonical_option%", "%value%", ...) until none is left, so an option name or value that holds
// one ("st%original_token%ats = 1" in a config file) makes what() loop forever. This makes the
// same message in one pass over the template: what is substituted is never read again.
class SafeErrorText final : public po::error_with_option_name {
 public:
  explicit SafeErrorText(const po::error_with_option_name& e) : po::error_with_option_name(e) {}
  std::string text() const {
    std::map<std::string, std::string> values(m_substitutions);
    values["canonical_option"] = get_canonical_option_name();
    values["prefix"] = get_canonical_option_prefix();
    std::vector<std::pair<std::string, std::string>> tokens;  // placeholder -> text
    for (const auto& [name, from_to] : m_substitution_defaults) {
      if (values[name].empty()) tokens.push_back(from_to);
    }
    for (const auto& [name, value] : values) tokens.emplace_back("%" + name + "%", value);
    std::string out;
    const std::string& t = m_error_template;
    for (size_t i = 0; i < t.size();) {
      auto match = std::find_if(tokens.begin(), tokens.end(), [&](const auto& token) {
        return !token.first.empty() && t.compare(i, token.first.size(), token.first) == 0;
      });
      if (match == tokens.end()) {
        out.push_back(t[i++]);
      } else {
        out.append(match->second);
        i += match->first.size();
      }
    }
    return out;
  }
};

// What a program_options error says, never through what() when placeholders are involved.
std::string errorText(const po::error& e) {
  if (const auto* named = dynamic_cast<const po::error_with_option_name*>(&e)) {
    return SafeErrorText(*named).text();
  }
  return e.what();
}

// The options a config file may set; the command line has these plus help, version and config.
po::options_description settingsDescription(const ServerConfig& defaults) {
  const ConnectionOptions& conn = defaults.server.connection;
  po::options_description desc("Options");
  // clang-format off
  desc.add_options()
    ("port,p", po::value<std::string>()->default_value(std::to_string(kDefaultPort)),
        "TCP port to listen on (1-65535)")
    // The config file's `listen` lines add up; --listen on the command line replaces them all (as
    // with --plugin-arg).
    ("listen", po::value<std::vector<std::string>>()->value_name("ADDR [PLUGIN [KEY=VALUE ...]]"),
        "listen on ADDR (HOST:PORT, [IPV6]:PORT, :PORT, or HOST on --port), served by PLUGIN with "
        "its KEY=VALUE arguments, quoted as in a shell (default: --plugin with --plugin-arg); "
        "repeatable, one listener each (default: 0.0.0.0 on --port)")
    ("threads", po::value<std::string>()->default_value(std::to_string(defaultThreads())),
        "sub-reactor threads, 0-1024; 0 serves everything on the main loop (default: one per CPU)")
    ("engine", po::value<std::string>()->default_value("epoll"),
        ("I/O engine: " + toString(engineNames())).c_str())
    ("epoll-mode", po::value<std::string>()->default_value("oneshot"),
        "epoll triggering: oneshot, level or edge")
    ("balance", po::value<std::string>()->default_value("round-robin"),
        "how connections go to threads: round-robin or least-connections")
    ("reuseport", po::bool_switch()->default_value(false),
        "listen with SO_REUSEPORT, so that other plexus-server processes can listen on the same "
        "address (zero-downtime upgrade: start the new one, then SIGTERM the old one)")
    ("accept-mode", po::value<std::string>()->default_value("handoff"),
        "handoff: the main loop accepts and hands connections to the threads; reuseport: each "
        "thread has its own SO_REUSEPORT listening socket and accepts for itself")
    ("workers", po::value<std::string>()->default_value("0"),
        "run this many worker processes (each a whole server with --threads, on SO_REUSEPORT "
        "listeners) under a supervisor that restarts a crashed one; 0: one process, no supervisor")
    ("plugin", po::value<std::string>()->default_value(defaults.plugin),
        "protocol plugin (of each --listen that names none): a name (NAME.so in the plugin dirs) "
        "or a path to a .so")
    // No default_value: the directories given add to the default ones instead of replacing them.
    // (The help names the default after the table, where a long path is not wrapped.)
    ("plugin-dir", po::value<std::vector<std::string>>()->value_name("DIR"),
        "a directory to look for plugin names in, searched before the default plugin directory "
        "(repeatable, in the order given)")
    ("plugin-arg", po::value<std::vector<std::string>>()->value_name("KEY=VALUE"),
        "argument for the plugin (repeatable; default: none)")
    ("max-connections", po::value<std::string>()->default_value("0"),
        "connections beyond this many (on one listener) are closed at once; 0: no limit")
    ("idle-timeout", po::value<std::string>()->default_value("0"),
        "close a connection idle this many seconds (fractions allowed); 0: never")
    ("high-water-mark", po::value<std::string>()->default_value(
        std::to_string(conn.high_water_mark / (1024 * 1024)) + "M"),
        "pause reading a connection while this much output is queued (bytes; K, M, G suffixes); "
        "0: no limit")
    ("shutdown-timeout", po::value<std::string>()->default_value("5"),
        "on SIGTERM/SIGINT, seconds given to connections to flush before they are closed")
    ("log-level", po::value<std::string>()->default_value("info"),
        "trace, debug, info, warn or error")
    ("stats", po::bool_switch()->default_value(false),
        "at exit, print the loops' syscall counters as one line 'stats: {json}' on stderr")
    ("admin-listen", po::value<std::string>()->value_name("HOST:PORT"),
        "serve /metrics (Prometheus) and /healthz over HTTP on HOST:PORT (port 0: any free "
        "port, logged); default: no admin listener");
  // clang-format on
  return desc;
}

absl::Status readConfigFile(const std::string& file, const po::options_description& desc,
                            po::variables_map* vm) {
  std::error_code fs_ec;
  if (std::filesystem::is_directory(file, fs_ec)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot read config file '%s': %s", file, std::strerror(EISDIR)));
  }
  std::ifstream in(file);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot read config file '%s': %s", file, std::strerror(errno)));
  }
  try {
    po::store(po::parse_config_file(in, desc, /*allow_unregistered=*/false), *vm);
  } catch (const po::error& e) {
    return absl::InvalidArgumentError(absl::StrFormat("config file '%s': %s", file, errorText(e)));
  }
  return absl::OkStatus();
}

// Turns the stored strings into a config; `vm` holds every setting (defaults included).
absl::StatusOr<ServerConfig> buildConfig(const po::variables_map& vm, ServerConfig config) {
  auto get = [&vm](const char* name) { return vm[name].as<std::string>(); };

  auto port = parsePort(get("port"));
  if (!port.ok()) return port.status();

  const std::string threads = get("threads");
  if (!parseInteger(threads, &config.server.threads) || config.server.threads < 0 ||
      config.server.threads > kMaxThreads) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid --threads '%s' (expected 0-%d)", threads, kMaxThreads));
  }

  const std::string engine = get("engine");
  const std::vector<std::string>& engines = engineNames();
  if (std::find(engines.begin(), engines.end(), engine) == engines.end()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("unknown engine '%s' (known: %s)", engine, toString(engines)));
  }
  config.server.engine.name = engine;

  const std::string mode = get("epoll-mode");
  auto epoll_mode = parseEpollMode(mode);
  if (!epoll_mode.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("unknown epoll mode '%s' (known: oneshot, level, edge)", mode));
  }
  config.server.engine.epoll_mode = *epoll_mode;
  if (engine != "epoll" && !vm["epoll-mode"].defaulted()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--epoll-mode applies to --engine epoll only (the %s engine has no modes)", engine));
  }

  const std::string balance = get("balance");
  if (balance == "round-robin") {
    config.server.balance = LoadBalance::kRoundRobin;
  } else if (balance == "least-connections") {
    config.server.balance = LoadBalance::kLeastConnections;
  } else {
    return absl::InvalidArgumentError(
        absl::StrFormat("unknown balance '%s' (known: round-robin, least-connections)", balance));
  }

  config.server.reuse_port = vm["reuseport"].as<bool>();
  const std::string accept_mode = get("accept-mode");
  if (accept_mode == "handoff") {
    config.server.accept_mode = AcceptMode::kHandoff;
  } else if (accept_mode == "reuseport") {
    config.server.accept_mode = AcceptMode::kReusePort;
  } else {
    return absl::InvalidArgumentError(
        absl::StrFormat("unknown accept mode '%s' (known: handoff, reuseport)", accept_mode));
  }
  const std::string workers = get("workers");
  if (!parseInteger(workers, &config.workers) || config.workers < 0 ||
      config.workers > kMaxWorkers) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid --workers '%s' (expected 0-%d)", workers, kMaxWorkers));
  }
  // Workers share each address: every listening socket needs SO_REUSEPORT.
  if (config.workers > 0) config.server.reuse_port = true;

  config.plugin = get("plugin");
  if (config.plugin.empty()) return absl::InvalidArgumentError("empty --plugin");
  // The --plugin-dir directories in the order given, then the defaults (config.plugin_dirs so far);
  // a directory named twice is searched once, at its first place.
  std::vector<std::string> dirs;
  if (vm.count("plugin-dir")) dirs = vm["plugin-dir"].as<std::vector<std::string>>();
  if (std::find(dirs.begin(), dirs.end(), std::string()) != dirs.end()) {
    return absl::InvalidArgumentError("empty --plugin-dir");
  }
  dirs.insert(dirs.end(), config.plugin_dirs.begin(), config.plugin_dirs.end());
  config.plugin_dirs.clear();
  for (std::string& dir : dirs) {
    if (std::find(config.plugin_dirs.begin(), config.plugin_dirs.end(), dir) ==
        config.plugin_dirs.end()) {
      config.plugin_dirs.push_back(std::move(dir));
    }
  }
  if (vm.count("plugin-arg")) {
    auto args = parsePluginArgs(vm["plugin-arg"].as<std::vector<std::string>>());
    if (!args.ok()) return args.status();
    config.plugin_args = *std::move(args);
  }

  // The listeners: one per --listen, or the one on --port with --plugin.
  config.listeners.clear();
  if (!vm.count("listen")) {
    config.listeners.push_back(ListenerConfig{.address = InetAddress(*port),
                                              .plugin = config.plugin,
                                              .plugin_args = config.plugin_args,
                                              .spec = {}});
  } else {
    bool defaults_used = false;
    for (const std::string& value : vm["listen"].as<std::vector<std::string>>()) {
      auto listener =
          parseListener(value, *port, config.plugin, config.plugin_args, &defaults_used);
      if (!listener.ok()) return listener.status();
      // Two servers cannot bind one address; say so before either is started.
      for (const ListenerConfig& other : config.listeners) {
        if (other.address.toIpPort() == listener->address.toIpPort()) {
          return absl::InvalidArgumentError(
              absl::StrFormat("listen address %s given twice (--listen '%s' and --listen '%s')",
                              listener->address.toIpPort(), other.spec, value));
        }
      }
      config.listeners.push_back(*std::move(listener));
    }
    // A --plugin or --plugin-arg that no listener takes was given by mistake: refuse it rather
    // than ignore it.
    if (!defaults_used && !vm["plugin"].defaulted()) {
      return absl::InvalidArgumentError(
          "--plugin is not used: every --listen names its own plugin");
    }
    if (!defaults_used && vm.count("plugin-arg")) {
      return absl::InvalidArgumentError(
          "--plugin-arg is not used: every --listen names its own plugin (give its arguments "
          "after the plugin in --listen)");
    }
  }
  config.server.listen_address = config.listeners.front().address;

  const std::string max_conn = get("max-connections");
  if (!parseInteger(max_conn, &config.server.max_connections)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "invalid --max-connections '%s' (expected a count; 0: no limit)", max_conn));
  }

  auto idle = parseSeconds("idle-timeout", get("idle-timeout"));
  if (!idle.ok()) return idle.status();
  config.server.connection.idle_timeout = *idle;

  const std::string hwm = get("high-water-mark");
  auto hwm_bytes = parseSize(hwm);
  if (!hwm_bytes.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "invalid --high-water-mark '%s' (expected bytes, e.g. 65536, 64K or 4M)", hwm));
  }
  config.server.connection.high_water_mark = *hwm_bytes;

  config.print_stats = vm["stats"].as<bool>();

  if (vm.count("admin-listen")) {
    const std::string admin = vm["admin-listen"].as<std::string>();
    auto address = InetAddress::parse(admin);
    if (!address.ok()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "invalid --admin-listen '%s': %s", admin, address.status().message()));
    }
    config.admin_listen = *address;
  }

  auto grace = parseSeconds("shutdown-timeout", get("shutdown-timeout"));
  if (!grace.ok()) return grace.status();
  config.shutdown_timeout = *grace;

  const std::string level = get("log-level");
  auto log_level = parseLogLevel(level);
  if (!log_level.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("unknown log level '%s' (known: trace, debug, info, warn, error)", level));
  }
  config.log_level = *log_level;
  return config;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> splitListenWords(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;  // a word has begun (it may be empty: '' is one empty word)
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    switch (c) {
      case ' ':
      case '\t':
      case '\r':
      case '\n':
        if (in_word) words.push_back(std::move(word));
        word.clear();
        in_word = false;
        continue;
      case '\'': {
        const size_t close = text.find('\'', i + 1);
        if (close == std::string_view::npos) {
          return absl::InvalidArgumentError("a ' quote is not closed");
        }
        word.append(text.substr(i + 1, close - i - 1));
        i = close;
        break;
      }
      case '"': {
        size_t j = i + 1;
        for (; j < text.size() && text[j] != '"'; ++j) {
          const bool escape = text[j] == '\\' && j + 1 < text.size() &&
                              (text[j + 1] == '"' || text[j + 1] == '\\');
          if (escape) ++j;
          word += text[j];
        }
        if (j == text.size()) return absl::InvalidArgumentError("a \" quote is not closed");
        i = j;
        break;
      }
      case '\\':
        if (i + 1 == text.size()) return absl::InvalidArgumentError("a backslash ends it");
        word += text[++i];
        break;
      default:
        word += c;
    }
    in_word = true;
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

absl::StatusOr<size_t> parseSize(const std::string& text) {
  uint64_t value = 0;
  const char* begin = text.data();
  const char* end = begin + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr == begin) {
    return absl::InvalidArgumentError(absl::StrFormat("invalid size '%s'", text));
  }
  std::string suffix(ptr, end);
  uint64_t unit = 1;
  if (!suffix.empty()) {
    switch (suffix[0]) {
      case 'k':
      case 'K':
        unit = uint64_t{1} << 10;
        break;
      case 'm':
      case 'M':
        unit = uint64_t{1} << 20;
        break;
      case 'g':
      case 'G':
        unit = uint64_t{1} << 30;
        break;
      case 'b':
      case 'B':
        unit = 1;
        break;
      default:
        unit = 0;
    }
    std::string rest = suffix.substr(1);
    const bool plain_bytes = suffix[0] == 'b' || suffix[0] == 'B';
    if (unit == 0 ||
        (plain_bytes ? !rest.empty()
                     : !(rest.empty() || rest == "B" || rest == "b" || rest == "iB"))) {
      return absl::InvalidArgumentError(absl::StrFormat("invalid size '%s'", text));
    }
  }
  if (value > std::numeric_limits<size_t>::max() / unit) {
    return absl::InvalidArgumentError(absl::StrFormat("size '%s' is too large", text));
  }
  return static_cast<size_t>(value * unit);
}

absl::StatusOr<ServerCommand> parseServerOptions(int argc, const char* const argv[]) {
  ServerConfig defaults;
  defaults.server.listen_address = InetAddress(kDefaultPort);
  defaults.server.threads = defaultThreads();
  defaults.plugin_dirs = defaultPluginDirs();

  po::options_description settings = settingsDescription(defaults);
  po::options_description general("General");
  general.add_options()("help,h", "print this help and exit")("version,v",
                                                              "print the version and exit")(
      "config", po::value<std::string>()->value_name("FILE"),
      "read settings from this INI file (default: none)");
  po::options_description all;
  all.add(general).add(settings);

  ServerCommand command;
  po::variables_map vm;
  try {
    const int style =
        po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    po::parsed_options parsed = po::command_line_parser(argc, argv).options(all).style(style).run();
    std::vector<std::string> stray =
        po::collect_unrecognized(parsed.options, po::include_positional);
    if (!stray.empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("unexpected argument '%s' (options start with --)", stray.front()));
    }
    po::store(parsed, vm);
  } catch (const po::error& e) {
    return absl::InvalidArgumentError(errorText(e));
  }

  if (vm.count("help")) {
    std::ostringstream out;
    out << kUsage << all << "\nDefault plugin directory: "
        << (defaults.plugin_dirs.empty() ? std::string("none") : toString(defaults.plugin_dirs))
        << " (after the --plugin-dir directories)\n";
    command.action = ServerCommand::Action::kHelp;
    command.text = out.str();
    return command;
  }
  if (vm.count("version")) {
    command.action = ServerCommand::Action::kVersion;
    command.text = "plexus-server " PLEXUS_VERSION_STRING "\n";
    return command;
  }

  if (vm.count("config")) {
    defaults.config_file = vm["config"].as<std::string>();
    // Values already stored from the command line are final; the file fills in the rest.
    absl::Status read = readConfigFile(defaults.config_file, settings, &vm);
    if (!read.ok()) return read;
  }
  try {
    po::notify(vm);
  } catch (const po::error& e) {
    return absl::InvalidArgumentError(errorText(e));
  }

  auto config = buildConfig(vm, std::move(defaults));
  if (!config.ok()) return config.status();
  command.config = *std::move(config);
  command.config.argv.assign(argv, argv + argc);
  return command;
}

absl::StatusOr<ServerConfig> parseServerConfigText(std::string_view text, std::string_view name) {
  // The defaults of parseServerOptions(); tests/unit/server_config_text_test.cc checks that both
  // read a config alike.
  ServerConfig defaults;
  defaults.server.listen_address = InetAddress(kDefaultPort);
  defaults.server.threads = defaultThreads();
  defaults.plugin_dirs = defaultPluginDirs();
  defaults.config_file = std::string(name);

  po::options_description settings = settingsDescription(defaults);
  po::variables_map vm;
  std::istringstream in{std::string(text)};
  try {
    po::store(po::parse_config_file(in, settings, /*allow_unregistered=*/false), vm);
  } catch (const po::error& e) {
    return absl::InvalidArgumentError(absl::StrFormat("config file '%s': %s", name, errorText(e)));
  }
  try {
    po::notify(vm);
  } catch (const po::error& e) {
    return absl::InvalidArgumentError(errorText(e));
  }
  return buildConfig(vm, std::move(defaults));
}

}  // namespace plexus::server
