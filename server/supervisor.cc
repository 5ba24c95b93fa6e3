#include "supervisor.h"

#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
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
#include <vector>

#include "absl/strings/str_format.h"
#include "plexus/log.h"
#include "plexus/version.h"

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
    LOG_INFO("plexus-server %s supervisor (pid %d): starting %d worker%s", PLEXUS_VERSION_STRING,
             self_, config_.workers, config_.workers == 1 ? "" : "s");
    if (config_.server.reuse_port) warnIfRequestsCannotMigrate();
    workers_.resize(static_cast<size_t>(config_.workers));
    for (size_t i = 0; i < workers_.size(); ++i) {
      workers_[i].index = static_cast<int>(i) + 1;
      if (!spawn(workers_[i])) stopAll();
    }
    while (running() > 0 || (!stopping_ && pendingRestarts())) {
      pollfd p{sfd_, POLLIN, 0};
      int r = ::poll(&p, 1, pollTimeoutMs());
      if (r < 0 && errno != EINTR) {
        LOG_ERROR("supervisor: poll: %s", std::strerror(errno));
        stopAll();
      }
      signalfd_siginfo info;
      while (::read(sfd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        onSignal(static_cast<int>(info.ssi_signo));
      }
      reap();
      if (!stopping_) restartDue();
    }
    ::close(sfd_);
    LOG_INFO("plexus-server supervisor stopped");
    return exit_status_;
  }

 private:
  bool spawn(Worker& w) {
    w.restart_at.reset();
    const pid_t pid = ::fork();
    if (pid < 0) {
      LOG_ERROR("worker %d: fork: %s", w.index, std::strerror(errno));
      exit_status_ = 1;
      return false;
    }
    if (pid == 0) {
      // The worker: the signal mask and fds of a plain plexus-server.
      ::close(sfd_);
      sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != self_) std::_Exit(0);  // the supervisor died before prctl
      ServerConfig worker = config_;
      worker.workers = 0;
      worker.supervised = true;
      worker.server.reuse_port = true;
      std::exit(serve_(worker));
    }
    w.pid = pid;
    w.started = Clock::now();
    LOG_INFO("worker %d started (pid %d)", w.index, pid);
    return true;
  }

  void onSignal(int signo) {
    if (signo == SIGCHLD) return;  // reap() runs after every wakeup
    if (signo == SIGHUP) {
      LOG_INFO("SIGHUP: forwarded to %d worker%s", running(), running() == 1 ? "" : "s");
      forward(SIGHUP);
      return;
    }
    if (!stopping_) {
      LOG_INFO("SIG%s: stopping %d worker%s gracefully", sigabbrev_np(signo), running(),
               running() == 1 ? "" : "s");
    } else {
      LOG_WARN("SIG%s again: forwarded (the workers stop now)", sigabbrev_np(signo));
    }
    stopping_ = true;
    for (Worker& w : workers_) w.restart_at.reset();
    forward(signo);
  }

  void stopAll() {
    if (!stopping_) forward(SIGTERM);
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
    }
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
  int exit_status_ = 0;
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
