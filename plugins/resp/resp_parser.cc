#include "resp_parser.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "resp_reply.h"

namespace plexus::resp {
namespace {

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Redis's string2ll: an optional '-', digits, no leading zeros ("0" alone is fine), no spaces, in
// range of long long.
bool parseLongLong(std::string_view s, long long* out) {
  if (s.empty() || s.size() > 20) return false;
  size_t i = 0;
  bool negative = false;
  if (s[0] == '-') {
    negative = true;
    i = 1;
    if (s.size() == 1) return false;
  }
  if (s[i] == '0') {
    if (s.size() == i + 1 && !negative) {
      *out = 0;
      return true;
    }
    return false;
  }
  unsigned long long v = 0;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c < '0' || c > '9') return false;
    const unsigned d = static_cast<unsigned>(c - '0');
    if (v > (~0ull - d) / 10) return false;
    v = v * 10 + d;
  }
  if (negative) {
    if (v > static_cast<unsigned long long>(INT64_MAX) + 1) return false;
    *out = static_cast<long long>(0 - v);
  } else {
    if (v > static_cast<unsigned long long>(INT64_MAX)) return false;
    *out = static_cast<long long>(v);
  }
  return true;
}

}  // namespace

RespParser::Status RespParser::fail(std::string_view message) {
  error_ = absl::StrCat("-ERR Protocol error: ", av(message), "\r\n");
  state_ = State::kStart;
  spans_.clear();
  args_.clear();
  return Status::kError;
}

int RespParser::readHeaderNumber(std::string_view input, size_t pos, bool* parsed, long long* value,
                                 size_t* next) const {
  // As networking.c: look for the '\r' first; a line longer than max_inline is refused whether or
  // not its end has come.
  const size_t cr = input.find('\r', pos);
  if (cr == std::string_view::npos) {
    return input.size() - pos > limits_.max_inline ? -1 : 0;
  }
  if (cr - pos > limits_.max_inline) return -1;
  if (cr + 1 >= input.size()) return 0;  // the '\n' has not come yet
  *parsed = parseLongLong(input.substr(pos + 1, cr - pos - 1), value);
  *next = cr + 2;
  return 1;
}

RespParser::Status RespParser::parse(std::string_view input) {
  args_.clear();
  consumed_ = 0;
  skipped_ = 0;
  size_t base = 0;  // start of the current command in `input`
  for (;;) {
    const std::string_view in = input.substr(base);
    if (state_ == State::kStart) {
      if (in.empty()) {
        skipped_ = base;
        return Status::kNeedMore;
      }
      if (in[0] != '*') {
        const Status st = parseInline(in, base);
        if (st == Status::kNeedMore && args_.empty() && consumed_ > 0) {
          // an empty line was skipped: go on after it
          base = consumed_;  // (absolute)
          consumed_ = 0;
          continue;
        }
        return st;
      }
      bool ok = false;
      long long count = 0;
      size_t next = 0;
      const int r = readHeaderNumber(in, 0, &ok, &count, &next);
      if (r < 0) return fail("too big mbulk count string");
      if (r == 0) {
        skipped_ = base;
        return Status::kNeedMore;
      }
      if (!ok || count > static_cast<long long>(limits_.max_multibulk)) {
        return fail("invalid multibulk length");
      }
      if (count <= 0) {  // `*0`, `*-1`: nothing to run
        base += next;
        continue;
      }
      remaining_ = count;
      pos_ = next;
      spans_.clear();
      state_ = State::kMultibulkArg;
    }
    if (state_ == State::kMultibulkArg) {
      bool ok = false;
      long long len = 0;
      size_t next = 0;
      if (pos_ >= in.size()) {
        skipped_ = base;
        return Status::kNeedMore;
      }
      const int r = readHeaderNumber(in, pos_, &ok, &len, &next);
      if (r < 0) return fail("too big bulk count string");
      if (r == 0) {
        skipped_ = base;
        return Status::kNeedMore;
      }
      if (in[pos_] != '$') {
        return fail(absl::StrCat("expected '$', got '", absl::string_view(&in[pos_], 1), "'"));
      }
      if (!ok || len < 0 || static_cast<unsigned long long>(len) > limits_.max_bulk) {
        return fail("invalid bulk length");
      }
      bulk_len_ = len;
      pos_ = next;
      state_ = State::kBulkBody;
    }
    // kBulkBody: the argument and its "\r\n" (not checked, as redis-server does not check it).
    for (;;) {
      const size_t need = static_cast<size_t>(bulk_len_) + 2;
      if (in.size() - pos_ < need) {
        skipped_ = base;
        return Status::kNeedMore;
      }
      spans_.push_back({pos_, static_cast<size_t>(bulk_len_)});
      pos_ += need;
      if (--remaining_ == 0) break;
      // the next argument's header
      bool ok = false;
      long long len = 0;
      size_t next = 0;
      if (pos_ >= in.size()) {
        state_ = State::kMultibulkArg;
        skipped_ = base;
        return Status::kNeedMore;
      }
      const int r = readHeaderNumber(in, pos_, &ok, &len, &next);
      if (r < 0) return fail("too big bulk count string");
      if (r == 0) {
        state_ = State::kMultibulkArg;
        skipped_ = base;
        return Status::kNeedMore;
      }
      if (in[pos_] != '$') {
        return fail(absl::StrCat("expected '$', got '", absl::string_view(&in[pos_], 1), "'"));
      }
      if (!ok || len < 0 || static_cast<unsigned long long>(len) > limits_.max_bulk) {
        return fail("invalid bulk length");
      }
      bulk_len_ = len;
      pos_ = next;
      state_ = State::kBulkBody;
    }
    args_.reserve(spans_.size());
    for (const Span& s : spans_) args_.push_back(in.substr(s.offset, s.length));
    consumed_ = base + pos_;
    state_ = State::kStart;
    spans_.clear();
    return Status::kCommand;
  }
}

