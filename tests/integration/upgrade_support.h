#pragma once
// For the upgrade and --workers tests: a network namespace of the test's own (root only), a
// plexus-server child process read up to a line of its log, and a client that churns echo
// connections at a steady rate and counts every way one can fail.

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "integration/child_process.h"

namespace plexus::testing::upgrade {

using std::chrono::milliseconds;

// Moves the calling thread (and the threads and processes it starts afterwards) into a new
// network namespace with lo up and net.ipv4.tcp_migrate_req = `migrate`; the destructor moves it
// back. ok() is false, with why(), when that cannot be done (not root, no CAP_SYS_ADMIN).
class PrivateNetwork {
 public:
  explicit PrivateNetwork(int migrate) {
    if (::geteuid() != 0) {
      why_ = "needs root (a network namespace of its own, and a sysctl in it)";
      return;
    }
    original_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (original_ < 0 || ::unshare(CLONE_NEWNET) != 0) {
      why_ = std::string("cannot make a network namespace: ") + std::strerror(errno);
      return;
    }
    entered_ = true;
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    bool up = s >= 0 && ::ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    up = up && ::ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
    if (s >= 0) ::close(s);
    if (!up) {
      why_ = std::string("cannot bring lo up: ") + std::strerror(errno);
      return;
    }
    // /proc/sys/net is the namespace of whoever opens it: this thread's, now.
    std::ofstream sysctl("/proc/sys/net/ipv4/tcp_migrate_req");
    sysctl << migrate << "\n";
    sysctl.close();
    if (!sysctl) {
      why_ = "cannot set net.ipv4.tcp_migrate_req (Linux < 5.14?)";
      return;
    }
    ok_ = true;
  }
  ~PrivateNetwork() {
    if (entered_) ::setns(original_, CLONE_NEWNET);
    if (original_ >= 0) ::close(original_);
  }
  PrivateNetwork(const PrivateNetwork&) = delete;
  PrivateNetwork& operator=(const PrivateNetwork&) = delete;

  bool ok() const { return ok_; }
  const std::string& why() const { return why_; }

 private:
  int original_ = -1;
  bool entered_ = false;
  bool ok_ = false;
  std::string why_;
};

// A port free on 127.0.0.1 now.
inline uint16_t freeLoopbackPort() {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

// A plexus-server child whose stderr is read on demand.
class Server {
 public:
  explicit Server(std::vector<std::string> args) {
    args.insert(args.begin(), std::string(PLEXUS_BIN_DIR) + "/plexus-server");
    child_ = child::Child::spawn(args, {.pipe_stdin = false, .pipe_stdout = false});
  }
  // Reads stderr until `needle` has appeared `times` times (counted from the start).
  bool waitFor(const std::string& needle, int times = 1, milliseconds timeout = milliseconds(15000)) {
    auto deadline = child::SteadyClock::now() + timeout;
    for (;;) {
      int n = 0;
      for (size_t at = log_.find(needle); at != std::string::npos; at = log_.find(needle, at + 1)) ++n;
      if (n >= times) return true;
      const size_t before = log_.size();
      child::readUntilContains(child_.err(), &log_, needle, milliseconds(child::msLeft(deadline)),
                               before);
      if (log_.size() == before) return false;  // EOF or the deadline
    }
  }
  // Sends `sig`, waits for the exit and reads the rest of stderr. The exit status, -1 on timeout.
  int stop(int sig, milliseconds timeout = milliseconds(20000)) {
    child_.signal(sig);
    int status = child_.wait(timeout);
    child::readUntilContains(child_.err(), &log_, "\x01never", milliseconds(2000));
    return status;
  }
  pid_t pid() const { return child_.pid(); }
  const std::string& log() const { return log_; }

 private:
  child::Child child_;
  std::string log_;
};

// What a churning client saw.
struct ChurnCounts {
  int ok = 0;
  int refused = 0;     // connect: ECONNREFUSED
  int reset = 0;       // ECONNRESET / EPIPE on any call
  int mismatched = 0;  // EOF before the whole echo, or other bytes
  int other = 0;       // timeouts and anything else
  uint64_t bytes_echoed = 0;
  std::string first_error;
  int failed() const { return refused + reset + mismatched + other; }
};

// One connection: connect, send 16..64 random bytes, read the echo byte-exact, close.
inline void churnOnce(uint16_t port, std::mt19937_64& rng, ChurnCounts* c) {
  auto fail = [c](int* counter, const std::string& what) {
    ++*counter;
    if (c->first_error.empty()) c->first_error = what;
  };
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  auto by_errno = [&](const char* call) {
    const int err = errno;
    const std::string what = std::string(call) + ": " + std::strerror(err);
    if (err == ECONNREFUSED) return fail(&c->refused, what);
    if (err == ECONNRESET || err == EPIPE) return fail(&c->reset, what);
    fail(&c->other, what);
  };
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    by_errno("connect");
    ::close(fd);
    return;
  }
  std::string payload(16 + rng() % 49, '\0');
  for (char& ch : payload) ch = static_cast<char>(rng());
  if (::send(fd, payload.data(), payload.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(payload.size())) {
    by_errno("send");
    ::close(fd);
    return;
  }
  std::string got;
  char buf[128];
  while (got.size() < payload.size()) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      got.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      fail(&c->mismatched, "EOF after " + std::to_string(got.size()) + " of " +
                               std::to_string(payload.size()) + " bytes");
      ::close(fd);
      return;
    } else if (errno != EINTR) {
      by_errno("recv");
      ::close(fd);
      return;
    }
  }
  ::close(fd);
  if (got != payload) return fail(&c->mismatched, "echo differs");
  ++c->ok;
  c->bytes_echoed += got.size();
}

// Churns connections to 127.0.0.1:port at `per_second` on its own thread until stop().
class Churner {
 public:
  Churner(uint16_t port, int per_second)
      : thread_([this, port, per_second] {
          std::mt19937_64 rng(port);
          const auto interval = std::chrono::microseconds(1000000 / per_second);
          auto next = std::chrono::steady_clock::now();
          while (!stop_.load()) {
            churnOnce(port, rng, &counts_);
            // A steady rate, not a wait for a condition: the client is the load.
            next += interval;
            std::this_thread::sleep_until(next);
          }
        }) {}
  ~Churner() { stop(); }
  const ChurnCounts& stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return counts_;
  }

 private:
  std::atomic<bool> stop_{false};
  ChurnCounts counts_;
  std::thread thread_;
};

}  // namespace plexus::testing::upgrade
