#pragma once
// Helpers for the http plugin's tests: reading header values out of raw responses and making the
// varying ones (Date, Last-Modified, ETag) fixed, so that the rest compares byte for byte. Plain
// string code (GCC 12's <regex> warns under the sanitizers).

#include <cstddef>
#include <string>
#include <string_view>

namespace plexus::testing::http {

// "Sun, 06 Nov 1994 08:49:37 GMT": the shape of an IMF-fixdate.
inline bool looksLikeHttpDate(std::string_view s) {
  if (s.size() != 29 || s[3] != ',' || s.substr(25) != " GMT") return false;
  for (size_t i : {5, 6, 12, 13, 14, 15, 17, 18, 20, 21, 23, 24}) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

// "06/Nov/1994:08:49:37 +0000": the shape of the access log's time.
inline bool looksLikeLogTime(std::string_view s) {
  if (s.size() != 26 || s[2] != '/' || s[6] != '/' || s[11] != ':' || s.substr(20) != " +0000") {
    return false;
  }
  for (size_t i : {0, 1, 7, 8, 9, 10, 12, 13, 15, 16, 18, 19}) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

// The value of the first header `name` ("Content-Length") in a raw head, or "" when absent.
inline std::string headerValue(std::string_view head, std::string_view name) {
  const std::string key = "\r\n" + std::string(name) + ": ";
  const size_t at = head.find(key);
  if (at == std::string_view::npos) return "";
  const size_t start = at + key.size();
  const size_t end = head.find("\r\n", start);
  return std::string(head.substr(start, end == std::string_view::npos ? end : end - start));
}

// Every value of header `name` replaced by `with`, when `accept` says it has the expected shape
// (else left as is, so that the comparison shows it).
template <typename Accept>
std::string replaceHeader(std::string s, std::string_view name, std::string_view with,
                          Accept accept) {
  const std::string key = "\r\n" + std::string(name) + ": ";
  size_t at = 0;
  while ((at = s.find(key, at)) != std::string::npos) {
    const size_t start = at + key.size();
    const size_t end = s.find("\r\n", start);
    if (end == std::string::npos) break;
    if (accept(std::string_view(s).substr(start, end - start))) {
      s.replace(start, end - start, with);
    }
    at = start;
  }
  return s;
}

// Date values become "D".
inline std::string fixDate(std::string s) {
  return replaceHeader(std::move(s), "Date", "D", looksLikeHttpDate);
}

// Date, Last-Modified and ETag ("<hex>-<hex>" in quotes) values become D, M and E.
inline std::string fixValidators(std::string s) {
  s = fixDate(std::move(s));
  s = replaceHeader(std::move(s), "Last-Modified", "M", looksLikeHttpDate);
  return replaceHeader(std::move(s), "ETag", "E", [](std::string_view v) {
    if (v.size() < 5 || v.front() != '"' || v.back() != '"') return false;
    const std::string_view inner = v.substr(1, v.size() - 2);
    const size_t dash = inner.find('-');
    if (dash == 0 || dash == std::string_view::npos || dash + 1 == inner.size()) return false;
    return inner.find_first_not_of("0123456789abcdef-") == std::string_view::npos;
  });
}

}  // namespace plexus::testing::http
