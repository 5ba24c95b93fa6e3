// No heap allocation per message on the steady echo path: operator new is replaced in this test
// binary and counts what the server's loop threads allocate while clients pingpong, through both
// a TcpServer message callback and the plugin host (a ProtocolHandler, as plexus-server runs echo).

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <ostream>

#include "gtest/gtest.h"
#include "plexus/buffer.h"
#include "plexus/plugin.h"
#include "plexus/plugin_host.h"
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

class EchoHandler final : public ProtocolHandler {
 public:
  void onData(Session& session, Buffer& input) override { session.send(input); }
};

class EchoFactory final : public PluginFactory {
 public:
  std::unique_ptr<ProtocolHandler> newHandler(const LoopInfo& /*loop*/) override { return std::make_unique<EchoHandler>(); }
};

// Allocations the server's threads made during `rounds` pingpong rounds over `fds`, after a warm-up.
uint64_t allocationsDuringPingpong(testing::ServerHarness& h, const std::vector<int>& fds,
                                   size_t size, int rounds) {
  std::string msg(size, 'a');
  std::string got(size, '\0');
  auto round = [&] {
    for (int fd : fds) {
      EXPECT_TRUE(testing::writeAll(fd, msg));
      size_t n = 0;
      while (n < size) {
        ssize_t r = ::recv(fd, got.data() + n, size - n, 0);
        if (r <= 0) break;
        n += static_cast<size_t>(r);
      }
      EXPECT_EQ(n, size);
    }
  };
  for (int i = 0; i < 50; ++i) round();  // warm-up: buffers reach their size
  // Settle: every loop finishes the iteration that answered the last message.
  h.runSync([] {});
  const uint64_t before = g_server_allocations.load();
  for (int i = 0; i < rounds; ++i) round();
  h.runSync([] {});
  return g_server_allocations.load() - before;
}

struct Case {
  const char* name;
  bool plugin_host;
  EpollMode mode;
  size_t size;
};

// So that gtest names the case instead of dumping its bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class SteadyEchoAllocationTest : public ::testing::TestWithParam<Case> {};

TEST_P(SteadyEchoAllocationTest, NoAllocationPerMessage) {
  TcpServerOptions o;
  o.listen_address = InetAddress(0, true);
  o.threads = 2;
  o.engine.epoll_mode = GetParam().mode;
  testing::ServerHarness h(o, [&](TcpServer& s) {
    s.setThreadInitCallback([](EventLoop*) { t_count = true; });
    if (GetParam().plugin_host) {
      servePlugin(s, std::make_shared<EchoFactory>());
    } else {
      testing::installEcho(s);
    }
  });
  ASSERT_TRUE(h.status().ok());
  h.runSync([] { t_count = true; });  // the base loop too
  std::vector<int> fds;
  for (int i = 0; i < 8; ++i) fds.push_back(testing::connectBlocking(h.address()));
  const uint64_t n = allocationsDuringPingpong(h, fds, GetParam().size, 250);
  EXPECT_EQ(n, 0u) << "allocations on the server's threads during 2000 echoed messages";
  for (int fd : fds) ::close(fd);
}

INSTANTIATE_TEST_SUITE_P(
    Paths, SteadyEchoAllocationTest,
    ::testing::Values(Case{"Callback_Oneshot_16B", false, EpollMode::kOneshot, 16},
                      Case{"Callback_Level_4KiB", false, EpollMode::kLevel, 4096},
                      Case{"PluginHost_Oneshot_16B", true, EpollMode::kOneshot, 16},
                      Case{"PluginHost_Edge_64KiB", true, EpollMode::kEdge, 65536}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace plexus
