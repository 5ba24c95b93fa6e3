#pragma once
// Buffer::readFd() with its common case inlined, for the connection's read path. Loop thread only,
// like the buffer.

#include <cerrno>

#include "fast_syscalls.h"
#include "plexus/buffer.h"

namespace plexus::detail {

// The same contract as buf.readFd(fd, saved_errno).
inline ssize_t readInto(Buffer& buf, int fd, int* saved_errno) {
  const size_t writable = buf.writableBytes();
  // The loop's read buffer always has room for kReadChunk bytes: one read(2) into it.
  if (writable < Buffer::kReadChunk) return buf.readFd(fd, saved_errno);
  const ssize_t n = sys::read(fd, buf.beginWrite(), writable);
  if (n > 0) {
    buf.hasWritten(static_cast<size_t>(n));
  } else if (n < 0) {
    *saved_errno = errno;
  }
  return n;
}

}  // namespace plexus::detail
