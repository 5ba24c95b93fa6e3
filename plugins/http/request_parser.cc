#include "request_parser.h"

#include <array>
#include <cstring>
#include <limits>

namespace plexus::http {
namespace {

// Character classes of RFC 9110/9112, one table lookup each.
enum : uint8_t { kToken = 1, kTarget = 2, kValue = 4, kHex = 8 };

constexpr std::array<uint8_t, 256> makeClasses() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t v = 0;
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (alnum ||
        std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos) {
      v |= kToken;
    }
    if (c > 0x20 && c < 0x7f) v |= kTarget;
    if (c == '\t' || c == ' ' || (c > 0x20 && c != 0x7f)) v |= kValue;  // VCHAR, obs-text, SP, HTAB
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= kHex;
    t[static_cast<size_t>(c)] = v;
  }
  return t;
}
constexpr std::array<uint8_t, 256> kClasses = makeClasses();

inline bool is(char c, uint8_t cls) { return (kClasses[static_cast<unsigned char>(c)] & cls) != 0; }

inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

inline bool isWhite(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && isWhite(s.front())) s.remove_prefix(1);
  while (!s.empty() && isWhite(s.back())) s.remove_suffix(1);
  return s;
}

Method methodOf(std::string_view m) {
  switch (m.size()) {
    case 3:
      if (m == "GET") return Method::kGet;
      if (m == "PUT") return Method::kPut;
      break;
    case 4:
      if (m == "HEAD") return Method::kHead;
      if (m == "POST") return Method::kPost;
      break;
    case 5:
      if (m == "PATCH") return Method::kPatch;
      if (m == "TRACE") return Method::kTrace;
      break;
    case 6:
      if (m == "DELETE") return Method::kDelete;
      break;
    case 7:
      if (m == "OPTIONS") return Method::kOptions;
      if (m == "CONNECT") return Method::kConnect;
      break;
    default:
      break;
  }
  return Method::kOther;
}

// Calls f(element) for each non-empty element of a comma-separated list (RFC 9110 5.6.1).
template <typename F>
void forEachListElement(std::string_view list, F&& f) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view element = trim(list.substr(0, comma));
    if (!element.empty()) f(element);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

void RequestParser::reset() {
  state_ = State::kRequestLine;
  pos_ = line_start_ = headers_start_ = 0;
  error_status_ = 0;
  fields_.clear();
  headers_.clear();
  request_ = Request();
}

RequestParser::Result RequestParser::fail(int status) {
  state_ = State::kError;
  error_status_ = status;
  return Result::kError;
}

RequestParser::Result RequestParser::parse(std::string_view data) {
  if (state_ == State::kError) return Result::kError;
  if (state_ == State::kDone) return Result::kComplete;
  for (;;) {
    const char* base = data.data();
    const void* nl =
        pos_ < data.size() ? std::memchr(base + pos_, '\n', data.size() - pos_) : nullptr;
    if (nl == nullptr) {
      // The line has no end yet: refuse it once it is longer than a complete one could be.
      pos_ = data.size();
      if (state_ == State::kRequestLine) {
        if (pos_ - line_start_ > limits_.max_request_line + 1) return fail(414);
      } else if (pos_ - headers_start_ > limits_.max_header_size + 1) {  // + the CR of the end
        return fail(431);
      }
      return Result::kIncomplete;
    }
    const size_t lf = static_cast<size_t>(static_cast<const char*>(nl) - base);
    pos_ = lf + 1;
    size_t end = lf;
    if (end > line_start_ && base[end - 1] == '\r') --end;  // CRLF, or a bare LF (RFC 9112 2.2)
    const size_t start = line_start_;
    line_start_ = pos_;

    if (state_ == State::kRequestLine) {
      if (end == start) {
        // Empty lines before a request line are ignored (RFC 9112 2.2), a bounded number of them.
        if (pos_ > limits_.max_request_line) return fail(400);
        continue;
      }
      if (end - start > limits_.max_request_line) return fail(414);
      rl_start_ = start;
      rl_end_ = end;
      if (!parseRequestLine(data.substr(start, end - start))) return Result::kError;
      state_ = State::kHeaders;
      headers_start_ = pos_;
      continue;
    }
    // A header line, or the empty line that ends the head.
    if (end == start) return finish(data);
    if (pos_ - headers_start_ > limits_.max_header_size) return fail(431);
    Result r = parseHeaderLine(data, start, end);
    if (r != Result::kIncomplete) return r;
  }
}

