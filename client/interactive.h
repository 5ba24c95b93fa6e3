#pragma once
// Interactive mode (stdin is a terminal): a "% " prompt, one line sent per Enter. The protocol is
// not known, so nothing waits for a reply: whatever the server sends (one reply, several, none, or
// a message of its own) is printed as it arrives, through the Console, which puts the prompt back
// after it. "quit" or EOF (Ctrl-D) closes the connection gracefully.

#include <string>

#include "client/client_connection.h"
#include "client/console.h"

namespace plexus::client {

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

// Runs the prompt loop on `console`, which the connection's sink prints the server's output to as
// well. Returns the exit status: 0 after quit, EOF or the server closing ("connection closed by
// server" is printed); 1 when stdin or stdout fails.
int runInteractive(ClientConnection& conn, Console& console, int in_fd);

}  // namespace plexus::client
