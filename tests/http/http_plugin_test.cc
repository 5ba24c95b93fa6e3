// The http plugin's handler through the in-memory plugin harness: byte-exact responses, keep-alive
// and HTTP/1.0, HEAD, pipelining and its back-pressure, 100-continue, bodies, every parse error
// with its status and the close, the timers (408, keep-alive), the graceful stop, files (Range,
// 304, traversal refusals) and the access log. Inputs are fed whole, byte by byte and in random
// pieces where the outcome must not depend on it.

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "http/http_test_util.h"
#include "plexus/testing/plugin_harness.h"

namespace plexus::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kPlugin = std::string(PLEXUS_PLUGIN_DIR) + "/http.so";

std::unique_ptr<PluginHarness> load(PluginArgs args) {
  absl::StatusOr<std::unique_ptr<PluginHarness>> h = PluginHarness::load(kPlugin, args);
  EXPECT_TRUE(h.ok()) << h.status();
  return h.ok() ? *std::move(h) : nullptr;
}

using http::fixDate;
using http::fixValidators;

const std::string kHello =
    "HTTP/1.1 200 OK\r\nServer: plexus\r\nDate: D\r\nContent-Type: text/plain\r\n"
    "Content-Length: 13\r\n\r\nHello, World!";
const std::string kHelloHead =
    "HTTP/1.1 200 OK\r\nServer: plexus\r\nDate: D\r\nContent-Type: text/plain\r\n"
    "Content-Length: 13\r\n\r\n";

