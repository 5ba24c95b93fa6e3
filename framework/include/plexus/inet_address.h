#pragma once
// InetAddress: an IPv4 or IPv6 socket address. A value type; thread-compatible.

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace plexus {

class InetAddress {
 public:
  // 0.0.0.0:port, or 127.0.0.1:port when `loopback_only`.
  explicit InetAddress(uint16_t port = 0, bool loopback_only = false);
  explicit InetAddress(const sockaddr_in& addr);
  explicit InetAddress(const sockaddr_in6& addr);

  // Parses a numeric address: "1.2.3.4", "::1" or "[::1]" with `port`.
  static absl::StatusOr<InetAddress> fromIp(std::string_view ip, uint16_t port);
  // Parses "HOST:PORT", "[V6]:PORT" or ":PORT"/"PORT" (all interfaces). HOST may be a name
  // ("localhost"), resolved with getaddrinfo.
  static absl::StatusOr<InetAddress> parse(std::string_view host_port);
  // Resolves `host` (name or numeric) with `port`.
  static absl::StatusOr<InetAddress> resolve(std::string_view host, uint16_t port);

  sa_family_t family() const { return addr_.sin6_family; }
  uint16_t port() const;
  std::string toIp() const;
  std::string toIpPort() const;  // "1.2.3.4:80" or "[::1]:80"

  const sockaddr* sockAddr() const { return reinterpret_cast<const sockaddr*>(&addr_); }
  socklen_t sockLen() const;

 private:
  // Large enough for both families; sin6_family overlays sin_family.
  sockaddr_in6 addr_{};
};

}  // namespace plexus
