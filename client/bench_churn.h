#pragma once
// `plexus-client bench --churn`: connection-rate load. Each of --connections slots, spread over
// --threads threads, does connect, send --size bytes, read the whole echo, close, and again, as
// fast as the server allows. Reports connections per second (completed in the measured time, after
// --warmup) and what failed: connect errors, resets and echoes that differ or end early.
//
// Each thread drives its slots with non-blocking sockets on an epoll set of its own (not the
// framework's loops: the figures then compare servers, not clients). Thread safety: runChurn()
// from one thread; it starts and joins its own.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "client/bench_options.h"
#include "plexus/inet_address.h"

namespace plexus::client {

struct ChurnResult {
  double seconds = 0;               // measured
  uint64_t connections = 0;         // completed (connect, echo, close) in the measured time
  uint64_t connect_errors = 0;      // all phases
  uint64_t resets = 0;              // resets and EOFs before the whole echo, all phases
  uint64_t mismatches = 0;          // echoes that differ, all phases
  std::string first_error;
  double perSecond() const { return seconds > 0 ? static_cast<double>(connections) / seconds : 0; }
};

absl::StatusOr<ChurnResult> runChurn(const BenchOptions& options, const InetAddress& server);

// "connections/s: ..." summary, or one JSON object with --json.
std::string formatChurn(const BenchOptions& options, const ChurnResult& r);

}  // namespace plexus::client
