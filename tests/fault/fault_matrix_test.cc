// The fault matrix: plexus-server (echo plugin) on every engine, with 1 and 2 sub-reactors, under
// the fault shim, while 16 connections echo random messages. Each case makes one kind of syscall
// fail (or write short) in the middle of the traffic and checks that the server copes:
//   - it does not crash (still running when stopped) and exits 0 on SIGTERM;
//   - no connection hangs (each one's progress is watched with a deadline) and every byte echoed
//     is exact;
//   - a single failed read, send, epoll_ctl or accept closes at most the one connection it
//     concerned; EINTR, short writes, wait and eventfd faults close none;
//   - all its connection fds are closed once the clients have gone, and a fresh connection is
//     served afterwards;
//   - and the fault really fired (the shim's log), or the case proves nothing.
// Also: a wait that fails for good must make the server exit non-zero, with an error line, within
// seconds and without spinning; and a bug report's scenario (oneshot re-arms failing with ENOMEM
// at call 40 and every 61st after) must close the connections it hits and leave the rest exact.
// Every wait is bounded: a hang fails the case within seconds.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fault/fault_test_util.h"

namespace plexus::testing::fault {
namespace {

// How many connections a case may lose: the one a failed call concerned, or none.
enum class Affected { kNone, kAtMostOne };

// When counting starts. kTraffic: once 8 connections are a third through their rounds, before 8
// more connect (so accepts, registrations and wakeups happen after it too). kAllConnected: once
// those 8 have done 2 rounds too (every connection established: an epoll_ctl about a socket is
// then a oneshot re-arm). kIdle: after the traffic, with the server idle, just before the fresh
// connection; a lost wakeup shows only then, since a busy loop wakes anyway.
enum class ArmAt { kTraffic, kAllConnected, kIdle };

enum class Engines { kAll, kEpoll, kEpollOneshot };

struct FaultCase {
  const char* id;      // for the test name
  const char* faults;  // PLEXUS_FAULTS
  const char* what;
  Affected affected;
  ArmAt arm_at;
  Engines engines;
};

// Call numbers count from the arm point.
const FaultCase kFaults[] = {
    {"accept4_ECONNABORTED", "accept4:ECONNABORTED:3", "the 3rd accept4 fails with ECONNABORTED",
     Affected::kAtMostOne, ArmAt::kTraffic, Engines::kAll},
    {"accept4_EMFILE", "accept4:EMFILE:3", "the 3rd accept4 fails with EMFILE",
     Affected::kAtMostOne, ArmAt::kTraffic, Engines::kAll},
    {"accept4_ENOMEM", "accept4:ENOMEM:3", "the 3rd accept4 fails with ENOMEM",
     Affected::kAtMostOne, ArmAt::kTraffic, Engines::kAll},
    {"read_ECONNRESET", "%read@socket:ECONNRESET:40",
     "the 40th read on a socket fails with ECONNRESET", Affected::kAtMostOne, ArmAt::kTraffic,
     Engines::kAll},
    {"read_EIO", "%read@socket:EIO:40", "the 40th read on a socket fails with EIO",
     Affected::kAtMostOne, ArmAt::kTraffic, Engines::kAll},
    {"read_EINTR", "%read@socket:EINTR:40..55", "reads 40-55 on sockets fail with EINTR",
     Affected::kNone, ArmAt::kTraffic, Engines::kAll},
    {"send_EPIPE", "%write@socket:EPIPE:40", "the 40th write to a socket fails with EPIPE",
     Affected::kAtMostOne, ArmAt::kTraffic, Engines::kAll},
    {"send_ENOBUFS", "%write@socket:ENOBUFS:40", "the 40th write to a socket fails with ENOBUFS",
     Affected::kAtMostOne, ArmAt::kTraffic, Engines::kAll},
    {"send_EINTR", "%write@socket:EINTR:40..55", "writes 40-55 to sockets fail with EINTR",
     Affected::kNone, ArmAt::kTraffic, Engines::kAll},
    {"send_short", "%write@socket:short=1-7:40..239",
     "writes 40-239 to sockets take 1-7 bytes only", Affected::kNone, ArmAt::kTraffic,
     Engines::kAll},
    {"epoll_ctl_ENOMEM", "epoll_ctl@socket:ENOMEM:3",
     "the 3rd epoll_ctl about a socket fails with ENOMEM", Affected::kAtMostOne, ArmAt::kTraffic,
     Engines::kEpoll},
    {"epoll_ctl_rearm_ENOMEM", "epoll_ctl@socket:ENOMEM:20",
     "the 20th epoll_ctl about a socket (a re-arm) fails with ENOMEM", Affected::kAtMostOne,
     ArmAt::kAllConnected, Engines::kEpollOneshot},
    {"eventfd_rearm_ENOMEM", "epoll_ctl@eventfd:ENOMEM:1",
     "the 1st epoll_ctl about the wakeup eventfd (a re-arm) fails with ENOMEM", Affected::kNone,
     ArmAt::kTraffic, Engines::kEpollOneshot},
    {"wait_EINTR", "%wait:EINTR:20", "the 20th wait fails with EINTR", Affected::kNone,
     ArmAt::kTraffic, Engines::kAll},
    {"wait_ENOMEM", "%wait:ENOMEM:20..22", "waits 20-22 fail with ENOMEM", Affected::kNone,
     ArmAt::kTraffic, Engines::kAll},
    {"eventfd_read_EINTR", "read@eventfd:EINTR:1", "the 1st eventfd read fails with EINTR",
     Affected::kNone, ArmAt::kIdle, Engines::kAll},
    {"eventfd_write_EINTR", "write@eventfd:EINTR:1", "the 1st eventfd write fails with EINTR",
     Affected::kNone, ArmAt::kIdle, Engines::kAll},
};

struct EngineCase {
  const char* id;
  const char* engine;
  const char* mode;
  const char* description;
};

const EngineCase kEngines[] = {
    {"epoll_oneshot", "epoll", "oneshot", "epoll (oneshot)"},
    {"epoll_level", "epoll", "level", "epoll (level)"},
    {"epoll_edge", "epoll", "edge", "epoll (edge)"},
    {"poll", "poll", "oneshot", "poll"},
    {"select", "select", "oneshot", "select"},
    {"uring", "uring", "oneshot", "uring"},
};

// io_uring receives, sends, accepts and waits in the ring (io_uring_enter, which liburing makes
// without libc): the shim's read, write, accept4 and wait faults never reach it, and it makes no
// epoll_ctl. Its eventfd faults do; its own failure paths are tested in
// tests/net/uring_connection_test.cc with real peers (resets, EOFs, peers that never read).
bool reachesEngine(const EngineCase& e, const FaultCase& f) {
  if (std::string(e.engine) != "uring") return true;
  const std::string spec = f.faults;
  for (const char* prefix : {"%read", "%write", "%wait", "epoll_ctl", "accept4"}) {
    if (spec.rfind(prefix, 0) == 0) return false;
  }
  return true;
}

struct MatrixParam {
  EngineCase engine;
  int threads;
  FaultCase fault;
};

void PrintTo(const MatrixParam& p, std::ostream* os) {
  *os << p.engine.description << ", " << p.threads << " sub-reactor" << (p.threads > 1 ? "s" : "")
      << ": " << p.fault.what << " (PLEXUS_FAULTS=" << p.fault.faults << ", armed "
      << (p.fault.arm_at == ArmAt::kTraffic        ? "mid-traffic"
          : p.fault.arm_at == ArmAt::kAllConnected ? "mid-traffic, all connected"
                                                   : "when idle")
      << ")";
}

void PrintTo(const EngineCase& e, std::ostream* os) { *os << e.description; }

std::vector<MatrixParam> matrix() {
  std::vector<MatrixParam> out;
  for (const EngineCase& e : kEngines) {
    for (int threads : {1, 2}) {
      for (const FaultCase& f : kFaults) {
        const bool epoll = std::string(e.engine) == "epoll";
        if (f.engines == Engines::kEpoll && !epoll) continue;
        if (f.engines == Engines::kEpollOneshot && (!epoll || std::string(e.mode) != "oneshot")) {
          continue;
        }
        if (!reachesEngine(e, f)) continue;
        out.push_back(MatrixParam{e, threads, f});
      }
    }
  }
  return out;
}

std::string matrixName(const ::testing::TestParamInfo<MatrixParam>& info) {
  return absl::StrCat(info.param.engine.id, "_t", info.param.threads, "_", info.param.fault.id);
}

uint64_t seedOf(const std::string& name) { return std::hash<std::string>{}(name); }

constexpr int kGroup = 8;  // connections before the arm point, and again after it
constexpr int kRounds = 24;

ServerSpec specOf(const EngineCase& e, int threads) {
  return ServerSpec{e.engine, e.mode, threads};
}

// A connection echoing a few messages, from connect to the last byte, within the stall timeout.
::testing::AssertionResult servesFreshConnection(const InetAddress& addr, uint64_t seed) {
  LoadOptions options;
  options.rounds = 4;
  EchoLoad fresh(addr, seed, options);
  fresh.connect(1);
  fresh.run();
  if (fresh.outcome(0) == Outcome::kDone) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "a fresh connection was not served: " << fresh.summary();
}

// Every connection's server side closed once the clients have gone: back to the count before.
::testing::AssertionResult noFdLeak(FaultyServer& server, int baseline) {
  int last = -1;
  if (server.waitFdCountAtMost(baseline, milliseconds(3000 * kSlowdown), &last)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "server fds: " << baseline << " before the connections, still " << last
         << " 3 s after every client closed (connections leaked)";
}

// Stops the server with SIGTERM: it must still be running, and then exit 0.
::testing::AssertionResult stopsCleanly(FaultyServer& server) {
  Process& p = server.process();
  const int early = p.wait(milliseconds(0));
  if (early != -1) {
    return ::testing::AssertionFailure()
           << "the server died during the test (status " << early << ")";
  }
  p.signal(SIGTERM);
  const int status = p.wait(milliseconds(6000 * kSlowdown));
  if (status == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << (status == -1 ? std::string("no exit 6 s after SIGTERM")
                          : absl::StrCat("exit status ", status, " after SIGTERM"));
}

class FaultMatrixTest : public ::testing::TestWithParam<MatrixParam> {};

TEST_P(FaultMatrixTest, ServerSurvives) {
  const MatrixParam& p = GetParam();
  const FaultCase& f = p.fault;
  FaultyServer server(specOf(p.engine, p.threads), f.faults, /*arm_later=*/true);
  ASSERT_TRUE(server.ok()) << server.startError();
  const int baseline = server.fdCount();
  const uint64_t seed = seedOf(matrixName({p, 0}));

  LoadOptions options;
  options.rounds = kRounds;
  EchoLoad load(server.address(), seed, options);
  const std::vector<size_t> early = load.connect(kGroup);
  if (f.arm_at != ArmAt::kIdle) load.run([&] { return load.reached(early, kRounds / 3); });
  if (f.arm_at == ArmAt::kTraffic) server.arm();
  const std::vector<size_t> late = load.connect(kGroup);
  if (f.arm_at == ArmAt::kAllConnected) {
    load.run([&] { return load.reached(late, 2); });
    server.arm();
  }
  load.run();

  EXPECT_EQ(load.count(Outcome::kHung), 0) << load.summary() << "\n" << server.diagnostics();
  EXPECT_EQ(load.count(Outcome::kCorrupt), 0) << load.summary();
  EXPECT_EQ(load.count(Outcome::kConnectFailed), 0) << load.summary();
  const int closed = load.count(Outcome::kEof) + load.count(Outcome::kReset);
  EXPECT_LE(closed, f.affected == Affected::kNone ? 0 : 1)
      << "connections the server closed: " << load.summary() << "\n"
      << server.diagnostics();

  load.closeAll();
  EXPECT_TRUE(noFdLeak(server, baseline)) << server.diagnostics();

  std::unique_ptr<EchoLoad> idle_probes;
  if (f.arm_at == ArmAt::kIdle) {
    // Quiesce first: one connection served at a time on every loop, kept open, so that the work
    // the closes above queued (and its wakeups) is over before the count starts.
    idle_probes = std::make_unique<EchoLoad>(server.address(), seed + 1);
    for (int i = 0; i <= p.threads; ++i) {
      const std::vector<size_t> one = idle_probes->connect(1);
      idle_probes->run([&] { return idle_probes->reached(one, 1); });
      ASSERT_NE(idle_probes->outcome(one[0]), Outcome::kHung) << idle_probes->summary();
    }
    server.arm();
  }
  EXPECT_TRUE(servesFreshConnection(server.address(), seed + 2)) << server.diagnostics();
  idle_probes.reset();

  const std::vector<FaultRecord> fired = server.faults();
  EXPECT_FALSE(fired.empty()) << "the fault never fired: this case proved nothing\n"
                              << server.diagnostics();
  EXPECT_TRUE(stopsCleanly(server)) << server.diagnostics();
}

INSTANTIATE_TEST_SUITE_P(Matrix, FaultMatrixTest, ::testing::ValuesIn(matrix()), matrixName);

// ---- A wait that fails for good. ----------------------------------------------------------------

class PersistentWaitFailureTest : public ::testing::TestWithParam<EngineCase> {};

TEST_P(PersistentWaitFailureTest, ServerExitsNonZeroWithAnErrorLine) {
  FaultyServer server(specOf(GetParam(), 1), "%wait:EBADF:1+", /*arm_later=*/true);
  ASSERT_TRUE(server.ok()) << server.startError();
  server.arm();
  // The loops sit in their waits: a connection wakes the main loop and, handed over, the
  // sub-reactor, whose next waits then fail.
  EchoLoad poke(server.address(), 7);
  poke.connect(1);
  const double cpu_before = server.cpuSeconds();
  const auto start = Clock::now();
  const int status = server.process().wait(milliseconds(5000 * kSlowdown));
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = server.cpuSeconds() - cpu_before;
  ASSERT_NE(status, -1) << "still running " << seconds << " s after every wait began to fail, "
                        << "having used " << cpu << " s of CPU since\n"
                        << server.diagnostics();
  EXPECT_NE(status, 0);
  // Not spinning until it gives up: at most half a core on average (and a little to exit).
  const double cpu_until_exit = server.process().cpuSecondsAtExit() - cpu_before;
  EXPECT_LE(cpu_until_exit, 0.5 * seconds + 0.25 * kSlowdown)
      << "used " << cpu_until_exit << " s of CPU in the " << seconds << " s before it exited";
  const std::string err = server.process().stderrText();
  bool error_line = false;
  size_t pos = 0;
  while (pos < err.size()) {
    size_t end = err.find('\n', pos);
    if (end == std::string::npos) end = err.size();
    const std::string line = err.substr(pos, end - pos);
    const bool is_error = line.find("ERROR") != std::string::npos ||
                          line.find("FATAL") != std::string::npos ||
                          line.find("error") != std::string::npos;
    const bool about_wait = line.find("wait") != std::string::npos ||
                            line.find("poll") != std::string::npos ||
                            line.find("select") != std::string::npos;
    error_line = error_line || (is_error && about_wait);
    pos = end + 1;
  }
  EXPECT_TRUE(error_line) << "no error line about the wait on stderr:\n" << err;
}

// The engines whose wait the shim reaches (not io_uring's: see reachesEngine()).
std::vector<EngineCase> waitFaultEngines() {
  std::vector<EngineCase> out;
  for (const EngineCase& e : kEngines) {
    if (std::string(e.engine) != "uring") out.push_back(e);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Engines, PersistentWaitFailureTest, ::testing::ValuesIn(waitFaultEngines()),
                         [](const ::testing::TestParamInfo<EngineCase>& info) {
                           return std::string(info.param.id);
                         });

// ---- The bug report: oneshot re-arms failing now and then. --------------------------------------

class OneshotRearmBugReportTest : public ::testing::TestWithParam<int> {};

TEST_P(OneshotRearmBugReportTest, EachConnectionWhoseRearmFailedIsClosed) {
  const int threads = GetParam();
  FaultyServer server(ServerSpec{"epoll", "oneshot", threads}, "epoll_ctl:ENOMEM:40+61",
                      /*arm_later=*/false);
  ASSERT_TRUE(server.ok()) << server.startError();
  const int baseline = server.fdCount();
  LoadOptions options;
  options.rounds = 40;
  EchoLoad load(server.address(), 4061 + static_cast<uint64_t>(threads), options);
  load.connect(2 * kGroup);
  load.run();

  const size_t fired = server.faults().size();
  ASSERT_GT(fired, 0u) << "the fault never fired\n" << server.diagnostics();
  // A failed re-arm must end its connection (EOF or RST), never leave it hanging; each failure
  // can end one connection at most; everything echoed is exact.
  EXPECT_EQ(load.count(Outcome::kHung), 0) << load.summary() << "\n" << server.diagnostics();
  EXPECT_EQ(load.count(Outcome::kCorrupt), 0) << load.summary();
  const int closed = load.count(Outcome::kEof) + load.count(Outcome::kReset);
  EXPECT_LE(static_cast<size_t>(closed), fired) << load.summary() << "\n" << server.diagnostics();

  load.closeAll();
  EXPECT_TRUE(noFdLeak(server, baseline)) << server.diagnostics();
  // The faults go on: a fresh connection may be hit too, but never hangs, and one gets through.
  bool served = false;
  for (int attempt = 0; attempt < 3 && !served; ++attempt) {
    LoadOptions fresh_options;
    fresh_options.rounds = 4;
    EchoLoad fresh(server.address(), 100 + static_cast<uint64_t>(attempt), fresh_options);
    fresh.connect(1);
    fresh.run();
    ASSERT_NE(fresh.outcome(0), Outcome::kHung) << fresh.summary() << "\n" << server.diagnostics();
    served = fresh.outcome(0) == Outcome::kDone;
  }
  EXPECT_TRUE(served) << "no fresh connection served in 3 attempts";
  EXPECT_TRUE(stopsCleanly(server)) << server.diagnostics();
}

INSTANTIATE_TEST_SUITE_P(Threads, OneshotRearmBugReportTest, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& info) {
                           // Not "t" + std::to_string(): GCC 12 -O3 warns (-Wrestrict, falsely).
                           return absl::StrCat("t", info.param);
                         });

}  // namespace
}  // namespace plexus::testing::fault
