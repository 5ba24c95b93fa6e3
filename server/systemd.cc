#include "systemd.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "plexus/log.h"

namespace plexus::server {
namespace {

// Where notifications go: set once by takeNotifySocket(), then only read.
struct NotifyTarget {
  absl::Mutex mu;
  std::string name ABSL_GUARDED_BY(mu);  // $NOTIFY_SOCKET as given; empty: notifications off
  int fd ABSL_GUARDED_BY(mu) = -1;       // a datagram socket, opened at the first notification
  bool connected ABSL_GUARDED_BY(mu) = false;  // fd is connected (redirectNotifications())
  bool failed_once ABSL_GUARDED_BY(mu) = false;
};

NotifyTarget& target() {
  static NotifyTarget* t = new NotifyTarget;  // never destroyed: notifications may come late
  return *t;
}

// The sockaddr_un for $NOTIFY_SOCKET; an error when it cannot be one.
absl::Status notifyAddress(const std::string& name, sockaddr_un* addr, socklen_t* len) {
  *addr = sockaddr_un{};
  addr->sun_family = AF_UNIX;
  if (name.size() < 2 || (name[0] != '/' && name[0] != '@')) {
    return absl::InvalidArgumentError("not an absolute path or @abstract name");
  }
  if (name.size() >= sizeof addr->sun_path) return absl::InvalidArgumentError("too long");
  std::memcpy(addr->sun_path, name.data(), name.size());
  if (name[0] == '@') {
    // Abstract: a leading NUL, and the length says where the name ends (no trailing NUL).
    addr->sun_path[0] = '\0';
    *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  } else {
    *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + 1);
  }
  return absl::OkStatus();
}

std::string errnoText(int err) { return std::strerror(err); }

// "3" -> 3; false when not a plain non-negative decimal number.
template <typename T>
bool parseNumber(const char* text, T* out) {
  if (text == nullptr || *text == '\0') return false;
  const char* end = text + std::strlen(text);
  auto [ptr, ec] = std::from_chars(text, end, *out);
  return ec == std::errc() && ptr == end && *out >= 0;
}

constexpr int kListenFdsStart = 3;  // SD_LISTEN_FDS_START
constexpr int kMaxInheritedSockets = 4096;

}  // namespace

void takeNotifySocket() {
  const char* value = ::getenv("NOTIFY_SOCKET");
  if (value == nullptr) return;
  NotifyTarget& t = target();
  {
    absl::MutexLock lock(&t.mu);
    t.name = value;
  }
  ::unsetenv("NOTIFY_SOCKET");
}

bool notificationsEnabled() {
  NotifyTarget& t = target();
  absl::MutexLock lock(&t.mu);
  return !t.name.empty();
}

void redirectNotifications(int fd, std::string name) {
  NotifyTarget& t = target();
  absl::MutexLock lock(&t.mu);
  // A socket opened before the fork is the parent's too: only this process's copy closes.
  if (t.fd >= 0) ::close(t.fd);
  t.fd = fd;
  t.name = fd >= 0 ? std::move(name) : std::string();  // no channel: notifications off
  t.connected = true;
  t.failed_once = false;
}

bool sdNotify(std::string_view message) {
  NotifyTarget& t = target();
  absl::MutexLock lock(&t.mu);
  if (t.name.empty()) return false;
  sockaddr_un addr;
  socklen_t len = 0;
  std::string error;
  if (t.connected) {
    ssize_t n = ::send(t.fd, message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == static_cast<ssize_t>(message.size())) return true;
    error = n < 0 ? errnoText(errno) : "short send";
  } else if (absl::Status s = notifyAddress(t.name, &addr, &len); !s.ok()) {
    error = std::string(s.message());
  } else {
    if (t.fd < 0) t.fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (t.fd < 0) {
      error = absl::StrCat("socket: ", errnoText(errno));
    } else {
      // MSG_DONTWAIT: a service manager that does not read never blocks the caller (a loop).
      ssize_t n = ::sendto(t.fd, message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                           reinterpret_cast<const sockaddr*>(&addr), len);
      if (n == static_cast<ssize_t>(message.size())) return true;
      error = n < 0 ? errnoText(errno) : "short send";
    }
  }
  // The first line of the message names it: "READY=1", "STOPPING=1"...
  const std::string_view what = message.substr(0, message.find('\n'));
  const std::string where =
      t.connected ? t.name : absl::StrCat("NOTIFY_SOCKET '", t.name, "'");
  if (!t.failed_once) {
    t.failed_once = true;
    LOG_WARN("sd_notify: cannot send %s to %s: %s (later failures are logged at debug level)",
             what, where, error);
  } else {
    LOG_DEBUG("sd_notify: cannot send %s to %s: %s", what, where, error);
  }
  return false;
}

