#pragma once
// The common case of Buffer::readFd(), inline for the connection's read path (and used by
// readFd() itself). Loop thread only, like the buffer.

#include <cerrno>

#include "fast_syscalls.h"
#include "plexus/buffer.h"

namespace plexus::detail {

// The same contract as buf.readFd(fd, saved_errno). With kReadChunk or more free (the loop's read
// buffer always has) one read(2) into it; with less, readFd()'s readv with a spill buffer.
inline ssize_t readInto(Buffer& buf, int fd, int* saved_errno) {
  const size_t writable = buf.writableBytes();
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
