#include "client/bench.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "client/bench_churn.h"
#include "client/bench_worker.h"
#include "client/fd_io.h"
#include "plexus/log.h"

namespace plexus::client {
namespace {

using namespace std::chrono_literals;
using Seconds = std::chrono::duration<double>;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// How long replies still in flight at the end of the window are waited for.
constexpr Duration kDrainTimeout = 2s;

Duration fromSeconds(double s) { return std::chrono::duration_cast<Duration>(Seconds(s)); }

// Waits for `n` until `deadline`; true if it was notified.
bool waitUntil(absl::Notification& n, Clock::time_point deadline) {
  const Duration left = deadline - Clock::now();
  if (left <= Duration::zero()) return n.HasBeenNotified();
  return n.WaitForNotificationWithTimeout(absl::FromChrono(left));
}

class Runner {
 public:
  Runner(const BenchOptions& options, const InetAddress& server, const BenchProgress& progress)
      : opts_(options),
        progress_(progress),
        pattern_(makeBenchPattern(options.size)),
        plan_{options, server, options.connections, pattern_},
        shared_(options.connections),
        threads_(std::min(options.threads, options.connections)) {}

  ~Runner() {
    for (int fd : idle_fds_) ::close(fd);
  }
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  absl::StatusOr<BenchResult> run() {
    shared_.setTokens(threads_);
    for (int t = 0; t < threads_; ++t) {
      std::vector<int> mine;
      for (int i = t; i < opts_.connections; i += threads_) mine.push_back(i);
      workers_.push_back(std::make_unique<BenchWorker>(t, &plan_, &shared_, std::move(mine)));
    }
    for (auto& w : workers_) {
      if (absl::Status s = w->start(); !s.ok()) return s;  // the destructors stop the others
    }
    BenchResult r = describe();

    // The silent connections first, so the server watches them all while the others run.
    if (opts_.idle > 0) connectIdle(&r);
    for (auto& w : workers_) w->connectAll();
    waitConnected();
    const bool started = up() > 0;
    if (started) {
      const Clock::time_point t0 = Clock::now();
      measure_start_ = t0 + fromSeconds(opts_.warmup_s);
      for (auto& w : workers_) w->go(t0);
      waitTraffic(t0);
    }
    const Clock::time_point finished = Clock::now();
    r.stalled = stalled_;
    r.stall_timeout_s = opts_.stall_timeout_s;

    Clock::time_point last_completion{};
    for (auto& w : workers_) {
      WorkerStats s;
      w->finish(&s);
      r.latency.merge(s.latency);
      r.messages += s.messages;
      r.mismatches += s.mismatches;
      r.disconnects += s.disconnects;
      r.connect_errors += s.connect_errors;
      r.connected += static_cast<int>(s.connected);
      r.unanswered += s.unanswered;
      r.sent += s.sent;
      r.completed += s.completed;
      r.bytes_received += s.bytes_received;
      last_completion = std::max(last_completion, s.last_completion);
      if (r.first_connect_error.empty()) r.first_connect_error = s.first_connect_error;
    }
    if (!started) {
      r.duration_s = 0;
    } else if (opts_.count > 0) {
      r.duration_s = r.messages > 0 ? Seconds(last_completion - measure_start_).count() : 0;
    } else {
      // The whole window, unless the connections were lost before it ended. (An open-loop run
      // may finish a little early on its own: its last message was scheduled before the end.)
      r.duration_s = r.disconnects == 0 ? opts_.duration_s
                                        : std::clamp(Seconds(finished - measure_start_).count(),
                                                     0.0, opts_.duration_s);
    }
    if (r.duration_s > 0) {
      r.msgs_per_sec = static_cast<double>(r.messages) / r.duration_s;
      r.mib_per_sec = r.msgs_per_sec * static_cast<double>(opts_.size) / (1024.0 * 1024.0);
    }
    return r;
  }

