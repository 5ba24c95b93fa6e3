#pragma once
// Appending RESP2 replies to an output string.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/numbers.h"

namespace plexus::resp {
// This Abseil (Debian 12's) has its own absl::string_view, not std::string_view.
inline absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
}  // namespace plexus::resp

namespace plexus::resp::reply {

inline void appendLine(std::string& out, char type, std::string_view s) {
  out.push_back(type);
  out.append(s.data(), s.size());
  out.append("\r\n", 2);
}
inline void appendNumber(std::string& out, char type, int64_t n) {
  char buf[24];
  buf[0] = type;
  char* end = absl::numbers_internal::FastIntToBuffer(n, buf + 1);
  end[0] = '\r';
  end[1] = '\n';
  out.append(buf, static_cast<size_t>(end + 2 - buf));
}
inline void simple(std::string& out, std::string_view s) { appendLine(out, '+', s); }
inline void ok(std::string& out) { out.append("+OK\r\n", 5); }
// `s` without the leading '-' ("ERR syntax error").
inline void error(std::string& out, std::string_view s) { appendLine(out, '-', s); }
inline void integer(std::string& out, int64_t n) { appendNumber(out, ':', n); }
inline void bulk(std::string& out, std::string_view s) {
  appendNumber(out, '$', static_cast<int64_t>(s.size()));
  out.append(s.data(), s.size());
  out.append("\r\n", 2);
}
inline void nullBulk(std::string& out) { out.append("$-1\r\n", 5); }
inline void nullArray(std::string& out) { out.append("*-1\r\n", 5); }
inline void array(std::string& out, size_t n) { appendNumber(out, '*', static_cast<int64_t>(n)); }

}  // namespace plexus::resp::reply
