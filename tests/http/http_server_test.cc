// The http plugin end to end: build/bin/plexus-server --plugin http on a free port, driven over
// real sockets by curl, ab, wrk and raw sockets (pipelining, traversal attempts). A client that
// is not installed makes its test skip, saying which.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "http/http_test_util.h"
#include "integration/child_process.h"
#include "support/test_util.h"

namespace plexus::testing {
namespace {

using child::Child;
using std::chrono::milliseconds;
namespace fs = std::filesystem;

const std::string kServer = std::string(PLEXUS_BIN_DIR) + "/plexus-server";
const std::string kPlugin = std::string(PLEXUS_PLUGIN_DIR) + "/http.so";

// The path of `name` on PATH, or nullopt.
std::optional<std::string> findProgram(const std::string& name) {
  const char* path = ::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return std::nullopt;
}

child::Outcome run(const std::vector<std::string>& argv,
                   milliseconds timeout = milliseconds(60000)) {
  Child c = Child::spawn(argv, {.pipe_stdin = false, .pipe_stderr = true});
  return child::communicate(c, "", timeout);
}

// Reads from `fd` until EOF, an error or the socket's receive timeout.
std::string readToEof(int fd) { return readUntilEof(fd); }

// One response read off a socket: status line, headers, body (by Content-Length).
struct Response {
  std::string status_line;
  std::string headers;  // the raw header lines
  std::string body;
};

// Splits `data` into responses; bodies by Content-Length (0 when absent, as after HEAD or 304).
std::vector<Response> splitResponses(std::string_view data, bool head_only = false) {
  std::vector<Response> out;
  while (!data.empty()) {
    const size_t end = data.find("\r\n\r\n");
    if (end == std::string_view::npos) break;
    Response r;
    const std::string_view head = data.substr(0, end + 2);
    const size_t eol = head.find("\r\n");
    r.status_line = std::string(head.substr(0, eol));
    r.headers = std::string(head.substr(eol + 2));
    size_t length = 0;
    const std::string declared = http::headerValue("\r\n" + r.headers, "Content-Length");
    if (!head_only && !declared.empty()) length = std::stoul(declared);
    data.remove_prefix(end + 4);
    r.body = std::string(data.substr(0, length));
    data.remove_prefix(std::min(length, data.size()));
    out.push_back(std::move(r));
  }
  return out;
}

class HttpServerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (::access(kServer.c_str(), X_OK) != 0) GTEST_SKIP() << "not built: " << kServer;
    if (::access(kPlugin.c_str(), R_OK) != 0) GTEST_SKIP() << "not built: " << kPlugin;
    root_ = fs::path(::testing::TempDir()) / ("plexus_http_root_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "dir");
    fs::create_directories(root_ / "noindex");
    write(root_ / "index.html", "<h1>root</h1>\n");
    write(root_ / "dir" / "index.html", "<p>dir</p>\n");
    data_ = randomBytes(300000, 7);
    write(root_ / "data.bin", data_);
    // Outside the root: a secret next to it, reached by symlinks and traversal attempts.
    secret_ = root_.string() + "_secret.txt";
    write(secret_, "secret\n");
    fs::create_symlink(secret_, root_ / "out");
    fs::create_symlink("data.bin", root_ / "in");
    fs::create_symlink("..", root_ / "up");

    port_ = freePort();
    server_ =
        Child::spawn({kServer, "--listen", "127.0.0.1:" + std::to_string(port_), "--threads", "1",
                      "--engine", GetParam(), "--plugin", kPlugin, "--plugin-arg", "return:/hello=200 Hello, World!",
                      "--plugin-arg", "root=" + root_.string()},
                     {.pipe_stdin = false, .pipe_stderr = true});
    ASSERT_TRUE(server_.started());
    ASSERT_TRUE(waitUntil([this] {
      int fd = connectBlocking(address(), milliseconds(1000));
      if (fd < 0) return false;
      ::close(fd);
      return true;
    })) << "plexus-server did not start listening on port "
        << port_;
  }

  void TearDown() override {
    if (server_.started() && !stopped_) {
      server_.signal(SIGTERM);
      EXPECT_EQ(server_.wait(milliseconds(15000)), 0);
    }
    if (!root_.empty()) {
      fs::remove_all(root_);
      fs::remove(secret_);
    }
  }