 private:
  BenchResult describe() const {
    BenchResult r;
    r.idle = opts_.idle;
    r.open_loop = opts_.openLoop();
    r.server = plan_.server.toIpPort();
    r.engine = workers_.front()->engineDescription();
    r.connections = opts_.connections;
    r.threads = threads_;
    r.size = opts_.size;
    r.rate = opts_.rate;
    r.warmup_s = opts_.warmup_s;
    r.count = opts_.count;
    r.verify = opts_.verify;
    return r;
  }

  // Opens --idle connections one at a time (no SYN burst), each with a blocking connect bounded
  // by the connect timeout. A failure counts as a connect error.
  void connectIdle(BenchResult* r) {
    const timeval tv{static_cast<time_t>(opts_.connect_timeout.count() / 1000),
                     static_cast<suseconds_t>(opts_.connect_timeout.count() % 1000 * 1000)};
    for (int i = 0; i < opts_.idle; ++i) {
      const int fd = ::socket(plan_.server.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        noteIdleError(r, absl::StrCat("idle connection: socket: ", std::strerror(errno)));
        continue;
      }
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      if (::connect(fd, plan_.server.sockAddr(), plan_.server.sockLen()) != 0) {
        noteIdleError(r, absl::StrCat("idle connection to ", plan_.server.toIpPort(), ": ",
                                      std::strerror(errno)));
        ::close(fd);
        continue;
      }
      idle_fds_.push_back(fd);
    }
    r->idle_connected = static_cast<int>(idle_fds_.size());
  }

  static void noteIdleError(BenchResult* r, std::string error) {
    ++r->connect_errors;
    if (r->first_connect_error.empty()) r->first_connect_error = std::move(error);
  }

  int up() const {
    int n = 0;
    for (const auto& w : workers_) n += w->up();
    return n;
  }
  uint64_t completed() const {
    uint64_t n = 0;
    for (const auto& w : workers_) n += w->completed();
    return n;
  }

  // Until every connection connected or failed. A connect that never reports back (it should not
  // happen: each has a timeout) is given up on when nothing settled for a while.
  void waitConnected() {
    Duration stall = opts_.connect_timeout + 2s;
    if (opts_.ramp_up > 0) stall += fromSeconds(threads_ / opts_.ramp_up);
    Clock::time_point last_change = Clock::now();
    Clock::time_point next_tick = last_change + 1s;
    int last_settled = 0;
    while (!waitUntil(shared_.allSettled(), next_tick)) {
      const Clock::time_point now = Clock::now();
      const int settled = shared_.settled();
      if (settled != last_settled) {
        last_settled = settled;
        last_change = now;
      } else if (now - last_change > stall) {
        return;
      }
      report(absl::StrFormat("connecting: %d/%d up, %d failed", up(), opts_.connections,
                             settled - up()));
      next_tick += 1s;
    }
  }

  void waitTraffic(Clock::time_point t0) {
    const bool timed = opts_.count == 0;
    const Clock::time_point end = measure_start_ + fromSeconds(opts_.duration_s);
    const Clock::time_point drain_deadline = end + kDrainTimeout;
    Clock::time_point next_tick = t0 + 1s;
    uint64_t last_completed = 0;
    Clock::time_point last_tick = t0;
    // --count has no end of its own: a server that stops answering must not hang the run.
    const Duration stall_timeout = fromSeconds(opts_.stall_timeout_s);
    uint64_t progress_seen = 0;
    Clock::time_point last_progress = t0;
    for (;;) {
      Clock::time_point deadline = next_tick;
      if (timed) deadline = std::min(deadline, Clock::now() < end ? end : drain_deadline);
      if (!timed) deadline = std::min(deadline, last_progress + stall_timeout);
      if (waitUntil(shared_.allDone(), deadline)) return;
      const Clock::time_point now = Clock::now();
      if (timed && now >= drain_deadline) return;
      if (!timed) {
        if (const uint64_t c = completed(); c != progress_seen) {
          progress_seen = c;
          last_progress = now;
        } else if (now - last_progress >= stall_timeout) {
          stalled_ = true;
          return;
        }
      }
      if (now < next_tick) continue;
      const uint64_t done = completed();
      const double rate = static_cast<double>(done - last_completed) / Seconds(now - last_tick).count();
      // The phase the last second began in.
      const char* phase = last_tick < measure_start_ - 10ms        ? "warm-up"
                          : timed && last_tick >= end - 10ms ? "draining"
                                                               : "measuring";
      last_completed = done;
      last_tick = now;
      next_tick += 1s;
      report(absl::StrFormat("%5.1f s  %-9s %10.0f msg/s  %d/%d up", Seconds(now - t0).count(),
                             phase, rate, up(), opts_.connections));
    }
  }

