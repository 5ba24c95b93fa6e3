// Slowloris: 1,000 connections that each send one byte every 2 s, against plexus-server
// --idle-timeout 1. Every one of them is closed by the server about 1 s after its last byte (never
// before: a byte is activity), each having had its bytes echoed first; meanwhile a few ordinary
// clients keep doing echo round trips, byte-exact, without stalling.

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "soak/soak_support.h"
#include "support/test_util.h"

namespace plexus::testing::soak {
namespace {

constexpr int kSlowClients = 1000;
constexpr auto kByteInterval = seconds(2);
constexpr double kIdleTimeoutSeconds = 1.0;
constexpr int kEchoClients = 4;

// The slow clients, all on one thread: opens them in bursts of 50 (so the first are watched while
// the last connect), sends each its first byte at once and one more every 2 s while it stays open,
// checks each echoed byte, and notes when the server closes it.
class SlowClients {
 public:
  SlowClients(uint16_t port, int count) : port_(port), clients_(static_cast<size_t>(count)) {}

  // Runs until every client has been closed by the server, or `timeout`. "" or what went wrong.
  std::string run(milliseconds timeout) {
    const auto deadline = SteadyClock::now() + timeout;
    size_t opened = 0, open = 0;
    std::vector<pollfd> pfds;
    std::vector<size_t> index;
    char buf[64];
    while (opened < clients_.size() || open > 0) {
      auto now = SteadyClock::now();
      if (now > deadline) {
        return std::to_string(open) + " of " + std::to_string(clients_.size()) +
               " slow clients still open after " + std::to_string(timeout.count()) + " ms (" +
               std::to_string(clients_.size() - opened) + " never opened)";
      }
      for (size_t burst = 0; burst < 50 && opened < clients_.size(); ++burst, ++opened) {
        Slow& c = clients_[opened];
        c.fd = connectFrom(port_, 10 + static_cast<int>(opened % 8));
        if (c.fd < 0) return "slow client " + std::to_string(opened) + ": connect: " + std::strerror(errno);
        setNonBlocking(c.fd);
        ++open;
        if (std::string e = sendByte(opened, SteadyClock::now()); !e.empty()) return e;
      }
      pfds.clear();
      index.clear();
      auto next_due = now + milliseconds(50);
      for (size_t i = 0; i < opened; ++i) {
        if (clients_[i].fd < 0) continue;
        pfds.push_back({clients_[i].fd, POLLIN, 0});
        index.push_back(i);
        next_due = std::min(next_due, clients_[i].next_send);
      }
      const int wait_ms = opened < clients_.size() ? 0 : child::msLeft(next_due);
      if (::poll(pfds.data(), pfds.size(), wait_ms) < 0 && errno != EINTR) {
        return std::string("poll: ") + std::strerror(errno);
      }
      now = SteadyClock::now();
      for (size_t k = 0; k < pfds.size(); ++k) {
        const size_t i = index[k];
        Slow& c = clients_[i];
        if (pfds[k].revents & (POLLIN | POLLHUP | POLLERR)) {
          ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
          if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
          if (n < 0) {
            return "slow client " + std::to_string(i) + ": recv: " + std::strerror(errno);
          }
          for (ssize_t b = 0; b < n; ++b) {
            if (c.echoed >= c.sent || buf[b] != byteOf(i, c.echoed)) {
              return "slow client " + std::to_string(i) + ": echo differs at byte " +
                     std::to_string(c.echoed);
            }
            ++c.echoed;
          }
          if (n == 0) {  // closed by the server: check it echoed every byte first
            if (c.echoed != c.sent) {
              return "slow client " + std::to_string(i) + ": EOF after " +
                     std::to_string(c.echoed) + " of " + std::to_string(c.sent) + " bytes";
            }
            c.closed_after = std::chrono::duration<double>(now - c.last_sent).count();
            ::close(c.fd);
            c.fd = -1;
            --open;
            last_closed_ = now;
            continue;
          }
        }
        if (now >= c.next_send) {
          if (std::string e = sendByte(i, now); !e.empty()) return e;
        }
      }
    }
    return "";
  }

  // After run(): per client, seconds from its last byte to the server's close.
  std::vector<double> closeDelays() const {
    std::vector<double> d;
    for (const Slow& c : clients_) d.push_back(c.closed_after);
    return d;
  }
  // The most bytes any client sent (1 when every one was closed before its second byte was due).
  size_t maxBytesSent() const {
    size_t m = 0;
    for (const Slow& c : clients_) m = std::max(m, c.sent);
    return m;
  }
  SteadyClock::time_point lastClosed() const { return last_closed_; }

 private:
  struct Slow {
    int fd = -1;
    size_t sent = 0;
    size_t echoed = 0;
    SteadyClock::time_point last_sent;
    SteadyClock::time_point next_send;
    double closed_after = -1;
  };

  static char byteOf(size_t client, size_t k) { return static_cast<char>('a' + (client * 7 + k) % 26); }

  std::string sendByte(size_t i, SteadyClock::time_point now) {
    Slow& c = clients_[i];
    const char b = byteOf(i, c.sent);
    c.last_sent = now;
    if (::send(c.fd, &b, 1, MSG_NOSIGNAL) != 1) {
      return "slow client " + std::to_string(i) + ": send: " + std::strerror(errno);
    }
    ++c.sent;
    c.next_send = now + kByteInterval;
    return "";
  }