RespParser::Status RespParser::parseInline(std::string_view in, size_t base) {
  const size_t nl = in.find('\n');
  if (nl == std::string_view::npos) {
    if (in.size() > limits_.max_inline) return fail("too big inline request");
    skipped_ = base;
    return Status::kNeedMore;
  }
  std::string_view line = in.substr(0, nl);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!splitInline(line)) return fail("unbalanced quotes in request");
  consumed_ = base + nl + 1;
  if (args_.empty()) {
    skipped_ = 0;
    return Status::kNeedMore;  // the caller skips the empty line (consumed_ > 0)
  }
  return Status::kCommand;
}

bool RespParser::splitInline(std::string_view line) {
  args_.clear();
  if (line.find_first_of("\"'") == std::string_view::npos) {
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && isSpace(line[i])) ++i;
      if (i == line.size()) break;
      const size_t start = i;
      while (i < line.size() && !isSpace(line[i])) ++i;
      args_.push_back(line.substr(start, i - start));
    }
    return true;
  }
  // Quotes: unescape into inline_storage_, which never grows past the line (no view moves).
  inline_storage_.clear();
  inline_storage_.reserve(line.size());
  std::vector<std::pair<size_t, size_t>> spans;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && isSpace(line[i])) ++i;
    if (i == line.size()) break;
    const size_t start = inline_storage_.size();
    bool in_dq = false, in_sq = false, done = false;
    while (!done) {
      if (in_dq) {
        if (i == line.size()) return false;
        if (line[i] == '\\' && i + 3 < line.size() + 0 && line[i + 1] == 'x' &&
            hexValue(line[i + 2]) >= 0 && hexValue(line[i + 3]) >= 0) {
          inline_storage_.push_back(
              static_cast<char>(hexValue(line[i + 2]) * 16 + hexValue(line[i + 3])));
          i += 4;
        } else if (line[i] == '\\' && i + 1 < line.size()) {
          char c = line[i + 1];
          switch (c) {
            case 'n':
              c = '\n';
              break;
            case 'r':
              c = '\r';
              break;
            case 't':
              c = '\t';
              break;
            case 'b':
              c = '\b';
              break;
            case 'a':
              c = '\a';
              break;
            default:
              break;
          }
          inline_storage_.push_back(c);
          i += 2;
        } else if (line[i] == '"') {
          // the closing quote must be followed by a space or the end
          if (i + 1 < line.size() && !isSpace(line[i + 1])) return false;
          done = true;
          ++i;
        } else {
          inline_storage_.push_back(line[i++]);
        }
      } else if (in_sq) {
        if (i == line.size()) return false;
        if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == '\'') {
          inline_storage_.push_back('\'');
          i += 2;
        } else if (line[i] == '\'') {
          if (i + 1 < line.size() && !isSpace(line[i + 1])) return false;
          done = true;
          ++i;
        } else {
          inline_storage_.push_back(line[i++]);
        }
      } else {
        if (i == line.size()) {
          done = true;
        } else if (isSpace(line[i])) {
          done = true;
          ++i;
        } else if (line[i] == '"') {
          in_dq = true;
          ++i;
        } else if (line[i] == '\'') {
          in_sq = true;
          ++i;
        } else {
          inline_storage_.push_back(line[i++]);
        }
      }
    }
    spans.emplace_back(start, inline_storage_.size() - start);
  }
  for (const auto& [off, len] : spans)
    args_.push_back(std::string_view(inline_storage_).substr(off, len));
  return true;
}

}  // namespace plexus::resp
