#pragma once
// Helpers for the engine tests: fds that close themselves, socketpairs and loopback TCP pairs.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "plexus/engine.h"

namespace plexus {

// So that gtest names the engine in failure messages instead of dumping bytes.
inline void PrintTo(const EngineOptions& options, std::ostream* os) {
  *os << options.name;
  if (options.name == "epoll") *os << "/" << std::string(epollModeName(options.epoll_mode));
  if (options.name == "epoll" && options.epoll_mode == EpollMode::kOneshot &&
      !options.epoll_batch_rearm) {
    *os << "/epoll_ctl";
  }
}

namespace engine_test {

// One ready fd, as dispatch() handed it to its callback.
struct ReadyEvent {
  int fd;
  uint32_t events;
  void* ctx;
};

// One dispatch() of `engine`, with a callback that only records: what the engine handed over, in
// order. Like the event loop, the engine re-arms oneshot fds after each call.
inline absl::StatusOr<std::vector<ReadyEvent>> dispatchAll(Engine& engine, int timeout_ms) {
  std::vector<ReadyEvent> out;
  auto record = [](void* ctx, int fd, uint32_t events, void* arg) {
    static_cast<std::vector<ReadyEvent>*>(arg)->push_back(ReadyEvent{fd, events, ctx});
  };
  absl::StatusOr<int> n = engine.dispatch(timeout_ms, record, &out);
  if (!n.ok()) return n.status();
  // Every ready fd gets exactly one call (a kEventFailed call would add one).
  if (static_cast<size_t>(*n) != out.size()) {
    ADD_FAILURE() << "dispatch() returned " << *n << " but made " << out.size() << " calls";
  }
  return out;
}

// Closes its fd on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

struct Pair {
  Fd a;  // the end the engine watches
  Fd b;  // the peer
};

// A non-blocking AF_UNIX stream socketpair.
inline Pair socketPair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    ADD_FAILURE() << "socketpair: " << strerror(errno);
    return {};
  }
  return {Fd(fds[0]), Fd(fds[1])};
}

// A connected loopback TCP pair: `a` non-blocking (watched by the engine), `b` blocking.
inline Pair tcpPair() {
  Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listener.get() < 0 || ::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(listener.get(), 1) != 0 ||
      ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "listen on loopback: " << strerror(errno);
    return {};
  }
  Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    ADD_FAILURE() << "connect: " << strerror(errno);
    return {};
  }
  Fd server(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (server.get() < 0) ADD_FAILURE() << "accept4: " << strerror(errno);
  return {std::move(server), std::move(client)};
}

inline bool writeByte(int fd, char c = 'x') { return ::write(fd, &c, 1) == 1; }

// Reads what is there (the fd must be non-blocking); returns the byte count.
inline size_t drain(int fd) {
  char buf[65536];
  size_t total = 0;
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) total += static_cast<size_t>(n);
  return total;
}

// Writes to a non-blocking fd until EAGAIN; returns the byte count.
inline size_t fill(int fd) {
  static const std::string chunk(65536, 'f');
  size_t total = 0;
  for (;;) {
    ssize_t n = ::write(fd, chunk.data(), chunk.size());
    if (n <= 0) break;
    total += static_cast<size_t>(n);
  }
  return total;
}

}  // namespace engine_test
}  // namespace plexus
