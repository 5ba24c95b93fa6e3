#pragma once
// Blocking reads and writes on the standard streams, each one a plain system call loop: no stdio
// buffering, so bytes pass through unchanged and nothing waits for a flush.

#include <sys/types.h>

#include <cstddef>
#include <string_view>

namespace plexus::client {

// Writes all of `data` to `fd`, waiting (poll) when the fd is non-blocking and full. False on an
// error (errno says which, e.g. EPIPE).
bool writeAll(int fd, std::string_view data);

// Reads up to `n` bytes from `fd` into `buf`, or gives up as soon as `wake_fd` becomes readable.
// Returns the number of bytes read, 0 at EOF, -1 on a read error (errno set) and -2 when woken.
inline constexpr ssize_t kWoken = -2;
ssize_t readOrWake(int fd, char* buf, size_t n, int wake_fd);

}  // namespace plexus::client

namespace plexus::client {

// Prints "plexus-client: error: <message>" as one line on stderr.
void reportError(std::string_view message);

}  // namespace plexus::client
