#pragma once
// Buffer: a growable byte buffer with cheap prepend space, the input and output buffer of every
// connection. Storage is allocated on first use and can be released when empty, so an idle
// connection holds no buffer memory: an unallocated Buffer is one null pointer. The indexes live
// at the front of the storage, beside the bytes:
//
//   rep_ -> +----------+-------------------+------------------+------------------+
//           | capacity | prependable bytes |  readable bytes  |  writable bytes  |
//           | reader   |                   |     (CONTENT)    |                  |
//           | writer   |                   |                  |                  |
//           +----------+-------------------+------------------+------------------+
//                      0      <=      reader      <=      writer      <=     capacity
//
// Thread safety: none; a Buffer belongs to one thread at a time (a connection's loop thread).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace plexus {

class Buffer {
 public:
  static constexpr size_t kCheapPrepend = 8;
  static constexpr size_t kInitialSize = 2048;
  static constexpr char kEmpty[1] = {0};  // what peek() points at before storage exists
  // readFd() reads up to this much beyond the writable bytes (through a stack buffer).
  static constexpr size_t kReadChunk = 65536;

  Buffer() = default;
  Buffer(Buffer&& other) noexcept : rep_(other.rep_) { other.rep_ = nullptr; }
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { deallocate(rep_); }

  size_t readableBytes() const { return rep_ ? rep_->writer - rep_->reader : 0; }
  // An unallocated buffer (capacity 0, writer at kCheapPrepend) has no writable bytes.
  size_t writableBytes() const { return rep_ ? rep_->capacity - rep_->writer : 0; }
  size_t prependableBytes() const { return rep_ ? rep_->reader : kCheapPrepend; }
  size_t capacity() const { return rep_ ? rep_->capacity : 0; }
  bool empty() const { return !rep_ || rep_->writer == rep_->reader; }

  // The readable bytes. Valid until the next non-const call.
  const char* peek() const { return rep_ ? rep_->bytes() + rep_->reader : kEmpty; }
  std::string_view view() const { return {peek(), readableBytes()}; }

  void retrieve(size_t n);  // n <= readableBytes()
  void retrieveAll() {
    if (rep_) rep_->reader = rep_->writer = kCheapPrepend;
  }
  std::string retrieveAsString(size_t n);
  std::string retrieveAllAsString() { return retrieveAsString(readableBytes()); }

  void append(const void* data, size_t n);
  void append(std::string_view s) { append(s.data(), s.size()); }
  // Writes before the readable bytes (e.g. a length header). n <= prependableBytes().
  void prepend(const void* data, size_t n);

  // Makes room for at least n writable bytes, then beginWrite()/hasWritten() fill them in place.
  void ensureWritable(size_t n) {
    if (writableBytes() < n) makeSpace(n);
  }
  // After ensureWritable() (the storage exists then).
  char* beginWrite() { return rep_->bytes() + rep_->writer; }
  void hasWritten(size_t n) { rep_->writer += n; }

  // Frees the storage when the buffer is empty and holds more than `keep` bytes of capacity.
  void releaseIfEmpty(size_t keep = 0) {
    if (rep_ && rep_->writer == rep_->reader && rep_->capacity > keep) release();
  }
  // Frees spare capacity beyond the readable bytes plus `reserve`.
  void shrink(size_t reserve);

  // Reads from `fd` with one syscall. With kReadChunk or more writable bytes that is a read(2) into
  // them; otherwise a readv(2) into the writable space and a 64 KiB stack buffer, so a large input
  // is read in one call without keeping a large buffer per connection. Returns what read(2)
  // returns; on -1, *saved_errno holds errno.
  ssize_t readFd(int fd, int* saved_errno);
  // The most bytes the next readFd() can take: fewer means the socket had no more to give.
  size_t readCapacity() const {
    const size_t writable = writableBytes();
    return writable >= kReadChunk ? writable : writable + kReadChunk;
  }

  void swap(Buffer& other) noexcept {
    Rep* t = rep_;
    rep_ = other.rep_;
    other.rep_ = t;
  }

 private:
  // The head of the storage; `capacity` bytes follow it.
  struct Rep {
    size_t capacity;
    size_t reader;
    size_t writer;
    char* bytes() { return reinterpret_cast<char*>(this + 1); }
  };

  void makeSpace(size_t n);
  void release();
  ssize_t readFdWithSpill(int fd, int* saved_errno);
  static Rep* allocate(size_t capacity);
  static void deallocate(Rep* rep);

  Rep* rep_ = nullptr;  // null until first use, and again once released
};

}  // namespace plexus
