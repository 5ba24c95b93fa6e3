#include "http_util.h"

#include <algorithm>
#include <cstring>

#include "request_parser.h"

namespace plexus::http {
namespace {

constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void put2(char* p, int v) {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}

bool digits(std::string_view s, int* v) {
  int r = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    r = r * 10 + (c - '0');
  }
  *v = r;
  return !s.empty();
}

// Reads 1*DIGIT as a uint64_t; false if empty, not digits or too large.
bool readUint(std::string_view s, uint64_t* v) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t r = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    r = r * 10 + static_cast<uint64_t>(c - '0');
  }
  *v = r;
  return true;
}

std::string_view trimWhite(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool isNormalPath(std::string_view path) {
  if (path.empty() || path[0] != '/') return false;
  for (size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (c == '%') return false;
    if (c == '/' && i + 1 < path.size()) {
      const char n = path[i + 1];
      if (n == '/') return false;
      if (n == '.') {
        // "/." or "/.." as a whole segment
        size_t j = i + 2;
        if (j < path.size() && path[j] == '.') ++j;
        if (j == path.size() || path[j] == '/') return false;
      }
    }
  }
  return true;
}

int normalizePath(std::string_view path, std::string* out) {
  out->clear();
  out->push_back('/');
  // Decode and resolve one segment at a time; `seg` starts after the last '/' of *out.
  size_t seg = 1;
  auto endSegment = [&]() -> int {
    std::string_view s(out->data() + seg, out->size() - seg);
    if (s.empty()) return 0;  // "//": merged
    if (s == ".") {
      out->resize(seg);
    } else if (s == "..") {
      if (seg == 1) return 403;  // above the root
      size_t prev = out->rfind('/', seg - 2);
      out->resize(prev + 1);
      seg = prev + 1;
    } else {
      out->push_back('/');
      seg = out->size();
    }
    return 0;
  };
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '%') {
      if (i + 2 >= path.size()) return 400;
      const int hi = hexValue(path[i + 1]), lo = hexValue(path[i + 2]);
      if (hi < 0 || lo < 0) return 400;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
      if (c == '\0') return 400;
    }
    if (c == '/') {
      if (int st = endSegment(); st != 0) return st;
    } else {
      out->push_back(c);
    }
  }
  // The last segment: a file name stays without a slash; ".", ".." and "" leave one.
  std::string_view last(out->data() + seg, out->size() - seg);
  if (last == "." || last == "..") {
    if (int st = endSegment(); st != 0) return st;
  }
  return 0;
}

std::string_view mediaType(std::string_view name) {
  struct Entry {
    std::string_view ext, type;
  };
  static constexpr Entry kTypes[] = {
      {"html", "text/html"},
      {"htm", "text/html"},
      {"css", "text/css"},
      {"js", "application/javascript"},
      {"mjs", "application/javascript"},
      {"json", "application/json"},
      {"txt", "text/plain"},
      {"xml", "text/xml"},
      {"csv", "text/csv"},
      {"md", "text/markdown"},
      {"svg", "image/svg+xml"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"webp", "image/webp"},
      {"avif", "image/avif"},
      {"ico", "image/x-icon"},
      {"pdf", "application/pdf"},
      {"wasm", "application/wasm"},
      {"zip", "application/zip"},
      {"gz", "application/gzip"},
      {"tar", "application/x-tar"},
      {"mp3", "audio/mpeg"},
      {"mp4", "video/mp4"},
      {"webm", "video/webm"},
      {"woff", "font/woff"},
      {"woff2", "font/woff2"},
      {"ttf", "font/ttf"},
  };
  const size_t slash = name.rfind('/');
  if (slash != std::string_view::npos) name.remove_prefix(slash + 1);
  const size_t dot = name.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return "application/octet-stream";
  const std::string_view ext = name.substr(dot + 1);
  for (const Entry& e : kTypes) {
    if (equalsIgnoreCase(e.ext, ext)) return e.type;
  }
  return "application/octet-stream";
}

void formatHttpDate(time_t t, char* out) {
  struct tm tm;
  gmtime_r(&t, &tm);
  // "Sun, 06 Nov 1994 08:49:37 GMT"
  std::memcpy(out, kDays[tm.tm_wday], 3);
  out[3] = ',';
  out[4] = ' ';
  put2(out + 5, tm.tm_mday);
  out[7] = ' ';
  std::memcpy(out + 8, kMonths[tm.tm_mon], 3);
  out[11] = ' ';
  const int year = tm.tm_year + 1900;
  put2(out + 12, (year / 100) % 100);
  put2(out + 14, year % 100);
  out[16] = ' ';
  put2(out + 17, tm.tm_hour);
  out[19] = ':';
  put2(out + 20, tm.tm_min);
  out[22] = ':';
  put2(out + 23, tm.tm_sec);
  std::memcpy(out + 25, " GMT", 4);
}

