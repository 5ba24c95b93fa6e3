#pragma once
// Helpers for the long-running tests of plexus-server (tests/soak/): the server as a child process
// whose stderr is collected as it comes, its fd count and RSS from /proc, client sockets from many
// loopback source addresses, a byte pattern long streams are checked against, and the scaling
// that keeps the tests within their time under AddressSanitizer.
//
// Every wait here is bounded: a server that hangs makes a test fail, never wait for ctest's
// timeout.

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "integration/child_process.h"

namespace plexus::testing::soak {

using std::chrono::milliseconds;
using std::chrono::seconds;
using SteadyClock = std::chrono::steady_clock;

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif

// `full` in a plain build, `reduced` under AddressSanitizer (server and client several times
// slower); says so on stdout when it picks `reduced`.
size_t scaled(size_t full, size_t reduced, std::string_view what);

// Seconds since `start`, as a double.
double secondsSince(SteadyClock::time_point start);

// The value at fraction `p` (0..1) of `values` by nearest rank; 0 when empty. Sorts a copy.
double percentile(std::vector<double> values, double p);
double median(std::vector<double> values);

// A plexus-server child process on 127.0.0.1:<a free port>. Its stderr is read by a thread of its
// own as it comes (so a chatty server never blocks on a full pipe) and kept for the test.
class ServerProcess {
 public:
  // build/bin/plexus-server --listen 127.0.0.1:PORT, then `args`; `env` ("NAME=VALUE") added to
  // its environment.
  explicit ServerProcess(const std::vector<std::string>& args,
                         const std::vector<std::string>& env = {});
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Waits for its "listening on" line; false if it exits first or `timeout` passes.
  bool waitUntilListening(milliseconds timeout = milliseconds(20000));

  uint16_t port() const { return port_; }
  pid_t pid() const { return child_.pid(); }

  // Entries in /proc/PID/fd; -1 if unreadable.
  int fdCount() const;
  // VmRSS and VmHWM from /proc/PID/status, in KiB; -1 if unreadable.
  long rssKiB() const { return statusKiB("VmRSS:"); }
  long peakRssKiB() const { return statusKiB("VmHWM:"); }
  long statusKiB(std::string_view field) const;

  // Waits until fdCount() == `count`; false after `timeout` (the last count in *last).
  bool waitForFdCount(int count, milliseconds timeout, int* last = nullptr) const;

  // Its stderr so far.
  std::string log() const;
  // Occurrences of `needle` in its stderr so far.
  size_t logCount(std::string_view needle) const;
  // Waits until its stderr holds `needle` at least `count` times.
  bool waitForLog(std::string_view needle, size_t count, milliseconds timeout) const;

  // SIGTERM, then its exit status (-1: still running after `timeout`, then killed).
  int stop(milliseconds timeout = milliseconds(20000));

 private:
  void drainStderr();

  uint16_t port_;
  child::Child child_;
  std::thread drain_;
  mutable absl::Mutex mu_;
  std::string err_ ABSL_GUARDED_BY(mu_);
  bool err_closed_ ABSL_GUARDED_BY(mu_) = false;
};

// A blocking TCP socket from 127.0.0.<source_host> (1-254, any port) to 127.0.0.1:port, with
// TCP_NODELAY and send/receive timeouts of `io_timeout` (the connect is bounded by it too); -1 on
// failure, with errno set. Spreading short-lived connections over several source addresses keeps
// the TIME_WAIT sockets of clean closes from using up one address's ephemeral ports.
int connectFrom(uint16_t port, int source_host, milliseconds io_timeout = milliseconds(10000));

// Makes `fd` non-blocking.
void setNonBlocking(int fd);

// Raises this process's RLIMIT_NOFILE soft limit to at least `wanted` (up to the hard limit);
// children started afterwards inherit it. Returns the soft limit now in force.
size_t raiseFdLimit(size_t wanted);

// The bytes long streams carry: random bytes repeated with a prime period, so that a byte lost,
// duplicated or moved shows up as a mismatch at its offset (only a shift by a whole multiple of the
// period could hide, and streams are compared from offset 0 on).
class Pattern {
 public:
  static constexpr size_t kPeriod = 1000003;
  static const Pattern& get();
  // The longest run of pattern bytes starting at stream offset `offset`, at most `max` long.
  std::string_view at(uint64_t offset, size_t max) const;
  // Whether `data` equals the stream's bytes at `offset`.
  bool matches(uint64_t offset, std::string_view data) const;

 private:
  Pattern();
  std::string bytes_;  // kPeriod bytes
};

// Streams `total` pattern bytes through a new connection to 127.0.0.1:port as fast as the socket
// takes them, reading the echo at the same time and checking every byte. Returns "" on success or
// what went wrong; `timeout` bounds the whole transfer. With `half_close`, shuts the write side
// down after the last byte and expects EOF once the echo is complete.
std::string streamEcho(uint16_t port, uint64_t total, milliseconds timeout, int source_host = 1,
                       bool half_close = false);

// One churn cycle: connects to 127.0.0.1:port from 127.0.0.<2 + n % 16>, sends "churn <n>/" and
// n % 17 bytes of filler, checks the echo, and closes: with a RST (SO_LINGER {1, 0}) when
// n % 3 == 2, else with a FIN. "" or what went wrong.
std::string churnCycle(uint16_t port, size_t n);

}  // namespace plexus::testing::soak
