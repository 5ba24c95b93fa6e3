// No heap allocation per request on the http plugin's fixed-response path (`return:PATH`):
// keep-alive requests, one at a time and pipelined, through the plugin host with the plugin loaded
// from build/plugins/http.so, as plexus-server runs it. operator new is replaced in this test
// binary and counts what the server's loop threads allocate (the plugin's code resolves operator
// new to this program's, like libplexus's does).

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "plexus/plugin_host.h"
#include "plexus/plugin_loader.h"
#include "plexus/tcp_server.h"
#include "support/server_harness.h"
#include "support/test_util.h"

namespace {

std::atomic<uint64_t> g_server_allocations{0};
thread_local bool t_count = false;  // set on the server's loop threads

}  // namespace

// The replacements pair malloc with free; GCC cannot see that operator new is malloc here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  if (t_count) g_server_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
// The nothrow forms too (std::stable_sort's temporary buffer uses them): with a sanitizer, the
// library's own would allocate through the sanitizer's allocator, which free() above then refuses.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  if (t_count) g_server_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace plexus {
namespace {

const std::string kHttpPlugin = std::string(PLEXUS_PLUGIN_DIR) + "/http.so";
const std::string kRequest = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
// "HTTP/1.1 200 OK", Server, Date, Content-Type, Content-Length lines, the empty line, the body.
constexpr size_t kResponseSize = 17 + 16 + 37 + 26 + 20 + 2 + 13;

// Reads exactly n bytes (the receive timeout of connectBlocking bounds the wait).
bool readN(int fd, size_t n) {
  char buf[4096];
  while (n > 0) {
    ssize_t r = ::recv(fd, buf, std::min(n, sizeof buf), 0);
    if (r <= 0) return false;
    n -= static_cast<size_t>(r);
  }
  return true;
}

class HttpAllocationTest : public ::testing::TestWithParam<int> {};

TEST_P(HttpAllocationTest, NoAllocationPerRequest) {
  if (::access(kHttpPlugin.c_str(), R_OK) != 0) GTEST_SKIP() << "not built: " << kHttpPlugin;
  absl::StatusOr<std::shared_ptr<LoadedPlugin>> plugin =
      loadPlugin(kHttpPlugin, {}, {{"return:/hello", "200 Hello, World!"}});
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  TcpServerOptions o;
  o.listen_address = InetAddress(0, true);
  o.threads = 2;
  testing::ServerHarness h(o, [&](TcpServer& s) {
    s.setThreadInitCallback([](EventLoop*) { t_count = true; });
    servePlugin(s, (*plugin)->factory());
  });
  ASSERT_TRUE(h.status().ok());
  h.runSync([] { t_count = true; });

  const int pipelined = GetParam();  // requests per write
  std::string batch;
  for (int i = 0; i < pipelined; ++i) batch += kRequest;
  std::vector<int> fds;
  for (int i = 0; i < 8; ++i) fds.push_back(testing::connectBlocking(h.address()));
  auto round = [&] {
    for (int fd : fds) {
      ASSERT_TRUE(testing::writeAll(fd, batch));
      ASSERT_TRUE(readN(fd, kResponseSize * static_cast<size_t>(pipelined)));
    }
  };
  // The size is right: a wrong one would hang each read until its timeout.
  ASSERT_TRUE(testing::writeAll(fds[0], kRequest));
  const std::string first = testing::readExactly(fds[0], kResponseSize);
  ASSERT_TRUE(first.starts_with("HTTP/1.1 200 OK\r\n") && first.ends_with("\r\n\r\nHello, World!"))
      << first;
  for (int i = 0; i < 50; ++i) round();  // warm-up: buffers and timers set up
  h.runSync([] {});
  const uint64_t before = g_server_allocations.load();
  for (int i = 0; i < 250; ++i) round();
  h.runSync([] {});
  EXPECT_EQ(g_server_allocations.load() - before, 0u)
      << "allocations on the server's threads during " << 2000 * pipelined << " requests";
  for (int fd : fds) ::close(fd);
}

INSTANTIATE_TEST_SUITE_P(Requests, HttpAllocationTest, ::testing::Values(1, 16),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return "Pipelined" + std::to_string(info.param);
                         });

}  // namespace
}  // namespace plexus
