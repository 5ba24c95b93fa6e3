// plexus-client: talks to a Plexus server, interactively (stdin is a terminal) or as a stream.
//
//   plexus-client [-s HOST] [-p PORT] [--connect-timeout S] [--retry N]
//   plexus-client bench [-s HOST] [-p PORT] [--connections C] [--size S] ...   (see bench.h)
//
// Exit status: 0 done; 1 connect or I/O failure, or a server that closed before all of stdin was
// sent; 2 bad command line.

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/bench.h"
#include "client/client_connection.h"
#include "client/client_options.h"
#include "client/console.h"
#include "client/fd_io.h"
#include "client/interactive.h"
#include "client/streaming.h"
#include "plexus/inet_address.h"
#include "plexus/log.h"
#include "plexus/version.h"

namespace plexus::client {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// The default command: connect to one server and relay stdin/stdout.
int runConnect(int argc, const char* const argv[]) {
  absl::StatusOr<ClientCommand> cmd = parseClientCommand(argc, argv);
  if (!cmd.ok()) {
    reportError(absl::StrCat(cmd.status().message(), " (see --help)"));
    return kExitUsage;
  }
  if (cmd->action == ClientCommand::Action::kHelp) {
    writeAll(STDOUT_FILENO, cmd->help);
    return kExitOk;
  }
  if (cmd->action == ClientCommand::Action::kVersion) {
    writeAll(STDOUT_FILENO, "plexus-client " PLEXUS_VERSION_STRING "\n");
    return kExitOk;
  }
  const ClientOptions& opts = cmd->options;

  // Our own messages say what went wrong; the framework's log stays quiet unless it is serious.
  setLogLevel(LogLevel::kError);

  absl::StatusOr<InetAddress> server = InetAddress::resolve(opts.host, opts.port);
  if (!server.ok()) {
    reportError(absl::StrFormat("cannot connect to %s:%u: %s", opts.host, opts.port,
                                server.status().message()));
    return kExitFailure;
  }

  // Replies go to stdout with write(2), from the connection's loop thread, as they arrive: straight
  // when streaming; through the console, which keeps them and the prompt apart, when interactive.
  const bool interactive = ::isatty(STDIN_FILENO) != 0;
  Console console(STDOUT_FILENO, ::isatty(STDOUT_FILENO) != 0);
  auto sink = [interactive, &console](std::string_view data) {
    if (interactive ? console.print(data) : writeAll(STDOUT_FILENO, data)) return true;
    reportError(absl::StrCat("writing stdout: ", std::strerror(errno)));
    return false;
  };
  ClientConnection conn({.server = *server,
                         .connect_timeout = opts.connect_timeout,
                         .retries = opts.retries},
                        sink);
  if (absl::Status st = conn.connect(); !st.ok()) {
    reportError(absl::StrFormat("cannot connect to %s: %s", server->toIpPort(), st.message()));
    return kExitFailure;
  }
  return interactive ? runInteractive(conn, console, STDIN_FILENO)
                     : runStreaming(conn, STDIN_FILENO);
}

}  // namespace
}  // namespace plexus::client

int main(int argc, char* argv[]) {
  // Subcommands are chosen by the first argument; everything else is the default command.
  if (argc >= 2 && std::string_view(argv[1]) == "bench") {
    return plexus::client::runBenchCommand(argc - 1, argv + 1);  // load generator
  }
  return plexus::client::runConnect(argc, argv);
}
