#include "socket_ops.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "plexus/log.h"

namespace plexus::detail {

absl::StatusOr<int> createNonblockingSocket(sa_family_t family) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return absl::InternalError(absl::StrFormat("socket: %s", std::strerror(errno)));
  return fd;
}

InetAddress localAddressOf(int fd) {
  sockaddr_in6 addr{};
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  if (addr.sin6_family == AF_INET) return InetAddress(*reinterpret_cast<sockaddr_in*>(&addr));
  return InetAddress(addr);
}

InetAddress peerAddressOf(int fd) {
  sockaddr_in6 addr{};
  socklen_t len = sizeof addr;
  ::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  if (addr.sin6_family == AF_INET) return InetAddress(*reinterpret_cast<sockaddr_in*>(&addr));
  return InetAddress(addr);
}

int socketError(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
  return err;
}

void setTcpNoDelay(int fd, bool on) {
  int v = on ? 1 : 0;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v);
}

bool isSelfConnect(int fd) {
  InetAddress local = localAddressOf(fd);
  InetAddress peer = peerAddressOf(fd);
  return local.family() == peer.family() && local.port() == peer.port() &&
         local.toIp() == peer.toIp();
}

void closeFd(int fd) {
  if (::close(fd) < 0 && errno != EINTR) LOG_ERROR("close(fd %d): %s", fd, std::strerror(errno));
}

}  // namespace plexus::detail
