#include "reload.h"

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "plexus/engine.h"
#include "plexus/log.h"

namespace plexus::server {
namespace {

const char* balanceName(LoadBalance b) {
  return b == LoadBalance::kRoundRobin ? "round-robin" : "least-connections";
}

// The settings that only a restart can change, each one that differs: "threads changed (2 -> 4)".
std::vector<std::string> needRestart(const ServerConfig& now, const ServerConfig& wanted) {
  std::vector<std::string> out;
  if (now.server.threads != wanted.server.threads) {
    out.push_back(absl::StrFormat("threads changed (%d -> %d)", now.server.threads,
                                  wanted.server.threads));
  }
  if (now.server.engine.name != wanted.server.engine.name) {
    out.push_back(absl::StrFormat("engine changed (%s -> %s)", now.server.engine.name,
                                  wanted.server.engine.name));
  } else if (now.server.engine.epoll_mode != wanted.server.engine.epoll_mode) {
    out.push_back(absl::StrFormat("epoll mode changed (%s -> %s)",
                                  epollModeName(now.server.engine.epoll_mode),
                                  epollModeName(wanted.server.engine.epoll_mode)));
  }
  if (now.server.balance != wanted.server.balance) {
    out.push_back(absl::StrFormat("balance changed (%s -> %s)", balanceName(now.server.balance),
                                  balanceName(wanted.server.balance)));
  }
  auto mode = [](AcceptMode m) { return m == AcceptMode::kReusePort ? "reuseport" : "handoff"; };
  if (now.server.accept_mode != wanted.server.accept_mode) {
    out.push_back(absl::StrFormat("accept mode changed (%s -> %s)", mode(now.server.accept_mode),
                                  mode(wanted.server.accept_mode)));
  }
  if (now.server.reuse_port != wanted.server.reuse_port) {
    out.push_back(absl::StrFormat("reuseport changed (%s -> %s)",
                                  now.server.reuse_port ? "on" : "off",
                                  wanted.server.reuse_port ? "on" : "off"));
  }
  if (now.workers != wanted.workers) {
    out.push_back(absl::StrFormat("workers changed (%d -> %d)", now.workers, wanted.workers));
  }
  auto admin = [](const std::optional<InetAddress>& a) {
    return a ? a->toIpPort() : std::string("off");
  };
  if (admin(now.admin_listen) != admin(wanted.admin_listen)) {
    out.push_back(absl::StrFormat("admin-listen changed (%s -> %s)", admin(now.admin_listen),
                                  admin(wanted.admin_listen)));
  }
  return out;
}

const ListenerConfig* findListener(const std::vector<ListenerConfig>& in, const InetAddress& a) {
  for (const ListenerConfig& l : in) {
    if (l.address.toIpPort() == a.toIpPort()) return &l;
  }
  return nullptr;
}

}  // namespace

absl::Status Reloader::reload() {
  const uint64_t number = ++reloads_;
  absl::Status s = tryReload(number);
  if (!s.ok()) {
    LOG_ERROR("reload #%u failed, still serving the previous plugins and settings: %s", number,
              s.message());
  }
  return s;
}

absl::Status Reloader::tryReload(uint64_t number) {
  const auto began = std::chrono::steady_clock::now();
  if (config_.argv.empty()) {
    return absl::FailedPreconditionError("no command line to read the settings from again");
  }
  // The config file anew, the command line over it, exactly as at the start.
  std::vector<const char*> argv;
  for (const std::string& a : config_.argv) argv.push_back(a.c_str());
  auto command = parseServerOptions(static_cast<int>(argv.size()), argv.data());
  if (!command.ok()) return command.status();
  if (command->action != ServerCommand::Action::kServe) {
    return absl::FailedPreconditionError("the command line no longer asks to serve");
  }
  ServerConfig& wanted = command->config;
  // What the start added to the command line's settings, added again. A --workers worker: the
  // supervisor made it one (no workers of its own, SO_REUSEPORT on).
  if (config_.supervised) {
    wanted.workers = 0;
    wanted.supervised = true;
    wanted.server.reuse_port = true;
  }
  // Socket activation with no listener named: the inherited sockets are the listeners, served by
  // `plugin` with its arguments (server/systemd.h); they are again, with the plugin read anew.
  const bool from_inherited =
      !config_.listeners.empty() && config_.listeners.front().spec.starts_with("inherited ");
  if (from_inherited && wanted.listeners.size() == 1 && wanted.listeners[0].spec.empty()) {
    std::vector<ListenerConfig> listeners = config_.listeners;
    for (ListenerConfig& l : listeners) {
      l.plugin = wanted.plugin;
      l.plugin_args = wanted.plugin_args;
    }
    wanted.listeners = std::move(listeners);
    wanted.server.listen_address = wanted.listeners.front().address;
  }

  // Every listener that stays gets its plugin loaded again (a rebuilt .so at the same path is
  // read anew) before anything changes: all or nothing.
  const bool several = listeners_->size() > 1;
  std::vector<std::shared_ptr<LoadedPlugin>> loaded(listeners_->size());
  for (size_t i = 0; i < listeners_->size(); ++i) {
    const ListenerConfig* lc = findListener(wanted.listeners, (*listeners_)[i].config.address);
    if (lc == nullptr) continue;
    auto plugin = loadPlugin(lc->plugin, wanted.plugin_dirs, lc->plugin_args);
    if (!plugin.ok()) {
      if (!several) return plugin.status();
      return absl::Status(plugin.status().code(),
                          absl::StrFormat("listener %s: %s", lc->address.toIpPort(),
                                          plugin.status().message()));
    }
    loaded[i] = *std::move(plugin);
  }

  // What cannot change live is said, and left as it is.
  std::vector<std::string> warnings = needRestart(config_, wanted);
  for (const LiveListener& l : *listeners_) {
    if (findListener(wanted.listeners, l.config.address) == nullptr) {
      warnings.push_back(absl::StrFormat("listener %s removed (still serving plugin %s)",
                                         l.config.address.toIpPort(), l.plugin->name()));
    }
  }
  for (const ListenerConfig& lc : wanted.listeners) {
    if (findListener(config_.listeners, lc.address) == nullptr) {
      warnings.push_back(absl::StrFormat("listener %s added", lc.address.toIpPort()));
    }
  }

  // Apply. The log level first, so that the lines below follow it.
  config_.log_level = wanted.log_level;
  setLogLevel(config_.log_level);
  for (const std::string& w : warnings) LOG_WARN("reload #%u: %s: needs a restart", number, w);
  config_.plugin = wanted.plugin;
  config_.plugin_args = wanted.plugin_args;
  config_.plugin_dirs = wanted.plugin_dirs;
  config_.server.max_connections = wanted.server.max_connections;
  config_.server.connection = wanted.server.connection;
  config_.shutdown_timeout = wanted.shutdown_timeout;
  config_.print_stats = wanted.print_stats;
  std::vector<std::string> served;
  for (size_t i = 0; i < listeners_->size(); ++i) {
    LiveListener& l = (*listeners_)[i];
    l.server->setConnectionLimits(config_.server.max_connections, config_.server.connection);
    if (!loaded[i]) continue;
    l.served.replaceFactory(loaded[i]->factory());
    // The old LoadedPlugin goes; its library stays loaded while its factory serves connections.
    l.plugin = std::move(loaded[i]);
    l.config = *findListener(wanted.listeners, l.config.address);
    for (ListenerConfig& c : config_.listeners) {
      if (c.address.toIpPort() == l.config.address.toIpPort()) c = l.config;
    }
    served.push_back(absl::StrFormat("%s plugin %s (%s)", l.config.address.toIpPort(),
                                     l.plugin->name(), l.plugin->path()));
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                              began)
                        .count();
  LOG_INFO("reload #%u done in %.1f ms: %s", number, ms,
           served.empty() ? std::string("no listener reloaded") : absl::StrJoin(served, ", "));
  return absl::OkStatus();
}

}  // namespace plexus::server
