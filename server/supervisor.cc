#include "supervisor.h"

#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "plexus/log.h"
#include "plexus/version.h"
#include "systemd.h"

namespace plexus::server {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kFirstBackoff{100};
constexpr milliseconds kMaxBackoff{10000};
// A worker that lived this long was healthy: the next restart is immediate again.
constexpr milliseconds kHealthyLifetime{10000};

struct Worker {
  int index = 0;  // 1..N, kept across restarts
  pid_t pid = -1;
  Clock::time_point started;
  milliseconds backoff{0};
  std::optional<Clock::time_point> restart_at;

  // systemd (only with $NOTIFY_SOCKET): what this worker told the supervisor since it started.
  int notify_fd = -1;  // the supervisor's end of its notification channel; -1: none
  bool ready = false;  // it sent READY=1 (it listens)
  // SIGHUP forwarded at reload_asked_usec, and no RELOADING=1 from it since.
  bool reload_asked = false;
  uint64_t reload_asked_usec = 0;
  bool reloading = false;  // it sent RELOADING=1, and no READY=1 since
};

std::string describeExit(int status) {
  if (WIFEXITED(status)) return absl::StrFormat("exited with status %d", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return name ? absl::StrFormat("killed by SIG%s", name)
                : absl::StrFormat("killed by signal %d", WTERMSIG(status));
  }
  return absl::StrFormat("ended (wait status %#x)", status);
}

class Supervisor {
 public:
  Supervisor(const ServerConfig& config, const std::function<int(const ServerConfig&)>& serve)
      : config_(config), serve_(serve) {}

  int run() {
    sigemptyset(&signals_);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&signals_, s);
    sigprocmask(SIG_BLOCK, &signals_, &old_mask_);
    sfd_ = ::signalfd(-1, &signals_, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd_ < 0) {
      LOG_ERROR("supervisor: signalfd: %s", std::strerror(errno));
      return 2;
    }
    self_ = ::getpid();
    notify_ = notificationsEnabled();
    LOG_INFO("plexus-server %s supervisor (pid %d): starting %d worker%s", PLEXUS_VERSION_STRING,
             self_, config_.workers, config_.workers == 1 ? "" : "s");
    if (config_.server.reuse_port) warnIfRequestsCannotMigrate();
    workers_.resize(static_cast<size_t>(config_.workers));
    for (size_t i = 0; i < workers_.size(); ++i) {
      workers_[i].index = static_cast<int>(i) + 1;
      if (!spawn(workers_[i])) stopAll();
    }
    while (running() > 0 || (!stopping_ && pendingRestarts())) {
      std::vector<pollfd> fds = {{sfd_, POLLIN, 0}};
      for (const Worker& w : workers_) {
        if (w.notify_fd >= 0) fds.push_back({w.notify_fd, POLLIN, 0});
      }
      int r = ::poll(fds.data(), fds.size(), pollTimeoutMs());
      if (r < 0 && errno != EINTR) {
        LOG_ERROR("supervisor: poll: %s", std::strerror(errno));
        stopAll();
      }
      signalfd_siginfo info;
      while (::read(sfd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        onSignal(static_cast<int>(info.ssi_signo));
      }
      for (Worker& w : workers_) readNotifications(w);
      reap();
      if (!stopping_) restartDue();
    }
    for (Worker& w : workers_) closeChannel(w);
    ::close(sfd_);
    LOG_INFO("plexus-server supervisor stopped");
    return exit_status_;
  }

