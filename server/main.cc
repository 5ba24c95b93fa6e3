// plexus-server: one TcpServer per listener, each serving the protocol of its plugin, all of them
// on one base loop and one pool of --threads sub-reactors (as nginx's workers serve every listening
// socket).
//
// Threads: everything here runs on the main thread (the base loop), except the failure callbacks
// of the sub-loops, which only queue work on the base loop.
//
// Exit status: 0 after a stop by SIGINT/SIGTERM (or --help/--version); 1 when an event loop gave
// up on its engine while serving (its waits kept failing); 2 for a bad option, a plugin that does
// not load or an address it cannot listen on, or a socket inherited from systemd that fits no
// listener (server/systemd.h: sd_notify and socket activation). Errors are one line on stderr.

#include <malloc.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "plexus/admin_server.h"
#include "plexus/channel.h"
#include "plexus/event_loop.h"
#include "plexus/event_loop_thread_pool.h"
#include "plexus/log.h"
#include "plexus/metrics.h"
#include "plexus/plugin_host.h"
#include "plexus/plugin_loader.h"
#include "plexus/tcp_server.h"
#include "plexus/version.h"
#include "reload.h"
#include "server_options.h"
#include "supervisor.h"
#include "systemd.h"

namespace plexus::server {
namespace {

// Reads the signals blocked in every thread from a signalfd on the loop, and hands each one to a
// callback on the loop thread. Loop thread only.
class SignalWatcher final : private EventHandler {
 public:
  SignalWatcher(EventLoop* loop, const sigset_t& signals, std::function<void(int)> on_signal)
      : fd_(::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC)),
        channel_(loop, fd_, this),
        on_signal_(std::move(on_signal)) {}
  ~SignalWatcher() {
    channel_.remove();  // before the close: the engine must not watch a closed fd
    if (fd_ >= 0) ::close(fd_);
  }
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  absl::Status start() {
    if (fd_ < 0) return absl::InternalError(absl::StrFormat("signalfd: %s", std::strerror(errno)));
    return channel_.setInterest(kEventRead);
  }

 private:
  void handleEvent(uint32_t revents) override {
    if (revents & kEventFailed) {
      // Not re-armed: signals would go unread. Try again; the loop stops if the engine is gone.
      if (absl::Status s = channel_.setInterest(kEventRead); !s.ok()) {
        LOG_ERROR("cannot watch for signals any more: %s", s.message());
      }
      return;
    }
    // Until EAGAIN, so that an edge-triggered engine is served too.
    signalfd_siginfo info;
    while (::read(fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      on_signal_(static_cast<int>(info.ssi_signo));
    }
  }

  const int fd_;
  Channel channel_;
  std::function<void(int)> on_signal_;
};

int fail(const absl::Status& error) {
  absl::FPrintF(stderr, "plexus-server: error: %s\n", error.message());
  return 2;
}

// One address served by one plugin: a TcpServer of its own on the shared loops.
struct Listener {
  const ListenerConfig* config;
  std::shared_ptr<LoadedPlugin> plugin;
  std::unique_ptr<TcpServer> server;
};

// What the base loop and every sub-loop asked of the kernel: the loops are shared, so this is the
// sum over every listener, each loop counted once. Before the pool stops (its loops go with it).
LoopStats loopStats(EventLoop& base, EventLoopThreadPool& pool) {
  LoopStats total = base.stats();
  if (pool.numThreads() > 0) {
    for (EventLoop* sub : pool.loops()) total += sub->stats();
  }
  return total;
}

int serve(const ServerConfig& config) {
  setLogLevel(config.log_level);

  // Memory that stays flat over days. glibc raises its mmap threshold each time a large block it
  // had mapped is freed (up to 32 MiB), so the large output buffers of bulk transfers then come
  // from the heap and, fragmented, stay resident once freed: a 10-minute mixed soak grew 23 % in
  // steps. Fixed at glibc's own default of 128 KiB, large buffers are mapped and returned to the
  // kernel when freed. (A program, not the library: it is a process-wide setting.)
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);

  // Before any thread starts (a plugin's, the sub-reactors): threads inherit the mask, so these
  // are only ever read from the signalfd, on the base loop. SIGHUP among them: it reloads.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  // Every plugin loads (and accepts its arguments) before anything listens. With several
  // listeners an error names the listener's address.
  const bool several = config.listeners.size() > 1;
  std::vector<Listener> listeners;
  for (const ListenerConfig& lc : config.listeners) {
    auto plugin = loadPlugin(lc.plugin, config.plugin_dirs, lc.plugin_args);
    if (!plugin.ok()) {
      if (!several) return fail(plugin.status());
      return fail(absl::InvalidArgumentError(absl::StrFormat(
          "listener %s: %s", lc.address.toIpPort(), plugin.status().message())));
    }
    listeners.push_back(Listener{&lc, *std::move(plugin), nullptr});
  }

