#pragma once
// The HTTP/1.1 request parser of the http plugin (RFC 9112), strict and resumable.
//
// RequestParser reads a request head (request line and header fields) from the connection's input
// in place: what it returns are string_views into the bytes it was given, never copies. It keeps
// its position between calls, so bytes that arrive one at a time are scanned once:
//
//   data given to parse():  GET /a HTTP/1.1\r\nHost: x\r\nAcc
//                           ^ request start   ^ line_start_   ^ pos_ (scanned up to here)
//
// Every call must pass the unconsumed input from the same request start (more bytes may have been
// appended, and the bytes may have moved: only offsets are kept between calls). Complete lines are
// checked as they arrive, so a malformed line is refused as soon as its end is seen, and a line
// still without its end is refused once it is longer than the limits allow.
//
// BodyReader then consumes the body (Content-Length or chunked) as a stream, without keeping it.
//
// Errors carry the status code to answer with; the connection closes after every one of them.
// Thread safety: none; one parser per connection, on the connection's thread.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace plexus::http {

struct ParserLimits {
  size_t max_request_line = 8192;  // bytes of the request line, CRLF excluded (414 past it)
  size_t max_header_size = 32768;  // bytes of the header section after the request line (431)
  size_t max_headers = 100;        // header fields (431 past it)
  uint64_t max_body = 1 << 20;     // body bytes, 0: no limit (413 past it)
};

enum class Method : uint8_t {
  kGet,
  kHead,
  kPost,
  kPut,
  kDelete,
  kOptions,
  kPatch,
  kTrace,
  kConnect,
  kOther,
};

struct HeaderField {
  std::string_view name;   // as sent (compare case-insensitively)
  std::string_view value;  // without leading and trailing whitespace
};

// A parsed request head. Views point into the data last given to RequestParser::parse().
struct Request {
  std::string_view request_line;  // without its line end, for logs
  std::string_view method_name;
  Method method = Method::kOther;
  std::string_view target;  // the request-target as sent
  std::string_view path;   // its path, still percent-encoded ("*" for OPTIONS *, empty for CONNECT)
  std::string_view query;  // after '?', without it
  int version_minor = 1;   // HTTP/1.0 -> 0, HTTP/1.1 (or a later 1.x) -> 1
  bool keep_alive = true;  // what the version and Connection say
  bool expect_continue = false;
  bool chunked = false;
  uint64_t content_length = 0;  // when not chunked
  std::string_view host;
  std::string_view if_none_match;
  std::string_view if_modified_since;
  std::string_view if_range;
  std::string_view range;
  std::string_view user_agent;
  std::string_view referer;
  std::span<const HeaderField> headers;
  size_t head_length = 0;  // bytes of the head, the empty line included: consume these

  bool hasBody() const { return chunked || content_length > 0; }
};

// ASCII case-insensitive equality.
bool equalsIgnoreCase(std::string_view a, std::string_view b);

class RequestParser {
 public:
  enum class Result { kIncomplete, kComplete, kError };

  explicit RequestParser(const ParserLimits& limits) : limits_(limits) {}

  // Resumes parsing the head at the start of `data` (see above). kComplete: request() is valid
  // until the data moves or the parser is reset. kError: errorStatus() says what to answer.
  Result parse(std::string_view data);
  const Request& request() const { return request_; }
  int errorStatus() const { return error_status_; }
  // Ready for the next request (keeps the header array's capacity).
  void reset();

 private:
  enum class State : uint8_t { kRequestLine, kHeaders, kDone, kError };

  Result fail(int status);
  bool parseRequestLine(std::string_view line);
  Result parseHeaderLine(std::string_view data, size_t start, size_t end);
  Result finish(std::string_view data);

  const ParserLimits& limits_;
  State state_ = State::kRequestLine;
  size_t pos_ = 0;         // bytes scanned
  size_t line_start_ = 0;  // where the line being scanned starts
  size_t headers_start_ = 0;
  int error_status_ = 0;
  // Offsets into the data: the request line, then name/value pairs.
  size_t rl_start_ = 0, rl_end_ = 0;
  struct FieldOffsets {
    uint32_t name_start, name_len, value_start, value_len;
  };
  std::vector<FieldOffsets> fields_;
  std::vector<HeaderField> headers_;
  Request request_;
};

// Reads and discards a request body, a stream of bytes at a time.
class BodyReader {
 public:
  enum class Result { kIncomplete, kComplete, kError };

  explicit BodyReader(const ParserLimits& limits) : limits_(limits) {}

  void startLength(uint64_t length);
  void startChunked();
  // Consumes body bytes from the front of `data` and sets *consumed (never past the body's end).
  Result consume(std::string_view data, size_t* consumed);
  int errorStatus() const { return error_status_; }
  uint64_t bodyBytes() const { return total_; }  // payload bytes read so far

 private:
  enum class State : uint8_t {
    kLength,
    kSize,
    kSizeSpace,  // whitespace after the size: only ';' or the line end may follow
    kExtension,
    kSizeLf,
    kData,
    kDataCr,
    kDataLf,
    kTrailerLineStart,
    kTrailerLine,
    kTrailerLf,
    kLastLf,
    kDone,
    kError,
  };
  Result fail(int status);

  const ParserLimits& limits_;
  State state_ = State::kDone;
  uint64_t remaining_ = 0;  // of the current chunk, or of the Content-Length body
  uint64_t total_ = 0;
  size_t size_digits_ = 0;
  size_t line_bytes_ = 0;  // of the chunk-size line, or of the trailer section
  int error_status_ = 0;
};

}  // namespace plexus::http
