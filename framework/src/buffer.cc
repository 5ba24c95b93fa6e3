#include "plexus/buffer.h"

#include <sys/uio.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <new>
#include <utility>

#include "buffer_read.h"
#include "fast_syscalls.h"

namespace plexus {

Buffer::Rep* Buffer::allocate(size_t capacity) {
  // No value-initialisation of the bytes: only the bytes we copy or write are ever read.
  void* mem = ::operator new(sizeof(Rep) + capacity);
  return new (mem) Rep{capacity, kCheapPrepend, kCheapPrepend};
}

void Buffer::deallocate(Rep* rep) {
  if (rep != nullptr) ::operator delete(static_cast<void*>(rep));
}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    deallocate(rep_);
    rep_ = other.rep_;
    other.rep_ = nullptr;
  }
  return *this;
}

void Buffer::release() {
  deallocate(rep_);
  rep_ = nullptr;
}

void Buffer::retrieve(size_t n) {
  assert(n <= readableBytes());
  if (n < readableBytes()) {
    rep_->reader += n;
  } else {
    retrieveAll();
  }
}

std::string Buffer::retrieveAsString(size_t n) {
  assert(n <= readableBytes());
  std::string s(peek(), n);
  retrieve(n);
  return s;
}

void Buffer::append(const void* data, size_t n) {
  if (n == 0) return;
  ensureWritable(n);
  std::memcpy(beginWrite(), data, n);
  rep_->writer += n;
}

void Buffer::prepend(const void* data, size_t n) {
  assert(n <= prependableBytes());
  if (!rep_) makeSpace(0);  // the prepend space exists once storage does
  rep_->reader -= n;
  std::memcpy(rep_->bytes() + rep_->reader, data, n);
}

void Buffer::makeSpace(size_t n) {
  const size_t readable = readableBytes();
  if (rep_ && writableBytes() + prependableBytes() >= n + kCheapPrepend) {
    // Enough room in total: slide the readable bytes to the front instead of growing.
    char* bytes = rep_->bytes();
    std::memmove(bytes + kCheapPrepend, bytes + rep_->reader, readable);
    rep_->reader = kCheapPrepend;
    rep_->writer = kCheapPrepend + readable;
    return;
  }
  const size_t want = kCheapPrepend + readable + n;
  size_t cap = std::max(kInitialSize, capacity());
  while (cap < want) cap *= 2;
  Rep* fresh = allocate(cap);
  if (readable) std::memcpy(fresh->bytes() + kCheapPrepend, peek(), readable);
  fresh->writer = kCheapPrepend + readable;
  deallocate(rep_);
  rep_ = fresh;
}

void Buffer::shrink(size_t reserve) {
  const size_t readable = readableBytes();
  if (readable == 0 && reserve == 0) {
    releaseIfEmpty();
    return;
  }
  const size_t cap = kCheapPrepend + readable + reserve;
  if (cap >= capacity()) return;
  Rep* fresh = allocate(cap);
  if (readable) std::memcpy(fresh->bytes() + kCheapPrepend, peek(), readable);
  fresh->writer = kCheapPrepend + readable;
  deallocate(rep_);
  rep_ = fresh;
}

ssize_t Buffer::readFd(int fd, int* saved_errno) {
  // With kReadChunk free, readInto() makes the one read(2); it comes back here only for less.
  if (writableBytes() >= kReadChunk) return detail::readInto(*this, fd, saved_errno);
  return readFdWithSpill(fd, saved_errno);
}

// Out of line: the 64 KiB stack buffer stays off the common path above.
__attribute__((noinline)) ssize_t Buffer::readFdWithSpill(int fd, int* saved_errno) {
  // Large inputs land in the stack buffer and are appended once; a connection keeps only the
  // buffer its traffic needs.
  char extra[kReadChunk];
  iovec vec[2];
  const size_t writable = writableBytes();
  int count = 0;
  if (writable > 0) {
    vec[count].iov_base = beginWrite();
    vec[count].iov_len = writable;
    ++count;
  }
  vec[count].iov_base = extra;
  vec[count].iov_len = sizeof extra;
  ++count;
  const ssize_t n = detail::sys::readv(fd, vec, count);
  if (n < 0) {
    *saved_errno = errno;
  } else if (static_cast<size_t>(n) <= writable) {
    if (n > 0) hasWritten(static_cast<size_t>(n));
  } else {
    if (writable > 0) hasWritten(writable);
    append(extra, static_cast<size_t>(n) - writable);
  }
  return n;
}

}  // namespace plexus
