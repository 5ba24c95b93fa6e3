// Buffer: append/retrieve/prepend, growth versus sliding, releasing storage, moves, and readFd()
// on real fds (including the 64 KiB stack-buffer path).

#include "plexus/buffer.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>

#include "support/test_util.h"

namespace plexus {
namespace {

using plexus::testing::randomBytes;

// Two connected AF_UNIX stream sockets, closed on destruction.
struct SocketPair {
  SocketPair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0); }
  ~SocketPair() {
    closeReader();
    closeWriter();
  }
  void closeReader() {
    if (fds[0] >= 0) ::close(fds[0]);
    fds[0] = -1;
  }
  void closeWriter() {
    if (fds[1] >= 0) ::close(fds[1]);
    fds[1] = -1;
  }
  int reader() const { return fds[0]; }
  int writer() const { return fds[1]; }
  int fds[2] = {-1, -1};
};

TEST(BufferTest, StartsUnallocated) {
  Buffer buf;
  EXPECT_EQ(buf.capacity(), 0u);
  EXPECT_EQ(buf.readableBytes(), 0u);
  EXPECT_EQ(buf.writableBytes(), 0u);
  EXPECT_EQ(buf.prependableBytes(), Buffer::kCheapPrepend);
  EXPECT_TRUE(buf.empty());
}

TEST(BufferTest, AppendRetrievePeek) {
  Buffer buf;
  buf.append("hello, ");
  buf.append(std::string("world"));
  EXPECT_EQ(buf.readableBytes(), 12u);
  EXPECT_EQ(buf.capacity(), Buffer::kInitialSize);
  EXPECT_EQ(buf.writableBytes(), Buffer::kInitialSize - Buffer::kCheapPrepend - 12);
  EXPECT_EQ(std::string(buf.peek(), 5), "hello");
  EXPECT_EQ(buf.view(), "hello, world");

  buf.retrieve(7);
  EXPECT_EQ(buf.view(), "world");
  EXPECT_EQ(buf.prependableBytes(), Buffer::kCheapPrepend + 7);

  // Retrieving everything resets both indices to the front.
  buf.retrieve(5);
  EXPECT_TRUE(buf.empty());
  EXPECT_EQ(buf.prependableBytes(), Buffer::kCheapPrepend);
  EXPECT_EQ(buf.writableBytes(), Buffer::kInitialSize - Buffer::kCheapPrepend);
}

TEST(BufferTest, AppendNothingAllocatesNothing) {
  Buffer buf;
  buf.append("", 0);
  EXPECT_EQ(buf.capacity(), 0u);
  EXPECT_TRUE(buf.empty());
}

TEST(BufferTest, RetrieveAsString) {
  Buffer buf;
  buf.append("abcdefgh");
  EXPECT_EQ(buf.retrieveAsString(3), "abc");
  EXPECT_EQ(buf.readableBytes(), 5u);
  EXPECT_EQ(buf.retrieveAllAsString(), "defgh");
  EXPECT_TRUE(buf.empty());
  EXPECT_EQ(buf.prependableBytes(), Buffer::kCheapPrepend);
}

TEST(BufferTest, BinaryDataWithNuls) {
  Buffer buf;
  const std::string data("\0a\0\0b\xff\0", 7);
  buf.append(data.data(), data.size());
  buf.append(std::string_view("\0\0", 2));
  EXPECT_EQ(buf.readableBytes(), 9u);
  std::string expected = data + std::string("\0\0", 2);
  EXPECT_EQ(buf.view(), expected);
  EXPECT_EQ(buf.retrieveAllAsString(), expected);
}

