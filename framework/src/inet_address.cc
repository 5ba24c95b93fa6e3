#include "plexus/inet_address.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace plexus {

InetAddress::InetAddress(uint16_t port, bool loopback_only) {
  auto* a4 = reinterpret_cast<sockaddr_in*>(&addr_);
  a4->sin_family = AF_INET;
  a4->sin_port = htons(port);
  a4->sin_addr.s_addr = htonl(loopback_only ? INADDR_LOOPBACK : INADDR_ANY);
}

InetAddress::InetAddress(const sockaddr_in& addr) { std::memcpy(&addr_, &addr, sizeof addr); }
InetAddress::InetAddress(const sockaddr_in6& addr) : addr_(addr) {}

uint16_t InetAddress::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&addr_)->sin_port);
  return ntohs(addr_.sin6_port);
}

socklen_t InetAddress::sockLen() const {
  return family() == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

std::string InetAddress::toIp() const {
  char buf[INET6_ADDRSTRLEN] = "";
  if (family() == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&addr_)->sin_addr, buf, sizeof buf);
  } else {
    ::inet_ntop(AF_INET6, &addr_.sin6_addr, buf, sizeof buf);
  }
  return buf;
}

std::string InetAddress::toIpPort() const {
  if (family() == AF_INET6) return absl::StrFormat("[%s]:%u", toIp(), port());
  return absl::StrFormat("%s:%u", toIp(), port());
}

absl::StatusOr<InetAddress> InetAddress::fromIp(std::string_view ip, uint16_t port) {
  std::string s(ip);
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  sockaddr_in a4{};
  if (::inet_pton(AF_INET, s.c_str(), &a4.sin_addr) == 1) {
    a4.sin_family = AF_INET;
    a4.sin_port = htons(port);
    return InetAddress(a4);
  }
  sockaddr_in6 a6{};
  if (::inet_pton(AF_INET6, s.c_str(), &a6.sin6_addr) == 1) {
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(port);
    return InetAddress(a6);
  }
  return absl::InvalidArgumentError(absl::StrFormat("'%s' is not an IP address", ip));
}

absl::StatusOr<InetAddress> InetAddress::resolve(std::string_view host, uint16_t port) {
  if (auto ip = fromIp(host, port); ip.ok()) return ip;
  std::string h(host);
  // getaddrinfo also takes inet_aton's shorthands ("1.2.3" is 1.2.0.3, "127.1", hex and octal
  // parts), which are almost always typos: an address must be a whole dotted quad.
  if (in_addr legacy{}; ::inet_aton(h.c_str(), &legacy) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "'%s' is not an IPv4 address in dotted-quad form (like 127.0.0.1)", host));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(h.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    return absl::NotFoundError(absl::StrFormat("cannot resolve '%s': %s", host, ::gai_strerror(rc)));
  }
  absl::StatusOr<InetAddress> out = absl::NotFoundError(absl::StrFormat("cannot resolve '%s'", host));
  // Prefer IPv4, as most peers listen there.
  for (addrinfo* p = res; p; p = p->ai_next) {
    if (p->ai_family == AF_INET) {
      sockaddr_in a4;
      std::memcpy(&a4, p->ai_addr, sizeof a4);
      a4.sin_port = htons(port);
      out = InetAddress(a4);
      break;
    }
    if (p->ai_family == AF_INET6 && !out.ok()) {
      sockaddr_in6 a6;
      std::memcpy(&a6, p->ai_addr, sizeof a6);
      a6.sin6_port = htons(port);
      out = InetAddress(a6);
    }
  }
  ::freeaddrinfo(res);
  return out;
}

absl::StatusOr<InetAddress> InetAddress::parse(std::string_view host_port) {
  std::string_view host;
  std::string_view port_text;
  if (!host_port.empty() && host_port.front() == '[') {
    size_t close = host_port.find(']');
    if (close == std::string_view::npos || close + 1 >= host_port.size() ||
        host_port[close + 1] != ':') {
      return absl::InvalidArgumentError(
          absl::StrFormat("bad address '%s' (expected [IPv6]:PORT)", host_port));
    }
    host = host_port.substr(0, close + 1);
    port_text = host_port.substr(close + 2);
  } else {
    size_t colon = host_port.rfind(':');
    if (colon == std::string_view::npos) {
      port_text = host_port;
    } else {
      host = host_port.substr(0, colon);
      port_text = host_port.substr(colon + 1);
    }
  }
  uint32_t port = 0;
  if (!absl::SimpleAtoi(absl::string_view(port_text.data(), port_text.size()), &port) || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bad address '%s' (expected HOST:PORT with PORT 0-65535)", host_port));
  }
  if (host.empty() || host == "*") return InetAddress(static_cast<uint16_t>(port));
  return resolve(host, static_cast<uint16_t>(port));
}

}  // namespace plexus
