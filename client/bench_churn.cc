#include "client/bench_churn.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "client/bench_worker.h"

namespace plexus::client {
namespace {

using SteadyClock = std::chrono::steady_clock;

// One thread's share of the slots, and its counts (its own until joined).
class ChurnThread {
 public:
  ChurnThread(const InetAddress& server, int slots, std::string_view pattern, size_t size,
              const std::atomic<int>* phase)
      : server_(server), slots_(static_cast<size_t>(slots)), pattern_(pattern), size_(size),
        phase_(phase) {}

  void run() {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) {
      noteError("epoll_create1", errno, &connect_errors_);
      return;
    }
    for (size_t i = 0; i < slots_.size(); ++i) {
      slots_[i].index = i;
      open(slots_[i]);
    }
    std::vector<epoll_event> events(256);
    while (phase_->load(std::memory_order_relaxed) < 2) {
      int n = ::epoll_wait(ep_, events.data(), static_cast<int>(events.size()), 50);
      for (int i = 0; i < n; ++i) {
        Slot& s = slots_[events[static_cast<size_t>(i)].data.u64];
        onEvent(s, events[static_cast<size_t>(i)].events);
      }
    }
    for (Slot& s : slots_) {
      if (s.fd >= 0) ::close(s.fd);
    }
    ::close(ep_);
  }

  uint64_t measured() const { return measured_; }
  uint64_t connectErrors() const { return connect_errors_; }
  uint64_t resets() const { return resets_; }
  uint64_t mismatches() const { return mismatches_; }
  const std::string& firstError() const { return first_error_; }

 private:
  struct Slot {
    size_t index = 0;
    int fd = -1;
    bool connected = false;
    size_t got = 0;
    uint64_t round = 0;
  };

  const char* payloadOf(const Slot& s) const {
    return pattern_.data() + ((s.index * 131 + s.round * 17) & (kPatternWindow - 1));
  }

  void noteError(const char* what, int err, uint64_t* counter) {
    ++*counter;
    if (first_error_.empty()) first_error_ = absl::StrFormat("%s: %s", what, std::strerror(err));
  }

  // A new connection for the slot; a failure is counted and retried on the next round.
  void open(Slot& s) {
    for (int attempt = 0; attempt < 1000 && phase_->load(std::memory_order_relaxed) < 2;
         ++attempt) {
      s.fd = ::socket(server_.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (s.fd < 0) {
        noteError("socket", errno, &connect_errors_);
        continue;
      }
      int one = 1;
      ::setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      s.connected = false;
      s.got = 0;
      if (::connect(s.fd, server_.sockAddr(), server_.sockLen()) == 0) {
        s.connected = true;
        if (sendPayload(s)) return;
        continue;
      }
      if (errno != EINPROGRESS) {
        noteError("connect", errno, &connect_errors_);
        ::close(s.fd);
        s.fd = -1;
        continue;
      }
      epoll_event ev{};
      ev.events = EPOLLOUT;
      ev.data.u64 = s.index;
      ::epoll_ctl(ep_, EPOLL_CTL_ADD, s.fd, &ev);
      return;
    }
  }

  // Sends the payload (it fits in an empty socket buffer) and waits for the echo.
  bool sendPayload(Slot& s) {
    ssize_t n = ::send(s.fd, payloadOf(s), size_, MSG_NOSIGNAL);
    if (n != static_cast<ssize_t>(size_)) {
      noteError("send", n < 0 ? errno : EMSGSIZE, &resets_);
      closeSlot(s);
      return false;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = s.index;
    if (::epoll_ctl(ep_, EPOLL_CTL_MOD, s.fd, &ev) < 0 && errno == ENOENT) {
      ::epoll_ctl(ep_, EPOLL_CTL_ADD, s.fd, &ev);
    }
    return true;
  }

  void closeSlot(Slot& s) {
    ::close(s.fd);  // removes it from the epoll set too
    s.fd = -1;
  }

  void onEvent(Slot& s, uint32_t events) {
    if (!s.connected) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0 || (events & EPOLLERR)) {
        noteError("connect", err != 0 ? err : ECONNREFUSED, &connect_errors_);
        closeSlot(s);
        open(s);
        return;
      }
      s.connected = true;
      if (!sendPayload(s)) open(s);
      return;
    }
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
      if (n > 0) {
        const size_t got = static_cast<size_t>(n);
        if (s.got + got > size_ || std::memcmp(buf, payloadOf(s) + s.got, got) != 0) {
          ++mismatches_;
          if (first_error_.empty()) first_error_ = "echoed bytes differ";
          break;
        }
        s.got += got;
        if (s.got < size_) continue;
        // Whole echo: close, count, and again.
        if (phase_->load(std::memory_order_relaxed) == 1) ++measured_;
        ++s.round;
        closeSlot(s);
        open(s);
        return;
      }
      if (n < 0 && errno == EAGAIN) return;
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) {
        ++resets_;
        if (first_error_.empty()) first_error_ = "recv: EOF before the whole echo";
      } else {
        noteError("recv", errno, &resets_);
      }
      break;
    }
    ++s.round;
    closeSlot(s);
    open(s);
  }

  const InetAddress server_;
  std::vector<Slot> slots_;
  const std::string_view pattern_;
  const size_t size_;
  const std::atomic<int>* const phase_;  // 0 warm-up, 1 measuring, 2 done
  int ep_ = -1;
  uint64_t measured_ = 0;
  uint64_t connect_errors_ = 0;
  uint64_t resets_ = 0;
  uint64_t mismatches_ = 0;
  std::string first_error_;
};

}  // namespace