  void report(const std::string& line) {
    if (progress_) progress_(line);
  }

  const BenchOptions& opts_;
  const BenchProgress& progress_;
  const std::string pattern_;
  const BenchPlan plan_;
  BenchShared shared_;
  const int threads_;
  Clock::time_point measure_start_;
  bool stalled_ = false;  // --count: gave up waiting (see waitTraffic)
  // Declared last: destroyed first, while the plan and the shared state still exist.
  std::vector<std::unique_ptr<BenchWorker>> workers_;
  std::vector<int> idle_fds_;  // closed by the destructor
};

// Many connections need many fds: lift the soft limit towards the hard one when it is too low.
void raiseFdLimit(int connections) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t wanted = static_cast<rlim_t>(connections) + 64;
  if (limit.rlim_cur >= wanted) return;
  limit.rlim_cur = limit.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, limit.rlim_max);
  ::setrlimit(RLIMIT_NOFILE, &limit);
}

}  // namespace

absl::StatusOr<BenchResult> runBench(const BenchOptions& options, const InetAddress& server,
                                     const BenchProgress& progress) {
  Runner runner(options, server, progress);
  return runner.run();
}

int runBenchCommand(int argc, const char* const argv[]) {
  absl::StatusOr<BenchCommand> cmd = parseBenchCommand(argc, argv);
  if (!cmd.ok()) {
    reportError(absl::StrCat(cmd.status().message(), " (see plexus-client bench --help)"));
    return kExitUsage;
  }
  if (cmd->action == BenchCommand::Action::kHelp) {
    writeAll(STDOUT_FILENO, cmd->help);
    return kExitOk;
  }
  const BenchOptions& opts = cmd->options;
  setLogLevel(LogLevel::kError);
  raiseFdLimit(opts.connections + opts.idle);

  absl::StatusOr<InetAddress> server = InetAddress::resolve(opts.host, opts.port);
  if (!server.ok()) {
    reportError(absl::StrFormat("cannot resolve %s: %s", opts.host, server.status().message()));
    return kExitFailure;
  }

  if (opts.churn) {
    absl::StatusOr<ChurnResult> churn = runChurn(opts, *server);
    if (!churn.ok()) {
      reportError(std::string(churn.status().message()));
      return kExitUsage;
    }
    writeAll(STDOUT_FILENO, formatChurn(opts, *churn));
    if (churn->connections == 0 || churn->mismatches > 0) {
      reportError(churn->connections == 0 ? "no connection completed" : "echoed bytes differed");
      return kExitFailure;
    }
    return kExitOk;
  }

  // One line per second on stderr; on a terminal the same line, rewritten in place.
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  bool shown = false;
  BenchProgress progress;
  if (!opts.quiet) {
    progress = [tty, &shown](const std::string& line) {
      shown = true;
      writeAll(STDERR_FILENO, tty ? absl::StrCat("\r", line, "\033[K") : absl::StrCat(line, "\n"));
    };
  }
  absl::StatusOr<BenchResult> result = runBench(opts, *server, progress);
  if (shown && tty) writeAll(STDERR_FILENO, "\r\033[K");
  if (!result.ok()) {
    reportError(std::string(result.status().message()));
    return kExitFailure;
  }
  writeAll(STDOUT_FILENO, opts.json ? formatJson(*result) : formatSummary(*result));
  if (const std::string failure = benchFailure(*result); !failure.empty()) reportError(failure);
  return benchExitStatus(*result);
}

}  // namespace plexus::client