// request-line = method SP request-target SP HTTP-version, single spaces (RFC 9112 3).
bool RequestParser::parseRequestLine(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && is(line[i], kToken)) ++i;
  if (i == 0 || i >= line.size() || line[i] != ' ') return fail(400), false;
  request_.method_name = line.substr(0, i);
  request_.method = methodOf(request_.method_name);
  const size_t target_start = ++i;
  while (i < line.size() && is(line[i], kTarget)) ++i;
  if (i == target_start || i >= line.size() || line[i] != ' ') return fail(400), false;
  std::string_view version = line.substr(i + 1);
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return fail(400), false;
  }
  if (version[5] != '1') return fail(505), false;
  request_.version_minor = version[7] == '0' ? 0 : 1;
  return true;
}

// field-line = field-name ":" OWS field-value OWS (RFC 9112 5).
RequestParser::Result RequestParser::parseHeaderLine(std::string_view data, size_t start,
                                                     size_t end) {
  std::string_view line = data.substr(start, end - start);
  if (isWhite(line[0])) return fail(400);  // obs-fold, or whitespace before the first name
  size_t colon = 0;
  while (colon < line.size() && is(line[colon], kToken)) ++colon;
  // No colon, whitespace before it, an empty name, or a byte no name may hold.
  if (colon == 0 || colon >= line.size() || line[colon] != ':') return fail(400);
  size_t v = colon + 1, v_end = line.size();
  while (v < v_end && isWhite(line[v])) ++v;
  while (v_end > v && isWhite(line[v_end - 1])) --v_end;
  for (size_t k = v; k < v_end; ++k) {
    if (!is(line[k], kValue)) return fail(400);  // NUL, a bare CR, another control
  }
  if (fields_.size() >= limits_.max_headers) return fail(431);
  fields_.push_back({static_cast<uint32_t>(start), static_cast<uint32_t>(colon),
                     static_cast<uint32_t>(start + v), static_cast<uint32_t>(v_end - v)});
  return Result::kIncomplete;
}

