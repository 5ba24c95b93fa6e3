// Timers: runAfter() + cancel() on the loop thread, with 10 or 10000 other timers pending.

#include <benchmark/benchmark.h>

#include <chrono>
#include <vector>

#include "plexus/event_loop.h"

namespace {

using plexus::EventLoop;
using plexus::TimerId;

constexpr double kMinTime = 0.1;
constexpr std::chrono::hours kFar{1};

// The loop is built on the benchmark thread and never run, so both calls run inline (no queue) and
// no timer fires. The pending timers and the new one are an hour out; the new one is never the
// earliest, so the timerfd is not re-armed: this is the bookkeeping cost (ordered set + hash map,
// one std::function each).
void BM_TimerAddCancel(benchmark::State& state) {
  const auto pending = static_cast<size_t>(state.range(0));
  EventLoop loop;
  std::vector<TimerId> ids;
  ids.reserve(pending);
  for (size_t i = 0; i < pending; ++i) ids.push_back(loop.runAfter(kFar, [] {}));
  for (auto _ : state) {
    TimerId id = loop.runAfter(kFar, [] {});
    loop.cancel(id);
  }
  for (TimerId id : ids) loop.cancel(id);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TimerAddCancel)->ArgName("pending")->Arg(10)->Arg(10000)->MinTime(kMinTime);

}  // namespace
