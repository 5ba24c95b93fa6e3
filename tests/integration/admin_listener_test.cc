// plexus-server --admin-listen: /metrics and /healthz fetched with curl from a server with an http
// and a resp listener on 2 sub-reactors; the plugins' own counters show after some requests; the
// port is reported when asked for port 0; /healthz turns 503 while the server stops.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "integration/child_process.h"
#include "support/test_util.h"

namespace plexus::testing {
namespace {

using child::Child;
using std::chrono::milliseconds;

const std::string kServer = std::string(PLEXUS_BIN_DIR) + "/plexus-server";
const std::string kPluginDir = PLEXUS_PLUGIN_DIR;

std::optional<std::string> findProgram(const std::string& name) {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin"}) {
    const std::string p = std::string(dir) + "/" + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return std::nullopt;
}

// Sends `request` on a fresh connection and reads `n` bytes of answer.
std::string exchange(uint16_t port, const std::string& request, size_t n) {
  const int fd = connectBlocking(InetAddress(port, true));
  EXPECT_GE(fd, 0);
  EXPECT_TRUE(writeAll(fd, request));
  std::string got = readExactly(fd, n);
  ::close(fd);
  return got;
}

class AdminListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kPluginDir + "/http.so") ||
        !std::filesystem::exists(kPluginDir + "/resp.so")) {
      GTEST_SKIP() << "the http and resp plugins are not built";
    }
    auto curl = findProgram("curl");
    if (!curl) GTEST_SKIP() << "curl is not installed (.ci/setup installs it)";
    curl_ = *curl;
    http_port_ = freePort();
    resp_port_ = freePort();
    server_ = Child::spawn(
        {kServer, "--threads", "2", "--plugin-dir", kPluginDir, "--listen",
         "127.0.0.1:" + std::to_string(http_port_) + " http 'return:/hi=200 hi'", "--listen",
         "127.0.0.1:" + std::to_string(resp_port_) + " resp", "--admin-listen", "127.0.0.1:0"},
        {.pipe_stdin = false, .pipe_stderr = true});
    const std::string needle = "admin listening on 127.0.0.1:";
    ASSERT_TRUE(child::readUntilContains(server_.err(), &err_, needle, milliseconds(10000)))
        << err_;
    ASSERT_TRUE(child::readUntilContains(server_.err(), &err_, " listening on 127.0.0.1:" +
                                                                   std::to_string(http_port_),
                                         milliseconds(10000)))
        << err_;
    admin_port_ = static_cast<uint16_t>(std::stoi(err_.substr(err_.find(needle) + needle.size())));
    ASSERT_NE(admin_port_, 0);
  }

  child::Outcome curl(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {curl_, "-s", "--max-time", "10"};
    argv.insert(argv.end(), args.begin(), args.end());
    Child c = Child::spawn(argv, {.pipe_stdin = false});
    return child::communicate(c, "");
  }
  std::string adminUrl(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(admin_port_) + path;
  }
  std::string metrics() {
    child::Outcome o = curl({adminUrl("/metrics")});
    EXPECT_EQ(o.status, 0) << o.err;
    return o.out;
  }

  std::string curl_;
  uint16_t http_port_ = 0, resp_port_ = 0, admin_port_ = 0;
  Child server_;
  std::string err_;
};

// The sum of the samples whose line starts with `prefix`.
double sumOf(const std::string& text, const std::string& prefix) {
  double total = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    const std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.rfind(prefix, 0) == 0) total += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return total;
}

