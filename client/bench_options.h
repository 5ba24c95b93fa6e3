#pragma once
// Command-line options of `plexus-client bench`, the load generator.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "plexus/engine.h"

namespace plexus::client {

struct BenchOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 9000;
  int connections = 100;
  int idle = 0;                   // extra connections held open and silent for the whole run
  size_t size = 16;               // payload bytes per message
  double duration_s = 10;         // measured time (ignored when count > 0)
  int threads = 1;                // client loop threads; the parser defaults it to the core count
  double warmup_s = 1;            // excluded from all figures
  uint64_t count = 0;             // > 0: round trips per connection instead of a duration
  double stall_timeout_s = 10;    // with count: give up when no round trip completes this long
  double rate = 0;                // > 0: open loop, messages per second over all connections
  bool verify = false;            // check every echoed byte
  bool json = false;              // one JSON object on stdout instead of the summary
  bool quiet = false;             // no progress line on stderr
  bool churn = false;             // connection rate: connect, echo --size bytes, close, again
  double ramp_up = 0;             // connects per second; 0: as fast as the in-flight cap allows
  std::chrono::milliseconds connect_timeout{3000};
  EngineOptions engine;

  bool openLoop() const { return rate > 0; }
};

struct BenchCommand {
  enum class Action { kRun, kHelp };
  Action action = Action::kRun;
  BenchOptions options;
  std::string help;  // the usage text, for kHelp
};

// Parses the arguments after `bench` (argv[0] is "bench"). A bad option gives InvalidArgument with
// a one-line message.
absl::StatusOr<BenchCommand> parseBenchCommand(int argc, const char* const argv[]);

// Parses a message size: "16", "4K", "64k", "1M", "4KiB" (K = 1024). 1 byte .. 64 MiB.
absl::StatusOr<size_t> parseSize(std::string_view text);

}  // namespace plexus::client