  // --admin-listen: the registry every server writes to, for /metrics. It outlives them all.
  std::unique_ptr<MetricsRegistry> metrics;
  if (config.admin_listen) {
    metrics = std::make_unique<MetricsRegistry>();
    metrics->addProcessMetrics();
  }

  auto engine = makeEngine(config.server.engine);
  if (!engine.ok()) return fail(engine.status());
  EventLoop loop(*std::move(engine));

  // One pool for every listener; stopped once every server has stopped (or, on the way out, by
  // its destructor, after the servers and before the loop).
  auto pool = std::make_shared<EventLoopThreadPool>(&loop, config.server.threads,
                                                    config.server.engine);
  if (absl::Status started = pool->start(); !started.ok()) return fail(started);
  // Declared after the pool, destroyed before it: the servers close their connections on its
  // loops, which must still run.
  std::vector<Listener> serving = std::move(listeners);
  std::vector<ServedPlugin> served;
  for (Listener& l : serving) {
    TcpServerOptions options = config.server;
    options.listen_address = l.config->address;
    options.listen_fd = l.config->inherited_fd;  // socket activation (systemd.h)
    options.metrics = metrics.get();
    options.metric_labels = {{"plugin", l.plugin->name()}};
    l.server = std::make_unique<TcpServer>(&loop, options, pool);
    served.push_back(servePlugin(*l.server, l.plugin->factory()));
    // TcpServer's errors say what failed, e.g. "cannot listen on 0.0.0.0:7000: Address already in
    // use". The listeners started before it close as `serving` goes, so none is left.
    if (absl::Status started = l.server->start(); !started.ok()) return fail(started);
  }

  // A loop that gives up on its engine (its waits keep failing) ends the server with status 1;
  // ~TcpServer closes the connections that are left. The servers leave the shared pool's loops to
  // their owner: here.
  absl::Status loop_error;
  auto loop_failed = [&](const absl::Status& why) {
    if (loop_error.ok()) loop_error = why;
    loop.quit();
  };
  loop.setFailureCallback(loop_failed);
  // What a sub-loop queues on the base loop checks this first: it goes before loop_failed does.
  auto alive = std::make_shared<bool>(true);
  if (pool->numThreads() > 0) {
    for (EventLoop* sub : pool->loops()) {
      sub->runInLoop([sub, &loop, &loop_failed, token = std::weak_ptr<bool>(alive)] {
        // On the sub-loop's thread; dealt with on the base loop.
        sub->setFailureCallback([&loop, &loop_failed, token](const absl::Status& why) {
          loop.queueInLoop([&loop_failed, token, why] {
            if (token.expired()) return;
            LOG_ERROR("a sub-reactor stopped serving I/O (%s): stopping", why.message());
            loop_failed(why);
          });
        });
      });
    }
  }

  // Every server stops (each lets its connections finish), then the pool, then the base loop.
  std::optional<LoopStats> final_stats;
  size_t running = serving.size();
  auto stopped_one = [&] {
    if (--running > 0) return;
    final_stats = loopStats(loop, *pool);
    pool->stop();
    loop.quit();
  };
  // The admin listener: its own thread; stopped (by its destructor) before the servers go.
  std::unique_ptr<AdminServer> admin;
  // SIGHUP reloads (server/reload.h): the listeners' plugins move to `live`, where it swaps them.
  std::vector<LiveListener> live;
  for (size_t i = 0; i < serving.size(); ++i) {
    live.push_back(LiveListener{*serving[i].config, std::move(serving[i].plugin), served[i],
                                serving[i].server.get()});
  }
  Reloader reloader(config, &live);
  // What systemd shows as the status (READY=1), at start and after each reload.
  std::vector<std::string> addresses;
  for (const Listener& l : serving) addresses.push_back(l.server->listenAddress().toIpPort());
  const std::string ready_status = "listening on " + absl::StrJoin(addresses, ", ");
  int signals_seen = 0;
  SignalWatcher watcher(&loop, signals, [&](int signo) {
    if (signo == SIGHUP) {
      if (signals_seen > 0) {
        LOG_WARN("SIGHUP ignored: stopping");
        return;
      }
      // systemd (Type=notify, ExecReload): RELOADING=1 before, READY=1 after, whether the reload
      // took or the previous plugins and settings serve on (the reload logged why).
      notifyReloading();
      (void)reloader.reload();
      notifyReady(ready_status);
      return;
    }
    if (++signals_seen == 1) {
      if (admin) admin->setServing(false);  // /healthz: 503 from now on
      const double grace =
          std::chrono::duration<double>(reloader.config().shutdown_timeout).count();
      LOG_INFO("SIG%s: stopping; connections have %.1fs to finish (signal again to stop now)",
               sigabbrev_np(signo), grace);
      notifyStopping();
      for (Listener& l : serving) l.server->stop(reloader.config().shutdown_timeout, stopped_one);
    } else {
      LOG_WARN("SIG%s again: stopping now", sigabbrev_np(signo));
      loop.quit();  // ~TcpServer closes what is left
    }
  });
  if (absl::Status watching = watcher.start(); !watching.ok()) return fail(watching);
  if (config.server.reuse_port && !config.supervised) warnIfRequestsCannotMigrate();

