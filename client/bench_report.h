#pragma once
// The figures of one `plexus-client bench` run and how they are printed: a human-readable summary
// or one JSON object.

#include <cstdint>
#include <string>

#include "client/bench_histogram.h"

namespace plexus::client {

struct BenchResult {
  // What was asked.
  bool open_loop = false;
  std::string server;   // "127.0.0.1:9000"
  std::string engine;   // the client loops' engine, e.g. "epoll (oneshot)"
  int connections = 0;
  int idle = 0;          // silent extra connections asked for
  int threads = 0;
  size_t size = 0;
  double rate = 0;       // open loop: messages/s over all connections
  double warmup_s = 0;
  uint64_t count = 0;    // round trips per connection, or 0 in duration mode
  bool verify = false;

  // What happened. Only the measured window counts, except for the error counters, which count
  // the whole run (a corrupted echo during the warm-up is still a mismatch).
  int connected = 0;
  int idle_connected = 0;
  double duration_s = 0;  // the measured window
  uint64_t messages = 0;  // measured round trips
  double msgs_per_sec = 0;
  double mib_per_sec = 0;  // payload echoed per second, one direction: messages * size / s / 2^20
  // ns: every measured round trip, plus each unanswered message with the time it had waited at
  // the end (so a server that leaves replies behind cannot hide its tail).
  LatencyHistogram latency;
  uint64_t connect_errors = 0;
  uint64_t mismatches = 0;
  uint64_t disconnects = 0;
  uint64_t unanswered = 0;  // measured messages whose reply had not come back at the end
  std::string first_connect_error;
  // Over the whole run, warm-up and drain included: what the failure message draws on.
  uint64_t sent = 0;            // messages sent
  uint64_t completed = 0;       // round trips completed
  uint64_t bytes_received = 0;  // reply bytes
  // --count only: the run gave up after stall_timeout_s without a round trip completing.
  bool stalled = false;
  double stall_timeout_s = 0;
};

// Several lines, each ending in '\n'.
std::string formatSummary(const BenchResult& r);
// One line: a JSON object with mode, connections, size, threads, duration_s, messages,
// msgs_per_sec, mib_per_sec, latency_us {p50, p90, p99, p999, max, mean}, connect_errors,
// mismatches, disconnects, verify, and a few more (server, engine, connected, rate, warmup_s,
// count, unanswered).
std::string formatJson(const BenchResult& r);
// Why the run failed, as one line (no newline), or "" when it did not: no connection could be made,
// no round trip was measured (the server closed the connections, did not reply, ...), or an echo
// did not match.
std::string benchFailure(const BenchResult& r);
// 0 ok; 1 when benchFailure() says the run failed.
int benchExitStatus(const BenchResult& r);

}  // namespace plexus::client
