#include "client/bench_report.h"

#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace plexus::client {
namespace {

double us(int64_t ns) { return static_cast<double>(ns) / 1000.0; }

std::string jsonString(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (u < 0x20) {
      out += absl::StrFormat("\\u%04x", u);
    } else {
      out.push_back(ch);
    }
  }
  out.push_back('"');
  return out;
}

std::string sizeText(size_t size) {
  if (size >= (1u << 20) && size % (1u << 20) == 0) return absl::StrFormat("%u MiB", size >> 20);
  if (size >= 1024 && size % 1024 == 0) return absl::StrFormat("%u KiB", size >> 10);
  return absl::StrFormat("%u B", size);
}

}  // namespace

std::string formatSummary(const BenchResult& r) {
  std::string out;
  if (r.open_loop) {
    absl::StrAppendFormat(&out,
                          "plexus-client bench: open loop, %.6g msg/s target (%.4g per connection), "
                          "against %s\n",
                          r.rate, r.connections > 0 ? r.rate / r.connections : 0.0, r.server);
  } else {
    absl::StrAppendFormat(&out, "plexus-client bench: closed loop (ping-pong) against %s\n",
                          r.server);
  }
  absl::StrAppendFormat(&out, "  connections  %d of %d up, %d thread%s, engine %s\n", r.connected,
                        r.connections, r.threads, r.threads == 1 ? "" : "s", r.engine);
  if (r.idle > 0) {
    absl::StrAppendFormat(&out, "  idle         %d of %d silent connections up\n",
                          r.idle_connected, r.idle);
  }
  absl::StrAppendFormat(&out, "  message      %s, verify %s\n", sizeText(r.size),
                        r.verify ? "on" : "off");
  std::string window = r.count > 0 ? absl::StrFormat("%d round trips per connection in %.3f s",
                                                     r.count, r.duration_s)
                                   : absl::StrFormat("%.3f s", r.duration_s);
  if (r.warmup_s > 0) absl::StrAppendFormat(&window, ", after a %.3g s warm-up", r.warmup_s);
  absl::StrAppendFormat(&out, "  measured     %s\n", window);
  absl::StrAppendFormat(&out, "  round trips  %d (%.1f msg/s)\n", r.messages, r.msgs_per_sec);
  absl::StrAppendFormat(&out, "  throughput   %.3f MiB/s payload echoed (each direction)\n",
                        r.mib_per_sec);
  const LatencyHistogram& h = r.latency;
  absl::StrAppendFormat(&out,
                        "  latency us   p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  "
                        "mean %.1f%s\n",
                        us(h.percentile(50)), us(h.percentile(90)), us(h.percentile(99)),
                        us(h.percentile(99.9)), us(h.max()), h.mean() / 1000.0,
                        r.open_loop ? "  (from the scheduled send)" : "");
  absl::StrAppendFormat(&out, "  errors       %d connect, %d disconnects, %d mismatches%s",
                        r.connect_errors, r.disconnects, r.mismatches,
                        r.verify ? "" : " (bytes not checked: --verify)");
  if (r.unanswered > 0) absl::StrAppendFormat(&out, ", %d unanswered", r.unanswered);
  out += "\n";
  if (!r.first_connect_error.empty()) {
    absl::StrAppendFormat(&out, "  first connect error: %s\n", r.first_connect_error);
  }
  return out;
}

