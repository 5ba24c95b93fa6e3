#pragma once
// plexus-server --workers N: this process becomes a supervisor that forks N workers, each a whole
// plexus-server (its own base loop and --threads sub-reactors) listening with SO_REUSEPORT on the
// same addresses, so the kernel spreads connections over them.
//
// - A worker that dies (killed by a signal, or exits by itself with any status but 2) is started
//   again, after a delay that doubles from 100 ms up to 10 s while workers keep dying young (under
//   10 s) and drops back once one lived longer: "worker 2 (pid 4711) killed by SIGSEGV: restarting".
// - A worker that exits with status 2 (bad configuration: a plugin that does not load, an address
//   it cannot listen on) would fail again: the supervisor stops the others and exits 2.
// - SIGTERM / SIGINT: forwarded to every worker (a graceful stop), then the supervisor waits for
//   them all and exits 0 if each exited 0, else 1. The same signal again is forwarded again (the
//   workers then stop at once). SIGHUP: forwarded to every worker.
// - Workers get SIGTERM if the supervisor itself dies (PR_SET_PDEATHSIG).
// - systemd ($NOTIFY_SOCKET, server/systemd.h): the workers' notifications come to the supervisor
//   (a SOCK_SEQPACKET pair per worker), which alone speaks to systemd, as NotifyAccess=main wants:
//   READY=1 with "STATUS=N workers listening on ..." once every worker is ready; on SIGHUP
//   RELOADING=1 first, READY=1 once every worker has reloaded; STOPPING=1 when the stop begins. A
//   worker that dies and comes back changes STATUS= only. Without $NOTIFY_SOCKET: no channels.
//
// Single-threaded: call it from main() before any thread or plugin exists (it forks).

#include <functional>

#include "server_options.h"

namespace plexus::server {

// Runs config.workers workers, each fork()ed from here running `serve_worker` on a copy of
// `config` (workers = 0, SO_REUSEPORT on) and exiting with its result. Returns the exit status.
int runSupervisor(const ServerConfig& config,
                  const std::function<int(const ServerConfig&)>& serve_worker);

// With SO_REUSEPORT, connections waiting in a listening socket's accept queue when it closes are
// reset unless net.ipv4.tcp_migrate_req is 1 (Linux >= 5.14, per network namespace): then the
// kernel moves them to another socket on the port. Logs a warning when it is not 1.
void warnIfRequestsCannotMigrate();

}  // namespace plexus::server
