#include "soak/soak_support.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/time/time.h"
#include "support/test_util.h"

namespace plexus::testing::soak {

size_t scaled(size_t full, size_t reduced, std::string_view what) {
  if (!kAddressSanitizer) return full;
  std::printf("[ scaled   ] AddressSanitizer build: %.*s %zu instead of %zu\n",
              static_cast<int>(what.size()), what.data(), reduced, full);
  std::fflush(stdout);
  return reduced;
}

double secondsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t rank = static_cast<size_t>(p * static_cast<double>(values.size()));
  return values[std::min(rank, values.size() - 1)];
}

double median(std::vector<double> values) { return percentile(std::move(values), 0.5); }

// ---- ServerProcess

ServerProcess::ServerProcess(const std::vector<std::string>& args,
                             const std::vector<std::string>& env)
    : port_(freePort()) {
  std::vector<std::string> argv;
  if (!env.empty()) {
    // env(1) execs the server in its own process: the pid stays the server's.
    argv.push_back("/usr/bin/env");
    argv.insert(argv.end(), env.begin(), env.end());
  }
  argv.insert(argv.end(), {std::string(PLEXUS_BIN_DIR) + "/plexus-server", "--listen",
                           "127.0.0.1:" + std::to_string(port_)});
  argv.insert(argv.end(), args.begin(), args.end());
  child_ = child::Child::spawn(argv, {.pipe_stdin = false, .pipe_stdout = false});
  drain_ = std::thread([this] { drainStderr(); });
}

ServerProcess::~ServerProcess() {
  // Killing it closes the pipe, which ends the drain thread; ~Child reaps it.
  child_.signal(SIGKILL);
  drain_.join();
}

void ServerProcess::drainStderr() {
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(child_.err(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    absl::MutexLock lock(&mu_);
    if (n <= 0) {
      err_closed_ = true;
      return;
    }
    err_.append(buf, static_cast<size_t>(n));
  }
}

bool ServerProcess::waitUntilListening(milliseconds timeout) {
  return waitForLog(" listening on ", 1, timeout);
}

int ServerProcess::fdCount() const {
  DIR* dir = ::opendir(("/proc/" + std::to_string(pid()) + "/fd").c_str());
  if (dir == nullptr) return -1;
  int n = 0;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n;
}

long ServerProcess::statusKiB(std::string_view field) const {
  std::ifstream in("/proc/" + std::to_string(pid()) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, field.size(), field) == 0) return std::stol(line.substr(field.size()));
  }
  return -1;
}

bool ServerProcess::waitForFdCount(int count, milliseconds timeout, int* last) const {
  int seen = -1;
  bool ok = waitUntil(
      [&] {
        seen = fdCount();
        return seen == count;
      },
      timeout);
  if (last) *last = seen;
  return ok;
}

std::string ServerProcess::log() const {
  absl::MutexLock lock(&mu_);
  return err_;
}

namespace {
size_t countOf(std::string_view text, std::string_view needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string_view::npos;
       pos = text.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}
}  // namespace

size_t ServerProcess::logCount(std::string_view needle) const {
  absl::MutexLock lock(&mu_);
  return countOf(err_, needle);
}

bool ServerProcess::waitForLog(std::string_view needle, size_t count, milliseconds timeout) const {
  absl::MutexLock lock(&mu_);
  // Re-evaluated each time the drain thread appends, or gives up at EOF.
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return err_closed_ || countOf(err_, needle) >= count;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), absl::FromChrono(timeout));
  return countOf(err_, needle) >= count;
}

int ServerProcess::stop(milliseconds timeout) {
  child_.signal(SIGTERM);
  int status = child_.wait(timeout);
  if (status == -1) {
    child_.signal(SIGKILL);
    child_.wait(milliseconds(5000));
  }
  return status;
}

// ---- sockets