  uint16_t port_;
  std::vector<Slow> clients_;
  SteadyClock::time_point last_closed_;
};

// An ordinary client: round trips of 1-2048 random bytes, one every 5 ms, each checked byte for
// byte, on a new connection every 50 round trips; until told to stop.
struct EchoStats {
  std::atomic<size_t> round_trips{0};  // the test waits on it while the client runs
  size_t during_storm = 0;
  std::vector<double> storm_rtt_ms;  // round trips that ended during the storm
  std::string error;
};

void echoClient(uint16_t port, int id, const std::atomic<bool>& stop,
                const std::atomic<bool>& storm, EchoStats* stats) {
  std::mt19937_64 rng(static_cast<uint64_t>(id) + 1);
  const std::string pool = randomBytes(4096, static_cast<uint64_t>(id) + 77);
  while (!stop.load()) {
    int fd = connectFrom(port, 40 + id, milliseconds(5000));
    if (fd < 0) {
      stats->error = std::string("connect: ") + std::strerror(errno);
      return;
    }
    for (int r = 0; r < 50 && !stop.load(); ++r) {
      const size_t size = std::uniform_int_distribution<size_t>(1, 2048)(rng);
      const std::string msg = pool.substr(rng() % (pool.size() - size), size);
      const auto t0 = SteadyClock::now();
      const bool in_storm = storm.load();
      if (!writeAll(fd, msg) || readExactly(fd, size) != msg) {
        stats->error = "round trip " + std::to_string(stats->round_trips.load()) + " of " +
                       std::to_string(size) + " bytes: no exact echo within 5 s";
        ::close(fd);
        return;
      }
      const double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
      ++stats->round_trips;
      if (in_storm && storm.load()) {
        ++stats->during_storm;
        stats->storm_rtt_ms.push_back(ms);
      }
      std::this_thread::sleep_for(milliseconds(5));  // pacing: an ordinary client, not a flood
    }
    ::close(fd);
  }
}

TEST(SlowlorisTest, IdleTimeoutClosesAThousandSlowClientsAndEchoGoesOn) {
  ASSERT_GE(raiseFdLimit(4096), 2 * static_cast<size_t>(kSlowClients) + 100)
      << "RLIMIT_NOFILE too low for " << kSlowClients << " connections";
  ServerProcess server({"--threads", "2", "--idle-timeout", "1"});
  ASSERT_TRUE(server.waitUntilListening()) << server.log();
  const int baseline_fds = server.fdCount();

  std::atomic<bool> stop{false}, storm{false};
  std::vector<EchoStats> stats(kEchoClients);
  std::vector<std::thread> echoers;
  for (int i = 0; i < kEchoClients; ++i) {
    echoers.emplace_back(echoClient, server.port(), i, std::cref(stop), std::cref(storm),
                         &stats[static_cast<size_t>(i)]);
  }
  ASSERT_TRUE(waitUntil([&] {
    for (const EchoStats& s : stats) {
      if (s.round_trips.load() == 0) return false;
    }
    return true;
  })) << "the echo clients made no round trip";

  SlowClients slow(server.port(), kSlowClients);
  const auto storm_start = SteadyClock::now();
  storm.store(true);
  const std::string storm_error = slow.run(milliseconds(kAddressSanitizer ? 120000 : 60000));
  storm.store(false);
  const double storm_seconds = secondsSince(storm_start);
  stop.store(true);
  for (std::thread& t : echoers) t.join();
  ASSERT_EQ(storm_error, "") << server.log().substr(0, 2000);

  std::vector<double> delays = slow.closeDelays();
  const double slack = kAddressSanitizer ? 4.0 : 2.0;
  std::printf("%d slow clients, one byte every %lld s, --idle-timeout 1: all closed in %.2f s\n",
              kSlowClients, static_cast<long long>(kByteInterval.count()), storm_seconds);
  std::printf("  close after the last byte: min %.3f  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f s"
              " (bound %.1f-%.1f s); most bytes one sent: %zu\n",
              percentile(delays, 0), percentile(delays, 0.5), percentile(delays, 0.9),
              percentile(delays, 0.99), percentile(delays, 1), kIdleTimeoutSeconds - 0.01,
              kIdleTimeoutSeconds + slack, slow.maxBytesSent());
  for (size_t i = 0; i < delays.size(); ++i) {
    // Never before the idle timeout (the client's clock starts before its byte leaves, the
    // server's once it has read it); a timer that fires late gets the slack.
    ASSERT_GE(delays[i], kIdleTimeoutSeconds - 0.01) << "slow client " << i;
    ASSERT_LE(delays[i], kIdleTimeoutSeconds + slack) << "slow client " << i;
  }
  EXPECT_TRUE(server.waitForLog(" idle for ", kSlowClients, milliseconds(10000)))
      << server.logCount(" idle for ") << " idle closes logged";

  for (int i = 0; i < kEchoClients; ++i) {
    const EchoStats& s = stats[static_cast<size_t>(i)];
    std::printf("  echo client %d: %zu round trips, %zu during the storm: p50 %.2f  p99 %.2f  "
                "max %.2f ms\n",
                i, s.round_trips.load(), s.during_storm, percentile(s.storm_rtt_ms, 0.5),
                percentile(s.storm_rtt_ms, 0.99), percentile(s.storm_rtt_ms, 1));
    EXPECT_EQ(s.error, "") << "echo client " << i;
    // About one round trip per 5 ms: over a storm of a second or more, many; a client stalled
    // for a whole idle timeout would have been closed.
    EXPECT_GE(s.during_storm, 20u) << "echo client " << i;
    EXPECT_LT(percentile(s.storm_rtt_ms, 1), kIdleTimeoutSeconds * 1000) << "echo client " << i;
  }
  std::fflush(stdout);

  int fds = -1;
  EXPECT_TRUE(server.waitForFdCount(baseline_fds, milliseconds(10000), &fds))
      << fds << " fds open, " << baseline_fds << " before the storm";
  EXPECT_EQ(server.stop(), 0) << server.log().substr(0, 2000);
}

}  // namespace
}  // namespace plexus::testing::soak