TEST(BufferTest, Prepend) {
  Buffer buf;
  buf.append("payload");
  uint32_t len = 7;
  buf.prepend(&len, sizeof len);
  EXPECT_EQ(buf.readableBytes(), 11u);
  EXPECT_EQ(buf.prependableBytes(), Buffer::kCheapPrepend - sizeof len);
  uint32_t got = 0;
  std::memcpy(&got, buf.peek(), sizeof got);
  EXPECT_EQ(got, 7u);
  buf.retrieve(sizeof got);
  EXPECT_EQ(buf.view(), "payload");

  // The whole cheap-prepend area can be used.
  buf.prepend("12345678", 8);
  EXPECT_EQ(buf.prependableBytes(), 0u);
  EXPECT_EQ(buf.view(), "12345678payload");
}

// Regression: a fresh or released buffer reports prependableBytes() == kCheapPrepend, and prepend()
// used to write through the still-null storage (SIGSEGV). Run in a child process so a crash fails
// this test only, not the whole binary.
TEST(BufferTest, PrependIntoUnallocatedBuffer) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_EXIT(
      {
        Buffer fresh;
        fresh.prepend("abcd", 4);
        Buffer released;
        released.append("x");
        released.retrieveAll();
        released.releaseIfEmpty();
        released.prepend("12345678", 8);
        std::exit(fresh.view() == "abcd" && released.view() == "12345678" ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(BufferTest, GrowsWhenFull) {
  Buffer buf;
  const std::string a = randomBytes(Buffer::kInitialSize - Buffer::kCheapPrepend, 1);
  buf.append(a);
  EXPECT_EQ(buf.capacity(), Buffer::kInitialSize);
  EXPECT_EQ(buf.writableBytes(), 0u);

  const std::string b = randomBytes(3000, 2);
  buf.append(b);
  EXPECT_GE(buf.capacity(), Buffer::kCheapPrepend + a.size() + b.size());
  EXPECT_EQ(buf.readableBytes(), a.size() + b.size());
  EXPECT_EQ(buf.view(), a + b);
  EXPECT_EQ(buf.prependableBytes(), Buffer::kCheapPrepend);
}

TEST(BufferTest, LargeAppendAllocatesEnoughAtOnce) {
  Buffer buf;
  const std::string big = randomBytes(1 << 20, 3);
  buf.append(big);
  EXPECT_GE(buf.capacity(), big.size() + Buffer::kCheapPrepend);
  EXPECT_EQ(buf.view(), big);
}

TEST(BufferTest, SlidesInsteadOfGrowing) {
  Buffer buf;
  const std::string a = randomBytes(2000, 4);
  buf.append(a);
  ASSERT_EQ(buf.capacity(), Buffer::kInitialSize);
  buf.retrieve(1500);  // 500 readable, 1508 prependable, 40 writable
  ASSERT_LT(buf.writableBytes(), 1000u);

  const std::string b = randomBytes(1000, 5);
  buf.append(b);
  // Room existed in front: the readable bytes moved there and the capacity stayed.
  EXPECT_EQ(buf.capacity(), Buffer::kInitialSize);
  EXPECT_EQ(buf.prependableBytes(), Buffer::kCheapPrepend);
  EXPECT_EQ(buf.view(), a.substr(1500) + b);
}

TEST(BufferTest, GrowsWhenSlidingIsNotEnough) {
  Buffer buf;
  buf.append(randomBytes(2000, 6));
  buf.retrieve(100);  // 1900 readable: sliding frees only 100 + 40 bytes
  const std::string tail = randomBytes(500, 7);
  buf.append(tail);
  EXPECT_GT(buf.capacity(), Buffer::kInitialSize);
  EXPECT_EQ(buf.readableBytes(), 2400u);
  EXPECT_EQ(buf.view().substr(1900), tail);
}

TEST(BufferTest, EnsureWritableAndHasWritten) {
  Buffer buf;
  buf.ensureWritable(100);
  ASSERT_GE(buf.writableBytes(), 100u);
  std::memcpy(buf.beginWrite(), "direct", 6);
  buf.hasWritten(6);
  EXPECT_EQ(buf.view(), "direct");
}

TEST(BufferTest, ReleaseIfEmpty) {
  Buffer buf;
  buf.append("x");
  buf.releaseIfEmpty();  // not empty: kept
  EXPECT_EQ(buf.capacity(), Buffer::kInitialSize);
  buf.retrieveAll();
  buf.releaseIfEmpty(Buffer::kInitialSize);  // capacity not above `keep`: kept
  EXPECT_EQ(buf.capacity(), Buffer::kInitialSize);
  buf.releaseIfEmpty();
  EXPECT_EQ(buf.capacity(), 0u);
  EXPECT_EQ(buf.writableBytes(), 0u);
  EXPECT_EQ(buf.prependableBytes(), Buffer::kCheapPrepend);
  // Usable again afterwards.
  buf.append("again");
  EXPECT_EQ(buf.view(), "again");
}

TEST(BufferTest, Shrink) {
  Buffer buf;
  buf.append(randomBytes(100000, 8));
  const size_t big = buf.capacity();
  buf.retrieve(99000);
  const std::string rest(buf.view());
  buf.shrink(24);
  EXPECT_EQ(buf.capacity(), Buffer::kCheapPrepend + 1000 + 24);
  EXPECT_LT(buf.capacity(), big);
  EXPECT_EQ(buf.view(), rest);
  EXPECT_EQ(buf.writableBytes(), 24u);

  // Asking for more than there is changes nothing.
  buf.shrink(1 << 20);
  EXPECT_EQ(buf.capacity(), Buffer::kCheapPrepend + 1000 + 24);

  // Empty with no reserve: storage is released.
  buf.retrieveAll();
  buf.shrink(0);
  EXPECT_EQ(buf.capacity(), 0u);
}

TEST(BufferTest, MoveConstructAndAssign) {
  Buffer a;
  a.append("moved bytes");
  Buffer b(std::move(a));
  EXPECT_EQ(b.view(), "moved bytes");
  EXPECT_EQ(a.capacity(), 0u);  // NOLINT(bugprone-use-after-move): the moved-from state is defined
  EXPECT_TRUE(a.empty());
  a.append("reuse");  // a moved-from buffer is usable
  EXPECT_EQ(a.view(), "reuse");

  Buffer c;
  c.append("old");
  c = std::move(b);
  EXPECT_EQ(c.view(), "moved bytes");
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.capacity(), 0u);
}

TEST(BufferTest, Swap) {
  Buffer a;
  Buffer b;
  a.append("aaa");
  b.append(randomBytes(5000, 9));
  const std::string b_bytes(b.view());
  const size_t b_cap = b.capacity();
  a.swap(b);
  EXPECT_EQ(a.view(), b_bytes);
  EXPECT_EQ(a.capacity(), b_cap);
  EXPECT_EQ(b.view(), "aaa");
}

TEST(BufferTest, ReadFdSmallInputIntoEmptyBuffer) {
  SocketPair sp;
  ASSERT_TRUE(testing::writeAll(sp.writer(), "ping"));
  Buffer buf;
  int err = 0;
  EXPECT_EQ(buf.readFd(sp.reader(), &err), 4);
  EXPECT_EQ(buf.view(), "ping");
  // Small input allocates only the normal initial size.
  EXPECT_EQ(buf.capacity(), Buffer::kInitialSize);
}

TEST(BufferTest, ReadFdAppendsAfterExistingBytes) {
  SocketPair sp;
  Buffer buf;
  buf.append("head:");
  ASSERT_TRUE(testing::writeAll(sp.writer(), "tail"));
  int err = 0;
  EXPECT_EQ(buf.readFd(sp.reader(), &err), 4);
  EXPECT_EQ(buf.view(), "head:tail");
}

TEST(BufferTest, ReadFdMoreThanWritableUsesStackExtra) {
  SocketPair sp;
  // 60 KiB fits in the socket's buffer, so it is all there before the read.
  const std::string data = randomBytes(60 * 1024, 10);
  ASSERT_TRUE(testing::writeAll(sp.writer(), data));
  Buffer buf;
  buf.append("x");
  const size_t writable = buf.writableBytes();
  ASSERT_LT(writable, data.size());
  int err = 0;
  ssize_t n = buf.readFd(sp.reader(), &err);
  ASSERT_GT(n, static_cast<ssize_t>(writable)) << "one readv should fill both iovecs";
  std::string got(buf.view());
  got.erase(0, 1);
  while (got.size() < data.size()) {
    buf.retrieveAll();
    n = buf.readFd(sp.reader(), &err);
    ASSERT_GT(n, 0);
    got.append(buf.view());
  }
  EXPECT_EQ(got, data);
}

TEST(BufferTest, ReadFdLargeStreamByteExact) {
  SocketPair sp;
  const std::string data = randomBytes(200 * 1024, 11);
  std::thread writer([&] {
    EXPECT_TRUE(testing::writeAll(sp.writer(), data));
    ::shutdown(sp.writer(), SHUT_WR);
  });
  Buffer buf;
  int err = 0;
  int reads = 0;
  for (;;) {
    ssize_t n = buf.readFd(sp.reader(), &err);
    ASSERT_GE(n, 0) << std::strerror(err);
    if (n == 0) break;
    ++reads;
  }
  writer.join();
  EXPECT_GE(reads, 1);
  ASSERT_EQ(buf.readableBytes(), data.size());
  EXPECT_TRUE(buf.view() == data) << "bytes differ";
}

TEST(BufferTest, ReadFdWithLargeWritableSpaceUsesBufferOnly) {
  SocketPair sp;
  Buffer buf;
  buf.ensureWritable(128 * 1024);
  const size_t cap = buf.capacity();
  const std::string data = randomBytes(50000, 12);
  ASSERT_TRUE(testing::writeAll(sp.writer(), data));
  int err = 0;
  size_t total = 0;
  while (total < data.size()) {
    ssize_t n = buf.readFd(sp.reader(), &err);
    ASSERT_GT(n, 0);
    total += static_cast<size_t>(n);
  }
  EXPECT_EQ(buf.view(), data);
  EXPECT_EQ(buf.capacity(), cap);
}

TEST(BufferTest, ReadFdFromPipe) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  const std::string data = randomBytes(3000, 13);
  ASSERT_TRUE(::write(p[1], data.data(), data.size()) == static_cast<ssize_t>(data.size()));
  ::close(p[1]);
  Buffer buf;
  int err = 0;
  size_t total = 0;
  for (;;) {
    ssize_t n = buf.readFd(p[0], &err);
    ASSERT_GE(n, 0);
    if (n == 0) break;
    total += static_cast<size_t>(n);
  }
  ::close(p[0]);
  EXPECT_EQ(total, data.size());
  EXPECT_EQ(buf.view(), data);
}

TEST(BufferTest, ReadFdEofReturnsZero) {
  SocketPair sp;
  sp.closeWriter();
  Buffer buf;
  int err = 0;
  EXPECT_EQ(buf.readFd(sp.reader(), &err), 0);
  EXPECT_EQ(err, 0);
  EXPECT_TRUE(buf.empty());
}

TEST(BufferTest, ReadFdNonBlockingEmptyGivesEagain) {
  SocketPair sp;
  ASSERT_EQ(::fcntl(sp.reader(), F_SETFL, ::fcntl(sp.reader(), F_GETFL) | O_NONBLOCK), 0);
  Buffer buf;
  buf.append("keep");
  int err = 0;
  errno = 0;
  EXPECT_EQ(buf.readFd(sp.reader(), &err), -1);
  EXPECT_TRUE(err == EAGAIN || err == EWOULDBLOCK) << err;
  EXPECT_EQ(buf.view(), "keep");
}

TEST(BufferTest, ReadFdBadFdGivesEbadf) {
  Buffer buf;
  int err = 0;
  EXPECT_EQ(buf.readFd(-1, &err), -1);
  EXPECT_EQ(err, EBADF);
}

}  // namespace
}  // namespace plexus
