#include "support/scripted_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace plexus::testing {

ScriptedServer::ScriptedServer(Script script) : script_(std::move(script)) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 128) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return;
  }
  listen_fd_ = fd;
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { acceptLoop(); });
}

ScriptedServer::~ScriptedServer() {
  if (listen_fd_ < 0) return;
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  // On Linux, shutting down a listening socket makes a blocked accept() fail (EINVAL).
  ::shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  std::vector<std::thread> workers;
  {
    absl::MutexLock lock(&mutex_);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    workers.swap(workers_);
  }
  for (std::thread& t : workers) t.join();
  ::close(listen_fd_);
}

int ScriptedServer::accepted() const {
  absl::MutexLock lock(&mutex_);
  return accepted_;
}

void ScriptedServer::acceptLoop() {
  for (;;) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // shut down by the destructor (or a hard error: nothing more will be accepted)
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    absl::MutexLock lock(&mutex_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    ++accepted_;
    open_fds_.insert(fd);
    workers_.emplace_back([this, fd] { serve(fd); });
  }
}

void ScriptedServer::serve(int fd) {
  script_(fd);
  // Closed under the lock: the destructor shuts down only fds that are still open.
  absl::MutexLock lock(&mutex_);
  open_fds_.erase(fd);
  ::close(fd);
}

bool readLine(int fd, std::string* pending, std::string* line) {
  char buf[4096];
  for (;;) {
    if (size_t nl = pending->find('\n'); nl != std::string::npos) {
      line->assign(*pending, 0, nl + 1);
      pending->erase(0, nl + 1);
      return true;
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      line->swap(*pending);
      pending->clear();
      return false;
    }
    pending->append(buf, static_cast<size_t>(n));
  }
}

}  // namespace plexus::testing