  static void write(const fs::path& p, const std::string& data) {
    std::ofstream(p, std::ios::binary) << data;
  }
  InetAddress address() const { return InetAddress(port_, /*loopback_only=*/true); }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  // Sends `request` on a new connection and reads until the server closes it.
  std::string exchange(const std::string& request) {
    int fd = connectBlocking(address());
    EXPECT_GE(fd, 0);
    if (fd < 0) return "";
    EXPECT_TRUE(writeAll(fd, request));
    std::string reply = readToEof(fd);
    ::close(fd);
    return reply;
  }
  std::string requireProgram(const std::string& name) {
    std::optional<std::string> p = findProgram(name);
    return p ? *p : std::string();
  }

  fs::path root_;
  std::string secret_;
  std::string data_;
  uint16_t port_ = 0;
  Child server_;
  bool stopped_ = false;
};

#define REQUIRE_PROGRAM(var, name)              \
  const std::string var = requireProgram(name); \
  if (var.empty()) GTEST_SKIP() << name << " is not installed (.ci/setup installs it)"

TEST_P(HttpServerTest, CurlReusesTheConnectionForTwoUrls) {
  REQUIRE_PROGRAM(curl, "curl");
  child::Outcome o = run({curl, "-sv", url("/hello"), url("/hello")});
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, "Hello, World!Hello, World!");
  EXPECT_NE(o.err.find("Re-using existing connection"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("< Server: plexus"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("< Content-Length: 13"), std::string::npos) << o.err;
}

TEST_P(HttpServerTest, CurlHttp10ClosesAfterTheResponse) {
  REQUIRE_PROGRAM(curl, "curl");
  child::Outcome o = run({curl, "-si", "--http1.0", url("/hello")});
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out.substr(0, 17), "HTTP/1.1 200 OK\r\n");
  EXPECT_NE(o.out.find("\r\nConnection: close\r\n"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.substr(o.out.size() - 17), "\r\n\r\nHello, World!");
  // With keep-alive asked for, HTTP/1.0 keeps the connection and says so.
  o = run({curl, "-sv", "--http1.0", "-H", "Connection: keep-alive", url("/hello"), url("/hello")});
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, "Hello, World!Hello, World!");
  EXPECT_NE(o.err.find("< Connection: keep-alive"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("Re-using existing connection"), std::string::npos) << o.err;
}

TEST_P(HttpServerTest, CurlHeadHasHeadersOnly) {
  REQUIRE_PROGRAM(curl, "curl");
  child::Outcome o = run({curl, "-sI", url("/hello")});
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_TRUE(o.out.starts_with("HTTP/1.1 200 OK\r\nServer: plexus\r\nDate: ")) << o.out;
  EXPECT_NE(o.out.find("\r\nContent-Length: 13\r\n"), std::string::npos);
  EXPECT_TRUE(o.out.ends_with("\r\n\r\n")) << o.out;
  o = run({curl, "-sI", url("/data.bin")});
  EXPECT_NE(o.out.find("\r\nContent-Length: 300000\r\n"), std::string::npos) << o.out;
  EXPECT_TRUE(o.out.ends_with("\r\n\r\n")) << o.out;
}

TEST_P(HttpServerTest, CurlGetsFilesWholeAndByRange) {
  REQUIRE_PROGRAM(curl, "curl");
  child::Outcome o = run({curl, "-s", url("/data.bin")});
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_TRUE(o.out == data_) << "the file came back with " << o.out.size() << " bytes";
  o = run({curl, "-s", "-D", "/dev/stderr", "-r", "1000-1999", url("/data.bin")});
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_TRUE(o.out == data_.substr(1000, 1000));
  EXPECT_NE(o.err.find("HTTP/1.1 206 Partial Content\r\n"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("\r\nContent-Range: bytes 1000-1999/300000\r\n"), std::string::npos);
  o = run({curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-r", "400000-", url("/data.bin")});
  EXPECT_EQ(o.out, "416");
  o = run({curl, "-s", url("/")});
  EXPECT_EQ(o.out, "<h1>root</h1>\n");
  o = run({curl, "-s", url("/dir/")});
  EXPECT_EQ(o.out, "<p>dir</p>\n");
  o = run({curl, "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", url("/dir")});
  EXPECT_EQ(o.out, "301 " + url("/dir/"));
  o = run(
      {curl, "-s", "-o", "/dev/null", "-w", "%{http_code} %{content_type}", url("/index.html")});
  EXPECT_EQ(o.out, "200 text/html");
}

TEST_P(HttpServerTest, CurlConditionalGetIs304) {
  REQUIRE_PROGRAM(curl, "curl");
  child::Outcome o = run({curl, "-sI", url("/index.html")});
  const std::string etag = http::headerValue(o.out, "ETag");
  ASSERT_TRUE(etag.starts_with("\"")) << o.out;
  const std::string modified = http::headerValue(o.out, "Last-Modified");
  ASSERT_TRUE(http::looksLikeHttpDate(modified)) << o.out;
  o = run({curl, "-s", "-D", "/dev/stderr", "-H", "If-None-Match: " + etag, url("/index.html")});
  EXPECT_EQ(o.out, "");
  EXPECT_TRUE(o.err.starts_with("HTTP/1.1 304 Not Modified\r\n")) << o.err;
  o = run({curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "If-None-Match: \"other\"",
           url("/index.html")});
  EXPECT_EQ(o.out, "200");
  o = run({curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
           "If-Modified-Since: " + modified, url("/index.html")});
  EXPECT_EQ(o.out, "304");
  o = run({curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
           "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT", url("/index.html")});
  EXPECT_EQ(o.out, "200");
}

TEST_P(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  const std::string request =
      "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
      "HEAD /index.html HTTP/1.1\r\nHost: t\r\n\r\n"
      "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n"
      "POST /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde"
      "GET /dir/index.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
      "GET /never HTTP/1.1\r\nHost: t\r\n\r\n";
  const std::string reply = exchange(request);
  // One response at a time; the second answers a HEAD, so it has no body whatever it declares.
  std::vector<Response> parts;
  std::string_view rest = reply;
  for (int i = 0; i < 5; ++i) {
    std::vector<Response> one = splitResponses(rest, /*head_only=*/i == 1);
    ASSERT_FALSE(one.empty()) << "response " << i << " missing in: " << reply;
    parts.push_back(one[0]);
    rest.remove_prefix(rest.find("\r\n\r\n") + 4 + one[0].body.size());
  }
  EXPECT_TRUE(rest.empty()) << "after the Connection: close response: " << rest;
  EXPECT_EQ(parts[0].status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(parts[0].body, "Hello, World!");
  EXPECT_EQ(parts[1].status_line, "HTTP/1.1 200 OK");
  EXPECT_NE(parts[1].headers.find("Content-Length: 14\r\n"), std::string::npos);
  EXPECT_EQ(parts[1].body, "");
  EXPECT_EQ(parts[2].status_line, "HTTP/1.1 404 Not Found");
  EXPECT_EQ(parts[2].body, "404 Not Found\n");
  EXPECT_EQ(parts[3].status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(parts[3].body, "Hello, World!");
  EXPECT_EQ(parts[4].status_line, "HTTP/1.1 200 OK");
  EXPECT_NE(parts[4].headers.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(parts[4].body, "<p>dir</p>\n");
}

TEST_P(HttpServerTest, NothingOutsideTheRootIsServed) {
  struct Case {
    const char* target;
    const char* status;
  } cases[] = {
      {"/../index.html", "403 Forbidden"},
      {"/%2e%2e/%2e%2e/etc/passwd", "403 Forbidden"},
      {"/..%2f..%2fetc%2fpasswd", "403 Forbidden"},
      {"/dir/%2E%2E/%2e%2E/secret", "403 Forbidden"},
      {"/out", "403 Forbidden"},            // a symlink leading out of the root
      {"/up/index.html", "403 Forbidden"},  // a symlink to the root's parent
      {"/noindex/", "403 Forbidden"},       // a directory without index.html
      {"/nothing-here", "404 Not Found"},
      {"/index.html/x", "404 Not Found"},
      {"/%00", "400 Bad Request"},
  };
  for (const Case& c : cases) {
    const std::string reply = exchange(std::string("GET ") + c.target +
                                       " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(reply.starts_with(std::string("HTTP/1.1 ") + c.status + "\r\n"))
        << c.target << ": " << reply;
    EXPECT_EQ(reply.find("secret"), std::string::npos) << c.target;
  }
  // A symlink within the root is followed.
  const std::string reply = exchange("GET /in HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 200 OK\r\n")) << reply.substr(0, 100);
  EXPECT_TRUE(reply.ends_with(data_));
}

TEST_P(HttpServerTest, MalformedRequestIs400AndClosed) {
  const std::string reply =
      exchange("GET / HTTP/1.1\r\nHost : t\r\n\r\nGET /hello HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 400 Bad Request\r\n")) << reply;
  EXPECT_NE(reply.find("\r\nConnection: close\r\n"), std::string::npos);
  EXPECT_TRUE(reply.ends_with("\r\n\r\n400 Bad Request\n")) << reply;  // and nothing after it
}

// Reads one response (head, then Content-Length bytes of body) from a blocking socket.
std::string readResponse(int fd) {
  std::string got;
  char c;
  while (got.find("\r\n\r\n") == std::string::npos) {
    if (::read(fd, &c, 1) != 1) return got;
    got.push_back(c);
  }
  const std::string declared = http::headerValue(got, "Content-Length");
  const size_t length = declared.empty() ? 0 : std::stoul(declared);
  return got + readExactly(fd, length);
}

TEST_P(HttpServerTest, SigtermClosesIdleConnectionsAndAnswersTheOneInFlight) {
  int idle = connectBlocking(address());
  int busy = connectBlocking(address());
  ASSERT_GE(idle, 0);
  ASSERT_GE(busy, 0);
  ASSERT_TRUE(writeAll(idle, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
  EXPECT_TRUE(readResponse(idle).ends_with("\r\n\r\nHello, World!"));
  // One write: the answer to the first request shows the server has read the second's start too.
  ASSERT_TRUE(writeAll(busy, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\n"));
  EXPECT_TRUE(readResponse(busy).ends_with("\r\n\r\nHello, World!"));
  server_.signal(SIGTERM);
  bool eof = false;
  EXPECT_EQ(readUntilEof(idle, &eof), "");  // closed with nothing more
  EXPECT_TRUE(eof);
  ASSERT_TRUE(writeAll(busy, "Host: t\r\n\r\n"));
  const std::string last = readUntilEof(busy, &eof);
  EXPECT_TRUE(eof);
  EXPECT_TRUE(last.starts_with("HTTP/1.1 200 OK\r\n")) << last;
  EXPECT_NE(last.find("\r\nConnection: close\r\n"), std::string::npos) << last;
  EXPECT_TRUE(last.ends_with("\r\n\r\nHello, World!")) << last;
  ::close(idle);
  ::close(busy);
  stopped_ = true;
  EXPECT_EQ(server_.wait(milliseconds(15000)), 0);
}

TEST_P(HttpServerTest, AbKeepAliveHasNoFailedRequest) {
  REQUIRE_PROGRAM(ab, "ab");
  child::Outcome o = run({ab, "-k", "-n", "2000", "-c", "10", url("/hello")});
  ASSERT_EQ(o.status, 0) << o.out << o.err;
  EXPECT_NE(o.out.find("Complete requests:      2000\n"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("Failed requests:        0\n"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("Keep-Alive requests:    2000\n"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("Non-2xx responses"), std::string::npos) << o.out;
}

TEST_P(HttpServerTest, WrkGetsOnlySuccessfulResponses) {
  REQUIRE_PROGRAM(wrk, "wrk");
  child::Outcome o = run({wrk, "-t1", "-c10", "-d1s", url("/hello")});
  ASSERT_EQ(o.status, 0) << o.out << o.err;
  // "  12345 requests in 1.00s, ..."
  const size_t at = o.out.find(" requests in ");
  ASSERT_NE(at, std::string::npos) << o.out;
  size_t start = at;
  while (start > 0 && o.out[start - 1] >= '0' && o.out[start - 1] <= '9') --start;
  ASSERT_LT(start, at) << o.out;
  EXPECT_GT(std::stoull(o.out.substr(start, at - start)), 0u) << o.out;
  EXPECT_EQ(o.out.find("Socket errors"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("Non-2xx"), std::string::npos) << o.out;
}

// Every test on the default engine and on io_uring, which receives and sends for connections.
INSTANTIATE_TEST_SUITE_P(Engines, HttpServerTest, ::testing::Values("epoll", "uring"),
                         [](const auto& info) { return info.param; });

TEST(HttpServerArgsTest, AnUnknownArgumentStopsTheServerWithOneLine) {
  if (::access(kServer.c_str(), X_OK) != 0) GTEST_SKIP() << "not built: " << kServer;
  child::Outcome o = run({kServer, "--listen", "127.0.0.1:" + std::to_string(freePort()),
                          "--plugin", kPlugin, "--plugin-arg", "roots=/srv"});
  EXPECT_EQ(o.status, 2);
  EXPECT_NE(o.err.find("http: unknown argument 'roots'"), std::string::npos) << o.err;
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
}

}  // namespace
}  // namespace plexus::testing
