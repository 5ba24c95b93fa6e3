#include "client/client_options.h"

#include "client/command_line.h"

#include <cmath>
#include <exception>
#include <sstream>

#include <boost/program_options.hpp>

#include "absl/strings/str_format.h"

namespace plexus::client {
namespace po = boost::program_options;

absl::StatusOr<ClientCommand> parseClientCommand(int argc, const char* const argv[]) {
  ClientCommand cmd;
  int port = cmd.options.port;
  double timeout_s = 3;
  po::options_description desc(
      "Usage: plexus-client [OPTIONS]\n"
      "       plexus-client bench [OPTIONS]   (load generator; see plexus-client bench --help)\n"
      "Connects to a Plexus server. With a terminal on stdin, sends each line typed at the \"% \"\n"
      "prompt and prints whatever the server sends as it arrives, the prompt after it (\"quit\" or\n"
      "Ctrl-D leaves). Otherwise streams stdin to the server and every reply byte to stdout until\n"
      "the server closes.\n"
      "Exit status: 0 done; 1 when it cannot connect, when the server closes before all of stdin\n"
      "was sent, or on an I/O error; 2 bad options.\n\n"
      "Options");
  // clang-format off
  desc.add_options()
    ("help,h", "print this help and exit")
    ("version,v", "print the version and exit")
    ("server,s", po::value<std::string>(&cmd.options.host)->default_value(cmd.options.host),
     "server host name or IP address")
    ("port,p", po::value<int>(&port)->default_value(port), "server port")
    ("connect-timeout", po::value<double>(&timeout_s)->default_value(timeout_s),
     "seconds to wait for each connect attempt")
    ("retry", po::value<int>(&cmd.options.retries)->default_value(0),
     "connect attempts after a failed one, with exponential backoff");
  // clang-format on

  po::variables_map vm;
  if (absl::Status s = parseCommandLine(desc, argc, argv, &vm); !s.ok()) return s;
  if (vm.count("help")) {
    cmd.action = ClientCommand::Action::kHelp;
    cmd.help = helpText(desc);
    return cmd;
  }
  if (vm.count("version")) {
    cmd.action = ClientCommand::Action::kVersion;
    return cmd;
  }
  if (port < 1 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrFormat("bad port %d (expected 1-65535)", port));
  }
  cmd.options.port = static_cast<uint16_t>(port);
  if (!std::isfinite(timeout_s) || timeout_s <= 0 || timeout_s > 3600) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bad --connect-timeout %g (expected seconds, > 0 and <= 3600)", timeout_s));
  }
  cmd.options.connect_timeout = std::chrono::milliseconds(std::llround(timeout_s * 1000));
  if (cmd.options.connect_timeout.count() == 0) cmd.options.connect_timeout = std::chrono::milliseconds(1);
  if (cmd.options.retries < 0 || cmd.options.retries > 1000) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bad --retry %d (expected 0-1000)", cmd.options.retries));
  }
  if (cmd.options.host.empty()) return absl::InvalidArgumentError("empty --server");
  return cmd;
}

}  // namespace plexus::client