RequestParser::Result RequestParser::finish(std::string_view data) {
  Request& r = request_;
  const std::string_view line = data.substr(rl_start_, rl_end_ - rl_start_);
  r.request_line = line;
  r.method_name = line.substr(0, r.method_name.size());
  r.target = line.substr(r.method_name.size() + 1, line.size() - r.method_name.size() - 10);
  r.head_length = pos_;

  // The request target: origin-form, absolute-form, "*" for OPTIONS, authority-form for CONNECT.
  std::string_view target = r.target;
  if (target[0] != '/') {
    if (r.method == Method::kConnect) {
      target = {};
    } else if (target == "*" && r.method == Method::kOptions) {
      // as is
    } else {
      size_t scheme_end = target.find("://");
      if (scheme_end == std::string_view::npos ||
          (!equalsIgnoreCase(target.substr(0, scheme_end), "http") &&
           !equalsIgnoreCase(target.substr(0, scheme_end), "https"))) {
        return fail(400);
      }
      std::string_view rest = target.substr(scheme_end + 3);
      size_t slash = rest.find_first_of("/?");
      if (slash == 0) return fail(400);  // no authority
      target = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
    }
  }
  size_t q = target.find('?');
  r.path = target.substr(0, q);
  r.query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  if (r.path.empty() && r.method != Method::kConnect) r.path = "/";  // "http://host" or "...?q"

  headers_.clear();
  headers_.reserve(fields_.size());
  int hosts = 0;
  bool has_length = false, has_te = false, connection_close = false, connection_keep = false;
  uint64_t length = 0;
  int chunked_count = 0;
  bool other_coding = false;
  for (const FieldOffsets& f : fields_) {
    HeaderField h{data.substr(f.name_start, f.name_len), data.substr(f.value_start, f.value_len)};
    headers_.push_back(h);
    const std::string_view n = h.name;
    switch (n.size()) {
      case 4:
        if (equalsIgnoreCase(n, "host")) {
          ++hosts;
          r.host = h.value;
        }
        break;
      case 5:
        if (equalsIgnoreCase(n, "range")) r.range = h.value;
        break;
      case 6:
        if (equalsIgnoreCase(n, "expect")) {
          if (r.version_minor == 0) break;  // HTTP/1.0 has no Expect (RFC 9110 10.1.1)
          if (!equalsIgnoreCase(h.value, "100-continue")) return fail(417);
          r.expect_continue = true;
        }
        break;
      case 7:
        if (equalsIgnoreCase(n, "referer")) r.referer = h.value;
        break;
      case 8:
        if (equalsIgnoreCase(n, "if-range")) r.if_range = h.value;
        break;
      case 10:
        if (equalsIgnoreCase(n, "connection")) {
          forEachListElement(h.value, [&](std::string_view e) {
            if (equalsIgnoreCase(e, "close")) connection_close = true;
            if (equalsIgnoreCase(e, "keep-alive")) connection_keep = true;
          });
        } else if (equalsIgnoreCase(n, "user-agent")) {
          r.user_agent = h.value;
        }
        break;
      case 13:
        if (equalsIgnoreCase(n, "if-none-match")) r.if_none_match = h.value;
        break;
      case 14:
        if (equalsIgnoreCase(n, "content-length")) {
          // 1*DIGIT, or a list of identical ones (RFC 9110 8.6); anything else is refused.
          bool bad = false, any = false;
          forEachListElement(h.value, [&](std::string_view e) {
            uint64_t value = 0;
            for (char c : e) {
              constexpr uint64_t kMax = (std::numeric_limits<uint64_t>::max() - 9) / 10;
              if (c < '0' || c > '9' || value > kMax) {
                bad = true;  // not a digit, or too many of them (overflow)
                return;
              }
              value = value * 10 + static_cast<uint64_t>(c - '0');
            }
            if (has_length && value != length) bad = true;
            has_length = any = true;
            length = value;
          });
          if (bad || !any) return fail(400);
        }
        break;
      case 17:
        if (equalsIgnoreCase(n, "transfer-encoding")) {
          has_te = true;
          forEachListElement(h.value, [&](std::string_view e) {
            if (equalsIgnoreCase(e, "chunked")) {
              ++chunked_count;
            } else {
              other_coding = true;
            }
          });
        } else if (equalsIgnoreCase(n, "if-modified-since")) {
          r.if_modified_since = h.value;
        }
        break;
      default:
        break;
    }
  }
  r.headers = headers_;

  if (hosts > 1 || (hosts == 0 && r.version_minor == 1)) return fail(400);
  if (has_te) {
    // Both framings at once are a smuggling attempt (RFC 9112 6.1); HTTP/1.0 has no chunked.
    if (has_length || r.version_minor == 0) return fail(400);
    if (other_coding) return fail(501);  // no coding but chunked is implemented
    if (chunked_count != 1) return fail(400);
    r.chunked = true;
  } else {
    r.content_length = length;
    if (limits_.max_body != 0 && length > limits_.max_body) return fail(413);
  }
  r.keep_alive = r.version_minor == 1 ? !connection_close : (connection_keep && !connection_close);
  state_ = State::kDone;
  return Result::kComplete;
}

// --- BodyReader -------------------------------------------------------------------------------

void BodyReader::startLength(uint64_t length) {
  state_ = length == 0 ? State::kDone : State::kLength;
  remaining_ = length;
  total_ = 0;
}

void BodyReader::startChunked() {
  state_ = State::kSize;
  remaining_ = total_ = 0;
  size_digits_ = line_bytes_ = 0;
}

BodyReader::Result BodyReader::fail(int status) {
  state_ = State::kError;
  error_status_ = status;
  return Result::kError;
}

