// AdminServer over real sockets: /metrics and /healthz, the HTTP edge cases, and a scrape loop from
// another thread while client threads push echo traffic through a TcpServer with 2 sub-loops. The
// counters must be consistent in every scrape (accepted >= open, totals never going back) and match
// the clients' bytes exactly at the end. Built into plexus_net_tests, which CI runs under TSan.

#include "plexus/admin_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "plexus/metrics.h"
#include "plexus/tcp_server.h"
#include "support/server_harness.h"
#include "support/test_util.h"

namespace plexus {
namespace {

struct Response {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;
};

// Reads one response (Content-Length framed) from a blocking socket; status 0 on EOF or timeout.
// `carry` keeps bytes read past it (a pipelined next response).
Response readResponse(int fd, std::string* carry, bool head_only = false) {
  Response r;
  std::string& buf = *carry;
  char chunk[16384];
  size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return r;
    buf.append(chunk, static_cast<size_t>(n));
  }
  r.head = buf.substr(0, end + 2);
  const size_t cl = r.head.find("Content-Length: ");
  const size_t length =
      (cl == std::string::npos || head_only) ? 0 : std::stoul(r.head.substr(cl + 16));
  while (buf.size() < end + 4 + length) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return r;
    buf.append(chunk, static_cast<size_t>(n));
  }
  r.body = buf.substr(end + 4, length);
  buf.erase(0, end + 4 + length);
  r.status = std::stoi(r.head.substr(9, 3));
  return r;
}

Response request(const InetAddress& addr, const std::string& text, bool head_only = false) {
  const int fd = testing::connectBlocking(addr);
  EXPECT_GE(fd, 0);
  EXPECT_TRUE(testing::writeAll(fd, text));
  std::string carry;
  Response r = readResponse(fd, &carry, head_only);
  ::close(fd);
  return r;
}

// name{labels} -> value, from the text format (comments skipped).
std::map<std::string, double> parseSamples(const std::string& text) {
  std::map<std::string, double> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    const std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

// The sum of the samples of `name` whose labels contain every one of `with` (e.g. "loop=\"0\"").
double sum(const std::map<std::string, double>& samples, const std::string& name,
           const std::vector<std::string>& with = {}) {
  double total = 0;
  for (const auto& [series, v] : samples) {
    if (series.compare(0, name.size(), name) != 0) continue;
    if (series.size() > name.size() && series[name.size()] != '{') continue;
    bool all = true;
    for (const std::string& w : with) all = all && series.find(w) != std::string::npos;
    if (all) total += v;
  }
  return total;
}

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AdminServerOptions o;
    o.listen_address = InetAddress(0, true);
    o.max_request_bytes = 1024;
    admin_ = std::make_unique<AdminServer>(&registry_, o);
    ASSERT_TRUE(admin_->start().ok());
    ASSERT_NE(admin_->listenAddress().port(), 0);
  }
  InetAddress addr() const { return admin_->listenAddress(); }

  MetricsRegistry registry_;
  std::unique_ptr<AdminServer> admin_;
};

