#include "client/fd_io.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace plexus::client {

bool writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n >= 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
    // Someone made our stdout non-blocking (a shared terminal or pipe): wait until it takes more.
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, -1) < 0 && errno != EINTR) return false;
  }
  return true;
}

ssize_t readOrWake(int fd, char* buf, size_t n, int wake_fd) {
  for (;;) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (fds[1].revents != 0) return kWoken;
    if (fds[0].revents == 0) continue;
    // POLLHUP/POLLERR without POLLIN: read() reports EOF or the error.
    ssize_t r = ::read(fd, buf, n);
    if (r >= 0) return r;
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
    return -1;
  }
}

}  // namespace plexus::client

namespace plexus::client {

void reportError(std::string_view message) {
  std::string line = "plexus-client: error: ";
  line.append(message);
  line.push_back('\n');
  writeAll(STDERR_FILENO, line);
}

}  // namespace plexus::client