bool has(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

TEST_F(AdminListenerTest, MetricsShowThePluginsCounters) {
  const std::string hi = "HTTP/1.1 200";
  EXPECT_EQ(exchange(http_port_, "GET /hi HTTP/1.1\r\nHost: t\r\n\r\n", hi.size()), hi);
  const std::string nf = "HTTP/1.1 404";
  EXPECT_EQ(exchange(http_port_, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", nf.size()), nf);
  EXPECT_EQ(exchange(http_port_, "GET /hi HTTP/1.1\r\nHost: t\r\n\r\n", hi.size()), hi);
  // resp: SET, GET, SET with a 1 ms TTL (expired by the 100 ms expiry rounds), an unknown command.
  EXPECT_EQ(exchange(resp_port_, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", 5), "+OK\r\n");
  EXPECT_EQ(exchange(resp_port_, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", 7), "$1\r\nv\r\n");
  EXPECT_EQ(exchange(resp_port_, "*5\r\n$3\r\nSET\r\n$1\r\nt\r\n$1\r\nv\r\n$2\r\nPX\r\n$1\r\n1\r\n",
                     5),
            "+OK\r\n");
  EXPECT_EQ(exchange(resp_port_, "*1\r\n$5\r\nBOGUS\r\n", 4), "-ERR");

  const std::string http = "listener=\"127.0.0.1:" + std::to_string(http_port_) + "\"";
  const std::string resp = "listener=\"127.0.0.1:" + std::to_string(resp_port_) + "\"";
  std::string text;
  // The expiry rounds (every 100 ms) refresh the keys and expired keys.
  ASSERT_TRUE(waitUntil([&] {
    text = metrics();
    return sumOf(text, "plexus_resp_expired_keys_total{" + resp) == 1 &&
           sumOf(text, "plexus_resp_keys{" + resp) == 1;
  }, milliseconds(10000)))
      << text;
  EXPECT_TRUE(has(text, "# TYPE plexus_http_requests_total counter\n")) << text;
  // The two 200s may have gone to either loop: look for the 404 (one request) exactly.
  EXPECT_TRUE(has(text, "plexus_http_requests_total{" + http + ",loop=\"0\",plugin=\"http\","
                        "status=\"404\"} 1\n") ||
              has(text, "plexus_http_requests_total{" + http + ",loop=\"1\",plugin=\"http\","
                        "status=\"404\"} 1\n"))
      << text;
  for (const char* command : {"set", "get", "unknown"}) {
    EXPECT_TRUE(has(text, std::string("plexus_resp_commands_total{command=\"") + command + "\"," +
                              resp))
        << command << "\n" << text;
  }
  EXPECT_TRUE(has(text, "plexus_connections_accepted_total{" + http)) << text;
  EXPECT_TRUE(has(text, "plugin=\"resp\"")) << text;
  EXPECT_TRUE(has(text, "plexus_loop_wakeups_total{loop=\"main\"}")) << text;
  EXPECT_TRUE(has(text, "plexus_loop_wakeups_total{loop=\"1\"}")) << text;
  EXPECT_TRUE(has(text, "process_open_fds ")) << text;
  EXPECT_TRUE(has(text, "plexus_build_info{version=\"")) << text;

  // Content type and the other paths, through curl too.
  child::Outcome head = curl({"-sI", adminUrl("/metrics")});
  EXPECT_TRUE(has(head.out, "Content-Type: text/plain; version=0.0.4")) << head.out;
  child::Outcome missing = curl({"-o", "/dev/null", "-w", "%{http_code}", adminUrl("/x")});
  EXPECT_EQ(missing.out, "404");
  child::Outcome post = curl({"-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                              adminUrl("/metrics")});
  EXPECT_EQ(post.out, "405");
}

TEST_F(AdminListenerTest, HealthzTurns503WhileStopping) {
  child::Outcome ok = curl({"-w", " %{http_code}", adminUrl("/healthz")});
  EXPECT_EQ(ok.out, "ok\n 200");
  // A connection in the middle of a request holds the stop for its grace period (5 s by
  // default): meanwhile the admin listener still answers, with 503.
  const int held = connectBlocking(InetAddress(http_port_, true));
  ASSERT_GE(held, 0);
  // Half a request: the http handler finishes it before it closes (onStop), so the stop waits.
  ASSERT_TRUE(writeAll(held, "GET /hi HTTP/1.1\r\n"));
  ASSERT_TRUE(waitUntil([&] {
    return sumOf(metrics(), "plexus_connections_open{listener=\"127.0.0.1:" +
                                std::to_string(http_port_)) == 1;
  }));
  server_.signal(SIGTERM);
  std::string code;
  EXPECT_TRUE(waitUntil([&] {
    code = curl({"-o", "/dev/null", "-w", "%{http_code}", adminUrl("/healthz")}).out;
    return code == "503";
  }, milliseconds(4000)))
      << code;
  ::close(held);
  EXPECT_EQ(server_.wait(milliseconds(15000)), 0);
}

TEST(AdminListenerOptionTest, ABadAddressIsOneLine) {
  Child c = Child::spawn({kServer, "--admin-listen", "nonsense:port"}, {.pipe_stdin = false});
  child::Outcome o = child::communicate(c, "");
  EXPECT_EQ(o.status, 2);
  EXPECT_EQ(o.err.rfind("plexus-server: error: invalid --admin-listen 'nonsense:port'", 0), 0u)
      << o.err;
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
}

}  // namespace
}  // namespace plexus::testing
