#pragma once
// plexus-server and systemd, without libsystemd: readiness notifications (sd_notify's datagrams
// to $NOTIFY_SOCKET) and socket activation ($LISTEN_PID, $LISTEN_FDS, $LISTEN_FDNAMES).
//
// The environment: takeNotifySocket() and takeInheritedSockets() read their variables once and
// remove them from the environment (as sd_notify(1, ...) and sd_listen_fds(1) do), so that no
// process the server or a plugin starts mistakes them for its own. Both call setenv/unsetenv:
// main thread only, before any other thread starts (before the plugins load).
//
// Thread safety: notify*() may be called from any thread, any number of times; they do nothing
// when $NOTIFY_SOCKET was not set (or takeNotifySocket() was never called).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "plexus/inet_address.h"
#include "server_options.h"

namespace plexus::server {

// Reads $NOTIFY_SOCKET (an absolute path, or "@name" for an abstract socket) and unsets it; the
// notifications below go there from now on. Without it they do nothing. A value that cannot be a
// unix socket address is logged (once, at the first notification), never fatal.
void takeNotifySocket();

// True when takeNotifySocket() found $NOTIFY_SOCKET (notifications are sent somewhere).
bool notificationsEnabled();

// From now on notifications go over `fd` (taken over), a connected datagram or seqpacket socket,
// instead of to $NOTIFY_SOCKET: a --workers worker's channel to its supervisor, which speaks to
// systemd for all of them (server/supervisor.h). `name` names it in messages; `fd` < 0 turns
// notifications off. Call it in a single-threaded process (the worker, just after fork).
void redirectNotifications(int fd, std::string name);

// "READY=1\nSTATUS=<status>": every listener listens (at start, and again after a reload).
void notifyReady(std::string_view status);
// "RELOADING=1\nMONOTONIC_USEC=<CLOCK_MONOTONIC in µs>": a reload begins; notifyReady() when done.
void notifyReloading();
// CLOCK_MONOTONIC in µs: the clock of MONOTONIC_USEC=.
uint64_t monotonicUsec();
// "STOPPING=1": a graceful stop begins.
void notifyStopping();
// Sends `message` as one datagram. The first failure is logged as a warning, later ones only at
// debug level; never fatal. True when it was sent.
bool sdNotify(std::string_view message);

// A listening socket inherited from the service manager.
struct InheritedSocket {
  int fd = -1;
  std::string name;  // from $LISTEN_FDNAMES; empty when not given
  InetAddress address;
  // "fd 3 (plexus-server.socket) 127.0.0.1:7000", for messages.
  std::string describe() const;
};

// Socket activation: when $LISTEN_PID is this process's pid, the $LISTEN_FDS sockets from fd 3 on,
// made close-on-exec, with their names and bound addresses. Empty when $LISTEN_PID is unset or
// another process's (those fds are then not touched). Unsets the three variables in every case.
// Errors (one line): a malformed $LISTEN_FDS, an fd that is not open or not a TCP socket.
absl::StatusOr<std::vector<InheritedSocket>> takeInheritedSockets();

// Gives each inherited socket to a listener (ListenerConfig::inherited_fd):
//   - with --listen (or `listen` lines): to the listener whose address equals the socket's bound
//     address; listeners no socket matches bind their address themselves. A socket that matches
//     no listener is an error ("inherited socket fd 3 127.0.0.1:7000 matches no --listen address
//     (127.0.0.1:7001)"), as is one that matches a listener already taken;
//   - without (the one listener from --port/--plugin defaults): the inherited sockets replace it,
//     one listener each, served by --plugin with --plugin-arg.
// `sockets` empty: nothing changes.
absl::Status assignInheritedSockets(const std::vector<InheritedSocket>& sockets,
                                    ServerConfig* config);

}  // namespace plexus::server
