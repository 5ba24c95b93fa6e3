#include "http_config.h"

#include <charconv>
#include <cmath>
#include <limits>

#include "http_util.h"

namespace plexus::http {
namespace {

// Debian's Abseil has its own string_view, so strings are put together by hand here.
std::string cat(std::initializer_list<std::string_view> parts) {
  std::string s;
  for (std::string_view p : parts) s.append(p);
  return s;
}

absl::Status bad(std::string_view key, std::string_view value, std::string_view expected) {
  return absl::InvalidArgumentError(
      cat({"http: invalid ", key, " '", value, "' (expected ", expected, ")"}));
}

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

template <typename T>
bool readNumber(std::string_view s, T* out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

bool isRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// `return:PATH` = `STATUS TEXT`: TEXT is the body (text/plain), or the Location of a redirect.
absl::Status addRoute(HttpConfig* config, std::string_view key, std::string_view value) {
  std::string_view path = key.substr(7);
  std::string normal;
  if (path.empty() || path[0] != '/' || normalizePath(path, &normal) != 0) {
    return bad(key, path, "a path starting with '/', within the root");
  }
  const size_t space = value.find(' ');
  int status = 0;
  if (!readNumber(value.substr(0, space), &status) || status < 200 || status > 599 ||
      value.substr(0, space).size() != 3) {
    return bad(key, value, "STATUS TEXT, STATUS a code from 200 to 599");
  }
  const std::string_view text =
      space == std::string_view::npos ? std::string_view() : value.substr(space + 1);
  FixedRoute route;
  route.status = status;
  route.head_start = cat({"HTTP/1.1 ", std::to_string(status), " ", reasonPhrase(status),
                          "\r\nServer: plexus\r\nDate: "});
  if (isRedirect(status)) {
    if (text.empty()) return bad(key, value, "a Location after a redirect's status");
    for (char c : text) {
      if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f) {
        return bad(key, value, "a Location without spaces or control characters");
      }
    }
    route.head_rest = cat({"\r\nLocation: ", text, "\r\nContent-Length: 0\r\n"});
  } else if (status == 204 || status == 304) {
    // These have no body (RFC 9110 15.3.5, 15.4.5).
    if (!text.empty()) return bad(key, value, "no text after 204 or 304");
    route.head_rest = "\r\n";
  } else {
    route.body = std::string(text);
    route.head_rest =
        cat({"\r\nContent-Type: text/plain\r\nContent-Length: ", std::to_string(route.body.size()),
             "\r\n"});
  }
  config->routes[normal] = std::move(route);
  return absl::OkStatus();
}

}  // namespace

bool parseSize(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  uint64_t mult = 1;
  switch (s.back()) {
    case 'k':
    case 'K':
      mult = uint64_t{1} << 10;
      break;
    case 'm':
    case 'M':
      mult = uint64_t{1} << 20;
      break;
    case 'g':
    case 'G':
      mult = uint64_t{1} << 30;
      break;
    default:
      break;
  }
  if (mult != 1) s.remove_suffix(1);
  uint64_t n = 0;
  if (s.empty() || s.find_first_not_of("0123456789") != std::string_view::npos ||
      !readNumber(s, &n) || n > std::numeric_limits<uint64_t>::max() / mult) {
    return false;
  }
  *out = n * mult;
  return true;
}

bool parseDuration(std::string_view s, std::chrono::nanoseconds* out) {
  double unit = 1e9;
  if (endsWith(s, "ms")) {
    unit = 1e6;
    s.remove_suffix(2);
  } else if (endsWith(s, "s")) {
    s.remove_suffix(1);
  } else if (endsWith(s, "m")) {
    unit = 60e9;
    s.remove_suffix(1);
  } else if (endsWith(s, "h")) {
    unit = 3600e9;
    s.remove_suffix(1);
  }
  double v = 0;
  if (s.empty() || s.find_first_not_of("0123456789.") != std::string_view::npos ||
      !readNumber(s, &v) || !std::isfinite(v) || v < 0 || v * unit > 1e18) {
    return false;
  }
  *out = std::chrono::nanoseconds(static_cast<int64_t>(v * unit));
  return true;
}

absl::StatusOr<HttpConfig> HttpConfig::fromArgs(const PluginArgs& args) {
  HttpConfig c;
  for (const auto& arg : args) {
    const std::string& key = arg.first;
    const std::string& value = arg.second;
    uint64_t n = 0;
    auto size = [&](auto* field, uint64_t min) -> absl::Status {
      if (!parseSize(value, &n) || n < min ||
          n > std::numeric_limits<std::remove_pointer_t<decltype(field)>>::max()) {
        return bad(key, value,
                   cat({"a size of at least ", std::to_string(min), ", e.g. 8k or 1M"}));
      }
      *field = static_cast<std::remove_pointer_t<decltype(field)>>(n);
      return absl::OkStatus();
    };
    auto duration = [&](std::chrono::nanoseconds* field) -> absl::Status {
      if (!parseDuration(value, field)) return bad(key, value, "a duration such as 60s or 500ms");
      return absl::OkStatus();
    };
    absl::Status st;
    if (key == "root") {
      if (value.empty()) st = bad(key, value, "a directory");
      c.root = value;
    } else if (key == "index") {
      if (value.empty() || value.find('/') != std::string::npos || value == "." || value == "..") {
        st = bad(key, value, "a file name");
      }
      c.index = value;
    } else if (key == "disable-symlinks") {
      if (value != "on" && value != "off") st = bad(key, value, "on or off");
      c.disable_symlinks = value == "on";
    } else if (key == "max-request-line") {
      st = size(&c.limits.max_request_line, 16);
    } else if (key == "max-header-size") {
      st = size(&c.limits.max_header_size, 16);
    } else if (key == "max-headers") {
      st = size(&c.limits.max_headers, 1);
    } else if (key == "max-body") {
      st = size(&c.limits.max_body, 0);
    } else if (key == "header-timeout") {
      st = duration(&c.header_timeout);
    } else if (key == "body-timeout") {
      st = duration(&c.body_timeout);
    } else if (key == "keepalive-timeout") {
      st = duration(&c.keepalive_timeout);
    } else if (key == "pipeline-max-output") {
      st = size(&c.pipeline_max_output, 1);
    } else if (key == "access-log") {
      if (value == "on") {
        c.access_log = "stderr";
      } else if (value != "off") {
        if (value.empty()) st = bad(key, value, "on, off, stderr or a file path");
        c.access_log = value;
      }
    } else if (key.rfind("return:", 0) == 0) {
      st = addRoute(&c, key, value);
    } else {
      st = absl::InvalidArgumentError(
          cat({"http: unknown argument '", key,
               "' (known: root, index, disable-symlinks, return:PATH, max-request-line, "
               "max-header-size, max-headers, max-body, header-timeout, body-timeout, "
               "keepalive-timeout, pipeline-max-output, access-log)"}));
    }
    if (!st.ok()) return st;
  }
  return c;
}

}  // namespace plexus::http
