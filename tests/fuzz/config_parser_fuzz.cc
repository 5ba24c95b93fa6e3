// Fuzz target: plexus-server's config file (parseServerConfigText, the text of a --config file):
// Boost.program_options' INI reader, then each setting's own parser (ports, listen addresses,
// sizes, durations, plugin arguments...). Every input must give a config or a one-line
// InvalidArgument error; anything else (a crash, a sanitizer report, an escaping exception, another
// error kind, a config that breaks the limits the parser promises) is a finding.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "server_options.h"

namespace {

[[noreturn]] void finding(const char* what, const std::string& detail) {
  std::fprintf(stderr, "config_parser: %s: %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A config file is a few hundred bytes; longer inputs only slow the search down.
  if (size > 4096) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = plexus::server::parseServerConfigText(text, "fuzz.ini");
  if (!config.ok()) {
    if (config.status().code() != absl::StatusCode::kInvalidArgument) {
      finding("an error that is not InvalidArgument", config.status().ToString());
    }
    const std::string message(config.status().message());
    if (message.find('\n') != std::string::npos) {
      finding("an error of more than one line", message);
    }
    return 0;
  }
  const plexus::server::ServerConfig& c = *config;
  if (c.server.threads < 0 || c.server.threads > plexus::server::kMaxThreads) {
    finding("threads out of range", "");
  }
  if (c.plugin.empty()) finding("an empty plugin name accepted", "");
  if (c.listeners.empty()) finding("no listener", "");
  for (const plexus::server::ListenerConfig& l : c.listeners) {
    if (l.plugin.empty()) finding("a listener without a plugin", l.spec);
    for (const auto& [key, value] : l.plugin_args) {
      if (key.empty()) finding("an empty plugin argument key accepted", l.spec);
    }
  }
  if (c.server.connection.idle_timeout.count() < 0 || c.shutdown_timeout.count() < 0) {
    finding("a negative duration accepted", "");
  }
  for (const auto& [key, value] : c.plugin_args) {
    if (key.empty()) finding("an empty plugin argument key accepted", value);
  }
  return 0;
}
