#include "client/bench_options.h"

#include "client/command_line.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <exception>
#include <sstream>
#include <thread>

#include <boost/program_options.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace plexus::client {
namespace po = boost::program_options;

namespace {

constexpr size_t kMaxSize = size_t{64} << 20;

absl::Status checkSeconds(const char* name, double value, bool zero_ok, double max) {
  if (!std::isfinite(value) || value < 0 || (!zero_ok && value == 0) || value > max) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "bad --%s %g (expected seconds, %s and <= %g)", name, value, zero_ok ? ">= 0" : "> 0", max));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<size_t> parseSize(std::string_view text) {
  std::string s(absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size())));
  size_t digits = 0;
  while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  std::string suffix = absl::AsciiStrToLower(s.substr(digits));
  uint64_t number = 0;
  uint64_t unit = 0;
  if (suffix.empty() || suffix == "b") {
    unit = 1;
  } else if (suffix == "k" || suffix == "kb" || suffix == "kib") {
    unit = 1024;
  } else if (suffix == "m" || suffix == "mb" || suffix == "mib") {
    unit = 1024 * 1024;
  }
  if (digits == 0 || unit == 0 || digits > 12 || !absl::SimpleAtoi(s.substr(0, digits), &number) ||
      number == 0 || number * unit > kMaxSize) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "bad --size '%s' (expected bytes, e.g. 16, 4K, 64K; at most 64M)", std::string(text)));
  }
  return static_cast<size_t>(number * unit);
}