absl::StatusOr<ChurnResult> runChurn(const BenchOptions& o, const InetAddress& server) {
  if (o.count > 0 || o.rate > 0 || o.idle > 0) {
    return absl::InvalidArgumentError("--churn runs for --duration: no --count, --rate or --idle");
  }
  const std::string pattern = makeBenchPattern(o.size);
  std::atomic<int> phase{o.warmup_s > 0 ? 0 : 1};
  const int threads = std::min(o.threads, o.connections);
  std::vector<std::unique_ptr<ChurnThread>> workers;
  for (int t = 0; t < threads; ++t) {
    const int slots = o.connections / threads + (t < o.connections % threads ? 1 : 0);
    workers.push_back(std::make_unique<ChurnThread>(server, slots, pattern, o.size, &phase));
  }
  std::vector<std::thread> running;
  for (auto& w : workers) running.emplace_back([&w] { w->run(); });
  // The phases are a timetable: the controlling thread only waits for the clock.
  if (o.warmup_s > 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup_s));
    phase = 1;
  }
  const auto start = SteadyClock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(o.duration_s));
  phase = 2;
  const auto end = SteadyClock::now();
  for (auto& t : running) t.join();

  ChurnResult r;
  r.seconds = std::chrono::duration<double>(end - start).count();
  for (const auto& w : workers) {
    r.connections += w->measured();
    r.connect_errors += w->connectErrors();
    r.resets += w->resets();
    r.mismatches += w->mismatches();
    if (r.first_error.empty()) r.first_error = w->firstError();
  }
  return r;
}

std::string formatChurn(const BenchOptions& o, const ChurnResult& r) {
  if (o.json) {
    return absl::StrFormat(
        "{\"mode\":\"churn\",\"size\":%u,\"connections\":%d,\"threads\":%d,\"seconds\":%.3f,"
        "\"completed\":%u,\"connections_per_second\":%.1f,\"connect_errors\":%u,\"resets\":%u,"
        "\"mismatches\":%u}\n",
        o.size, o.connections, o.threads, r.seconds, r.connections, r.perSecond(),
        r.connect_errors, r.resets, r.mismatches);
  }
  return absl::StrFormat(
      "churn: %d connections in flight on %d threads, %u B each way, %.1f s measured\n"
      "connections/s: %.0f (%u completed)\n"
      "connect errors: %u, resets: %u, mismatches: %u%s\n",
      o.connections, o.threads, o.size, r.seconds, r.perSecond(), r.connections, r.connect_errors,
      r.resets, r.mismatches, r.first_error.empty() ? "" : " (first: " + r.first_error + ")");
}

}  // namespace plexus::client