  if (metrics) {
    AdminServerOptions admin_options;
    admin_options.listen_address = *config.admin_listen;
    admin = std::make_unique<AdminServer>(metrics.get(), admin_options);
    if (absl::Status started = admin->start(); !started.ok()) return fail(started);
    LOG_INFO("admin listening on %s (/metrics, /healthz)", admin->listenAddress().toIpPort());
  }

  const int threads = config.server.threads;
  const std::string thread_text =
      absl::StrFormat("%d thread%s%s", threads, threads == 1 ? "" : "s",
                      threads == 0 ? " (all on the main loop)" : "") +
      (config.server.accept_mode == AcceptMode::kReusePort ? ", accept mode reuseport" : "") +
      (config.server.reuse_port ? ", SO_REUSEPORT" : "");
  if (!several) {
    LOG_INFO("plexus-server %s listening on %s: engine %s, %s, plugin %s", PLEXUS_VERSION_STRING,
             serving[0].server->listenAddress().toIpPort(), loop.engineDescription(), thread_text,
             live[0].plugin->name());
  } else {
    // "listening on 0.0.0.0:7000 (plugin echo), 127.0.0.1:7001 (plugin http): engine ..."
    std::vector<std::string> each;
    for (const LiveListener& l : live) {
      each.push_back(absl::StrFormat("%s (plugin %s)", l.server->listenAddress().toIpPort(),
                                     l.plugin->name()));
    }
    LOG_INFO("plexus-server %s listening on %s: engine %s, %s", PLEXUS_VERSION_STRING,
             absl::StrJoin(each, ", "), loop.engineDescription(), thread_text);
  }
  // A worker restarted after a reload: reloads as its siblings did (the config file anew).
  if (config.reload_at_start) (void)reloader.reload();
  // systemd (Type=notify): every listener listens.
  notifyReady(ready_status);
  // The base loop's own failure has been reported through loop_failed already.
  (void)loop.run();
  if (reloader.config().print_stats) {
    // One line, for scripts: what every loop asked of the kernel.
    const LoopStats stats = final_stats ? *final_stats : loopStats(loop, *pool);
    absl::FPrintF(stderr, "stats: %s\n", stats.toJson());
  }
  if (!loop_error.ok()) {
    absl::FPrintF(stderr, "plexus-server: error: stopped: %s\n", loop_error.message());
    return 1;
  }
  LOG_INFO("plexus-server stopped");
  return 0;
}

}  // namespace
}  // namespace plexus::server

int main(int argc, char* argv[]) {
  using plexus::server::ServerCommand;
  auto command = plexus::server::parseServerOptions(argc, argv);
  if (!command.ok()) return plexus::server::fail(command.status());
  switch (command->action) {
    case ServerCommand::Action::kHelp:
    case ServerCommand::Action::kVersion:
      std::fputs(command->text.c_str(), stdout);
      return 0;
    case ServerCommand::Action::kServe:
      break;
  }
  // What systemd hands over, read (and taken out of the environment) before any thread starts.
  plexus::server::takeNotifySocket();
  auto inherited = plexus::server::takeInheritedSockets();
  if (!inherited.ok()) return plexus::server::fail(inherited.status());
  if (absl::Status s = plexus::server::assignInheritedSockets(*inherited, &command->config);
      !s.ok()) {
    return plexus::server::fail(s);
  }
  // --workers: a supervisor of worker processes, each of which serve()s (server/supervisor.h).
  if (command->config.workers > 0) {
    return plexus::server::runSupervisor(command->config, plexus::server::serve);
  }
  return plexus::server::serve(command->config);
}
