#include "client/interactive.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
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

int runInteractive(ClientConnection& conn, Console& console, int in_fd) {
  constexpr absl::Duration kCloseWait = absl::Seconds(2);
  LineReader reader(in_fd, conn.closedFd());
  std::string line;
  for (;;) {
    if (!console.prompt()) {
      reportError(absl::StrCat("writing stdout: ", std::strerror(errno)));
      conn.close(kCloseWait);
      return 1;
    }
    LineReader::Result r = reader.next(&line);
    if (r == LineReader::Result::kWoken) break;
    if (r == LineReader::Result::kError) {
      console.leave();
      reportError(absl::StrCat("reading stdin: ", std::strerror(errno)));
      conn.close(kCloseWait);
      return 1;
    }
    const bool eof = r == LineReader::Result::kEof;
    if (eof && line.empty()) {
      console.leave();
      conn.close(kCloseWait);
      return 0;
    }
    // Enter took the cursor to a new line. Ctrl-D ending a line did not: leave() ends it.
    if (eof) {
      console.leave();
    } else {
      console.lineEntered();
    }
    if (absl::StripAsciiWhitespace(line) == "quit") {
      console.leave();
      conn.close(kCloseWait);
      return 0;
    }
    line.push_back('\n');
    // No waiting for a reply: the sink prints whatever comes, and the prompt is shown again now.
    if (!conn.send(line)) break;
    if (eof) {
      conn.close(kCloseWait);
      return 0;
    }
  }
  if (conn.sinkFailed()) return 1;
  console.notice("connection closed by server");
  return 0;
}

}  // namespace plexus::client
