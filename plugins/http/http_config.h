#pragma once
// The http plugin's configuration, read from its --plugin-arg pairs. Read-only once made, so every
// loop thread may read it at once.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "plexus/plugin.h"
#include "request_parser.h"

namespace plexus::http {

// Looks std::string keys up by std::string_view, no copy (Debian's Abseil has its own string_view).
struct PathHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};
struct PathEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

// A response fixed by configuration (`return:/path=STATUS TEXT`), its bytes prepared once:
//   head_start + <Date> + head_rest + [Connection header] + "\r\n" + body
struct FixedRoute {
  int status = 200;
  std::string body;        // the text (empty for a redirect)
  std::string head_start;  // "HTTP/1.1 200 OK\r\nServer: plexus\r\nDate: "
  std::string head_rest;   // "\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
};

struct HttpConfig {
  ParserLimits limits;
  std::string root;  // empty: no files served
  std::string index = "index.html";
  bool disable_symlinks = false;  // refuse every symlink (else only those leading out of root)
  std::chrono::nanoseconds header_timeout = std::chrono::seconds(60);
  std::chrono::nanoseconds body_timeout = std::chrono::seconds(60);
  std::chrono::nanoseconds keepalive_timeout = std::chrono::seconds(75);  // 0: no keep-alive
  size_t pipeline_max_output = 1 << 20;
  std::string access_log;  // empty: off; "stderr"; or a file path
  // By path, exactly as requested after percent-decoding and normalizing.
  absl::flat_hash_map<std::string, FixedRoute, PathHash, PathEq> routes;

  // Every key it knows, with its value checked; an unknown key or a bad value is an
  // InvalidArgument error naming it.
  static absl::StatusOr<HttpConfig> fromArgs(const PluginArgs& args);
};

// "8192", "8k", "1M", "2G" (powers of 1024).
bool parseSize(std::string_view s, uint64_t* out);
// "60" or "60s", "500ms", "2m", "1h"; fractions allowed ("1.5s").
bool parseDuration(std::string_view s, std::chrono::nanoseconds* out);

}  // namespace plexus::http
