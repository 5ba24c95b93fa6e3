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

// What the benchmarks' dispatch callback saw: the last fd and how many calls.
struct Seen {
  int fd = -1;
  int calls = 0;
  static void record(void* /*ctx*/, int fd, uint32_t /*events*/, void* arg) {
    auto* s = static_cast<Seen*>(arg);
    s->fd = fd;
    ++s->calls;
  }
};

// A handler that reads what its fd holds (into a small buffer), as a connection would.
struct Reader {
  char buf[64];
  int fd = -1;
  int calls = 0;
  ssize_t last = 0;
  static void read(void* /*ctx*/, int fd, uint32_t /*events*/, void* arg) {
    auto* r = static_cast<Reader*>(arg);
    r->fd = fd;
    ++r->calls;
    r->last = ::read(fd, r->buf, sizeof r->buf);
  }
};

void reportCtlCalls(benchmark::State& state, uint64_t before, uint64_t after) {
  state.counters["ctl/iter"] = benchmark::Counter(static_cast<double>(after - before),
                                                  benchmark::Counter::kAvgIterations);
}

// dispatch(0) with nothing ready: the cost of asking, which grows with the registered fds for poll
// and select.
void BM_EngineIdleWait(benchmark::State& state, const char* name, EpollMode mode) {
  Fixture fx(state, engineOptions(name, mode), static_cast<int>(state.range(0)));
  if (!fx.ok()) return;
  Seen seen;
  for (auto _ : state) {
    absl::StatusOr<int> n = fx.engine().dispatch(0, &Seen::record, &seen);
    if (!n.ok() || *n != 0) {
      state.SkipWithError("an idle wait reported events");
      break;
    }
  }
}

// One fd kept readable (its byte is never read): dispatch(0) hands it over and re-arms it after
// the call (oneshot: one epoll_ctl MOD; others: nothing). Edge-triggered epoll is not here: it
// reports pending data once, not on every wait; see BM_EngineEventRoundTrip.
void BM_EngineReadyWait(benchmark::State& state, const char* name, EpollMode mode) {
  Fixture fx(state, engineOptions(name, mode), static_cast<int>(state.range(0)));
  if (!fx.ok()) return;
  const char byte = 'x';
  if (::write(fx.peerFd(), &byte, 1) != 1) {
    state.SkipWithError("write failed");
    return;
  }
  Seen seen;
  const uint64_t ctl_before = fx.engine().controlCalls();
  for (auto _ : state) {
    seen.calls = 0;
    absl::StatusOr<int> n = fx.engine().dispatch(0, &Seen::record, &seen);
    if (!n.ok() || *n != 1 || seen.calls != 1 || seen.fd != fx.readyFd()) {
      state.SkipWithError("dispatch did not hand over the one ready fd");
      break;
    }
  }
  reportCtlCalls(state, ctl_before, fx.engine().controlCalls());
}

// A whole event: the peer writes 1 byte, dispatch(0) hands the fd to a handler that reads the
// byte, then re-arms it. Includes a write(2) and a read(2) for every engine. The read is short (1
// byte into 64), which tells an edge-triggered reader the socket is drained without a read that
// hits EAGAIN.
void BM_EngineEventRoundTrip(benchmark::State& state, const char* name, EpollMode mode) {
  Fixture fx(state, engineOptions(name, mode), static_cast<int>(state.range(0)));
  if (!fx.ok()) return;
  Reader reader;
  const uint64_t ctl_before = fx.engine().controlCalls();
  const char byte = 'x';
  for (auto _ : state) {
    if (::write(fx.peerFd(), &byte, 1) != 1) {
      state.SkipWithError("write failed");
      break;
    }
    reader.calls = 0;
    absl::StatusOr<int> n = fx.engine().dispatch(0, &Reader::read, &reader);
    if (!n.ok() || *n != 1 || reader.calls != 1 || reader.fd != fx.readyFd() || reader.last != 1) {
      state.SkipWithError("dispatch did not hand over the one ready fd, or its read failed");
      break;
    }
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
