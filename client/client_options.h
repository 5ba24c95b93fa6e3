#pragma once
// Command-line options of `plexus-client` (the default command, which talks to one server).

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace plexus::client {

struct ClientOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 9000;
  std::chrono::milliseconds connect_timeout{3000};
  // Connect attempts after the first one fails, with exponential backoff.
  int retries = 0;
};

// What the command line asks for.
struct ClientCommand {
  enum class Action { kRun, kHelp, kVersion };
  Action action = Action::kRun;
  ClientOptions options;
  std::string help;  // the usage text, for kHelp
};

// Parses argv (argv[0] is the program name). A bad option gives InvalidArgument with a one-line
// message, e.g. "unrecognised option '--bogus'".
absl::StatusOr<ClientCommand> parseClientCommand(int argc, const char* const argv[]);

}  // namespace plexus::client
