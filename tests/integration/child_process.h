#pragma once
// Runs programs as child processes for the integration tests: pipes or a pseudo-terminal, reads
// with deadlines, exits waited for through a pidfd. Header-only, so any test file can use it.
// Nothing here sleeps: every wait is a poll() on an fd with a deadline.

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace plexus::testing::child {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

inline int msLeft(SteadyClock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

struct SpawnOptions {
  bool pipe_stdin = true;   // else /dev/null
  bool pipe_stdout = true;  // else inherited
  bool pipe_stderr = true;  // else inherited (shows up in the test's own output)
};

class Child {
 public:
  Child() = default;
  Child(Child&& other) noexcept { *this = std::move(other); }
  Child& operator=(Child&& other) noexcept {
    std::swap(pid_, other.pid_);
    std::swap(in_, other.in_);
    std::swap(out_, other.out_);
    std::swap(err_, other.err_);
    return *this;
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    closeFd(in_);
    closeFd(out_);
    closeFd(err_);
  }

  // Starts argv[0] (a path) with stdout, and as asked stdin and stderr, on pipes.
  static Child spawn(const std::vector<std::string>& argv, SpawnOptions options = {}) {
    Child c;
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    if (options.pipe_stdin) ::pipe2(in, O_CLOEXEC);
    if (options.pipe_stdout) ::pipe2(out, O_CLOEXEC);
    if (options.pipe_stderr) ::pipe2(err, O_CLOEXEC);
    std::vector<char*> args = cArgs(argv);
    pid_t pid = ::fork();
    if (pid == 0) {
      // Only async-signal-safe calls between fork and exec (the test is multi-threaded).
      resetSignals();
      int null_fd = ::open("/dev/null", O_RDONLY);
      ::dup2(options.pipe_stdin ? in[0] : null_fd, STDIN_FILENO);
      if (options.pipe_stdout) ::dup2(out[1], STDOUT_FILENO);
      if (options.pipe_stderr) ::dup2(err[1], STDERR_FILENO);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    c.pid_ = pid;
    if (options.pipe_stdin) {
      ::close(in[0]);
      c.in_ = in[1];
      // Writes to the child never block the test: communicate() polls for room.
      ::fcntl(c.in_, F_SETFL, ::fcntl(c.in_, F_GETFL) | O_NONBLOCK);
    }
    if (options.pipe_stdout) {
      ::close(out[1]);
      c.out_ = out[0];
    }
    if (options.pipe_stderr) {
      ::close(err[1]);
      c.err_ = err[0];
    }
    return c;
  }

  // Starts argv[0] on a new pseudo-terminal (its stdin, stdout and stderr, controlling terminal).
  // in() and out() are both the master side. The terminal keeps line editing but does not echo
  // input, so what the test reads is what the program wrote.
  static Child spawnOnPty(const std::vector<std::string>& argv) {
    Child c;
    std::vector<char*> args = cArgs(argv);
    termios tio{};
    ::cfmakeraw(&tio);
    tio.c_iflag = ICRNL;
    tio.c_oflag = OPOST | ONLCR;
    tio.c_lflag = ICANON | ISIG;  // no ECHO
    tio.c_cflag = CS8 | CREAD;
    tio.c_cc[VEOF] = 4;  // Ctrl-D
    tio.c_cc[VINTR] = 3;
    tio.c_cc[VMIN] = 1;
    ::cfsetspeed(&tio, B38400);
    int master = -1;
    pid_t pid = ::forkpty(&master, nullptr, &tio, nullptr);
    if (pid == 0) {
      resetSignals();
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    if (pid > 0) ::fcntl(master, F_SETFD, FD_CLOEXEC);
    c.pid_ = pid;
    c.in_ = master;
    c.out_ = ::fcntl(master, F_DUPFD_CLOEXEC, 0);
    return c;
  }

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int in() const { return in_; }
  int out() const { return out_; }
  int err() const { return err_; }
  void closeIn() { closeFd(in_); }
  void signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }

  // Waits for the exit: its status (0-255), 128 + N when killed by signal N, or -1 when it is still
  // running at the deadline.
  int wait(milliseconds timeout) {
    if (pid_ <= 0) return -1;
    // The raw syscall: Debian 12's <sys/pidfd.h> lacks extern "C" for C++.
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      int r;
      do {
        r = ::poll(&p, 1, static_cast<int>(timeout.count()));
      } while (r < 0 && errno == EINTR);
      ::close(pidfd);
      if (r == 0) return -1;
    }
    int status = 0;
    if (::waitpid(pid_, &status, 0) != pid_) return -1;
    pid_ = -1;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
  }

 private:
  // The child starts with default signal handling whatever the test set up (SIGPIPE ignored).
  static void resetSignals() {
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
  }
  static std::vector<char*> cArgs(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    return args;
  }
  static void closeFd(int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }

  pid_t pid_ = -1;
  int in_ = -1;
  int out_ = -1;
  int err_ = -1;
};

// Reads from `fd` into *acc until *acc contains `needle` at or after `from`, EOF (a pty master gives
// EIO once the child is gone), or the deadline. True when found.
inline bool readUntilContains(int fd, std::string* acc, std::string_view needle,
                              milliseconds timeout, size_t from = 0) {
  auto deadline = SteadyClock::now() + timeout;
  char buf[4096];
  for (;;) {
    if (acc->find(needle, from) != std::string::npos) return true;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, msLeft(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return false;
    acc->append(buf, static_cast<size_t>(n));
  }
}

// Writes all of `data` with write(2), so to a pipe or a pty as well as a socket. False on error.
inline bool writeTo(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 1000);
      continue;
    }
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

struct Outcome {
  int status = -1;  // as Child::wait(); -1: timed out
  std::string out;
  std::string err;
};

// Feeds `input` to the child's stdin and closes it, collecting stdout and stderr at the same time
// (so neither side can block the other), until both reach EOF; then waits for the exit. All within
// `timeout`.
inline Outcome communicate(Child& c, std::string_view input,
                           milliseconds timeout = milliseconds(60000)) {
  ::signal(SIGPIPE, SIG_IGN);  // a child that exits early makes write() fail, not kill the test
  Outcome o;
  auto deadline = SteadyClock::now() + timeout;
  if (input.empty()) c.closeIn();
  bool out_open = c.out() >= 0, err_open = c.err() >= 0;
  char buf[65536];
  while ((out_open || err_open || c.in() >= 0) && SteadyClock::now() < deadline) {
    pollfd fds[3] = {{c.in(), POLLOUT, 0}, {out_open ? c.out() : -1, POLLIN, 0},
                     {err_open ? c.err() : -1, POLLIN, 0}};
    int r = ::poll(fds, 3, msLeft(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    if (fds[0].revents & (POLLOUT | POLLERR | POLLHUP)) {
      ssize_t n = ::write(c.in(), input.data(), input.size());
      if (n > 0) input.remove_prefix(static_cast<size_t>(n));
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || input.empty()) c.closeIn();
    }
    for (int i = 1; i <= 2; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 1 ? o.out : o.err).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        (i == 1 ? out_open : err_open) = false;
      }
    }
  }
  c.closeIn();
  o.status = c.wait(milliseconds(msLeft(deadline)));
  return o;
}

}  // namespace plexus::testing::child
