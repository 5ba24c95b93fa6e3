// The http plugin's request parser and body reader: valid heads, every malformed input with the
// status it must be answered with, the limits, chunked bodies; each fed whole, one byte at a time
// and in random pieces, which must all end the same way.

#include "request_parser.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace plexus::http {
namespace {

enum class Feed { kWhole, kBytewise, kRandom };

// The outcome of parsing one head, views copied out.
struct Outcome {
  RequestParser::Result result = RequestParser::Result::kIncomplete;
  int status = 0;
  std::string method, target, path, query, host;
  int minor = -1;
  bool keep_alive = false, chunked = false, expect_continue = false;
  uint64_t content_length = 0;
  size_t head_length = 0;
  size_t headers = 0;
};

std::vector<size_t> splitPoints(size_t size, Feed feed, uint32_t seed) {
  std::vector<size_t> ends;
  if (feed == Feed::kWhole) {
    ends.push_back(size);
  } else if (feed == Feed::kBytewise) {
    for (size_t i = 1; i <= size; ++i) ends.push_back(i);
  } else {
    std::mt19937 rng(seed);
    size_t at = 0;
    while (at < size) {
      at = std::min(size, at + 1 + rng() % 7);
      ends.push_back(at);
    }
  }
  return ends;
}

// Feeds `input` as the connection would (the data grows; each call sees it from the request's
// start, copied to a fresh string so that stale pointers would show) and stops at the first
// result that is not kIncomplete.
Outcome parse(const std::string& input, Feed feed = Feed::kWhole, ParserLimits limits = {},
              uint32_t seed = 1) {
  RequestParser parser(limits);
  Outcome o;
  std::string data;
  for (size_t end : splitPoints(input.size(), feed, seed)) {
    data = std::string(input.substr(0, end));  // moved to new storage on every call
    o.result = parser.parse(data);
    if (o.result != RequestParser::Result::kIncomplete) break;
  }
  if (o.result == RequestParser::Result::kError) o.status = parser.errorStatus();
  if (o.result == RequestParser::Result::kComplete) {
    const Request& r = parser.request();
    o.method = std::string(r.method_name);
    o.target = std::string(r.target);
    o.path = std::string(r.path);
    o.query = std::string(r.query);
    o.host = std::string(r.host);
    o.minor = r.version_minor;
    o.keep_alive = r.keep_alive;
    o.chunked = r.chunked;
    o.expect_continue = r.expect_continue;
    o.content_length = r.content_length;
    o.head_length = r.head_length;
    o.headers = r.headers.size();
  }
  return o;
}

// The status a head is refused with, checked to be the same whole, bytewise and in pieces.
int errorStatus(const std::string& input, ParserLimits limits = {}) {
  const Outcome whole = parse(input, Feed::kWhole, limits);
  EXPECT_EQ(whole.result, RequestParser::Result::kError) << input;
  for (Feed f : {Feed::kBytewise, Feed::kRandom}) {
    for (uint32_t seed = 1; seed <= (f == Feed::kRandom ? 5u : 1u); ++seed) {
      const Outcome o = parse(input, f, limits, seed);
      EXPECT_EQ(o.result, RequestParser::Result::kError) << input;
      EXPECT_EQ(o.status, whole.status) << input;
    }
  }
  return whole.status;
}

class RequestParserTest : public ::testing::TestWithParam<Feed> {};

TEST_P(RequestParserTest, ParsesASimpleGet) {
  const std::string req =
      "GET /a/b.html?x=1&y HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
  const Outcome o = parse(req + "GET /next", GetParam());
  ASSERT_EQ(o.result, RequestParser::Result::kComplete);
  EXPECT_EQ(o.method, "GET");
  EXPECT_EQ(o.target, "/a/b.html?x=1&y");
  EXPECT_EQ(o.path, "/a/b.html");
  EXPECT_EQ(o.query, "x=1&y");
  EXPECT_EQ(o.host, "example.com");
  EXPECT_EQ(o.minor, 1);
  EXPECT_TRUE(o.keep_alive);
  EXPECT_FALSE(o.chunked);
  EXPECT_EQ(o.content_length, 0u);
  EXPECT_EQ(o.head_length, req.size());
  EXPECT_EQ(o.headers, 2u);
}

TEST_P(RequestParserTest, KeepAliveFollowsVersionAndConnection) {
  EXPECT_FALSE(parse("GET / HTTP/1.0\r\n\r\n", GetParam()).keep_alive);
  EXPECT_EQ(parse("GET / HTTP/1.0\r\n\r\n", GetParam()).minor, 0);
  EXPECT_TRUE(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", GetParam()).keep_alive);
  EXPECT_FALSE(
      parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", GetParam()).keep_alive);
  EXPECT_FALSE(
      parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: te, CLOSE\r\n\r\n", GetParam()).keep_alive);
  EXPECT_TRUE(
      parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n", GetParam()).keep_alive);
}

TEST_P(RequestParserTest, AcceptsBareLfLineEndsAndSkipsLeadingBlankLines) {
  const Outcome o = parse("\r\n\nGET /x HTTP/1.1\nHost: h\n\n", GetParam());
  ASSERT_EQ(o.result, RequestParser::Result::kComplete);
  EXPECT_EQ(o.path, "/x");
  EXPECT_EQ(o.head_length, 28u);
}

TEST_P(RequestParserTest, ReadsAbsoluteFormAndAsteriskForm) {
  Outcome o =
      parse("GET http://example.com:8080/p/q?z HTTP/1.1\r\nHost: example.com\r\n\r\n", GetParam());
  ASSERT_EQ(o.result, RequestParser::Result::kComplete);
  EXPECT_EQ(o.path, "/p/q");
  EXPECT_EQ(o.query, "z");
  o = parse("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", GetParam());
  EXPECT_EQ(o.path, "/");
  o = parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", GetParam());
  EXPECT_EQ(o.path, "*");
}

TEST_P(RequestParserTest, ReadsBodyFraming) {
  Outcome o = parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\n\r\n", GetParam());
  EXPECT_EQ(o.content_length, 42u);
  o = parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n",
            GetParam());
  EXPECT_EQ(o.result, RequestParser::Result::kComplete);
  EXPECT_EQ(o.content_length, 7u);
  o = parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n", GetParam());
  EXPECT_TRUE(o.chunked);
  o = parse("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
            GetParam());
  EXPECT_TRUE(o.expect_continue);
}

TEST_P(RequestParserTest, WaitsForTheEndOfTheHead) {
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\n", GetParam()).result,
            RequestParser::Result::kIncomplete);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\n\r", GetParam()).result,
            RequestParser::Result::kIncomplete);
}

INSTANTIATE_TEST_SUITE_P(Feeds, RequestParserTest,
                         ::testing::Values(Feed::kWhole, Feed::kBytewise, Feed::kRandom));

TEST(RequestParserErrorTest, MalformedRequestsAre400) {
  const char* cases[] = {
      "GET / HTTP/1.1\r\n\r\n",                              // no Host on 1.1
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",        // two Hosts
      "GET / HTTP/1.1\r\nHost : h\r\n\r\n",                  // space before the colon
      "GET / HTTP/1.1\r\nHost\t: h\r\n\r\n",                 // tab before the colon
      "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n",        // a line without a colon
      "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n",   // obs-fold
      "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\t2\r\n\r\n",  // obs-fold with a tab
      "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",      // bare CR in a value
      "GET / HTTP/1.1\rHost: h\r\n\r\n",                     // bare CR ending a line
      "GET / HTTP/1.1\r\nHost: h\r\n\r\r\n",                 // bare CR on the last line
      "GET / HTTP/1.1\r\nHost: h\r\n: empty-name\r\n\r\n",   // empty field name
      "GET / HTTP/1.1\r\nHo(st: h\r\n\r\n",                  // not a token
      "GET /  HTTP/1.1\r\nHost: h\r\n\r\n",                  // two spaces
      "GET / HTTP/1.1 \r\nHost: h\r\n\r\n",                  // trailing space
      " GET / HTTP/1.1\r\nHost: h\r\n\r\n",                  // leading space
      "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n",                  // tab as separator
      "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",                // space in the target
      "GET / HTTX/1.1\r\nHost: h\r\n\r\n",                   // not HTTP
      "GET / HTTP/1.10\r\nHost: h\r\n\r\n",                  // two-digit minor
      "GET / HTTP/1\r\nHost: h\r\n\r\n",                     // no minor
      "GET / http/1.1\r\nHost: h\r\n\r\n",                   // lower-case name
      "GET\r\n\r\n",                                         // no target
      "G@T / HTTP/1.1\r\nHost: h\r\n\r\n",                   // method not a token
      "GET x HTTP/1.1\r\nHost: h\r\n\r\n",                   // target not origin-form
      "GET * HTTP/1.1\r\nHost: h\r\n\r\n",                   // '*' with GET
      "GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n",            // another scheme
      "GET http:/// HTTP/1.1\r\nHost: h\r\n\r\n",            // no authority
  };
  for (const char* c : cases) {
    EXPECT_EQ(errorStatus(c), 400) << c;
  }
  // A NUL in a value (the array above stops C strings at it).
  using namespace std::string_literals;
  EXPECT_EQ(errorStatus("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n"s), 400);
  EXPECT_EQ(errorStatus("GET /\0 HTTP/1.1\r\nHost: h\r\n\r\n"s), 400);
  EXPECT_EQ(errorStatus("GET / HTTP/1.1\r\nHost: h\0\r\n\r\n"s), 400);
  EXPECT_EQ(errorStatus("GET / HTTP/1.1\r\nHost: h\r\nX-A: \x7f\r\n\r\n"), 400);  // DEL
}

TEST(RequestParserErrorTest, BadContentLengthIs400) {
  const char* values[] = {"abc",
                          "-1",
                          "+5",
                          "",
                          "1 2",
                          "0x10",
                          "5, 6",
                          ",",
                          "1.0",
                          "99999999999999999999",
                          "18446744073709551616"};
  for (const char* v : values) {
    EXPECT_EQ(
        errorStatus(std::string("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ") + v + "\r\n\r\n"),
        400)
        << v;
  }
  // Two headers that differ.
  EXPECT_EQ(
      errorStatus("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
      400);
}

TEST(RequestParserErrorTest, TransferEncodingRules) {
  // With Content-Length: a smuggling attempt.
  EXPECT_EQ(errorStatus("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n"),
            400);
  EXPECT_EQ(errorStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                        "Content-Length: 5\r\n\r\n"),
            400);
  EXPECT_EQ(errorStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"), 501);
  EXPECT_EQ(errorStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            501);
  EXPECT_EQ(
      errorStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
      400);
  EXPECT_EQ(errorStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n"),
            400);
  EXPECT_EQ(errorStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n"), 400);
  EXPECT_EQ(errorStatus("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
}

TEST(RequestParserErrorTest, UnsupportedVersionsAre505) {
  EXPECT_EQ(errorStatus("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
  EXPECT_EQ(errorStatus("GET / HTTP/0.9\r\nHost: h\r\n\r\n"), 505);
  EXPECT_EQ(errorStatus("GET / HTTP/3.1\r\n\r\n"), 505);
  // A later 1.x is answered as 1.1 (RFC 9110 2.5).
  EXPECT_EQ(parse("GET / HTTP/1.2\r\nHost: h\r\n\r\n").minor, 1);
}

TEST(RequestParserErrorTest, UnknownExpectationIs417) {
  EXPECT_EQ(errorStatus("GET / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n"), 417);
  // HTTP/1.0 has no Expect: ignored.
  EXPECT_EQ(parse("GET / HTTP/1.0\r\nExpect: 200-ok\r\n\r\n").result,
            RequestParser::Result::kComplete);
}

TEST(RequestParserLimitTest, RequestLineTooLongIs414) {
  ParserLimits limits;
  limits.max_request_line = 64;
  const std::string at_limit = "GET /" + std::string(64 - 14, 'a') + " HTTP/1.1";
  ASSERT_EQ(at_limit.size(), 64u);
  EXPECT_EQ(parse(at_limit + "\r\nHost: h\r\n\r\n", Feed::kWhole, limits).result,
            RequestParser::Result::kComplete);
  EXPECT_EQ(parse(at_limit + "\r\nHost: h\r\n\r\n", Feed::kBytewise, limits).result,
            RequestParser::Result::kComplete);
  const std::string over = "GET /" + std::string(65 - 14, 'a') + " HTTP/1.1";
  EXPECT_EQ(errorStatus(over + "\r\nHost: h\r\n\r\n", limits), 414);
  // Without its end: refused as soon as it is too long, however it arrives.
  EXPECT_EQ(errorStatus("GET /" + std::string(200, 'a'), limits), 414);
  // Blank lines before the request are bounded too.
  EXPECT_EQ(errorStatus(std::string(100, '\n') + "GET / HTTP/1.1\r\nHost: h\r\n\r\n", limits), 400);
}

TEST(RequestParserLimitTest, HeaderSectionTooLargeIs431) {
  ParserLimits limits;
  limits.max_header_size = 64;
  // Exactly 64 bytes of header lines pass.
  const std::string fields = "Host: h\r\nX-Fill: " + std::string(64 - 9 - 10, 'v') + "\r\n";
  ASSERT_EQ(fields.size(), 64u);
  for (Feed f : {Feed::kWhole, Feed::kBytewise, Feed::kRandom}) {
    EXPECT_EQ(parse("GET / HTTP/1.1\r\n" + fields + "\r\n", f, limits).result,
              RequestParser::Result::kComplete);
  }
  EXPECT_EQ(errorStatus("GET / HTTP/1.1\r\n" + fields + "X: 1\r\n\r\n", limits), 431);
  EXPECT_EQ(errorStatus("GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(100, 'v'), limits), 431);
}

TEST(RequestParserLimitTest, TooManyHeadersIs431) {
  ParserLimits limits;
  limits.max_headers = 3;
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n", Feed::kWhole, limits).result,
            RequestParser::Result::kComplete);
  EXPECT_EQ(errorStatus("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits), 431);
}

TEST(RequestParserLimitTest, DeclaredBodyOverTheLimitIs413) {
  ParserLimits limits;
  limits.max_body = 100;
  EXPECT_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n", Feed::kWhole, limits)
                .result,
            RequestParser::Result::kComplete);
  EXPECT_EQ(errorStatus("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n", limits), 413);
  limits.max_body = 0;  // no limit
  EXPECT_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 999999999999\r\n\r\n",
                  Feed::kWhole, limits)
                .content_length,
            999999999999u);
}

TEST(RequestParserTest, ParsesPipelinedRequestsOneAfterAnother) {
  const std::string a = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string b = "HEAD /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  const std::string data = a + b + "GET /c";
  ParserLimits limits;
  RequestParser parser(limits);
  ASSERT_EQ(parser.parse(data), RequestParser::Result::kComplete);
  EXPECT_EQ(parser.request().path, "/a");
  size_t off = parser.request().head_length;
  EXPECT_EQ(off, a.size());
  parser.reset();
  ASSERT_EQ(parser.parse(std::string_view(data).substr(off)), RequestParser::Result::kComplete);
  EXPECT_EQ(parser.request().method, Method::kHead);
  EXPECT_FALSE(parser.request().keep_alive);
  off += parser.request().head_length;
  parser.reset();
  EXPECT_EQ(parser.parse(std::string_view(data).substr(off)), RequestParser::Result::kIncomplete);
}

// --- BodyReader ---------------------------------------------------------------------------------

struct BodyOutcome {
  BodyReader::Result result = BodyReader::Result::kIncomplete;
  int status = 0;
  size_t consumed = 0;  // bytes of the input that belonged to the body
  uint64_t payload = 0;
};

BodyOutcome readBody(const std::string& input, bool chunked, uint64_t length, Feed feed,
                     ParserLimits limits = {}, uint32_t seed = 1) {
  BodyReader reader(limits);
  if (chunked) {
    reader.startChunked();
  } else {
    reader.startLength(length);
  }
  BodyOutcome o;
  size_t at = 0;
  for (size_t end : splitPoints(input.size(), feed, seed)) {
    // Only the new bytes are given, after what the reader consumed: a stream.
    size_t used = 0;
    o.result = reader.consume(std::string_view(input).substr(at, end - at), &used);
    at += used;
    if (o.result != BodyReader::Result::kIncomplete) break;
    EXPECT_EQ(at, end);  // an incomplete body takes everything it was given
  }
  o.consumed = at;
  o.payload = reader.bodyBytes();
  if (o.result == BodyReader::Result::kError) o.status = reader.errorStatus();
  return o;
}

class BodyReaderTest : public ::testing::TestWithParam<Feed> {};

TEST_P(BodyReaderTest, ContentLengthBodyStopsAtItsEnd) {
  const BodyOutcome o = readBody("0123456789GET /next", false, 10, GetParam());
  EXPECT_EQ(o.result, BodyReader::Result::kComplete);
  EXPECT_EQ(o.consumed, 10u);
  EXPECT_EQ(o.payload, 10u);
}

TEST_P(BodyReaderTest, ChunkedBodyWithExtensionsAndTrailers) {
  const std::string body =
      "5\r\nhello\r\n"
      "1A;name=value;x\r\n" +
      std::string(26, 'z') +
      "\r\n"
      "a  \r\n0123456789\r\n"
      "0\r\nX-Trailer: t\r\nY: u\r\n\r\n";
  const BodyOutcome o = readBody(body + "GET /next", true, 0, GetParam());
  EXPECT_EQ(o.result, BodyReader::Result::kComplete);
  EXPECT_EQ(o.consumed, body.size());
  EXPECT_EQ(o.payload, 5u + 26u + 10u);
}

TEST_P(BodyReaderTest, ChunkedBodyWithBareLfLineEnds) {
  const std::string body = "3\nabc\n0\n\n";
  const BodyOutcome o = readBody(body + "X", true, 0, GetParam());
  EXPECT_EQ(o.result, BodyReader::Result::kComplete);
  EXPECT_EQ(o.consumed, body.size());
}

TEST_P(BodyReaderTest, BadChunksAreRefused) {
  struct Case {
    std::string body;
    int status;
  } cases[] = {
      {"zz\r\nab\r\n0\r\n\r\n", 400},     // not hex
      {"\r\n", 400},                      // no size
      {";ext\r\n", 400},                  // no size before the extension
      {"-1\r\n", 400},                    // a sign
      {"5\r\nhelloX\r\n0\r\n\r\n", 400},  // longer than its size
      {"5\rX", 400},                      // bare CR after the size
      {"5\r\nhello\rX", 400},             // bare CR after the data
      {"11111111111111111\r\n", 400},     // 17 hex digits: past 64 bits
      {"5 x\r\n", 400},                   // junk after the size
      {"0\r\nX: a\x01\r\n\r\n", 400},     // a control in a trailer
      {"0\r\n folded\r\n\r\n", 400},      // obs-fold in the trailers
      {"0\r\n\rX", 400},                  // bare CR ending the body
      {"5;a\x01\r\n", 400},               // a control in an extension
  };
  for (const Case& c : cases) {
    ParserLimits limits;
    limits.max_body = 0;
    const BodyOutcome o = readBody(c.body, true, 0, GetParam(), limits);
    EXPECT_EQ(o.result, BodyReader::Result::kError) << c.body;
    EXPECT_EQ(o.status, c.status) << c.body;
  }
}

TEST_P(BodyReaderTest, ChunkedBodyOverTheLimitIs413) {
  ParserLimits limits;
  limits.max_body = 10;
  EXPECT_EQ(readBody("a\r\n0123456789\r\n0\r\n\r\n", true, 0, GetParam(), limits).result,
            BodyReader::Result::kComplete);
  BodyOutcome o = readBody("b\r\n", true, 0, GetParam(), limits);  // one chunk too big
  EXPECT_EQ(o.status, 413);
  o = readBody("6\r\n012345\r\n5\r\n", true, 0, GetParam(), limits);  // the sum too big
  EXPECT_EQ(o.status, 413);
}

TEST_P(BodyReaderTest, OverlongChunkLineAndTrailersAreRefused) {
  ParserLimits limits;
  limits.max_header_size = 100;
  EXPECT_EQ(readBody("5;" + std::string(5000, 'e'), true, 0, GetParam(), limits).status, 400);
  EXPECT_EQ(readBody("0\r\nX: " + std::string(200, 't'), true, 0, GetParam(), limits).status, 431);
}

INSTANTIATE_TEST_SUITE_P(Feeds, BodyReaderTest,
                         ::testing::Values(Feed::kWhole, Feed::kBytewise, Feed::kRandom));

}  // namespace
}  // namespace plexus::http
