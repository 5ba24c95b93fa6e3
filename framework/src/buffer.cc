#include "plexus/buffer.h"

#include <sys/uio.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <utility>

#include "buffer_read.h"
#include "fast_syscalls.h"

namespace plexus {

Buffer::Buffer(Buffer&& other) noexcept
    : data_(std::move(other.data_)),
      capacity_(std::exchange(other.capacity_, 0)),
      reader_(std::exchange(other.reader_, kCheapPrepend)),
      writer_(std::exchange(other.writer_, kCheapPrepend)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  Buffer tmp(std::move(other));
  swap(tmp);
  return *this;
}

void Buffer::swap(Buffer& other) noexcept {
  std::swap(data_, other.data_);
  std::swap(capacity_, other.capacity_);
  std::swap(reader_, other.reader_);
  std::swap(writer_, other.writer_);
}

void Buffer::retrieve(size_t n) {
  assert(n <= readableBytes());
  if (n < readableBytes()) {
    reader_ += n;
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
  writer_ += n;
}

void Buffer::prepend(const void* data, size_t n) {
  assert(n <= prependableBytes());
  if (!data_) makeSpace(0);  // the prepend space exists once storage does
  reader_ -= n;
  std::memcpy(data_.get() + reader_, data, n);
}

void Buffer::ensureWritable(size_t n) {
  if (writableBytes() < n) makeSpace(n);
}

void Buffer::makeSpace(size_t n) {
  const size_t readable = readableBytes();
  if (data_ && writableBytes() + prependableBytes() >= n + kCheapPrepend) {
    // Enough room in total: slide the readable bytes to the front instead of growing.
    std::memmove(data_.get() + kCheapPrepend, data_.get() + reader_, readable);
    reader_ = kCheapPrepend;
    writer_ = reader_ + readable;
    return;
  }
  size_t want = kCheapPrepend + readable + n;
  size_t cap = std::max(kInitialSize, capacity_);
  while (cap < want) cap *= 2;
  // No value-initialisation: only the bytes we copy or write are ever read.
  std::unique_ptr<char[]> fresh(new char[cap]);
  if (readable) std::memcpy(fresh.get() + kCheapPrepend, data_.get() + reader_, readable);
  data_ = std::move(fresh);
  capacity_ = cap;
  reader_ = kCheapPrepend;
  writer_ = reader_ + readable;
}

void Buffer::releaseIfEmpty(size_t keep) {
  if (empty() && capacity_ > keep) {
    data_.reset();
    capacity_ = 0;
    reader_ = writer_ = kCheapPrepend;
  }
}

void Buffer::shrink(size_t reserve) {
  const size_t readable = readableBytes();
  if (readable == 0 && reserve == 0) {
    releaseIfEmpty();
    return;
  }
  size_t cap = kCheapPrepend + readable + reserve;
  if (cap >= capacity_) return;
  std::unique_ptr<char[]> fresh(new char[cap]);
  if (readable) std::memcpy(fresh.get() + kCheapPrepend, peek(), readable);
  data_ = std::move(fresh);
  capacity_ = cap;
  reader_ = kCheapPrepend;
  writer_ = reader_ + readable;
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
    writer_ += static_cast<size_t>(n);
  } else {
    writer_ += writable;
    append(extra, static_cast<size_t>(n) - writable);
  }
  return n;
}

}  // namespace plexus