absl::StatusOr<BenchCommand> parseBenchCommand(int argc, const char* const argv[]) {
  BenchCommand cmd;
  BenchOptions& o = cmd.options;
  const unsigned cores = std::thread::hardware_concurrency();
  int port = o.port;
  int threads = cores > 0 ? static_cast<int>(cores) : 1;
  std::string size = "16";
  double warmup_s = o.warmup_s;
  double timeout_s = 3;
  int64_t count = 0;
  std::string epoll_mode = "oneshot";
  po::options_description desc(
      "Usage: plexus-client bench [OPTIONS]\n"
      "Load generator for an echo server. Closed loop (default): each connection sends --size\n"
      "bytes, waits for all of them to come back, and repeats. Open loop (--rate): messages go out\n"
      "on a fixed timetable whether or not replies are outstanding, and latency counts from the\n"
      "scheduled send time. Latency is from the send to the last byte of the reply; a measured\n"
      "message still unanswered at the end counts with the time it had waited. MiB/s is the\n"
      "payload echoed per second (one direction).\n"
      "Exit status: 0 ok; 1 when no connection could be made, no round trip was measured (the\n"
      "server closed the connections or did not reply) or echoed bytes differed, with one line on\n"
      "stderr saying which; 2 bad options.\n\n"
      "Options");
  // clang-format off
  desc.add_options()
    ("help,h", "print this help and exit")
    ("server,s", po::value<std::string>(&o.host)->default_value(o.host), "server host name or IP")
    ("port,p", po::value<int>(&port)->default_value(port), "server port")
    ("connections,c", po::value<int>(&o.connections)->default_value(o.connections),
     "connections, spread over the threads")
    ("idle", po::value<int>(&o.idle)->default_value(0),
     "extra connections opened first and kept open without traffic (a server watching many "
     "fds of which few are active)")
    ("size", po::value<std::string>(&size)->default_value(size),
     "payload bytes per message (16, 4K, 64K, 1M)")
    ("duration,d", po::value<double>(&o.duration_s)->default_value(o.duration_s),
     "seconds to measure, after the warm-up")
    ("count,n", po::value<int64_t>(&count),
     "round trips per connection instead of --duration (no warm-up unless --warmup is given)")
    ("stall-timeout", po::value<double>(&o.stall_timeout_s)->default_value(o.stall_timeout_s),
     "with --count: give up (exit 1) when no round trip completes for this many seconds")
    ("threads,t", po::value<int>(&threads)->default_value(threads), "client loop threads")
    ("warmup", po::value<double>(&warmup_s),
     "seconds of traffic before measuring, excluded from all figures (default 1)")
    ("rate,r", po::value<double>(&o.rate),
     "open loop: messages per second over all connections")
    ("verify", po::bool_switch(&o.verify), "check every echoed byte")
    ("churn", po::bool_switch(&o.churn),
     "connection rate: each connection connects, sends --size bytes, reads the echo (checked), "
     "closes, and again; reports connections per second and connect errors")
    ("json", po::bool_switch(&o.json), "print one JSON object on stdout instead of a summary")
    ("quiet,q", po::bool_switch(&o.quiet), "no progress line on stderr")
    ("ramp-up", po::value<double>(&o.ramp_up)->default_value(0),
     "connects per second; 0: as fast as possible, at most 64 in flight per thread")
    ("connect-timeout", po::value<double>(&timeout_s)->default_value(timeout_s),
     "seconds to wait for each connect")
    ("engine", po::value<std::string>(&o.engine.name)->default_value(o.engine.name),
     "the client loops' engine: epoll, poll, select or uring")
    ("epoll-mode", po::value<std::string>(&epoll_mode)->default_value(epoll_mode),
     "oneshot, level or edge (with --engine epoll)");
  // clang-format on

  po::variables_map vm;
  if (absl::Status s = parseCommandLine(desc, argc, argv, &vm); !s.ok()) return s;
  if (vm.count("help")) {
    cmd.action = BenchCommand::Action::kHelp;
    cmd.help = helpText(desc);
    return cmd;
  }

  if (o.host.empty()) return absl::InvalidArgumentError("empty --server");
  if (port < 1 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrFormat("bad --port %d (expected 1-65535)", port));
  }
  o.port = static_cast<uint16_t>(port);
  if (o.connections < 1 || o.connections > 1000000) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bad --connections %d (expected 1-1000000)", o.connections));
  }
  if (o.idle < 0 || o.idle > 1000000) {
    return absl::InvalidArgumentError(absl::StrFormat("bad --idle %d (expected 0-1000000)", o.idle));
  }
  absl::StatusOr<size_t> bytes = parseSize(size);
  if (!bytes.ok()) return bytes.status();
  o.size = *bytes;
  if (threads < 1 || threads > 1024) {
    return absl::InvalidArgumentError(absl::StrFormat("bad --threads %d (expected 1-1024)", threads));
  }
  o.threads = threads;

  const bool has_count = vm.count("count") > 0;
  if (has_count && !vm["duration"].defaulted()) {
    return absl::InvalidArgumentError("--count and --duration exclude each other");
  }
  if (has_count) {
    if (count < 1) {
      return absl::InvalidArgumentError(
          absl::StrFormat("bad --count %d (expected round trips per connection, >= 1)", count));
    }
    o.count = static_cast<uint64_t>(count);
  } else if (absl::Status s = checkSeconds("duration", o.duration_s, false, 86400); !s.ok()) {
    return s;
  }
  if (vm.count("warmup")) {
    o.warmup_s = warmup_s;
    if (absl::Status s = checkSeconds("warmup", o.warmup_s, true, 3600); !s.ok()) return s;
  } else {
    o.warmup_s = has_count ? 0 : 1;
  }
  if (vm.count("rate") && (!std::isfinite(o.rate) || o.rate <= 0 || o.rate > 1e9)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bad --rate %g (expected messages per second, > 0)", o.rate));
  }
  if (!std::isfinite(o.ramp_up) || o.ramp_up < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bad --ramp-up %g (expected connections per second, >= 0)", o.ramp_up));
  }
  if (absl::Status s = checkSeconds("connect-timeout", timeout_s, false, 3600); !s.ok()) return s;
  if (absl::Status s = checkSeconds("stall-timeout", o.stall_timeout_s, false, 86400); !s.ok()) {
    return s;
  }
  o.connect_timeout = std::max(std::chrono::milliseconds(1),
                               std::chrono::milliseconds(std::llround(timeout_s * 1000)));

  bool known_engine = false;
  for (const std::string& name : engineNames()) known_engine |= name == o.engine.name;
  if (!known_engine) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "bad --engine '%s' (expected %s)", o.engine.name, absl::StrJoin(engineNames(), ", ")));
  }
  absl::StatusOr<EpollMode> mode = parseEpollMode(epoll_mode);
  if (!mode.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bad --epoll-mode '%s' (expected oneshot, level or edge)", epoll_mode));
  }
  if (!vm["epoll-mode"].defaulted() && o.engine.name != "epoll") {
    return absl::InvalidArgumentError("--epoll-mode needs --engine epoll");
  }
  o.engine.epoll_mode = *mode;
  return cmd;
}

}  // namespace plexus::client