BodyReader::Result BodyReader::consume(std::string_view data, size_t* consumed) {
  // Bytes of a chunk-size line (extensions included) and of the trailer section are bounded.
  constexpr size_t kMaxSizeLine = 4096;
  size_t i = 0;
  auto done = [&](Result r) {
    *consumed = i;
    return r;
  };
  while (i < data.size()) {
    const char c = data[i];
    switch (state_) {
      case State::kLength:
      case State::kData: {
        const uint64_t take = std::min<uint64_t>(remaining_, data.size() - i);
        i += static_cast<size_t>(take);
        remaining_ -= take;
        total_ += take;
        if (remaining_ == 0) {
          if (state_ == State::kLength) {
            state_ = State::kDone;
            return done(Result::kComplete);
          }
          state_ = State::kDataCr;
        }
        continue;
      }
      case State::kSize:
        if (is(c, kHex)) {
          if (++size_digits_ > 16) return done(fail(400));  // overflows 64 bits
          const uint64_t digit = static_cast<uint64_t>(c <= '9' ? c - '0' : (lower(c) - 'a' + 10));
          remaining_ = remaining_ * 16 + digit;
          if (limits_.max_body != 0 && total_ + remaining_ > limits_.max_body) {
            return done(fail(413));
          }
        } else if (size_digits_ == 0) {
          return done(fail(400));  // no digits
        } else if (isWhite(c)) {
          state_ = State::kSizeSpace;
        } else if (c == ';') {
          state_ = State::kExtension;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c == '\n') {
          state_ = remaining_ == 0 ? State::kTrailerLineStart : State::kData;
          line_bytes_ = 0;
        } else {
          return done(fail(400));
        }
        break;
      case State::kSizeSpace:
        if (c == ';') {
          state_ = State::kExtension;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (!isWhite(c)) {
          return done(fail(400));
        }
        break;
      case State::kExtension:
        // Chunk extensions are ignored (RFC 9112 7.1.1), but must be printable.
        if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c == '\n') {
          state_ = remaining_ == 0 ? State::kTrailerLineStart : State::kData;
          line_bytes_ = 0;
        } else if (!is(c, kValue)) {
          return done(fail(400));
        }
        break;
      case State::kSizeLf:
        if (c != '\n') return done(fail(400));  // a bare CR
        state_ = remaining_ == 0 ? State::kTrailerLineStart : State::kData;
        line_bytes_ = 0;
        break;
      case State::kDataCr:
        if (c == '\r') {
          state_ = State::kDataLf;
        } else if (c == '\n') {
          state_ = State::kSize;
          size_digits_ = line_bytes_ = 0;
        } else {
          return done(fail(400));  // the chunk is longer than its size said
        }
        break;
      case State::kDataLf:
        if (c != '\n') return done(fail(400));
        state_ = State::kSize;
        size_digits_ = line_bytes_ = 0;
        break;
      case State::kTrailerLineStart:
        if (c == '\r') {
          state_ = State::kLastLf;
        } else if (c == '\n') {
          ++i;
          state_ = State::kDone;
          return done(Result::kComplete);
        } else if (isWhite(c) || !is(c, kValue)) {
          return done(fail(400));  // obs-fold in the trailers, or a control
        } else {
          state_ = State::kTrailerLine;
        }
        break;
      case State::kTrailerLine:
        if (c == '\r') {
          state_ = State::kTrailerLf;
        } else if (c == '\n') {
          state_ = State::kTrailerLineStart;
        } else if (!is(c, kValue)) {
          return done(fail(400));
        }
        break;
      case State::kTrailerLf:
        if (c != '\n') return done(fail(400));
        state_ = State::kTrailerLineStart;
        break;
      case State::kLastLf:
        if (c != '\n') return done(fail(400));
        ++i;
        state_ = State::kDone;
        return done(Result::kComplete);
      case State::kDone:
        return done(Result::kComplete);
      case State::kError:
        return done(Result::kError);
    }
    ++i;
    if (state_ == State::kSize || state_ == State::kSizeSpace || state_ == State::kExtension ||
        state_ == State::kSizeLf) {
      if (++line_bytes_ > kMaxSizeLine) return done(fail(400));
    } else if (state_ >= State::kTrailerLineStart && state_ <= State::kLastLf) {
      if (++line_bytes_ > limits_.max_header_size) return done(fail(431));
    }
  }
  if (state_ == State::kDone) return done(Result::kComplete);
  if (state_ == State::kError) return done(Result::kError);
  return done(Result::kIncomplete);
}

}  // namespace plexus::http
