#pragma once
// `plexus-client bench`: a load generator for echo servers, built on the Plexus framework.
//
// The connections are spread over --threads client loops (BenchWorker), which connect them (at
// most 64 connects in flight per loop, or at --ramp-up's pace), then all start traffic at one
// common time t0. The figures cover [t0 + warm-up, + duration) (or --count round trips per
// connection), merged from the loops at the end:
//
//   connect ... all settled | t0 .. warm-up .. | measured window | drain (replies in flight, <= 2 s)
//
// Closed loop: a message counts when it was sent inside the window. Open loop: when it was
// scheduled inside it; its latency runs from the scheduled time, so a stall is not hidden.

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "client/bench_options.h"
#include "client/bench_report.h"
#include "plexus/inet_address.h"

namespace plexus::client {

// Gets a progress line (no newline) about once a second.
using BenchProgress = std::function<void(const std::string& line)>;

// Runs the benchmark against `server` and returns its figures. Fails only when a client loop
// cannot start; connect failures and the like are counted in the result. Blocks the caller.
absl::StatusOr<BenchResult> runBench(const BenchOptions& options, const InetAddress& server,
                                     const BenchProgress& progress = nullptr);

// The `bench` subcommand: argv[0] is "bench". Prints the result on stdout and returns the exit
// status (0 ok; 1 no connection, no measured round trip, mismatches or a failure, with one line on
// stderr saying which; 2 bad options).
int runBenchCommand(int argc, const char* const argv[]);

}  // namespace plexus::client
