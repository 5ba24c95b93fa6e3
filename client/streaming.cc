#include "client/streaming.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/fd_io.h"

namespace plexus::client {
namespace {

// After the server closed first: whether `fd` is at its end now, without waiting. Reads (and so
// drops) one chunk if there is one: nothing more will be sent anyway.
bool atEndNow(int fd, char* buf, size_t n) {
  pollfd p{fd, POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, 0);
  } while (r < 0 && errno == EINTR);
  if (r <= 0) return false;  // nothing there yet: the writer has not finished
  ssize_t got;
  do {
    got = ::read(fd, buf, n);
  } while (got < 0 && errno == EINTR);
  return got == 0;
}

}  // namespace

int runStreaming(ClientConnection& conn, int in_fd) {
  constexpr size_t kChunk = 64 * 1024;
  auto buf = std::make_unique<char[]>(kChunk);
  uint64_t taken = 0;        // bytes send() took
  bool input_ended = false;  // stdin reached its end and every byte of it went to send()
  for (;;) {
    ssize_t n = readOrWake(in_fd, buf.get(), kChunk, conn.closedFd());
    if (n == kWoken) {  // the server closed first; that is fine only if there was no more input
      input_ended = atEndNow(in_fd, buf.get(), kChunk);
      break;
    }
    if (n < 0) {
      reportError(absl::StrCat("reading stdin: ", std::strerror(errno)));
      conn.close(absl::Seconds(2));
      return 1;
    }
    if (n == 0) {
      input_ended = true;
      conn.shutdownWrite();
      break;
    }
    // Blocks while ClientConnection holds ~1 MiB unsent: the backpressure on stdin.
    if (!conn.send(std::string_view(buf.get(), static_cast<size_t>(n)))) break;  // closed
    taken += static_cast<uint64_t>(n);
  }
  conn.waitClosed();
  if (conn.sinkFailed()) return 1;  // stdout failed, and that was reported
  // Done when there was nothing more to read and the server acknowledged every byte read.
  const uint64_t sent = conn.bytesAcknowledged();
  if (input_ended && sent >= taken) return 0;
  reportError(absl::StrCat(
      "connection closed by server before all input was sent (",
      input_ended ? absl::StrFormat("sent %d of %d bytes", sent, taken)
                  : absl::StrFormat("sent %d bytes, and stdin had not ended", sent),
      ")"));
  return 1;
}

}  // namespace plexus::client