std::string errorResponse(int status, const std::string& reason) {
  const std::string body = std::to_string(status) + " " + reason + "\n";
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nServer: plexus\r\nDate: D\r\nContent-Type: text/plain\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

enum class Feed { kWhole, kBytewise, kSplit1, kSplit2 };

void feed(EmbeddedConnection& c, std::string_view bytes, Feed how) {
  switch (how) {
    case Feed::kWhole:
      c.feed(bytes);
      break;
    case Feed::kBytewise:
      c.feedBytewise(bytes);
      break;
    case Feed::kSplit1:
      c.feedSplit(bytes, 1);
      break;
    case Feed::kSplit2:
      c.feedSplit(bytes, 2);
      break;
  }
}

class HttpPluginTest : public ::testing::TestWithParam<Feed> {
 protected:
  void SetUp() override {
    if (::access(kPlugin.c_str(), R_OK) != 0) GTEST_SKIP() << "not built: " << kPlugin;
  }
  PluginArgs args_{{"return:/hello", "200 Hello, World!"}};
};

TEST_P(HttpPluginTest, AnswersAFixedRouteByteExactAndKeepsTheConnection) {
  auto h = load(args_);
  ASSERT_NE(h, nullptr);
  EmbeddedConnection& c = h->connect();
  feed(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", GetParam());
  EXPECT_EQ(fixDate(c.takeOutput()), kHello);
  EXPECT_FALSE(c.closed());
  EXPECT_EQ(c.pendingInput(), 0u);
  // The same connection serves the next one; a query string does not change the route.
  feed(c, "GET /hello?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", GetParam());
  EXPECT_EQ(fixDate(c.takeOutput()), kHello);
  // Unknown paths without a root: 404, keep-alive.
  feed(c, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", GetParam());
  EXPECT_EQ(fixDate(c.takeOutput()),
            "HTTP/1.1 404 Not Found\r\nServer: plexus\r\nDate: D\r\nContent-Type: text/plain\r\n"
            "Content-Length: 14\r\n\r\n404 Not Found\n");
  EXPECT_FALSE(c.closed());
}

TEST_P(HttpPluginTest, PipelinedRequestsAreAnsweredInOrder) {
  auto h = load(args_);
  ASSERT_NE(h, nullptr);
  EmbeddedConnection& c = h->connect();
  feed(c,
       "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
       "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
       "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
       "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
       "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
       GetParam());
  EXPECT_EQ(
      fixDate(c.takeOutput()),
      kHello + kHelloHead +
          "HTTP/1.1 404 Not Found\r\nServer: plexus\r\nDate: D\r\nContent-Type: text/plain\r\n"
          "Content-Length: 14\r\n\r\n404 Not Found\n" +
          "HTTP/1.1 200 OK\r\nServer: plexus\r\nDate: D\r\nContent-Type: text/plain\r\n"
          "Content-Length: 13\r\nConnection: close\r\n\r\nHello, World!");
  EXPECT_TRUE(c.closed());
  EXPECT_FALSE(c.aborted());
}

TEST_P(HttpPluginTest, Http10ClosesUnlessKeepAliveIsAsked) {
  auto h = load(args_);
  ASSERT_NE(h, nullptr);
  EmbeddedConnection& a = h->connect();
  feed(a, "GET /hello HTTP/1.0\r\n\r\n", GetParam());
  EXPECT_EQ(fixDate(a.takeOutput()),
            "HTTP/1.1 200 OK\r\nServer: plexus\r\nDate: D\r\nContent-Type: text/plain\r\n"
            "Content-Length: 13\r\nConnection: close\r\n\r\nHello, World!");
  EXPECT_TRUE(a.closed());
  EmbeddedConnection& b = h->connect();
  feed(b, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", GetParam());
  EXPECT_EQ(fixDate(b.takeOutput()),
            "HTTP/1.1 200 OK\r\nServer: plexus\r\nDate: D\r\nContent-Type: text/plain\r\n"
            "Content-Length: 13\r\nConnection: keep-alive\r\n\r\nHello, World!");
  EXPECT_FALSE(b.closed());
}

TEST_P(HttpPluginTest, ExpectContinueGetsA100BeforeTheBody) {
  auto h = load(args_);
  ASSERT_NE(h, nullptr);
  EmbeddedConnection& c = h->connect();
  feed(c, "POST /hello HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
       GetParam());
  EXPECT_EQ(c.takeOutput(), "HTTP/1.1 100 Continue\r\n\r\n");
  feed(c, "abcde", GetParam());
  EXPECT_EQ(fixDate(c.takeOutput()), kHello);
  // A body that came with its head needs no 100.
  feed(c, "POST /hello HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab",
       Feed::kWhole);
  EXPECT_EQ(fixDate(c.takeOutput()), kHello);
  EXPECT_FALSE(c.closed());
}

TEST_P(HttpPluginTest, BodiesAreReadAndDiscarded) {
  auto h = load(args_);
  ASSERT_NE(h, nullptr);
  EmbeddedConnection& c = h->connect();
  feed(c,
       "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nGET /nope\r\n"
       "PUT /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
       "4\r\nGET \r\n3;ext=1\r\n/x \r\n0\r\nTrailer: y\r\n\r\n"
       "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
       GetParam());
  EXPECT_EQ(fixDate(c.takeOutput()), kHello + kHello + kHello);
  EXPECT_FALSE(c.closed());
}

TEST_P(HttpPluginTest, RoutesByNormalizedPathAndAnswersEveryMethod) {
  auto h = load({{"return:/hello", "200 Hello, World!"},
                 {"return:/old", "301 /new"},
                 {"return:/empty", "204"}});
  ASSERT_NE(h, nullptr);
  EmbeddedConnection& c = h->connect();
  feed(c,
       "GET /hel%6Co HTTP/1.1\r\nHost: x\r\n\r\n"
       "DELETE /a/../hello HTTP/1.1\r\nHost: x\r\n\r\n"
       "GET http://example.com/hello HTTP/1.1\r\nHost: example.com\r\n\r\n"
       "GET /old HTTP/1.1\r\nHost: x\r\n\r\n"
       "GET /empty HTTP/1.1\r\nHost: x\r\n\r\n"
       "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"
       "GET /../hello HTTP/1.1\r\nHost: x\r\n\r\n",
       GetParam());
  EXPECT_EQ(
      fixDate(c.takeOutput()),
      kHello + kHello + kHello +
          "HTTP/1.1 301 Moved Permanently\r\nServer: plexus\r\nDate: D\r\n"
          "Location: /new\r\nContent-Length: 0\r\n\r\n"
          "HTTP/1.1 204 No Content\r\nServer: plexus\r\nDate: D\r\n\r\n"
          "HTTP/1.1 200 OK\r\nServer: plexus\r\nDate: D\r\nAllow: GET, HEAD, OPTIONS\r\n"
          "Content-Length: 0\r\n\r\n"
          "HTTP/1.1 403 Forbidden\r\nServer: plexus\r\nDate: D\r\nContent-Type: text/plain\r\n"
          "Content-Length: 14\r\n\r\n403 Forbidden\n");
  EXPECT_FALSE(c.closed());
  // CONNECT is not served: 405, and the connection closes.
  feed(c, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", GetParam());
  EXPECT_EQ(fixDate(c.takeOutput()),
            "HTTP/1.1 405 Method Not Allowed\r\nServer: plexus\r\nDate: D\r\nAllow: GET, HEAD\r\n"
            "Content-Type: text/plain\r\nContent-Length: 23\r\nConnection: close\r\n\r\n"
            "405 Method Not Allowed\n");
  EXPECT_TRUE(c.closed());
}

INSTANTIATE_TEST_SUITE_P(Feeds, HttpPluginTest,
                         ::testing::Values(Feed::kWhole, Feed::kBytewise, Feed::kSplit1,
                                           Feed::kSplit2));

// Each malformed request: its status, byte-exact, then the close; whatever follows is ignored.
TEST(HttpPluginErrorTest, MalformedRequestsGetTheirStatusAndAClose) {
  if (::access(kPlugin.c_str(), R_OK) != 0) GTEST_SKIP() << "not built: " << kPlugin;
  struct Case {
    std::string request;
    int status;
    std::string reason;
  } cases[] = {
      {"GET /hello HTTP/1.1\r\n\r\n", 400, "Bad Request"},  // no Host
      {"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
       400, "Bad Request"},
      {"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400,
       "Bad Request"},
      {"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400, "Bad Request"},
      {"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 123456789012345678901\r\n\r\n", 400,
       "Bad Request"},
      {"POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", 400,
       "Bad Request"},
      {"GET /hello HTTP/1.1\r\nHost : x\r\n\r\n", 400, "Bad Request"},
      {"GET /hello HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400, "Bad Request"},
      {"GET /hello HTTP/1.1\r\nHost: x\r\nA: 1\r\n  folded\r\n\r\n", 400, "Bad Request"},
      {std::string("GET /hello HTTP/1.1\r\nHost: x\0\r\n\r\n", 33), 400, "Bad Request"},
      {"GET /hello HTTP/1.1\r\nHost: x\rA: 1\r\n\r\n", 400, "Bad Request"},
      {"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Bad Request"},
      {"POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
       "Not Implemented"},
      {"GET /" + std::string(100, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", 414, "URI Too Long"},
      {"GET /hello HTTP/1.1\r\nHost: x\r\nX: " + std::string(200, 'v') + "\r\n\r\n", 431,
       "Request Header Fields Too Large"},
      {"GET /hello HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 431,
       "Request Header Fields Too Large"},
      {"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", 413, "Content Too Large"},
      {"POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n", 413,
       "Content Too Large"},
      {"GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP Version Not Supported"},
      {"GET /hello HTTP/1.1\r\nHost: x\r\nExpect: something\r\n\r\n", 417, "Expectation Failed"},
  };
  const PluginArgs args = {{"return:/hello", "200 Hello, World!"},
                           {"max-request-line", "64"},
                           {"max-header-size", "128"},
                           {"max-headers", "4"},
                           {"max-body", "1000"}};
  for (const Case& k : cases) {
    for (Feed how : {Feed::kWhole, Feed::kBytewise, Feed::kSplit1}) {
      auto h = load(args);
      ASSERT_NE(h, nullptr);
      EmbeddedConnection& c = h->connect();
      feed(c, k.request + "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", how);
      EXPECT_EQ(fixDate(c.takeOutput()), errorResponse(k.status, k.reason)) << k.request;
      EXPECT_TRUE(c.closed()) << k.request;
    }
  }
}

class HttpTimerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kPlugin.c_str(), R_OK) != 0) GTEST_SKIP() << "not built: " << kPlugin;
    h_ = load({{"return:/hello", "200 Hello, World!"},
               {"header-timeout", "10s"},
               {"body-timeout", "5s"},
               {"keepalive-timeout", "30s"}});
    ASSERT_NE(h_, nullptr);
  }
  std::unique_ptr<PluginHarness> h_;
};

TEST_F(HttpTimerTest, AnIncompleteHeadIsAnswered408AtTheDeadline) {
  EmbeddedConnection& c = h_->connect();
  c.feed("GET /hello HT");
  h_->advance(9s);
  c.feed("TP/1.1\r\nHost:");
  h_->advance(999ms);
  EXPECT_FALSE(c.closed());
  EXPECT_EQ(c.output(), "");
  h_->advance(1ms);  // 10 s after the connection began
  EXPECT_EQ(fixDate(c.takeOutput()), errorResponse(408, "Request Timeout"));
  EXPECT_TRUE(c.closed());
}

TEST_F(HttpTimerTest, AConnectionThatSendsNothingGets408) {
  EmbeddedConnection& c = h_->connect();
  h_->advance(10s);
  EXPECT_EQ(fixDate(c.takeOutput()), errorResponse(408, "Request Timeout"));
  EXPECT_TRUE(c.closed());
}

TEST_F(HttpTimerTest, AStalledBodyIsAnswered408) {
  EmbeddedConnection& c = h_->connect();
  c.feed("POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234");
  h_->advance(4s);
  c.feed("5");  // progress restarts the body's deadline
  h_->advance(4s);
  EXPECT_FALSE(c.closed());
  h_->advance(1s);
  EXPECT_EQ(fixDate(c.takeOutput()), errorResponse(408, "Request Timeout"));
  EXPECT_TRUE(c.closed());
}

TEST_F(HttpTimerTest, AnIdleKeepAliveConnectionClosesSilently) {
  EmbeddedConnection& c = h_->connect();
  c.feed("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(fixDate(c.takeOutput()), kHello);
  h_->advance(29s);
  EXPECT_FALSE(c.closed());
  h_->advance(1s);  // keepalive-timeout after the response
  EXPECT_TRUE(c.closed());
  EXPECT_FALSE(c.aborted());
  EXPECT_EQ(c.output(), "");
}

TEST_F(HttpTimerTest, AnotherRequestMovesTheIdleDeadline) {
  EmbeddedConnection& c = h_->connect();
  c.feed("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(fixDate(c.takeOutput()), kHello);
  h_->advance(29s);
  c.feed("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(fixDate(c.takeOutput()), kHello);
  // The armed timer fires at 30 s, sees the request and sets itself for the rest of the timeout
  // after it. (The plugin measures that rest with the real clock, which the harness's manual one
  // does not move, so here the rest is the whole timeout: the close comes at 60 s, not 59 s.)
  h_->advance(29s);
  EXPECT_FALSE(c.closed());  // 29 s after the second request
  h_->advance(2s);
  EXPECT_TRUE(c.closed());
  EXPECT_EQ(c.output(), "");
}

TEST_F(HttpTimerTest, KeepAliveTimeoutZeroClosesAfterEachResponse) {
  auto h = load({{"return:/hello", "200 Hello, World!"}, {"keepalive-timeout", "0"}});
  ASSERT_NE(h, nullptr);
  EmbeddedConnection& c = h->connect();
  c.feed("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(c.takeOutput().find("\r\nConnection: close\r\n"), std::string::npos);
  EXPECT_TRUE(c.closed());
}

class HttpStopTest : public HttpTimerTest {};

TEST_F(HttpStopTest, AnIdleConnectionClosesAtOnce) {
  EmbeddedConnection& idle = h_->connect();
  idle.feed("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(fixDate(idle.takeOutput()), kHello);
  EmbeddedConnection& fresh = h_->connect();
  h_->stopServer();
  EXPECT_TRUE(idle.closed());
  EXPECT_TRUE(fresh.closed());
  EXPECT_EQ(idle.output(), "");
  EXPECT_EQ(fresh.output(), "");
}

TEST_F(HttpStopTest, ARequestInFlightIsAnsweredWithConnectionClose) {
  EmbeddedConnection& head = h_->connect();
  head.feed("GET /hello HTTP/1.1\r\nHost: x\r\n");
  EmbeddedConnection& body = h_->connect();
  body.feed("POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab");
  h_->stopServer();
  EXPECT_FALSE(head.closed());
  EXPECT_FALSE(body.closed());
  const std::string closing =
      "HTTP/1.1 200 OK\r\nServer: plexus\r\nDate: D\r\nContent-Type: text/plain\r\n"
      "Content-Length: 13\r\nConnection: close\r\n\r\nHello, World!";
  head.feed("\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(fixDate(head.takeOutput()), closing);  // the second request is not answered
  EXPECT_TRUE(head.closed());
  body.feed("cd");
  EXPECT_EQ(fixDate(body.takeOutput()), closing);
  EXPECT_TRUE(body.closed());
}

TEST(HttpBackPressureTest, PausesReadingWhileTooMuchOutputWaits) {
  if (::access(kPlugin.c_str(), R_OK) != 0) GTEST_SKIP() << "not built: " << kPlugin;
  auto h = load({{"return:/big", "200 " + std::string(1000, 'b')}, {"pipeline-max-output", "2k"}});
  ASSERT_NE(h, nullptr);
  EmbeddedConnection& c = h->connect();
  c.setWritable(false);
  std::string requests;
  for (int i = 0; i < 10; ++i) requests += "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
  c.feed(requests);
  EXPECT_TRUE(c.readingPaused());
  EXPECT_GT(c.pendingInput(), 0u);
  EXPECT_LE(c.pendingOutputBytes(), 2048u + 1200u);  // stopped soon after the limit
  // The peer reads: the rest is parsed and answered, in order.
  while (c.readingPaused() || c.pendingInput() > 0 || c.pendingOutputBytes() > 0) {
    c.setWritable(true);
    h->runPending();
    c.setWritable(false);
    ASSERT_FALSE(c.closed());
  }
  c.setWritable(true);
  const std::string out = fixDate(c.takeOutput());
  const std::string one =
      "HTTP/1.1 200 OK\r\nServer: plexus\r\nDate: D\r\nContent-Type: text/plain\r\n"
      "Content-Length: 1000\r\n\r\n" +
      std::string(1000, 'b');
  std::string all;
  for (int i = 0; i < 10; ++i) all += one;
  EXPECT_EQ(out, all);
  EXPECT_FALSE(c.readingPaused());
}

TEST(HttpPluginArgsTest, UnknownArgumentsAndBadValuesAreRefused) {
  if (::access(kPlugin.c_str(), R_OK) != 0) GTEST_SKIP() << "not built: " << kPlugin;
  absl::StatusOr<std::unique_ptr<PluginHarness>> h =
      PluginHarness::load(kPlugin, {{"colour", "red"}});
  ASSERT_FALSE(h.ok());
  EXPECT_NE(std::string(h.status().message()).find("http: unknown argument 'colour'"),
            std::string::npos)
      << h.status();
  h = PluginHarness::load(kPlugin, {{"max-body", "huge"}});
  ASSERT_FALSE(h.ok());
  EXPECT_NE(std::string(h.status().message()).find("http: invalid max-body 'huge'"),
            std::string::npos)
      << h.status();
  h = PluginHarness::load(kPlugin, {{"root", "/nonexistent/plexus-http"}});
  ASSERT_FALSE(h.ok());
  EXPECT_NE(std::string(h.status().message()).find("cannot open root"), std::string::npos);
}

// --- Files
// ----------------------------------------------------------------------------------------

class HttpFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kPlugin.c_str(), R_OK) != 0) GTEST_SKIP() << "not built: " << kPlugin;
    base_ = fs::path(::testing::TempDir()) / ("plexus_http_files_" + std::to_string(::getpid()));
    fs::remove_all(base_);
    root_ = base_ / "root";
    fs::create_directories(root_ / "dir");
    fs::create_directories(root_ / "empty");
    write(root_ / "index.html", "<h1>home</h1>\n");
    write(root_ / "dir" / "index.html", "<p>dir</p>\n");
    write(root_ / "a.txt", "0123456789abcdefghij");
    write(base_ / "secret.txt", "secret\n");
    fs::create_symlink(base_ / "secret.txt", root_ / "out");
    fs::create_symlink("a.txt", root_ / "in");
    fs::create_symlink("..", root_ / "up");
    fs::create_symlink(base_, root_ / "dirout");
  }
  void TearDown() override {
    if (!base_.empty()) fs::remove_all(base_);
  }
  static void write(const fs::path& p, const std::string& data) {
    std::ofstream(p, std::ios::binary) << data;
  }
  std::unique_ptr<PluginHarness> harness(PluginArgs extra = {}) {
    extra["root"] = root_.string();
    return load(extra);
  }
  // One request on a fresh connection; the reply with Date, Last-Modified and ETag made fixed.
  std::string get(PluginHarness& h, const std::string& target, const std::string& headers = "",
                  const std::string& method = "GET") {
    EmbeddedConnection& c = h.connect();
    c.feed(method + " " + target + " HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n");
    return fixValidators(c.takeOutput());
  }
  std::string etagOf(PluginHarness& h, const std::string& target) {
    EmbeddedConnection& c = h.connect();
    c.feed("HEAD " + target + " HTTP/1.1\r\nHost: x\r\n\r\n");
    const std::string etag = http::headerValue(c.takeOutput(), "ETag");
    EXPECT_FALSE(etag.empty());
    return etag;
  }

  fs::path base_, root_;
};

const std::string kFileHead =
    "HTTP/1.1 200 OK\r\nServer: plexus\r\nDate: D\r\nContent-Type: text/plain\r\n"
    "Content-Length: 20\r\nLast-Modified: M\r\nETag: E\r\nAccept-Ranges: bytes\r\n\r\n";

TEST_F(HttpFileTest, ServesFilesWithValidators) {
  auto h = harness();
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(get(*h, "/a.txt"), kFileHead + "0123456789abcdefghij");
  EXPECT_EQ(get(*h, "/a.txt", "", "HEAD"), kFileHead);
  EXPECT_EQ(get(*h, "/%61.txt"), kFileHead + "0123456789abcdefghij");
  EXPECT_EQ(get(*h, "/dir/../a.txt"), kFileHead + "0123456789abcdefghij");
  // A symlink inside the root; its media type is by the name requested, as nginx does.
  EXPECT_EQ(
      get(*h, "/in"),
      "HTTP/1.1 200 OK\r\nServer: plexus\r\nDate: D\r\nContent-Type: application/octet-stream\r\n"
      "Content-Length: 20\r\nLast-Modified: M\r\nETag: E\r\nAccept-Ranges: bytes\r\n\r\n"
      "0123456789abcdefghij");
  EXPECT_EQ(get(*h, "/"),
            "HTTP/1.1 200 OK\r\nServer: plexus\r\nDate: D\r\nContent-Type: text/html\r\n"
            "Content-Length: 14\r\nLast-Modified: M\r\nETag: E\r\nAccept-Ranges: bytes\r\n\r\n"
            "<h1>home</h1>\n");
  EXPECT_EQ(get(*h, "/dir"),
            "HTTP/1.1 301 Moved Permanently\r\nServer: plexus\r\nDate: D\r\nLocation: /dir/\r\n"
            "Content-Type: text/plain\r\nContent-Length: 22\r\n\r\n301 Moved Permanently\n");
  EXPECT_NE(get(*h, "/dir?q=1").find("\r\nLocation: /dir/?q=1\r\n"), std::string::npos);
  EXPECT_NE(get(*h, "/dir/").find("\r\n\r\n<p>dir</p>\n"), std::string::npos);
  EXPECT_EQ(get(*h, "/a.txt", "", "POST"),
            "HTTP/1.1 405 Method Not Allowed\r\nServer: plexus\r\nDate: D\r\nAllow: GET, HEAD\r\n"
            "Content-Type: text/plain\r\nContent-Length: 23\r\n\r\n405 Method Not Allowed\n");
}

TEST_F(HttpFileTest, ConditionalGetsAre304) {
  auto h = harness();
  ASSERT_NE(h, nullptr);
  const std::string etag = etagOf(*h, "/a.txt");
  const std::string not_modified =
      "HTTP/1.1 304 Not Modified\r\nServer: plexus\r\nDate: D\r\nLast-Modified: M\r\nETag: "
      "E\r\n\r\n";
  EXPECT_EQ(get(*h, "/a.txt", "If-None-Match: " + etag + "\r\n"), not_modified);
  EXPECT_EQ(get(*h, "/a.txt", "If-None-Match: \"x\", W/" + etag + "\r\n"), not_modified);
  EXPECT_EQ(get(*h, "/a.txt", "If-None-Match: *\r\n"), not_modified);
  EXPECT_EQ(get(*h, "/a.txt", "If-None-Match: \"other\"\r\n"), kFileHead + "0123456789abcdefghij");
  EXPECT_EQ(get(*h, "/a.txt", "If-Modified-Since: Fri, 31 Dec 9999 23:59:59 GMT\r\n"),
            not_modified);
  EXPECT_EQ(get(*h, "/a.txt", "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n"),
            kFileHead + "0123456789abcdefghij");
  // If-None-Match wins over If-Modified-Since.
  EXPECT_EQ(get(*h, "/a.txt",
                "If-None-Match: \"other\"\r\nIf-Modified-Since: Fri, 31 Dec 9999 23:59:59 GMT\r\n"),
            kFileHead + "0123456789abcdefghij");
}

TEST_F(HttpFileTest, SingleRangesAre206Or416) {
  auto h = harness();
  ASSERT_NE(h, nullptr);
  auto partial = [](const std::string& range, const std::string& body) {
    return "HTTP/1.1 206 Partial Content\r\nServer: plexus\r\nDate: D\r\nContent-Type: "
           "text/plain\r\n"
           "Content-Length: " +
           std::to_string(body.size()) +
           "\r\nLast-Modified: M\r\nETag: E\r\nAccept-Ranges: bytes\r\nContent-Range: bytes " +
           range + "/20\r\n\r\n" + body;
  };
  EXPECT_EQ(get(*h, "/a.txt", "Range: bytes=2-5\r\n"), partial("2-5", "2345"));
  EXPECT_EQ(get(*h, "/a.txt", "Range: bytes=15-\r\n"), partial("15-19", "fghij"));
  EXPECT_EQ(get(*h, "/a.txt", "Range: bytes=-3\r\n"), partial("17-19", "hij"));
  EXPECT_EQ(get(*h, "/a.txt", "Range: bytes=18-100\r\n"), partial("18-19", "ij"));
  EXPECT_EQ(get(*h, "/a.txt", "Range: bytes=20-\r\n"),
            "HTTP/1.1 416 Range Not Satisfiable\r\nServer: plexus\r\nDate: D\r\n"
            "Content-Range: bytes */20\r\nContent-Length: 0\r\n\r\n");
  // Several ranges, or an If-Range naming another version: the whole file.
  EXPECT_EQ(get(*h, "/a.txt", "Range: bytes=0-1,4-5\r\n"), kFileHead + "0123456789abcdefghij");
  EXPECT_EQ(get(*h, "/a.txt", "Range: bytes=0-1\r\nIf-Range: \"old\"\r\n"),
            kFileHead + "0123456789abcdefghij");
  const std::string etag = etagOf(*h, "/a.txt");
  EXPECT_EQ(get(*h, "/a.txt", "Range: bytes=0-1\r\nIf-Range: " + etag + "\r\n"),
            partial("0-1", "01"));
}

TEST_F(HttpFileTest, NothingOutsideTheRootIsServed) {
  for (const std::string symlinks : {"off", "on"}) {
    auto h = harness({{"disable-symlinks", symlinks}});
    ASSERT_NE(h, nullptr);
    for (const char* target :
         {"/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt", "/..%2fsecret.txt",
          "/dir/..%2f..%2fsecret.txt", "/out", "/up/secret.txt", "/dirout/secret.txt", "/empty/"}) {
      const std::string reply = get(*h, target);
      EXPECT_TRUE(reply.starts_with("HTTP/1.1 403 Forbidden\r\n"))
          << symlinks << " " << target << ": " << reply;
      EXPECT_EQ(reply.find("secret\n"), std::string::npos);
    }
    EXPECT_TRUE(get(*h, "/nothing").starts_with("HTTP/1.1 404 Not Found\r\n"));
    EXPECT_TRUE(get(*h, "/a.txt/x").starts_with("HTTP/1.1 404 Not Found\r\n"));
    EXPECT_TRUE(get(*h, "/%00").starts_with("HTTP/1.1 400 Bad Request\r\n"));
    // A symlink inside the root: followed, unless every symlink is refused.
    EXPECT_TRUE(get(*h, "/in").starts_with(symlinks == "off" ? "HTTP/1.1 200 OK\r\n"
                                                             : "HTTP/1.1 403 Forbidden\r\n"))
        << symlinks;
  }
}

TEST_F(HttpFileTest, FixedRoutesWinOverFiles) {
  auto h = harness({{"return:/a.txt", "200 fixed"}});
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(get(*h, "/a.txt"),
            "HTTP/1.1 200 OK\r\nServer: plexus\r\nDate: D\r\nContent-Type: text/plain\r\n"
            "Content-Length: 5\r\n\r\nfixed");
  EXPECT_EQ(get(*h, "/./a.txt").substr(get(*h, "/./a.txt").size() - 5), "fixed");  // normalized
}

TEST_F(HttpFileTest, AccessLogHasOneLinePerRequest) {
  const fs::path log = base_ / "access.log";
  auto h = harness({{"access-log", log.string()}, {"return:/hello", "200 Hello, World!"}});
  ASSERT_NE(h, nullptr);
  EmbeddedConnection& c = h->connect("10.1.2.3:5555");
  c.feed(
      "GET /hello HTTP/1.1\r\nHost: x\r\nUser-Agent: t\"1\r\nReferer: http://r/\r\n\r\n"
      "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Two lines: address, time, request line, status, body bytes, referer and agent escaped.
  const size_t eol = text.find('\n');
  ASSERT_NE(eol, std::string::npos) << text;
  const std::string first = text.substr(0, eol + 1), second = text.substr(eol + 1);
  ASSERT_GE(first.size(), 42u) << text;
  EXPECT_EQ(first.substr(0, 14), "10.1.2.3 - - [");
  EXPECT_TRUE(http::looksLikeLogTime(first.substr(14, 26))) << first;
  EXPECT_EQ(first.substr(40), "] \"GET /hello HTTP/1.1\" 200 13 \"http://r/\" \"t\\x221\"\n");
  ASSERT_GE(second.size(), 42u) << text;
  EXPECT_EQ(second.substr(0, 14), "10.1.2.3 - - [");
  EXPECT_EQ(second.substr(40), "] \"GET /a.txt HTTP/1.1\" 200 20 \"-\" \"-\"\n");
}

}  // namespace
}  // namespace plexus::testing
