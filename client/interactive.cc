#include "client/interactive.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "client/fd_io.h"

namespace plexus::client {

LineReader::Result LineReader::next(std::string* line) {
  char buf[4096];
  for (;;) {
    if (size_t nl = pending_.find('\n'); nl != std::string::npos) {
      line->assign(pending_, 0, nl);
      pending_.erase(0, nl + 1);
      return Result::kLine;
    }
    ssize_t n = readOrWake(fd_, buf, sizeof buf, wake_fd_);
    if (n == kWoken) return Result::kWoken;
    if (n < 0) return Result::kError;
    if (n == 0) {
      line->swap(pending_);
      pending_.clear();
      return Result::kEof;
    }
    pending_.append(buf, static_cast<size_t>(n));
  }
}

int runInteractive(ClientConnection& conn, int in_fd, int out_fd) {
  constexpr absl::Duration kCloseWait = absl::Seconds(2);
  LineReader reader(in_fd, conn.closedFd());
  std::string line;
  for (;;) {
    if (!writeAll(out_fd, kPrompt)) return 1;
    LineReader::Result r = reader.next(&line);
    if (r == LineReader::Result::kWoken) {
      writeAll(out_fd, "\n");  // end the prompt's line
      break;
    }
    if (r == LineReader::Result::kError) {
      reportError(absl::StrCat("reading stdin: ", std::strerror(errno)));
      conn.close(kCloseWait);
      return 1;
    }
    const bool eof = r == LineReader::Result::kEof;
    if (eof && line.empty()) {
      writeAll(out_fd, "\n");
      conn.close(kCloseWait);
      return 0;
    }
    if (absl::StripAsciiWhitespace(line) == "quit") {
      conn.close(kCloseWait);
      return 0;
    }
    line.push_back('\n');
    const uint64_t expected = conn.bytesReceived() + line.size();
    if (!conn.send(line)) break;
    conn.waitForReceived(expected, kReplyWait);
    if (eof) {
      conn.close(kCloseWait);
      return 0;
    }
    if (conn.closed()) break;
  }
  if (conn.sinkFailed()) return 1;
  writeAll(out_fd, "connection closed by server\n");
  return 0;
}

}  // namespace plexus::client