TEST_F(AdminServerTest, MetricsAndHealth) {
  registry_.counter("demo_total", "A demo.", {{"k", "v"}})->add(42);
  const Response m = request(addr(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.head.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << m.head;
  EXPECT_EQ(m.body,
            "# HELP demo_total A demo.\n# TYPE demo_total counter\ndemo_total{k=\"v\"} 42\n");

  Response h = request(addr(), "GET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body, "ok\n");
  admin_->setServing(false);
  h = request(addr(), "GET /healthz?probe=1 HTTP/1.1\r\n\r\n");
  EXPECT_EQ(h.status, 503);
  EXPECT_EQ(h.body, "stopping\n");
}

TEST_F(AdminServerTest, ErrorsAndHead) {
  EXPECT_EQ(request(addr(), "GET /nope HTTP/1.1\r\n\r\n").status, 404);
  const Response post = request(addr(), "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(post.status, 405);
  EXPECT_NE(post.head.find("Allow: GET, HEAD"), std::string::npos);
  for (const char* bad :
       {"garbage\r\n\r\n", "GET /metrics\r\n\r\n", "GET metrics HTTP/1.1\r\n\r\n",
        "GET /metrics HTTP/2.0\r\n\r\n", "GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nContent-Length: x\r\n\r\n"}) {
    const Response r = request(addr(), bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_NE(r.head.find("Connection: close"), std::string::npos) << bad;
  }
  // A head past max_request_bytes (1024), complete or not: 431, then the close.
  const int fd = testing::connectBlocking(addr());
  ASSERT_TRUE(testing::writeAll(fd, "GET /metrics HTTP/1.1\r\nX-Long: " + std::string(2000, 'a')));
  std::string carry;
  EXPECT_EQ(readResponse(fd, &carry).status, 431);
  bool eof = false;
  testing::readUntilEof(fd, &eof);
  EXPECT_TRUE(eof);
  ::close(fd);

  const Response head = request(addr(), "HEAD /healthz HTTP/1.1\r\n\r\n", /*head_only=*/true);
  EXPECT_EQ(head.status, 200);
  EXPECT_NE(head.head.find("Content-Length: 3"), std::string::npos);
}

TEST_F(AdminServerTest, KeepAlivePipeliningAndClose) {
  const int fd = testing::connectBlocking(addr());
  // Three requests in one write (the second with a small body); the third asks for the close.
  ASSERT_TRUE(testing::writeAll(fd,
                                "GET /healthz HTTP/1.1\r\n\r\n"
                                "GET /nothing HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                                "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"));
  std::string carry;
  EXPECT_EQ(readResponse(fd, &carry).status, 200);
  EXPECT_EQ(readResponse(fd, &carry).status, 404);
  const Response last = readResponse(fd, &carry);
  EXPECT_EQ(last.status, 200);
  EXPECT_NE(last.head.find("Connection: close"), std::string::npos);
  bool eof = false;
  EXPECT_EQ(testing::readUntilEof(fd, &eof), "");
  EXPECT_TRUE(eof);
  ::close(fd);
  // HTTP/1.0 closes unless it asks to be kept alive.
  const int fd10 = testing::connectBlocking(addr());
  ASSERT_TRUE(testing::writeAll(fd10, "GET /healthz HTTP/1.0\r\n\r\n"));
  carry.clear();
  EXPECT_EQ(readResponse(fd10, &carry).status, 200);
  EXPECT_EQ(testing::readUntilEof(fd10, &eof), "");
  EXPECT_TRUE(eof);
  ::close(fd10);
}

// Echo load on 2 sub-loops from client threads; another thread scrapes over one keep-alive
// connection (and now and then a fresh one) the whole time.
TEST_F(AdminServerTest, ScrapesUnderLoadAreConsistentAndAddUp) {
  TcpServerOptions o;
  o.listen_address = InetAddress(0, true);
  o.threads = 2;
  o.metrics = &registry_;
  o.metric_labels = {{"plugin", "echo"}};
  auto server = std::make_unique<testing::ServerHarness>(o, testing::installEcho);
  ASSERT_TRUE(server->status().ok());
  const std::string listener = "listener=\"" + server->address().toIpPort() + "\"";

  // Each client makes at least kConnectionsEach connections, and goes on until the scraper has
  // scraped kMinScrapes times under load.
  constexpr int kClients = 4, kConnectionsEach = 6, kMessages = 40, kMinScrapes = 30;
  std::atomic<int> scrapes{0};
  std::atomic<bool> scraper_done{false};
  std::atomic<int> connections{0};
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<int> clients_left{kClients};
  std::atomic<bool> client_failed{false};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int k = 0; k < kConnectionsEach ||
                      (scrapes.load() < kMinScrapes && !scraper_done.load() && k < 1000);
           ++k) {
        const int fd = testing::connectBlocking(server->address());
        if (fd < 0) {
          client_failed = true;
          break;
        }
        for (int m = 0; m < kMessages; ++m) {
          const std::string msg =
              testing::randomBytes(1 + static_cast<size_t>((c * 131 + k * 17 + m * 7) % 3000),
                                   static_cast<uint64_t>(c * 1000000 + k * 1000 + m));
          if (!testing::writeAll(fd, msg) || testing::readExactly(fd, msg.size()) != msg) {
            client_failed = true;
            break;
          }
          bytes_sent += msg.size();
        }
        ::close(fd);
        ++connections;
      }
      --clients_left;
    });
  }

  double last_accepted = 0, last_in = 0, last_out = 0, last_closed = 0, last_wakeups = 0;
  std::string failure;
  std::thread scraper([&] {
    int fd = -1;
    std::string carry;
    auto scrape = [&](bool fresh) {
      if (fresh || fd < 0) {
        if (fd >= 0) ::close(fd);
        fd = testing::connectBlocking(addr());
        carry.clear();
      }
      if (!testing::writeAll(fd, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")) return Response{};
      return readResponse(fd, &carry);
    };
    while (clients_left.load() > 0 && failure.empty()) {
      const Response r = scrape(scrapes % 10 == 0);
      if (r.status != 200) {
        failure = "scrape " + std::to_string(scrapes) + " answered " + std::to_string(r.status);
        break;
      }
      ++scrapes;
      const auto s = parseSamples(r.body);
      const double accepted = sum(s, "plexus_connections_accepted_total", {listener});
      const double open = sum(s, "plexus_connections_open", {listener});
      const double closed = sum(s, "plexus_connections_closed_total", {listener});
      const double in = sum(s, "plexus_loop_bytes_received_total");
      const double out = sum(s, "plexus_loop_bytes_sent_total");
      const double wakeups = sum(s, "plexus_loop_wakeups_total");
      if (accepted < open || open < 0 || accepted < last_accepted || closed < last_closed ||
          in < last_in || out < last_out || wakeups < last_wakeups || out > in) {
        failure = "inconsistent scrape: accepted " + std::to_string(accepted) + " (was " +
                  std::to_string(last_accepted) + "), open " + std::to_string(open) +
                  ", closed " + std::to_string(closed) + " (was " + std::to_string(last_closed) +
                  "), in " + std::to_string(in) + " (was " + std::to_string(last_in) + "), out " +
                  std::to_string(out) + " (was " + std::to_string(last_out) + ")\n" + r.body;
        break;
      }
      last_accepted = accepted;
      last_closed = closed;
      last_in = in;
      last_out = out;
      last_wakeups = wakeups;
    }
    if (fd >= 0) ::close(fd);
    scraper_done = true;
  });
  for (std::thread& t : clients) t.join();
  scraper.join();
  EXPECT_TRUE(failure.empty()) << failure;
  EXPECT_FALSE(client_failed.load());
  EXPECT_GE(scrapes.load(), kMinScrapes);

  // Every connection closed by its client: the server's view settles on the exact totals.
  const double total = connections.load();
  std::map<std::string, double> s;
  EXPECT_TRUE(testing::waitUntil([&] {
    s = parseSamples(registry_.render());
    return sum(s, "plexus_connections_closed_total", {listener}) == total;
  })) << registry_.render();
  EXPECT_EQ(sum(s, "plexus_connections_accepted_total", {listener}), total);
  EXPECT_EQ(sum(s, "plexus_connections_open", {listener}), 0);
  EXPECT_EQ(sum(s, "plexus_connections_closed_total", {listener, "reason=\"peer_eof\""}), total);
  EXPECT_EQ(sum(s, "plexus_loop_bytes_received_total"), static_cast<double>(bytes_sent.load()));
  EXPECT_EQ(sum(s, "plexus_loop_bytes_sent_total"), static_cast<double>(bytes_sent.load()));
  // Both sub-loops served, and the per-loop series name them.
  EXPECT_GT(sum(s, "plexus_connections_accepted_total", {listener, "loop=\"0\""}), 0);
  EXPECT_GT(sum(s, "plexus_connections_accepted_total", {listener, "loop=\"1\""}), 0);
  EXPECT_GT(sum(s, "plexus_loop_syscalls_total", {"loop=\"main\"", "call=\"accept\""}), 0);
  EXPECT_GT(sum(s, "plexus_loop_handler_seconds_total", {"loop=\"0\""}), 0);
  // The server gone, its loops' series go with it (the scrape reads no freed loop).
  server.reset();
  s = parseSamples(request(addr(), "GET /metrics HTTP/1.1\r\n\r\n").body);
  EXPECT_EQ(sum(s, "plexus_loop_wakeups_total"), 0);
  EXPECT_EQ(sum(s, "plexus_connections_accepted_total", {listener}), total);
}

}  // namespace
}  // namespace plexus
