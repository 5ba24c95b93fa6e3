// EventLoop's task queue: queueInLoop() from another thread into a running loop, and runInLoop()
// on the loop thread itself.

#include <benchmark/benchmark.h>

#include <cstdint>

#include "absl/synchronization/notification.h"
#include "plexus/event_loop.h"
#include "plexus/event_loop_thread.h"

namespace {

using plexus::EventLoop;

constexpr double kMinTime = 0.1;

// One iteration: this thread queues `batch` tasks into a loop running on its own thread and blocks
// until the last one has run (tasks run in order, so then all have). batch:1 is a cross-thread
// round trip (queue, eventfd wake-up, run, notify back); batch:1000 is queue throughput, where most
// tasks find the loop awake. Real time: this thread sleeps while the loop works.
void BM_QueueInLoopCrossThread(benchmark::State& state) {
  const int64_t batch = state.range(0);
  plexus::EventLoopThread thread;
  absl::StatusOr<EventLoop*> loop = thread.start();
  if (!loop.ok()) {
    state.SkipWithError(loop.status().ToString().c_str());
    return;
  }
  uint64_t ran = 0;  // written on the loop thread only; read here after the notification
  for (auto _ : state) {
    absl::Notification done;
    for (int64_t i = 1; i < batch; ++i) (*loop)->queueInLoop([&ran] { ++ran; });
    (*loop)->queueInLoop([&ran, &done] {
      ++ran;
      done.Notify();
    });
    done.WaitForNotification();
  }
  thread.stop();
  if (ran != static_cast<uint64_t>(state.iterations() * batch)) {
    state.SkipWithError("not every queued task ran");
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_QueueInLoopCrossThread)
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(1000)
    ->UseRealTime()
    ->MinTime(kMinTime);

// runInLoop() on the loop's own thread runs the task at once: the cost is building the
// std::function and the thread check.
void BM_RunInLoopSameThread(benchmark::State& state) {
  EventLoop loop;
  uint64_t ran = 0;
  for (auto _ : state) {
    loop.runInLoop([&ran] { ++ran; });
  }
  benchmark::DoNotOptimize(ran);
  if (ran != static_cast<uint64_t>(state.iterations())) state.SkipWithError("a task did not run");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RunInLoopSameThread)->MinTime(kMinTime);

}  // namespace
