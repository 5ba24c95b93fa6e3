#pragma once
// plexus-server's live reload (SIGHUP): the config file is read again, with the original command
// line over it (the command line still wins), and every listener's plugin is loaded again with its
// (maybe new) arguments and swapped in: new connections get the new plugin, live ones finish on
// the one they started with (see ServedPlugin in plexus/plugin_host.h).
//
// All or nothing: when the config no longer parses, or any plugin fails to load or rejects its
// arguments, nothing changes (every old plugin keeps serving, every setting stays) and one error
// line says why. Settings that change live: each listener's plugin and plugin arguments, the
// plugin directories, log level, max connections, idle timeout and high-water mark (for
// connections accepted from then on), shutdown timeout and --stats. Anything else that changed
// (threads, engine, epoll mode, balance, listeners added or removed) is logged as a warning
// "X changed: needs a restart" and left as it is.
//
// Log lines (N counts reloads from 1, failed ones included):
//   info:  reload #N done in 1.2 ms: 127.0.0.1:7000 plugin echo (/usr/lib/plexus/plugins/echo.so)
//   warn:  reload #N: threads changed (2 -> 4): needs a restart
//   error: reload #N failed, still serving the previous plugins and settings: WHY
//
// Thread safety: base loop thread only (where the listeners' TcpServers live).

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "plexus/plugin_host.h"
#include "plexus/plugin_loader.h"
#include "plexus/tcp_server.h"
#include "server_options.h"

namespace plexus::server {

// One listener as it serves now.
struct LiveListener {
  ListenerConfig config;                 // as last applied
  std::shared_ptr<LoadedPlugin> plugin;  // what new connections get
  ServedPlugin served;                   // where a new plugin is swapped in
  TcpServer* server = nullptr;           // owned by main
};

class Reloader {
 public:
  // `config`: what the server was started with; `listeners`: one per config.listeners, in order.
  Reloader(ServerConfig config, std::vector<LiveListener>* listeners)
      : config_(std::move(config)), listeners_(listeners) {}

  // Reloads as described above. OK: applied (warnings aside); otherwise nothing was applied and
  // the status says why (already logged). A place for the caller to tell a service manager
  // (sd_notify RELOADING=1 before, READY=1 after).
  absl::Status reload();

  // The settings in force: the start's, with what reloads applied.
  const ServerConfig& config() const { return config_; }
  uint64_t reloads() const { return reloads_; }

 private:
  absl::Status tryReload(uint64_t number);

  ServerConfig config_;
  std::vector<LiveListener>* const listeners_;
  uint64_t reloads_ = 0;
};

}  // namespace plexus::server