int connectFrom(uint16_t port, int source_host, milliseconds io_timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{};
  tv.tv_sec = io_timeout.count() / 1000;
  tv.tv_usec = (io_timeout.count() % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // bounds connect() too
  int one = 1;
  // The port is chosen at connect(), for the whole 4-tuple, not at bind().
  ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  sockaddr_in from{};
  from.sin_family = AF_INET;
  from.sin_addr.s_addr = htonl(INADDR_LOOPBACK - 1 + static_cast<uint32_t>(source_host));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void setNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

size_t raiseFdLimit(size_t wanted) {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < wanted) {
    rl.rlim_cur = std::min<rlim_t>(wanted, rl.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

// ---- Pattern

Pattern::Pattern() : bytes_(randomBytes(kPeriod, 0x5eed)) {}

const Pattern& Pattern::get() {
  static const Pattern* pattern = new Pattern();
  return *pattern;
}

std::string_view Pattern::at(uint64_t offset, size_t max) const {
  const size_t start = static_cast<size_t>(offset % kPeriod);
  return std::string_view(bytes_).substr(start, std::min(max, kPeriod - start));
}

bool Pattern::matches(uint64_t offset, std::string_view data) const {
  while (!data.empty()) {
    std::string_view expected = at(offset, data.size());
    if (data.substr(0, expected.size()) != expected) return false;
    data.remove_prefix(expected.size());
    offset += expected.size();
  }
  return true;
}

std::string streamEcho(uint16_t port, uint64_t total, milliseconds timeout, int source_host,
                       bool half_close) {
  const auto deadline = SteadyClock::now() + timeout;
  int fd = connectFrom(port, source_host);
  if (fd < 0) return std::string("connect: ") + std::strerror(errno);
  setNonBlocking(fd);
  const Pattern& pattern = Pattern::get();
  constexpr size_t kChunk = 256 * 1024;
  std::string buf(kChunk, '\0');
  uint64_t sent = 0, received = 0;
  bool write_shut = false;
  std::string error;
  while (error.empty()) {
    if (!half_close && received == total) break;  // with half_close: on EOF, below
    if (SteadyClock::now() > deadline) {
      error = "timed out with " + std::to_string(sent) + " bytes sent, " +
              std::to_string(received) + " received of " + std::to_string(total);
      break;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (sent < total ? POLLOUT : 0)), 0};
    int r = ::poll(&p, 1, std::min(child::msLeft(deadline), 1000));
    if (r < 0 && errno != EINTR) {
      error = std::string("poll: ") + std::strerror(errno);
      break;
    }
    if (r <= 0) continue;
    if (p.revents & POLLOUT) {
      std::string_view chunk = pattern.at(sent, std::min<uint64_t>(kChunk, total - sent));
      ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<uint64_t>(n);
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        error = std::string("send: ") + std::strerror(errno);
        break;
      }
      if (half_close && sent == total && !write_shut) {
        ::shutdown(fd, SHUT_WR);
        write_shut = true;
      }
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n > 0) {
        const std::string_view got(buf.data(), static_cast<size_t>(n));
        if (received + got.size() > total) {
          error = "more bytes back than sent";
        } else if (!pattern.matches(received, got)) {
          error = "echo differs in the " + std::to_string(got.size()) + " bytes at offset " +
                  std::to_string(received);
        }
        received += got.size();
      } else if (n == 0) {
        if (!half_close || received != total) {
          error = "EOF after " + std::to_string(received) + " of " + std::to_string(total) +
                  " bytes";
        }
        break;  // with half_close and everything back: done
      } else if (errno != EAGAIN && errno != EINTR) {
        error = std::string("recv: ") + std::strerror(errno);
      }
    }
  }
  ::close(fd);
  return error;
}

std::string churnCycle(uint16_t port, size_t n) {
  // 16 source addresses: the clean closes leave their sockets in TIME_WAIT on this side, and tens
  // of thousands of them would use up one address's ephemeral ports.
  int fd = connectFrom(port, 2 + static_cast<int>(n % 16), milliseconds(5000));
  if (fd < 0) return std::string("connect: ") + std::strerror(errno);
  std::string error;
  const std::string msg = "churn " + std::to_string(n) + "/" + std::string(n % 17, 'x');
  if (!writeAll(fd, msg)) {
    error = std::string("send: ") + std::strerror(errno);
  } else if (std::string got = readExactly(fd, msg.size()); got != msg) {
    error = "echo '" + got + "' of '" + msg + "'";
  }
  if (n % 3 == 2) {
    closeWithReset(fd);
  } else {
    ::close(fd);
  }
  return error;
}

}  // namespace plexus::testing::soak
