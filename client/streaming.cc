#include "client/streaming.h"

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "client/fd_io.h"

namespace plexus::client {

int runStreaming(ClientConnection& conn, int in_fd) {
  constexpr size_t kChunk = 64 * 1024;
  auto buf = std::make_unique<char[]>(kChunk);
  for (;;) {
    ssize_t n = readOrWake(in_fd, buf.get(), kChunk, conn.closedFd());
    if (n == kWoken) break;  // the server closed first
    if (n < 0) {
      reportError(absl::StrCat("reading stdin: ", std::strerror(errno)));
      conn.close(absl::Seconds(2));
      return 1;
    }
    if (n == 0) {
      conn.shutdownWrite();
      break;
    }
    // Blocks while ClientConnection holds ~1 MiB unsent: the backpressure on stdin.
    if (!conn.send(std::string_view(buf.get(), static_cast<size_t>(n)))) break;
  }
  conn.waitClosed();
  return conn.sinkFailed() ? 1 : 0;
}

}  // namespace plexus::client
