// The http plugin's helpers (paths, dates, validators, ranges) and its configuration.

#include "http_util.h"

#include <gtest/gtest.h>

#include <string>

#include "http_config.h"

namespace plexus::http {
namespace {

std::string normal(std::string_view path, int* status = nullptr) {
  std::string out;
  const int st = normalizePath(path, &out);
  if (status != nullptr) *status = st;
  return st == 0 ? out : "<" + std::to_string(st) + ">";
}

TEST(NormalizePathTest, ResolvesSegmentsAndEscapes) {
  EXPECT_EQ(normal("/"), "/");
  EXPECT_EQ(normal("/a/b.txt"), "/a/b.txt");
  EXPECT_EQ(normal("/a//b"), "/a/b");
  EXPECT_EQ(normal("/a/./b"), "/a/b");
  EXPECT_EQ(normal("/a/../b"), "/b");
  EXPECT_EQ(normal("/a/b/.."), "/a/");
  EXPECT_EQ(normal("/a/."), "/a/");
  EXPECT_EQ(normal("/a/"), "/a/");
  EXPECT_EQ(normal("/%61%2Fb"), "/a/b");  // %2F is a separator once decoded
  EXPECT_EQ(normal("/a%20b"), "/a b");
  EXPECT_EQ(normal("/a/%2e%2e/b"), "/b");
  EXPECT_EQ(normal("/..a/b.."), "/..a/b..");
}

TEST(NormalizePathTest, RefusesClimbingAboveTheRootWith403) {
  for (const char* p : {"/..", "/../", "/../etc/passwd", "/a/../../b", "/%2e%2e/x", "/%2E%2E%2Fx",
                        "/..%2fetc%2fpasswd", "/a/%2e%2e%2f%2e%2e/etc", "/./../x"}) {
    EXPECT_EQ(normal(p), "<403>") << p;
  }
}

TEST(NormalizePathTest, RefusesBadEscapesAndNulWith400) {
  for (const char* p : {"/%", "/%4", "/%zz", "/a%g1", "/%00", "/a%00b"}) {
    EXPECT_EQ(normal(p), "<400>") << p;
  }
}

TEST(NormalizePathTest, NormalPathsNeedNoWork) {
  EXPECT_TRUE(isNormalPath("/hello"));
  EXPECT_TRUE(isNormalPath("/a/b/"));
  EXPECT_TRUE(isNormalPath("/a/.hidden"));
  EXPECT_TRUE(isNormalPath("/a..b"));
  for (const char* p : {"", "a", "/a//b", "/./a", "/a/.", "/a/..", "/../a", "/%41", "//"}) {
    EXPECT_FALSE(isNormalPath(p)) << p;
  }
}

TEST(HttpDateTest, FormatsAndParsesImfFixdate) {
  char buf[kHttpDateSize];
  formatHttpDate(784111777, buf);
  EXPECT_EQ(std::string_view(buf, kHttpDateSize), "Sun, 06 Nov 1994 08:49:37 GMT");
  time_t t = 0;
  ASSERT_TRUE(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT", &t));
  EXPECT_EQ(t, 784111777);
  EXPECT_FALSE(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT", &t));  // RFC 850: ignored
  EXPECT_FALSE(parseHttpDate("Sun Nov  6 08:49:37 1994", &t));        // asctime: ignored
  EXPECT_FALSE(parseHttpDate("Sun, 06 Foo 1994 08:49:37 GMT", &t));
  EXPECT_FALSE(parseHttpDate("Sun, 06 Nov 1994 28:49:37 GMT", &t));
  char log[kLogTimeSize];
  formatLogTime(784111777, log);
  EXPECT_EQ(std::string_view(log, kLogTimeSize), "06/Nov/1994:08:49:37 +0000");
}

TEST(ValidatorTest, EtagAndIfNoneMatch) {
  EXPECT_EQ(makeEtag(0x5f3a1b2c, 0x1c), "\"5f3a1b2c-1c\"");
  EXPECT_EQ(makeEtag(0, 0), "\"0-0\"");
  EXPECT_EQ(makeEtag(0x7fffffffffffffff, UINT64_MAX), "\"7fffffffffffffff-ffffffffffffffff\"");
  EXPECT_TRUE(noneMatchHits("\"5-1c\"", "\"5-1c\""));
  EXPECT_TRUE(noneMatchHits("W/\"5-1c\"", "\"5-1c\""));  // weak comparison
  EXPECT_TRUE(noneMatchHits("\"x\", \"5-1c\"", "\"5-1c\""));
  EXPECT_TRUE(noneMatchHits(" * ", "\"5-1c\""));
  EXPECT_FALSE(noneMatchHits("\"5-1d\"", "\"5-1c\""));
  EXPECT_FALSE(noneMatchHits("5-1c", "\"5-1c\""));
}

TEST(RangeTest, SingleRanges) {
  ByteRange r;
  ASSERT_EQ(parseRange("bytes=0-9", 100, &r), RangeResult::kSatisfiable);
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(r.last, 9u);
  ASSERT_EQ(parseRange("bytes=90-", 100, &r), RangeResult::kSatisfiable);
  EXPECT_EQ(r.first, 90u);
  EXPECT_EQ(r.last, 99u);
  ASSERT_EQ(parseRange("bytes=95-200", 100, &r), RangeResult::kSatisfiable);
  EXPECT_EQ(r.last, 99u);
  ASSERT_EQ(parseRange("bytes=-10", 100, &r), RangeResult::kSatisfiable);
  EXPECT_EQ(r.first, 90u);
  EXPECT_EQ(r.last, 99u);
  ASSERT_EQ(parseRange("bytes=-1000", 100, &r), RangeResult::kSatisfiable);
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(parseRange("bytes=100-", 100, &r), RangeResult::kUnsatisfiable);
  EXPECT_EQ(parseRange("bytes=-0", 100, &r), RangeResult::kUnsatisfiable);
  EXPECT_EQ(parseRange("bytes=0-", 0, &r), RangeResult::kUnsatisfiable);
  // Ignored: another unit, several ranges, malformed ones.
  for (const char* h :
       {"items=0-1", "bytes=0-1,5-6", "bytes=5-1", "bytes=a-b", "bytes=", "bytes=5"}) {
    EXPECT_EQ(parseRange(h, 100, &r), RangeResult::kIgnore) << h;
  }
}

TEST(MediaTypeTest, ByExtension) {
  EXPECT_EQ(mediaType("/a/index.html"), "text/html");
  EXPECT_EQ(mediaType("x.CSS"), "text/css");
  EXPECT_EQ(mediaType("/a.b/c"), "application/octet-stream");
  EXPECT_EQ(mediaType("/.png"), "application/octet-stream");  // a dot file, no extension
  EXPECT_EQ(mediaType("/p.png"), "image/png");
}

TEST(HttpConfigTest, DefaultsAreNginxLike) {
  absl::StatusOr<HttpConfig> c = HttpConfig::fromArgs({});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->limits.max_request_line, 8192u);
  EXPECT_EQ(c->limits.max_header_size, 32768u);
  EXPECT_EQ(c->limits.max_headers, 100u);
  EXPECT_EQ(c->limits.max_body, 1u << 20);
  EXPECT_EQ(c->header_timeout, std::chrono::seconds(60));
  EXPECT_EQ(c->keepalive_timeout, std::chrono::seconds(75));
  EXPECT_TRUE(c->root.empty());
  EXPECT_TRUE(c->access_log.empty());
}

TEST(HttpConfigTest, ReadsEveryArgument) {
  absl::StatusOr<HttpConfig> c = HttpConfig::fromArgs({
      {"root", "/srv"},
      {"max-request-line", "4k"},
      {"max-header-size", "16K"},
      {"max-headers", "50"},
      {"max-body", "2M"},
      {"header-timeout", "1.5s"},
      {"body-timeout", "500ms"},
      {"keepalive-timeout", "2m"},
      {"pipeline-max-output", "64k"},
      {"access-log", "on"},
      {"return:/hello", "200 Hello, World!"},
      {"return:/old", "301 /new"},
      {"return:/none", "204"},
  });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->root, "/srv");
  EXPECT_EQ(c->limits.max_request_line, 4096u);
  EXPECT_EQ(c->limits.max_header_size, 16384u);
  EXPECT_EQ(c->limits.max_headers, 50u);
  EXPECT_EQ(c->limits.max_body, 2u << 20);
  EXPECT_EQ(c->header_timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(c->body_timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(c->keepalive_timeout, std::chrono::minutes(2));
  EXPECT_EQ(c->pipeline_max_output, 65536u);
  EXPECT_EQ(c->access_log, "stderr");
  const FixedRoute& hello = c->routes.at("/hello");
  EXPECT_EQ(hello.body, "Hello, World!");
  EXPECT_EQ(hello.head_start, "HTTP/1.1 200 OK\r\nServer: plexus\r\nDate: ");
  EXPECT_EQ(hello.head_rest, "\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n");
  EXPECT_EQ(c->routes.at("/old").head_rest, "\r\nLocation: /new\r\nContent-Length: 0\r\n");
  EXPECT_EQ(c->routes.at("/none").head_rest, "\r\n");
  EXPECT_EQ(c->routes.at("/none").head_start,
            "HTTP/1.1 204 No Content\r\nServer: plexus\r\nDate: ");
}

TEST(HttpConfigTest, RefusesUnknownArgumentsAndBadValues) {
  absl::StatusOr<HttpConfig> c = HttpConfig::fromArgs({{"rot", "/srv"}});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(c.status().message()).find("unknown argument 'rot'"), std::string::npos);
  const std::pair<const char*, const char*> bad[] = {
      {"max-body", "lots"},
      {"max-headers", "0"},
      {"max-request-line", "-1"},
      {"header-timeout", "soon"},
      {"keepalive-timeout", "-5s"},
      {"return:/x", "20 short"},
      {"return:/x", "OK"},
      {"return:x", "200 no slash"},
      {"return:/../x", "200 above"},
      {"return:/r", "302"},
      {"disable-symlinks", "maybe"},
      {"index", "a/b"},
      {"return:/n", "204 text"},
      {"root", ""},
      {"max-body", "99999999999999999999G"},
  };
  for (const auto& [k, v] : bad) {
    absl::StatusOr<HttpConfig> r = HttpConfig::fromArgs({{k, v}});
    EXPECT_FALSE(r.ok()) << k << "=" << v;
    if (!r.ok()) {
      EXPECT_NE(std::string(r.status().message()).find(std::string("invalid ") + k),
                std::string::npos)
          << r.status();
    }
  }
}

}  // namespace
}  // namespace plexus::http
