#pragma once
// Helpers for tests: plain blocking sockets on loopback with deadlines, and waiting on conditions.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "plexus/event_loop.h"
#include "plexus/inet_address.h"

namespace plexus::testing {

using std::chrono::milliseconds;

// A blocking TCP socket connected to `addr`, with a receive timeout of `io_timeout`; -1 on failure.
int connectBlocking(const InetAddress& addr, milliseconds io_timeout = milliseconds(10000));
// Writes all bytes; false on error.
bool writeAll(int fd, std::string_view data);
// Reads until `n` bytes arrived, EOF, an error or the receive timeout; returns what arrived.
std::string readExactly(int fd, size_t n);
// Reads until EOF (or error/timeout); returns what arrived. *eof tells whether EOF was seen.
std::string readUntilEof(int fd, bool* eof = nullptr);
// Sets SO_LINGER {1, 0} and closes, so the peer gets a RST.
void closeWithReset(int fd);
// Random bytes (all 256 values), reproducible for a seed.
std::string randomBytes(size_t n, uint64_t seed);

// Re-checks `pred` (every millisecond or so) until it holds or `timeout` passes. For conditions
// with no event to wait on, such as another thread's counter.
bool waitUntil(const std::function<bool()>& pred, milliseconds timeout = milliseconds(10000));

// Runs `f` on `loop` (which must be running, or be this thread's) and waits until it ran (at most
// 30 s: see awaitOrAbort).
void runSync(EventLoop* loop, const std::function<void()>& f);

// For waits whose only other outcome is a hang: waits up to `timeout` for `n`, and past it prints
// one line naming `what` and aborts, so a broken test fails in seconds, never by ctest's timeout.
// (Where the test can go on, use WaitForNotificationWithTimeout and an assertion instead.)
void awaitOrAbort(absl::Notification& n, std::string_view what,
                  milliseconds timeout = milliseconds(30000));

// A countdown any thread may decrement, with a bounded wait (absl::BlockingCounter has none).
class Latch {
 public:
  explicit Latch(int count) : count_(count) {}
  void countDown() {
    absl::MutexLock lock(&mu_);
    --count_;
  }
  // True once the count reached 0; false after `timeout`.
  bool waitFor(milliseconds timeout = milliseconds(10000)) {
    absl::MutexLock lock(&mu_);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return count_ <= 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), absl::FromChrono(timeout));
  }

 private:
  absl::Mutex mu_;
  int count_ ABSL_GUARDED_BY(mu_);
};

// A free TCP port on 127.0.0.1 at the time of the call (bind to port 0 and read it back).
uint16_t freePort();

}  // namespace plexus::testing
