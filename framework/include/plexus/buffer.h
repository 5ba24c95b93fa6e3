#pragma once
// Buffer: a growable byte buffer with cheap prepend space, the input and output buffer of every
// connection. Storage is allocated on first use and can be released when empty, so an idle
// connection holds no buffer memory.
//
//   +-------------------+------------------+------------------+
//   | prependable bytes |  readable bytes  |  writable bytes  |
//   |                   |     (CONTENT)    |                  |
//   +-------------------+------------------+------------------+
//   0      <=      readerIndex   <=   writerIndex    <=     capacity
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
  Buffer(Buffer&&) noexcept;
  Buffer& operator=(Buffer&&) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() = default;

  size_t readableBytes() const { return writer_ - reader_; }
  // An unallocated buffer (capacity 0, writer at kCheapPrepend) has no writable bytes.
  size_t writableBytes() const { return capacity_ > writer_ ? capacity_ - writer_ : 0; }
  size_t prependableBytes() const { return reader_; }
  size_t capacity() const { return capacity_; }
  bool empty() const { return writer_ == reader_; }

  // The readable bytes. Valid until the next non-const call.
  const char* peek() const { return data_ ? data_.get() + reader_ : kEmpty; }
  std::string_view view() const { return {peek(), readableBytes()}; }

  void retrieve(size_t n);  // n <= readableBytes()
  void retrieveAll() { reader_ = writer_ = kCheapPrepend; }
  std::string retrieveAsString(size_t n);
  std::string retrieveAllAsString() { return retrieveAsString(readableBytes()); }

  void append(const void* data, size_t n);
  void append(std::string_view s) { append(s.data(), s.size()); }
  // Writes before the readable bytes (e.g. a length header). n <= prependableBytes().
  void prepend(const void* data, size_t n);

  // Makes room for at least n writable bytes, then beginWrite()/hasWritten() fill them in place.
  void ensureWritable(size_t n);
  char* beginWrite() { return data_.get() + writer_; }
  void hasWritten(size_t n) { writer_ += n; }

  // Frees the storage when the buffer is empty and holds more than `keep` bytes of capacity.
  void releaseIfEmpty(size_t keep = 0);
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

  void swap(Buffer& other) noexcept;

 private:
  void makeSpace(size_t n);
  ssize_t readFdWithSpill(int fd, int* saved_errno);

  std::unique_ptr<char[]> data_;
  size_t capacity_ = 0;
  size_t reader_ = kCheapPrepend;
  size_t writer_ = kCheapPrepend;
};

}  // namespace plexus