std::string formatJson(const BenchResult& r) {
  const LatencyHistogram& h = r.latency;
  std::string out = "{";
  absl::StrAppendFormat(&out, "\"mode\":%s,", jsonString(r.open_loop ? "open-loop" : "closed-loop"));
  absl::StrAppendFormat(&out, "\"server\":%s,\"engine\":%s,", jsonString(r.server),
                        jsonString(r.engine));
  absl::StrAppendFormat(&out, "\"connections\":%d,\"connected\":%d,\"size\":%d,\"threads\":%d,",
                        r.connections, r.connected, r.size, r.threads);
  absl::StrAppendFormat(&out, "\"idle\":%d,\"idle_connected\":%d,", r.idle, r.idle_connected);
  absl::StrAppendFormat(&out, "\"rate\":%.6g,\"warmup_s\":%.6g,\"count\":%d,", r.rate, r.warmup_s,
                        r.count);
  absl::StrAppendFormat(&out, "\"duration_s\":%.6f,\"messages\":%d,\"msgs_per_sec\":%.3f,",
                        r.duration_s, r.messages, r.msgs_per_sec);
  absl::StrAppendFormat(&out, "\"mib_per_sec\":%.6f,", r.mib_per_sec);
  absl::StrAppendFormat(&out,
                        "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
                        "\"max\":%.1f,\"mean\":%.1f},",
                        us(h.percentile(50)), us(h.percentile(90)), us(h.percentile(99)),
                        us(h.percentile(99.9)), us(h.max()), h.mean() / 1000.0);
  absl::StrAppendFormat(&out,
                        "\"connect_errors\":%d,\"mismatches\":%d,\"disconnects\":%d,"
                        "\"unanswered\":%d,\"verify\":%s}\n",
                        r.connect_errors, r.mismatches, r.disconnects, r.unanswered,
                        r.verify ? "true" : "false");
  return out;
}

namespace {

const char* plural(uint64_t n) { return n == 1 ? "" : "s"; }

// Why a run with connections measured no round trip, as far as the counters tell.
std::string nothingMeasured(const BenchResult& r) {
  const bool all_closed = r.disconnects >= static_cast<uint64_t>(r.connected);
  const std::string closed_all =
      r.connected == 1 ? "the server closed the connection"
                       : absl::StrFormat("the server closed all %d connections", r.connected);
  if (r.completed > 0) {
    // Round trips completed, in the warm-up or the drain, but none was measured.
    if (all_closed) return absl::StrCat(closed_all, " before the measured window");
    return absl::StrFormat("no round trip completed inside the measured window (%d outside it)",
                           r.completed);
  }
  if (all_closed) return absl::StrCat(closed_all, " before any reply came back");
  if (r.sent == 0) return "no message was sent";
  std::string why =
      r.bytes_received == 0
          ? absl::StrFormat("no reply came back (%d message%s sent on %d connection%s",
                            r.sent, plural(r.sent), r.connected, plural(r.connected))
          : absl::StrFormat("no reply was as long as the message sent (%d bytes came back for %d "
                            "message%s of %s on %d connection%s",
                            r.bytes_received, r.sent, plural(r.sent), sizeText(r.size),
                            r.connected, plural(r.connected));
  if (r.disconnects > 0) {
    absl::StrAppendFormat(&why, "; the server closed %d of them", r.disconnects);
  }
  return why + ")";
}

}  // namespace

std::string benchFailure(const BenchResult& r) {
  if (r.connected == 0) {
    return r.first_connect_error.empty()
               ? absl::StrFormat("no connection to %s could be made", r.server)
               : absl::StrCat("no connection could be made: ", r.first_connect_error);
  }
  if (r.messages == 0) {
    std::string why = absl::StrCat("bench measured 0 messages: ", nothingMeasured(r));
    if (r.stalled) absl::StrAppendFormat(&why, "; gave up after %g s of waiting", r.stall_timeout_s);
    return why;
  }
  if (r.stalled) {
    return absl::StrFormat(
        "bench gave up: no round trip completed for %g s (%d of %d round trips done)",
        r.stall_timeout_s, r.completed, r.count * static_cast<uint64_t>(r.connected));
  }
  if (r.mismatches > 0) {
    return absl::StrFormat("%d echoed messages differ from what was sent", r.mismatches);
  }
  return "";
}

int benchExitStatus(const BenchResult& r) { return benchFailure(r).empty() ? 0 : 1; }

}  // namespace plexus::client
