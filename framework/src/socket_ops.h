#pragma once
// Thin wrappers over the socket calls the framework makes. Any thread.

#include <sys/socket.h>

#include "absl/status/statusor.h"
#include "plexus/inet_address.h"

namespace plexus::detail {

// A non-blocking, close-on-exec TCP socket of the address's family.
absl::StatusOr<int> createNonblockingSocket(sa_family_t family);
InetAddress localAddressOf(int fd);
InetAddress peerAddressOf(int fd);
// The pending error of a socket (SO_ERROR), 0 if none.
int socketError(int fd);
void setTcpNoDelay(int fd, bool on);
// True when a non-blocking connect reached itself (same local and peer address): Linux may do that
// when connecting to a free port of loopback.
bool isSelfConnect(int fd);
void closeFd(int fd);

}  // namespace plexus::detail