void notifyReady(std::string_view status) {
  // STATUS= is one line: a newline in it would start another assignment.
  std::string one_line(status);
  for (char& c : one_line) {
    if (c == '\n') c = ' ';
  }
  sdNotify(absl::StrCat("READY=1\nSTATUS=", one_line));
}

uint64_t monotonicUsec() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
}

void notifyReloading() { sdNotify(absl::StrCat("RELOADING=1\nMONOTONIC_USEC=", monotonicUsec())); }

void notifyStopping() { sdNotify("STOPPING=1"); }

std::string InheritedSocket::describe() const {
  return name.empty() ? absl::StrFormat("fd %d %s", fd, address.toIpPort())
                      : absl::StrFormat("fd %d (%s) %s", fd, name, address.toIpPort());
}

absl::StatusOr<std::vector<InheritedSocket>> takeInheritedSockets() {
  const char* pid_text = ::getenv("LISTEN_PID");
  const char* fds_text = ::getenv("LISTEN_FDS");
  const char* names_text = ::getenv("LISTEN_FDNAMES");
  // Copies: unsetenv may free what getenv returned.
  const bool has_fds = fds_text != nullptr;
  const std::string fds_value = fds_text ? fds_text : "";
  const std::string names_value = names_text ? names_text : "";
  pid_t pid = 0;
  const bool ours = parseNumber(pid_text, &pid) && pid == ::getpid();
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  std::vector<InheritedSocket> sockets;
  if (!ours || !has_fds) return sockets;

  int count = 0;
  if (!parseNumber(fds_value.c_str(), &count) || count > kMaxInheritedSockets) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid LISTEN_FDS '%s' (expected a count of sockets)", fds_value));
  }
  std::vector<std::string> names;
  if (!names_value.empty()) names = absl::StrSplit(names_value, ':');
  for (int i = 0; i < count; ++i) {
    InheritedSocket s;
    s.fd = kListenFdsStart + i;
    if (i < static_cast<int>(names.size())) s.name = names[i];
    const std::string shown =
        s.name.empty() ? absl::StrFormat("fd %d", s.fd) : absl::StrFormat("fd %d (%s)", s.fd, s.name);
    // Close-on-exec at once, as sd_listen_fds() does: nothing the server starts inherits them.
    if (::fcntl(s.fd, F_SETFD, FD_CLOEXEC) < 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("inherited socket %s (LISTEN_FDS=%d): %s", shown, count,
                          errnoText(errno)));
    }
    sockaddr_in6 addr{};
    socklen_t len = sizeof addr;
    int type = 0;
    socklen_t type_len = sizeof type;
    if (::getsockname(s.fd, reinterpret_cast<sockaddr*>(&addr), &len) < 0 ||
        (addr.sin6_family != AF_INET && addr.sin6_family != AF_INET6) ||
        ::getsockopt(s.fd, SOL_SOCKET, SO_TYPE, &type, &type_len) < 0 || type != SOCK_STREAM) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "inherited %s is not a TCP socket (plexus-server listens on IPv4 and IPv6 only)", shown));
    }
    s.address = addr.sin6_family == AF_INET ? InetAddress(*reinterpret_cast<sockaddr_in*>(&addr))
                                            : InetAddress(addr);
    sockets.push_back(std::move(s));
  }
  return sockets;
}

absl::Status assignInheritedSockets(const std::vector<InheritedSocket>& sockets,
                                    ServerConfig* config) {
  if (sockets.empty()) return absl::OkStatus();
  const bool named_listeners = !(config->listeners.size() == 1 && config->listeners[0].spec.empty());
  if (!named_listeners) {
    // No --listen: the service manager's sockets are the listeners, each served by --plugin.
    std::vector<ListenerConfig> listeners;
    for (const InheritedSocket& s : sockets) {
      listeners.push_back(ListenerConfig{.address = s.address,
                                         .plugin = config->plugin,
                                         .plugin_args = config->plugin_args,
                                         .spec = "inherited " + s.describe(),
                                         .inherited_fd = s.fd});
    }
    config->listeners = std::move(listeners);
    config->server.listen_address = config->listeners.front().address;
    return absl::OkStatus();
  }
  for (const InheritedSocket& s : sockets) {
    ListenerConfig* match = nullptr;
    for (ListenerConfig& l : config->listeners) {
      if (l.address.toIpPort() == s.address.toIpPort()) match = &l;
    }
    if (match == nullptr) {
      std::vector<std::string> addresses;
      for (const ListenerConfig& l : config->listeners) addresses.push_back(l.address.toIpPort());
      return absl::InvalidArgumentError(
          absl::StrFormat("inherited socket %s matches no --listen address (%s)", s.describe(),
                          absl::StrJoin(addresses, ", ")));
    }
    if (match->inherited_fd >= 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "inherited sockets fd %d and fd %d both listen on %s", match->inherited_fd, s.fd,
          s.address.toIpPort()));
    }
    match->inherited_fd = s.fd;
  }
  return absl::OkStatus();
}

}  // namespace plexus::server
