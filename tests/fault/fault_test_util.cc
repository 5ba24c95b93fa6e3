#include "fault/fault_test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "support/test_util.h"

extern char** environ;

namespace plexus::testing::fault {

namespace {

int msLeft(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

bool startsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

std::vector<char*> cStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const std::string& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

std::vector<std::string> shimEnvironment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  std::string asan = "ASAN_OPTIONS=";
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string var = *e;
    if (startsWith(var, "LD_PRELOAD=") || startsWith(var, "PLEXUS_FAULT")) continue;
    if (startsWith(var, "ASAN_OPTIONS=")) {
      asan = var + ":";
      continue;
    }
    env.push_back(var);
  }
  env.push_back("LD_PRELOAD=" + kShim);
  // ASan insists on being first in the library list; the shim loads first, and needs none of it.
  env.push_back(asan + "verify_asan_link_order=0");
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

// ---- Process ----------------------------------------------------------------------------------

Process::Process(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                 const std::string& stdout_path) {
  int err[2];
  if (::pipe2(err, O_CLOEXEC) != 0) return;
  const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  const int out_fd = ::open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  std::vector<char*> args = cStrings(argv);
  std::vector<char*> envp = cStrings(env);
  pid_ = ::fork();
  if (pid_ == 0) {
    // Async-signal-safe calls only until execve: the test may have threads.
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  ::close(err[1]);
  ::close(null_fd);
  ::close(out_fd);
  if (pid_ < 0) {
    ::close(err[0]);
    return;
  }
  reader_ = std::thread([this, fd = err[0]] { collect(fd); });
}

Process::~Process() {
  if (pid_ > 0 && status_ == -1) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (reader_.joinable()) reader_.join();
}

void Process::collect(int fd) {
  constexpr size_t kHead = 256 * 1024, kTail = 16 * 1024;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    std::lock_guard<std::mutex> lock(mu_);
    if (n <= 0) {
      err_eof_ = true;
      cv_.notify_all();
      break;
    }
    err_total_ += static_cast<size_t>(n);
    const size_t to_head =
        std::min(static_cast<size_t>(n), kHead - std::min(kHead, err_head_.size()));
    err_head_.append(buf, to_head);
    err_tail_.append(buf + to_head, static_cast<size_t>(n) - to_head);
    if (err_tail_.size() > 2 * kTail) err_tail_.erase(0, err_tail_.size() - kTail);
    cv_.notify_all();
  }
  ::close(fd);
}

int Process::wait(milliseconds timeout) {
  if (pid_ <= 0) return -1;
  if (status_ != -1) return status_;
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    const auto deadline = Clock::now() + timeout;
    int r;
    do {
      r = ::poll(&p, 1, msLeft(deadline));
    } while (r < 0 && errno == EINTR);
    ::close(pidfd);
    if (r == 0) return -1;
  }
  int status = 0;
  rusage usage{};
  if (::wait4(pid_, &status, 0, &usage) != pid_) return -1;
  cpu_at_exit_ = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                 static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  // The reader may still be behind: stderr is complete at its EOF.
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, milliseconds(2000), [this] { return err_eof_; });
  return status_;
}

void Process::signal(int sig) {
  if (pid_ > 0 && status_ == -1) ::kill(pid_, sig);
}

bool Process::waitForStderr(const std::string& needle, milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] {
    return err_head_.find(needle) != std::string::npos || err_eof_;
  }) && err_head_.find(needle) != std::string::npos;
}

std::string Process::stderrText() {
  std::lock_guard<std::mutex> lock(mu_);
  if (err_tail_.empty()) return err_head_;
  return err_head_ + "\n[... " + std::to_string(err_total_ - err_head_.size() - err_tail_.size()) +
         " bytes left out ...]\n" + err_tail_;
}

// ---- FaultyServer -----------------------------------------------------------------------------

FaultyServer::FaultyServer(const ServerSpec& spec, const std::string& faults, bool arm_later,
                           std::vector<std::string> extra_args) {
  static std::atomic<int> seq{0};
  dir_ = ::testing::TempDir() + "plexus_fault_" + std::to_string(::getpid()) + "_" +
         std::to_string(seq++) + "/";
  ::mkdir(dir_.c_str(), 0700);
  ::unlink((dir_ + "faults.log").c_str());
  ::unlink((dir_ + "arm").c_str());
  std::vector<std::string> env_extra = {"PLEXUS_FAULTS=" + faults,
                                        "PLEXUS_FAULT_LOG=" + dir_ + "faults.log"};
  if (arm_later) env_extra.push_back("PLEXUS_FAULT_ARM=" + dir_ + "arm");
  const std::vector<std::string> env = shimEnvironment(env_extra);
  // freePort() can race with another test taking the port: try again on "Address already in use".
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = freePort();
    const std::string listen = "127.0.0.1:" + std::to_string(port_);
    const std::string threads = std::to_string(spec.threads);
    std::vector<std::string> argv = {kServer,  "--listen",    listen,
                                     "--threads", threads, "--engine", spec.engine,
                                     "--shutdown-timeout", "2"};
    // The mode is epoll's alone: the server refuses it with another engine.
    if (spec.engine == "epoll") argv.insert(argv.end(), {"--epoll-mode", spec.epoll_mode});
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    process_ = std::make_unique<Process>(argv, env);
    if (process_->waitForStderr(" listening on ", milliseconds(10000 * kSlowdown))) {
      ok_ = true;
      return;
    }
    const int status = process_->wait(milliseconds(2000));
    const std::string err = process_->stderrText();
    if (status == 2 && err.find("Address already in use") != std::string::npos) continue;
    start_error_ = "plexus-server did not start (status " + std::to_string(status) + "): " + err;
    return;
  }
  start_error_ = "no free port";
}

