#pragma once
// Interactive mode (stdin is a terminal): a "% " prompt, one line sent per Enter, the reply printed
// as it arrives. "quit" or EOF (Ctrl-D) closes the connection gracefully.

#include <string>
#include <string_view>

#include "absl/time/time.h"

#include "client/client_connection.h"

namespace plexus::client {

inline constexpr std::string_view kPrompt = "% ";
// How long to wait for a reply as long as the line sent before showing the next prompt. Replies
// that come later are still printed, only after the prompt.
inline constexpr absl::Duration kReplyWait = absl::Seconds(2);

// Splits what `fd` delivers into lines. next() blocks until a whole line arrived, EOF, an error,
// or `wake_fd` became readable (the connection closed).
class LineReader {
 public:
  enum class Result { kLine, kEof, kWoken, kError };

  LineReader(int fd, int wake_fd) : fd_(fd), wake_fd_(wake_fd) {}
  // kLine: *line is the next line, without its '\n'. kEof: *line holds what came after the last
  // '\n' (often nothing).
  Result next(std::string* line);

 private:
  const int fd_;
  const int wake_fd_;
  std::string pending_;
};

// Runs the prompt loop. The connection's sink prints the replies to `out_fd` as well. Returns the
// exit status: 0 after quit, EOF or the server closing ("connection closed by server" is printed).
int runInteractive(ClientConnection& conn, int in_fd, int out_fd);

}  // namespace plexus::client
