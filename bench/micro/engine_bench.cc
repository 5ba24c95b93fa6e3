// Engine dispatch cost per engine, at 10 and 1000 registered fds.
//
// The registered fds are both ends of fds/2 socketpairs, all watched for reading (so 1000 fds stay
// below select's FD_SETSIZE). The ready fd is the last one registered: poll and select scan every
// fd before they reach it, epoll hands it over directly.

#include <sys/socket.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "plexus/engine.h"

namespace {

using plexus::EngineOptions;
using plexus::EpollMode;

constexpr double kMinTime = 0.1;

// `count` registered fds (count/2 socketpairs) on a fresh engine. Owns and closes the fds, after
// removing them from the engine.
class Fixture {
 public:
  Fixture(benchmark::State& state, const EngineOptions& options, int count) {
    auto engine = plexus::makeEngine(options);
    if (!engine.ok()) {
      state.SkipWithError(engine.status().ToString().c_str());
      return;
    }
    engine_ = *std::move(engine);
    for (int i = 0; i < count / 2; ++i) {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        state.SkipWithError("socketpair failed (raise ulimit -n?)");
        return;
      }
      for (int fd : sv) {
        fds_.push_back(fd);
        absl::Status st = engine_->add(fd, plexus::kEventRead, &fds_);
        if (!st.ok()) {
          state.SkipWithError(st.ToString().c_str());
          return;
        }
        ++registered_;
      }
    }
    ok_ = true;
  }
  ~Fixture() {
    for (size_t i = 0; i < fds_.size(); ++i) {
      if (i < registered_) (void)engine_->remove(fds_[i]);
      ::close(fds_[i]);
    }
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  bool ok() const { return ok_; }
  plexus::Engine& engine() { return *engine_; }
  // The last registered fd, and its peer: writing to the peer makes it readable.
  int readyFd() const { return fds_.back(); }
  int peerFd() const { return fds_[fds_.size() - 2]; }

 private:
  std::unique_ptr<plexus::Engine> engine_;
  std::vector<int> fds_;
  size_t registered_ = 0;
  bool ok_ = false;
};

EngineOptions engineOptions(const char* name, EpollMode mode) {
  EngineOptions options;
  options.name = name;
  options.epoll_mode = mode;
  return options;
}

void reportCtlCalls(benchmark::State& state, uint64_t before, uint64_t after) {
  state.counters["ctl/iter"] = benchmark::Counter(static_cast<double>(after - before),
                                                  benchmark::Counter::kAvgIterations);
}

// wait(0) with nothing ready: the cost of asking, which grows with the registered fds for poll and
// select.
void BM_EngineIdleWait(benchmark::State& state, const char* name, EpollMode mode) {
  Fixture fx(state, engineOptions(name, mode), static_cast<int>(state.range(0)));
  if (!fx.ok()) return;
  std::vector<plexus::ReadyEvent> ready;
  for (auto _ : state) {
    absl::StatusOr<int> n = fx.engine().wait(0, &ready);
    if (!n.ok() || *n != 0) {
      state.SkipWithError("an idle wait reported events");
      break;
    }
  }
}

// One fd kept readable (its byte is never read): wait(0) reports it, then rearm() as the loop does
// after handling it (oneshot: one epoll_ctl MOD; others: nothing). Edge-triggered epoll is not here:
// it reports pending data once, not on every wait; see BM_EngineEventRoundTrip.
void BM_EngineReadyWait(benchmark::State& state, const char* name, EpollMode mode) {
  Fixture fx(state, engineOptions(name, mode), static_cast<int>(state.range(0)));
  if (!fx.ok()) return;
  const char byte = 'x';
  if (::write(fx.peerFd(), &byte, 1) != 1) {
    state.SkipWithError("write failed");
    return;
  }
  std::vector<plexus::ReadyEvent> ready;
  const uint64_t ctl_before = fx.engine().controlCalls();
  for (auto _ : state) {
    absl::StatusOr<int> n = fx.engine().wait(0, &ready);
    if (!n.ok() || *n != 1 || ready[0].fd != fx.readyFd()) {
      state.SkipWithError("wait did not report the one ready fd");
      break;
    }
    fx.engine().rearm(ready[0].fd, plexus::kEventRead, ready[0].ctx);
  }
  reportCtlCalls(state, ctl_before, fx.engine().controlCalls());
}

// A whole event: the peer writes 1 byte, wait(0) reports the fd, the handler reads the byte, then
// rearm(). Includes a write(2) and a read(2) for every engine. The read is short (1 byte into 64),
// which tells an edge-triggered reader the socket is drained without a read that hits EAGAIN.
void BM_EngineEventRoundTrip(benchmark::State& state, const char* name, EpollMode mode) {
  Fixture fx(state, engineOptions(name, mode), static_cast<int>(state.range(0)));
  if (!fx.ok()) return;
  std::vector<plexus::ReadyEvent> ready;
  const uint64_t ctl_before = fx.engine().controlCalls();
  char buf[64];
  for (auto _ : state) {
    buf[0] = 'x';
    if (::write(fx.peerFd(), buf, 1) != 1) {
      state.SkipWithError("write failed");
      break;
    }
    absl::StatusOr<int> n = fx.engine().wait(0, &ready);
    if (!n.ok() || *n != 1 || ready[0].fd != fx.readyFd()) {
      state.SkipWithError("wait did not report the one ready fd");
      break;
    }
    if (::read(ready[0].fd, buf, sizeof buf) != 1) {
      state.SkipWithError("read failed");
      break;
    }
    fx.engine().rearm(ready[0].fd, plexus::kEventRead, ready[0].ctx);
  }
  reportCtlCalls(state, ctl_before, fx.engine().controlCalls());
}

// Registered here rather than with BENCHMARK_CAPTURE so that every family runs for every engine
// from one table; names read BM_<family>/<engine>/fds:<n>.
int registerEngineBenchmarks() {
  using Bench = void (*)(benchmark::State&, const char*, EpollMode);
  struct Family {
    const char* name;
    Bench fn;
    bool with_edge;
  };
  struct Case {
    const char* label;
    const char* engine;
    EpollMode mode;
  };
  const Family families[] = {
      {"BM_EngineIdleWait", BM_EngineIdleWait, true},
      {"BM_EngineReadyWait", BM_EngineReadyWait, false},
      {"BM_EngineEventRoundTrip", BM_EngineEventRoundTrip, true},
  };
  const Case cases[] = {
      {"epoll_oneshot", "epoll", EpollMode::kOneshot},
      {"epoll_level", "epoll", EpollMode::kLevel},
      {"epoll_edge", "epoll", EpollMode::kEdge},
      {"poll", "poll", EpollMode::kOneshot},
      {"select", "select", EpollMode::kOneshot},
  };
  for (const Family& f : families) {
    for (const Case& c : cases) {
      if (!f.with_edge && std::string(c.engine) == "epoll" && c.mode == EpollMode::kEdge) continue;
      const std::string name = std::string(f.name) + "/" + c.label;
      benchmark::RegisterBenchmark(name.c_str(), f.fn, c.engine, c.mode)
          ->ArgName("fds")
          ->Arg(10)
          ->Arg(1000)
          ->MinTime(kMinTime);
    }
  }
  return 0;
}

[[maybe_unused]] const int kEngineBenchmarks = registerEngineBenchmarks();

}  // namespace