 private:
  bool spawn(Worker& w) {
    w.restart_at.reset();
    // Under systemd the worker's notifications come here, over a channel of its own (so the
    // supervisor knows whose they are), and the supervisor speaks to systemd for all of them:
    // with NotifyAccess=main systemd listens to the main pid only.
    int channel[2] = {-1, -1};
    if (notify_ &&
        ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, channel) < 0) {
      LOG_WARN("worker %d: socketpair: %s (it is counted as ready without saying so)", w.index,
               std::strerror(errno));
      channel[0] = channel[1] = -1;
    }
    const pid_t pid = ::fork();
    if (pid < 0) {
      LOG_ERROR("worker %d: fork: %s", w.index, std::strerror(errno));
      if (channel[0] >= 0) ::close(channel[0]);
      if (channel[1] >= 0) ::close(channel[1]);
      exit_status_ = 1;
      return false;
    }
    if (pid == 0) {
      // The worker: the fds of a plain plexus-server, its notifications to the supervisor.
      ::close(sfd_);
      for (Worker& other : workers_) closeChannel(other);
      if (channel[0] >= 0) ::close(channel[0]);
      if (notify_) {
        redirectNotifications(channel[1], absl::StrFormat("the supervisor (pid %d)", self_));
      }
      // serve() reads SIGINT, SIGTERM and SIGHUP from a signalfd: kept blocked from here, so that
      // one forwarded before it gets there waits for it instead of killing the worker.
      sigset_t mask = old_mask_;
      for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&mask, s);
      sigprocmask(SIG_SETMASK, &mask, nullptr);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != self_) std::_Exit(0);  // the supervisor died before prctl
      ServerConfig worker = config_;
      worker.workers = 0;
      worker.supervised = true;
      worker.server.reuse_port = true;
      worker.reload_at_start = sighups_forwarded_ > 0;
      std::exit(serve_(worker));
    }
    if (channel[1] >= 0) ::close(channel[1]);
    w.pid = pid;
    w.started = Clock::now();
    w.notify_fd = channel[0];
    w.ready = notify_ && channel[0] < 0;  // no channel: it cannot say so
    w.reload_asked = false;
    w.reloading = false;
    LOG_INFO("worker %d started (pid %d)", w.index, pid);
    if (w.ready) updateReadiness();
    return true;
  }

  void onSignal(int signo) {
    if (signo == SIGCHLD) return;  // reap() runs after every wakeup
    if (signo == SIGHUP) {
      LOG_INFO("SIGHUP: forwarded to %d worker%s", running(), running() == 1 ? "" : "s");
      // systemd: RELOADING=1 now, READY=1 once every worker has reloaded. Before the first
      // READY=1 there is nothing to say: that one comes when every worker is ready.
      if (notify_ && announced_ready_ && !stopping_) {
        const uint64_t now = monotonicUsec();  // before the kill: each worker's reload is later
        notifyReloading();
        reload_pending_ = true;
        for (Worker& w : workers_) {
          if (w.pid <= 0) continue;
          w.reload_asked = true;
          w.reload_asked_usec = now;
        }
      }
      forward(SIGHUP);
      ++sighups_forwarded_;  // a worker started from now on reloads once it listens
      return;
    }
    if (!stopping_) {
      LOG_INFO("SIG%s: stopping %d worker%s gracefully", sigabbrev_np(signo), running(),
               running() == 1 ? "" : "s");
      notifyStopping();
    } else {
      LOG_WARN("SIG%s again: forwarded (the workers stop now)", sigabbrev_np(signo));
    }
    stopping_ = true;
    for (Worker& w : workers_) w.restart_at.reset();
    forward(signo);
  }

  void stopAll() {
    if (!stopping_) {
      notifyStopping();
      forward(SIGTERM);
    }
    stopping_ = true;
    for (Worker& w : workers_) w.restart_at.reset();
  }

  void forward(int signo) {
    for (const Worker& w : workers_) {
      if (w.pid > 0) ::kill(w.pid, signo);
    }
  }

  void reap() {
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      auto it = std::find_if(workers_.begin(), workers_.end(),
                             [pid](const Worker& w) { return w.pid == pid; });
      if (it == workers_.end()) continue;
      Worker& w = *it;
      readNotifications(w);  // what it said before it died
      closeChannel(w);
      w.pid = -1;
      const std::string how = describeExit(status);
      const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (stopping_) {
        if (clean) {
          LOG_INFO("worker %d (pid %d) %s", w.index, pid, how);
        } else {
          LOG_WARN("worker %d (pid %d) %s", w.index, pid, how);
          if (exit_status_ == 0) exit_status_ = 1;
        }
        continue;
      }
      if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
        LOG_ERROR("worker %d (pid %d) %s (bad configuration): stopping", w.index, pid, how);
        exit_status_ = 2;
        stopAll();
        continue;
      }
      const auto lived = Clock::now() - w.started;
      w.backoff = lived >= kHealthyLifetime
                      ? milliseconds(0)
                      : std::min(kMaxBackoff, std::max(kFirstBackoff, w.backoff * 2));
      if (w.backoff.count() == 0) {
        LOG_WARN("worker %d (pid %d) %s: restarting", w.index, pid, how);
      } else {
        LOG_WARN("worker %d (pid %d) %s: restarting in %.1fs", w.index, pid, how,
                 std::chrono::duration<double>(w.backoff).count());
      }
      w.restart_at = Clock::now() + w.backoff;
      // systemd shows it; no READY=1 again when the new one is ready, only the status.
      if (notify_ && announced_ready_) {
        sdNotify(absl::StrFormat("STATUS=%d of %s; worker %d (pid %d) %s: restarting", readyCount(),
                                 statusText(), w.index, pid, how));
      }
    }
    updateReadiness();  // a reload may have waited for the worker that died
  }

  // The worker's notifications, until none is waiting; its channel closes at end of file.
  void readNotifications(Worker& w) {
    char buf[4096];
    while (w.notify_fd >= 0) {
      const ssize_t n = ::recv(w.notify_fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        onNotification(w, std::string_view(buf, static_cast<size_t>(n)));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
      } else {
        closeChannel(w);  // the worker exited (or the channel failed): nothing more comes
      }
    }
  }

  void closeChannel(Worker& w) {
    if (w.notify_fd >= 0) ::close(w.notify_fd);
    w.notify_fd = -1;
  }

  // One worker's sd_notify message (server/systemd.h: READY=1, RELOADING=1, STOPPING=1).
  void onNotification(Worker& w, std::string_view message) {
    bool ready = false, reloading = false, has_usec = false;
    uint64_t usec = 0;
    for (absl::string_view line :
         absl::StrSplit(absl::string_view(message.data(), message.size()), '\n')) {
      if (line == "READY=1") {
        ready = true;
      } else if (line == "RELOADING=1") {
        reloading = true;
      } else if (absl::ConsumePrefix(&line, "MONOTONIC_USEC=")) {
        has_usec = absl::SimpleAtoi(line, &usec);
      } else if (absl::ConsumePrefix(&line, "STATUS=") && ready) {
        status_ = std::string(line);  // "listening on 0.0.0.0:9000"
      }
    }
    if (reloading) {
      w.reloading = true;
      // A reload that began before the last SIGHUP reached it answers an earlier one.
      if (!has_usec || usec >= w.reload_asked_usec) w.reload_asked = false;
    }
    if (ready) {
      w.reloading = false;
      const bool first = !w.ready;
      w.ready = true;
      if (first && announced_ready_ && !reload_pending_ && !stopping_ &&
          readyCount() == config_.workers) {
        sdNotify("STATUS=" + statusText());  // a restarted worker is back
      }
    }
    if (ready || reloading) updateReadiness();
  }

  // READY=1 to systemd once every worker is ready (at start), and again once every worker has
  // finished the reload a SIGHUP asked for.
  void updateReadiness() {
    if (!notify_ || stopping_) return;
    if (!announced_ready_) {
      if (readyCount() < config_.workers) return;
      announced_ready_ = true;
      notifyReady(statusText());
      return;
    }
    if (!reload_pending_) return;
    for (const Worker& w : workers_) {
      if (w.pid > 0 && (w.reload_asked || w.reloading)) return;
    }
    reload_pending_ = false;
    notifyReady(statusText());
  }

  int readyCount() const {
    return static_cast<int>(std::count_if(workers_.begin(), workers_.end(),
                                          [](const Worker& w) { return w.pid > 0 && w.ready; }));
  }
  // "2 workers listening on 0.0.0.0:9000"
  std::string statusText() const {
    return absl::StrFormat("%d worker%s %s", config_.workers, config_.workers == 1 ? "" : "s",
                           status_.empty() ? "ready" : status_);
  }

  void restartDue() {
    const auto now = Clock::now();
    for (Worker& w : workers_) {
      if (w.restart_at && *w.restart_at <= now && !spawn(w)) {
        w.restart_at = now + kMaxBackoff;  // fork failed: try again later
      }
    }
  }

  int running() const {
    return static_cast<int>(
        std::count_if(workers_.begin(), workers_.end(), [](const Worker& w) { return w.pid > 0; }));
  }
  bool pendingRestarts() const {
    return std::any_of(workers_.begin(), workers_.end(),
                       [](const Worker& w) { return w.restart_at.has_value(); });
  }
  int pollTimeoutMs() const {
    std::optional<Clock::time_point> next;
    for (const Worker& w : workers_) {
      if (w.restart_at && (!next || *w.restart_at < *next)) next = w.restart_at;
    }
    if (!next || stopping_) return -1;
    auto left = std::chrono::duration_cast<milliseconds>(*next - Clock::now()).count();
    return static_cast<int>(std::clamp<int64_t>(left + 1, 0, kMaxBackoff.count()));
  }

  const ServerConfig& config_;
  const std::function<int(const ServerConfig&)>& serve_;
  std::vector<Worker> workers_;
  sigset_t signals_{};
  sigset_t old_mask_{};
  int sfd_ = -1;
  pid_t self_ = -1;
  bool stopping_ = false;
  uint64_t sighups_forwarded_ = 0;  // a worker spawned after one reloads at its start
  int exit_status_ = 0;
  // systemd (server/systemd.h), with $NOTIFY_SOCKET only.
  bool notify_ = false;
  bool announced_ready_ = false;  // READY=1 sent once every worker was ready
  bool reload_pending_ = false;   // RELOADING=1 sent; READY=1 when every worker has reloaded
  std::string status_;            // the workers' STATUS=, e.g. "listening on 0.0.0.0:9000"
};

}  // namespace

int runSupervisor(const ServerConfig& config,
                  const std::function<int(const ServerConfig&)>& serve_worker) {
  std::signal(SIGPIPE, SIG_IGN);
  return Supervisor(config, serve_worker).run();
}

void warnIfRequestsCannotMigrate() {
  std::ifstream in("/proc/sys/net/ipv4/tcp_migrate_req");
  int value = -1;
  if (!(in >> value)) {
    LOG_WARN("--reuseport: this kernel has no net.ipv4.tcp_migrate_req (Linux < 5.14): "
             "connections waiting to be accepted when a server stops are reset");
    return;
  }
  if (value != 1) {
    LOG_WARN("--reuseport: net.ipv4.tcp_migrate_req is %d: connections waiting to be accepted "
             "when a server stops are reset, not moved to the others on the port (for upgrades "
             "without loss: sysctl -w net.ipv4.tcp_migrate_req=1)",
             value);
  }
}

}  // namespace plexus::server