FaultyServer::~FaultyServer() {
  process_.reset();
  ::unlink((dir_ + "faults.log").c_str());
  ::unlink((dir_ + "arm").c_str());
  ::rmdir(dir_.c_str());
}

void FaultyServer::arm() {
  ::close(::open((dir_ + "arm").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
}

int FaultyServer::fdCount() const {
  DIR* d = ::opendir(("/proc/" + std::to_string(process_->pid()) + "/fd").c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n;
}

bool FaultyServer::waitFdCountAtMost(int n, milliseconds timeout, int* last) {
  // No event tells when the server has closed its fds: re-check until the deadline.
  return waitUntil(
      [&] {
        *last = fdCount();
        return *last >= 0 && *last <= n;
      },
      timeout);
}

double FaultyServer::cpuSeconds() const {
  std::ifstream in("/proc/" + std::to_string(process_->pid()) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  double ticks = 0;
  // After the command: state is field 3; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i >= 14) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::string FaultyServer::faultLog() const {
  std::ifstream in(dir_ + "faults.log");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::vector<FaultRecord> FaultyServer::faults() const {
  std::vector<FaultRecord> out;
  std::istringstream lines(faultLog());
  std::string line;
  while (std::getline(lines, line)) {
    if (!startsWith(line, "plexus-fault rule=")) continue;
    FaultRecord r;
    r.line = line;
    std::istringstream words(line);
    std::string word;
    while (words >> word) {
      const size_t eq = word.find('=');
      if (eq == std::string::npos) continue;
      const std::string key = word.substr(0, eq), value = word.substr(eq + 1);
      if (key == "rule") r.rule = std::stoi(value);
      if (key == "syscall") r.syscall = value;
      if (key == "call") r.call = std::stoull(value);
      if (key == "fd") r.fd = std::stoi(value);
    }
    out.push_back(r);
  }
  return out;
}

std::string FaultyServer::diagnostics() {
  std::string log = faultLog();
  if (log.size() > 2000) log = log.substr(0, 2000) + "[...]\n";
  std::string err = process_->stderrText();
  if (err.size() > 4000) err = "[...]" + err.substr(err.size() - 4000);
  return "fault log:\n" + (log.empty() ? std::string("(empty)\n") : log) +
         "server stderr (tail):\n" + err;
}

// ---- EchoLoad ---------------------------------------------------------------------------------

const char* outcomeName(Outcome o) {
  switch (o) {
    case Outcome::kRunning: return "running";
    case Outcome::kDone: return "done";
    case Outcome::kEof: return "EOF";
    case Outcome::kReset: return "reset";
    case Outcome::kHung: return "hung";
    case Outcome::kCorrupt: return "corrupt";
    case Outcome::kConnectFailed: return "connect failed";
  }
  return "?";
}

EchoLoad::EchoLoad(InetAddress server, uint64_t seed, LoadOptions options)
    : server_(server), options_(options), seed_(seed), deadline_(Clock::now() + options.deadline) {}

EchoLoad::~EchoLoad() { closeAll(); }

std::vector<size_t> EchoLoad::connect(int count) {
  std::vector<size_t> added;
  for (int k = 0; k < count; ++k) {
    Conn c;
    c.rng.seed(seed_ * 1000003 + conns_.size());
    c.last_progress = Clock::now();
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c.fd < 0 || ::connect(c.fd, server_.sockAddr(), server_.sockLen()) != 0) {
      c.outcome = Outcome::kConnectFailed;
      c.detail = std::string("connect: ") + std::strerror(errno);
    } else {
      const int one = 1;
      ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::fcntl(c.fd, F_SETFL, ::fcntl(c.fd, F_GETFL) | O_NONBLOCK);
      nextMessage(c);
    }
    added.push_back(conns_.size());
    conns_.push_back(std::move(c));
  }
  return added;
}

void EchoLoad::nextMessage(Conn& c) {
  // Mostly small messages, some that fill the socket buffers (the server then queues output).
  const uint64_t pick = c.rng() % 100;
  size_t size;
  if (pick < 60) {
    size = 1 + c.rng() % 512;
  } else if (pick < 90) {
    size = 513 + c.rng() % 7680;
  } else {
    size = 8193 + c.rng() % (options_.max_message > 8193 ? options_.max_message - 8192 : 1);
  }
  c.message.resize(size);
  for (char& ch : c.message) ch = static_cast<char>(c.rng());
  c.sent = 0;
  c.received = 0;
}

void EchoLoad::finish(Conn& c, Outcome o, std::string detail) {
  c.outcome = o;
  c.detail = "round " + std::to_string(c.round + 1) + "/" + std::to_string(options_.rounds) + ", " +
             std::to_string(c.received) + " of " + std::to_string(c.message.size()) +
             " bytes echoed (" + std::to_string(c.sent) + " sent)" +
             (detail.empty() ? "" : ": " + detail);
}

void EchoLoad::onWritable(Conn& c) {
  const size_t n = std::min<size_t>(c.message.size() - c.sent, 65536);
  const ssize_t w = ::send(c.fd, c.message.data() + c.sent, n, MSG_NOSIGNAL);
  if (w > 0) {
    c.sent += static_cast<size_t>(w);
    c.last_progress = Clock::now();
  } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
    finish(c, Outcome::kReset, std::string("send: ") + std::strerror(errno));
  }
}

void EchoLoad::onReadable(Conn& c) {
  char buf[65536];
  const ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
  if (r == 0) {
    finish(c, Outcome::kEof, "");
    return;
  }
  if (r < 0) {
    if (errno != EAGAIN && errno != EINTR) {
      finish(c, Outcome::kReset, std::string("recv: ") + std::strerror(errno));
    }
    return;
  }
  const auto n = static_cast<size_t>(r);
  if (c.received + n > c.message.size() ||
      std::memcmp(buf, c.message.data() + c.received, n) != 0) {
    finish(c, Outcome::kCorrupt,
           "echo differs from what was sent (" + std::to_string(n) + " bytes read at offset " +
               std::to_string(c.received) + ")");
    return;
  }
  c.received += n;
  c.last_progress = Clock::now();
  if (c.received == c.message.size()) {
    if (++c.round == options_.rounds) {
      c.outcome = Outcome::kDone;
    } else {
      nextMessage(c);
    }
  }
}

void EchoLoad::run(const std::function<bool()>& until) {
  std::vector<pollfd> pfds;
  std::vector<size_t> index;
  for (;;) {
    if (until && until()) return;
    const auto now = Clock::now();
    pfds.clear();
    index.clear();
    for (size_t i = 0; i < conns_.size(); ++i) {
      Conn& c = conns_[i];
      if (c.outcome != Outcome::kRunning) continue;
      if (now >= deadline_) {
        finish(c, Outcome::kHung, "the whole run's deadline passed");
        continue;
      }
      if (now - c.last_progress > options_.stall_timeout) {
        finish(c, Outcome::kHung,
               "no progress for " + std::to_string(options_.stall_timeout.count()) + " ms");
        continue;
      }
      short events = POLLIN;
      if (c.sent < c.message.size()) events |= POLLOUT;
      pfds.push_back(pollfd{c.fd, events, 0});
      index.push_back(i);
    }
    if (pfds.empty()) return;
    const int n = ::poll(pfds.data(), pfds.size(), 50);
    if (n <= 0) continue;
    for (size_t k = 0; k < pfds.size(); ++k) {
      Conn& c = conns_[index[k]];
      if ((pfds[k].revents & POLLOUT) && c.outcome == Outcome::kRunning) onWritable(c);
      if ((pfds[k].revents & (POLLIN | POLLHUP | POLLERR)) && c.outcome == Outcome::kRunning) {
        onReadable(c);
      }
    }
  }
}

bool EchoLoad::reached(const std::vector<size_t>& indexes, int rounds) const {
  for (size_t i : indexes) {
    if (conns_[i].outcome == Outcome::kRunning && conns_[i].round < rounds) return false;
  }
  return true;
}

void EchoLoad::closeAll() {
  for (Conn& c : conns_) {
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
  }
}

int EchoLoad::count(Outcome o) const {
  int n = 0;
  for (const Conn& c : conns_) n += c.outcome == o;
  return n;
}

std::string EchoLoad::summary() const {
  std::string s = std::to_string(count(Outcome::kDone)) + " of " + std::to_string(conns_.size()) +
                  " connections done byte-exact";
  for (size_t i = 0; i < conns_.size(); ++i) {
    const Conn& c = conns_[i];
    if (c.outcome == Outcome::kDone) continue;
    s += "\n  connection " + std::to_string(i) + ": " + outcomeName(c.outcome) + ", " + c.detail;
  }
  return s;
}

}  // namespace plexus::testing::fault
