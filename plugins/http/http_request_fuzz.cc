// libFuzzer target `http_request` (registered in tests/CMakeLists.txt): the http plugin's
// request parser and body reader, and the path normalization that guards the file root.
//
// The input is a byte stream from a client. It is processed as the plugin does (head, then body,
// then the next request) twice: whole, and cut at split points drawn from the input itself, with
// every piece copied to new storage. Both runs must produce the same transcript (each request's
// fields or error status), every view must lie within the data, and every normalized path must be
// free of "." and ".." segments. Any difference traps.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "http_util.h"
#include "request_parser.h"

namespace {

using plexus::http::BodyReader;
using plexus::http::ParserLimits;
using plexus::http::Request;
using plexus::http::RequestParser;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool within(std::string_view inner, std::string_view outer) {
  return inner.empty() || (inner.data() >= outer.data() &&
                           inner.data() + inner.size() <= outer.data() + outer.size());
}

void checkNormalized(std::string_view path) {
  std::string out;
  const int st = plexus::http::normalizePath(path, &out);
  check(st == 0 || st == 400 || st == 403);
  if (st != 0) return;
  check(!out.empty() && out[0] == '/');
  check(out.find("//") == std::string::npos);
  check(out.find("/./") == std::string::npos && out.find("/../") == std::string::npos);
  check(!out.ends_with("/.") && !out.ends_with("/.."));
  check(plexus::http::isNormalPath(out) || out.find('%') != std::string::npos);
}

// Runs the stream through parser and body reader; `ends` are the cumulative sizes at which more
// input "arrives". Returns a transcript.
std::string transcript(std::string_view input, const std::vector<size_t>& ends) {
  ParserLimits limits;
  limits.max_request_line = 200;
  limits.max_header_size = 400;
  limits.max_headers = 12;
  limits.max_body = 3000;
  RequestParser parser(limits);
  BodyReader body(limits);
  std::string log;
  size_t consumed = 0;  // bytes retrieved from the connection's input
  bool in_body = false;
  for (size_t end : ends) {
    // The unconsumed input, in storage of its own each time (the connection's buffer may move).
    std::string data(input.substr(consumed, end - consumed));
    size_t off = 0;
    for (;;) {
      if (in_body) {
        size_t used = 0;
        const BodyReader::Result r = body.consume(std::string_view(data).substr(off), &used);
        check(used <= data.size() - off);
        off += used;
        if (r == BodyReader::Result::kIncomplete) {
          check(off == data.size());
          break;
        }
        if (r == BodyReader::Result::kError) {
          log += "body-error " + std::to_string(body.errorStatus()) + "\n";
          return log;
        }
        log += "body " + std::to_string(body.bodyBytes()) + "\n";
        in_body = false;
        continue;
      }
      if (off == data.size()) break;
      const std::string_view rest = std::string_view(data).substr(off);
      const RequestParser::Result r = parser.parse(rest);
      if (r == RequestParser::Result::kIncomplete) break;
      if (r == RequestParser::Result::kError) {
        const int st = parser.errorStatus();
        check(st == 400 || st == 413 || st == 414 || st == 417 || st == 431 || st == 501 ||
              st == 505);
        log += "error " + std::to_string(st) + "\n";
        return log;
      }
      const Request& req = parser.request();
      check(req.head_length > 0 && req.head_length <= rest.size());
      const std::string_view head = rest.substr(0, req.head_length);
      check(within(req.request_line, head) && within(req.method_name, head) &&
            within(req.target, head) && within(req.query, head) && within(req.host, head));
      check(within(req.path, head) || req.path == "/");
      for (const auto& h : req.headers) check(within(h.name, head) && within(h.value, head));
      check(!(req.chunked && req.content_length != 0));
      check(limits.max_body == 0 || req.content_length <= limits.max_body);
      if (!req.path.empty() && req.path[0] == '/') checkNormalized(req.path);
      log += std::string(req.method_name) + " " + std::string(req.target) + " " +
             std::to_string(req.version_minor) + (req.keep_alive ? " ka" : " close") +
             (req.chunked ? " chunked" : " cl=" + std::to_string(req.content_length)) +
             " h=" + std::to_string(req.headers.size()) + "\n";
      plexus::http::ByteRange range;
      if (!req.range.empty()) {
        if (plexus::http::parseRange(req.range, 1000, &range) ==
            plexus::http::RangeResult::kSatisfiable) {
          check(range.first <= range.last && range.last < 1000);
        }
      }
      time_t t;
      if (plexus::http::parseHttpDate(req.if_modified_since, &t)) {
        char buf[plexus::http::kHttpDateSize];
        plexus::http::formatHttpDate(t, buf);
      }
      off += req.head_length;
      parser.reset();
      if (req.hasBody()) {
        if (req.chunked) {
          body.startChunked();
        } else {
          body.startLength(req.content_length);
        }
        in_body = true;
      }
    }
    consumed += off;
  }
  return log + (in_body ? "partial body\n" : "end\n");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (size > 0) checkNormalized(input[0] == '/' ? input : std::string_view());
  const std::string whole = transcript(input, {size});
  // Split points drawn from the input's own bytes (a cheap reproducible generator).
  std::vector<size_t> ends;
  uint32_t state = 2166136261u;
  for (unsigned char c : input) state = (state ^ c) * 16777619u;
  size_t at = 0;
  while (at < size) {
    state = state * 1103515245u + 12345u;
    at = std::min(size, at + 1 + (state >> 16) % 13);
    ends.push_back(at);
  }
  if (ends.empty()) ends.push_back(0);
  check(transcript(input, ends) == whole);
  return 0;
}
