#pragma once
// Helpers for the fault tests: plexus-server run under the fault shim (FaultyServer), and many echo
// connections driven by one poll(2) loop that check every byte and notice hangs (EchoLoad).
// Every wait here has a deadline: a server that hangs makes a test fail within seconds.

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "plexus/inet_address.h"

namespace plexus::testing::fault {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

const std::string kShim = PLEXUS_FAULT_SHIM;
const std::string kProbe = PLEXUS_FAULT_PROBE;
const std::string kServer = std::string(PLEXUS_BIN_DIR) + "/plexus-server";

// Sanitizer builds run slower: their deadlines are longer.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kSlowdown = 2;
#else
constexpr int kSlowdown = 1;
#endif

// The environment of a process run under the shim: ours, less any earlier preload or fault
// settings, plus LD_PRELOAD=shim, `extra` ("NAME=VALUE") and an ASAN_OPTIONS that lets a sanitized
// program start with the shim loaded before its sanitizer runtime.
std::vector<std::string> shimEnvironment(const std::vector<std::string>& extra);

// A process started with execve, stdout to `stdout_path` (default /dev/null), stderr collected by
// a thread (head kept, the rest counted: a server that logs in a loop cannot fill a pipe and
// block).
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::vector<std::string>& env,
          const std::string& stdout_path = "/dev/null");
  ~Process();  // SIGKILL if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // The exit status (0-255), 128 + N when killed by signal N, or -1 still running at the deadline.
  // Once it has exited, stderrText() is complete.
  int wait(milliseconds timeout);
  bool running() { return wait(milliseconds(0)) == -1; }
  // CPU time (user + system) it used in all, once wait() has seen it exit; else -1.
  double cpuSecondsAtExit() const { return cpu_at_exit_; }
  void signal(int sig);
  // Waits until stderr contains `needle` (or EOF, or the deadline).
  bool waitForStderr(const std::string& needle, milliseconds timeout);
  std::string stderrText();  // so far; its last 16 KiB when it is long

 private:
  void collect(int fd);

  pid_t pid_ = -1;
  int status_ = -1;
  double cpu_at_exit_ = -1;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string err_head_, err_tail_;
  size_t err_total_ = 0;
  bool err_eof_ = false;
};

struct ServerSpec {
  std::string engine;      // epoll, poll, select
  std::string epoll_mode;  // oneshot, level, edge (epoll only)
  int threads = 1;
};

// One fault that fired, from the shim's log.
struct FaultRecord {
  int rule = 0;
  std::string syscall;
  uint64_t call = 0;
  int fd = -1;
  std::string line;
};

// plexus-server on a free loopback port, under the shim with `faults` (PLEXUS_FAULTS). With
// `arm_later` the shim counts nothing until arm().
class FaultyServer {
 public:
  FaultyServer(const ServerSpec& spec, const std::string& faults, bool arm_later,
               std::vector<std::string> extra_args = {});
  ~FaultyServer();

  // Started and listening (the "listening on" line came); else why not in startError().
  bool ok() const { return ok_; }
  const std::string& startError() const { return start_error_; }
  InetAddress address() const { return InetAddress(port_, /*loopback_only=*/true); }
  Process& process() { return *process_; }

  void arm();
  // Entries in /proc/PID/fd; -1 when gone.
  int fdCount() const;
  // Waits (bounded) until fdCount() <= n; false with the last count in *last.
  bool waitFdCountAtMost(int n, milliseconds timeout, int* last);
  // CPU time (user + system) the server has used so far, in seconds.
  double cpuSeconds() const;
  std::vector<FaultRecord> faults() const;
  std::string faultLog() const;
  // A summary for failure messages: the fault log's head and stderr's tail.
  std::string diagnostics();

 private:
  std::string dir_;
  uint16_t port_ = 0;
  std::unique_ptr<Process> process_;
  bool ok_ = false;
  std::string start_error_;
};

// How one echo connection ended.
enum class Outcome {
  kRunning,  // not finished yet
  kDone,     // every round echoed byte-exact
  kEof,      // the server closed it (every byte before was exact)
  kReset,    // ECONNRESET/EPIPE (every byte before was exact)
  kHung,     // owed bytes and made no progress for the stall timeout
  kCorrupt,  // a byte came back wrong
  kConnectFailed,
};
const char* outcomeName(Outcome o);

struct LoadOptions {
  int rounds = 24;             // messages per connection, each echoed before the next is sent
  size_t max_message = 32768;  // message sizes are random in 1..max_message, mostly small
  milliseconds stall_timeout{2000 * kSlowdown};
  milliseconds deadline{30000 * kSlowdown};  // the whole run
};

// Echo connections, each sending `rounds` random messages and checking each echo byte by byte.
// Single-threaded: run() polls every connection until a condition holds or all have finished.
class EchoLoad {
 public:
  EchoLoad(InetAddress server, uint64_t seed, LoadOptions options = {});
  ~EchoLoad();
  EchoLoad(const EchoLoad&) = delete;
  EchoLoad& operator=(const EchoLoad&) = delete;

  // Connects `count` more connections (blocking connect, then non-blocking I/O). Their indexes.
  std::vector<size_t> connect(int count);
  // Drives the connections until `until` holds (checked between polls) or none is running.
  void run(const std::function<bool()>& until = nullptr);
  // True when each of `indexes` has finished or done at least `rounds` rounds.
  bool reached(const std::vector<size_t>& indexes, int rounds) const;
  void closeAll();

  size_t size() const { return conns_.size(); }
  Outcome outcome(size_t i) const { return conns_[i].outcome; }
  int count(Outcome o) const;
  // One line per connection that did not finish kDone, and a count of those that did.
  std::string summary() const;

 private:
  struct Conn {
    int fd = -1;
    Outcome outcome = Outcome::kRunning;
    int round = 0;        // rounds done
    std::string message;  // this round's
    size_t sent = 0, received = 0;
    Clock::time_point last_progress;
    std::string detail;
    std::mt19937_64 rng;
  };
  void nextMessage(Conn& c);
  void finish(Conn& c, Outcome o, std::string detail);
  void onWritable(Conn& c);
  void onReadable(Conn& c);

  InetAddress server_;
  LoadOptions options_;
  uint64_t seed_;
  Clock::time_point deadline_;
  std::vector<Conn> conns_;
};

}  // namespace plexus::testing::fault
