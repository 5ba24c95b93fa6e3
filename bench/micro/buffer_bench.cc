// Buffer: append/retrieve, prepend, and readFd() from a socketpair.

#include <sys/socket.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "plexus/buffer.h"

namespace {

using plexus::Buffer;

constexpr double kMinTime = 0.1;

// One append of `n` bytes and the retrieve that consumes them: the steady state of a connection
// whose buffer already has the capacity (the first iteration allocates it).
void BM_BufferAppendRetrieve(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const std::string payload(n, 'x');
  Buffer buf;
  for (auto _ : state) {
    buf.append(payload.data(), n);
    benchmark::DoNotOptimize(buf.peek());
    buf.retrieve(n);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
}
BENCHMARK(BM_BufferAppendRetrieve)->ArgName("bytes")->Arg(16)->Arg(4096)->Arg(65536)->MinTime(kMinTime);

// A message framed in place: append the body, prepend a 4-byte length header, consume the frame.
void BM_BufferPrepend(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const std::string body(n, 'x');
  const uint32_t header = static_cast<uint32_t>(n);
  Buffer buf;
  for (auto _ : state) {
    buf.append(body.data(), n);
    buf.prepend(&header, sizeof header);
    benchmark::DoNotOptimize(buf.peek());
    buf.retrieveAll();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(n + sizeof header));
}
BENCHMARK(BM_BufferPrepend)->ArgName("bytes")->Arg(16)->Arg(4096)->MinTime(kMinTime);

// readFd() of `bytes` already queued on a socketpair, until all of them are in the buffer; only the
// readFd() calls are timed (manual time), not the peer's write(2).
//   warm:1  the buffer keeps its capacity between iterations (a busy connection): one readv
//           straight into the buffer once it has grown.
//   warm:0  the buffer is released after each iteration (a fresh or idle connection): the first
//           readv lands in the 64 KiB stack buffer and is appended; 200 KiB takes three readFd()
//           calls and two reallocations.
void BM_BufferReadFd(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const bool warm = state.range(1) != 0;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
    state.SkipWithError("socketpair failed");
    return;
  }
  // Room for the whole payload in the socket, so one write(2) queues it all.
  const int sndbuf = 4 * 1024 * 1024;
  ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  ::setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof sndbuf);
  const std::string payload(n, 'x');
  Buffer buf;
  int64_t calls = 0;
  for (auto _ : state) {
    if (::write(sv[0], payload.data(), n) != static_cast<ssize_t>(n)) {
      state.SkipWithError("short write to the socketpair (SO_SNDBUF too small?)");
      break;
    }
    const auto start = std::chrono::steady_clock::now();
    int saved_errno = 0;
    while (buf.readableBytes() < n) {
      ++calls;
      if (buf.readFd(sv[1], &saved_errno) <= 0) break;
    }
    const auto end = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(end - start).count());
    if (buf.readableBytes() != n) {
      state.SkipWithError("readFd did not read the payload");
      break;
    }
    buf.retrieveAll();
    if (!warm) buf.releaseIfEmpty();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
  state.counters["readFd/iter"] =
      benchmark::Counter(static_cast<double>(calls), benchmark::Counter::kAvgIterations);
  ::close(sv[0]);
  ::close(sv[1]);
}
BENCHMARK(BM_BufferReadFd)
    ->ArgNames({"bytes", "warm"})
    ->Args({16, 1})
    ->Args({16, 0})
    ->Args({200 * 1024, 1})
    ->Args({200 * 1024, 0})
    ->UseManualTime()
    ->MinTime(kMinTime);

}  // namespace