bool parseHttpDate(std::string_view s, time_t* t) {
  if (s.size() != kHttpDateSize || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
      s[16] != ' ' || s[19] != ':' || s[22] != ':' || s.substr(25) != " GMT") {
    return false;
  }
  struct tm tm {};
  int mon = -1;
  for (int m = 0; m < 12; ++m) {
    if (s.substr(8, 3) == kMonths[m]) mon = m;
  }
  int day, year, hour, min, sec;
  if (mon < 0 || !digits(s.substr(5, 2), &day) || !digits(s.substr(12, 4), &year) ||
      !digits(s.substr(17, 2), &hour) || !digits(s.substr(20, 2), &min) ||
      !digits(s.substr(23, 2), &sec) || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60 ||
      year < 1970) {
    return false;
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = mon;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  *t = timegm(&tm);
  return *t != static_cast<time_t>(-1);
}

void formatLogTime(time_t t, char* out) {
  struct tm tm;
  gmtime_r(&t, &tm);
  // "03/Dec/2026:11:53:08 +0000"
  put2(out, tm.tm_mday);
  out[2] = '/';
  std::memcpy(out + 3, kMonths[tm.tm_mon], 3);
  out[6] = '/';
  const int year = tm.tm_year + 1900;
  put2(out + 7, (year / 100) % 100);
  put2(out + 9, year % 100);
  out[11] = ':';
  put2(out + 12, tm.tm_hour);
  out[14] = ':';
  put2(out + 15, tm.tm_min);
  out[17] = ':';
  put2(out + 18, tm.tm_sec);
  std::memcpy(out + 20, " +0000", 6);
}

size_t formatEtag(time_t mtime, uint64_t size, char* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  char* p = out;
  auto hex = [&p](uint64_t v) {
    char digits[16];
    int n = 0;
    do {
      digits[n++] = kHex[v & 15];
      v >>= 4;
    } while (v != 0);
    while (n > 0) *p++ = digits[--n];
  };
  *p++ = '"';
  hex(static_cast<uint64_t>(mtime));
  *p++ = '-';
  hex(size);
  *p++ = '"';
  return static_cast<size_t>(p - out);
}

std::string makeEtag(time_t mtime, uint64_t size) {
  char buf[kEtagMaxSize];
  return std::string(buf, formatEtag(mtime, size, buf));
}

bool noneMatchHits(std::string_view if_none_match, std::string_view etag) {
  std::string_view list = trimWhite(if_none_match);
  if (list == "*") return true;
  auto opaque = [](std::string_view tag) {
    if (tag.size() >= 2 && tag[0] == 'W' && tag[1] == '/') tag.remove_prefix(2);
    return tag;
  };
  const std::string_view mine = opaque(etag);
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (opaque(trimWhite(list.substr(0, comma))) == mine) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

RangeResult parseRange(std::string_view header, uint64_t size, ByteRange* range) {
  header = trimWhite(header);
  if (header.size() < 6 || !equalsIgnoreCase(header.substr(0, 6), "bytes=")) {
    return RangeResult::kIgnore;
  }
  std::string_view spec = trimWhite(header.substr(6));
  if (spec.find(',') != std::string_view::npos) return RangeResult::kIgnore;  // several ranges
  const size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return RangeResult::kIgnore;
  const std::string_view first_s = trimWhite(spec.substr(0, dash));
  const std::string_view last_s = trimWhite(spec.substr(dash + 1));
  uint64_t first = 0, last = 0;
  if (first_s.empty()) {
    // suffix-range: the last N bytes
    uint64_t n = 0;
    if (!readUint(last_s, &n)) return RangeResult::kIgnore;
    if (n == 0 || size == 0) return RangeResult::kUnsatisfiable;
    range->first = size - std::min(n, size);
    range->last = size - 1;
    return RangeResult::kSatisfiable;
  }
  if (!readUint(first_s, &first)) return RangeResult::kIgnore;
  if (last_s.empty()) {
    last = UINT64_MAX;
  } else if (!readUint(last_s, &last) || last < first) {
    return RangeResult::kIgnore;
  }
  if (first >= size) return RangeResult::kUnsatisfiable;
  range->first = first;
  range->last = std::min(last, size - 1);
  return RangeResult::kSatisfiable;
}

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 410:
      return "Gone";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

}  // namespace plexus::http
