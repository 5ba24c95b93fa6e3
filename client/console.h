#pragma once
// Console: the screen of interactive mode, written by two threads: the main thread shows the prompt,
// the connection's loop thread prints what the server sends, whenever it comes. Every write goes
// through one lock, and the console remembers how the screen ends, so the two never mix:
//
//   "% "       the prompt is showing; output arriving now first clears it (on a terminal "\r" and
//              "\033[K" erase its line; elsewhere "\n" ends it), is printed, and the prompt is
//              printed again after it, on a line of its own (a "\n" first if the output did not
//              end with one)
//   "text"     output not ended by a newline, before the first prompt or after the last
//
// The terminal itself echoes what the user types (canonical mode: it edits and echoes the line, we
// read it whole). So a line half typed when output arrives is erased from view with the prompt; it
// is still there, and Enter sends it (Ctrl-R reprints it on most terminals).
//
// Thread safety: any thread.

#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace plexus::client {

inline constexpr std::string_view kPrompt = "% ";

class Console {
 public:
  // `terminal`: whether `out_fd` is a terminal, which can erase the prompt's line.
  Console(int out_fd, bool terminal) : fd_(out_fd), terminal_(terminal) {}
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  // Prints output from the server, clearing the prompt first and showing it again after, if the
  // user is being prompted. False on a write error (errno says which).
  bool print(std::string_view data);
  // From now on the user is prompted: shows the prompt unless it is already showing.
  bool prompt();
  // The user ended a line: the terminal's echo of Enter left the cursor at the start of a new line,
  // so the prompt is no longer where the cursor is.
  void lineEntered();
  // No more prompts: prints `line` and a newline on a line of their own, in place of the prompt.
  bool notice(std::string_view line);
  // No more prompts: ends the prompt's line, if it is showing, so what follows starts afresh.
  bool leave();

 private:
  bool write(std::string_view data) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // What clears the prompt, if it is showing ("" if not).
  std::string_view clearPrompt() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const int fd_;
  const bool terminal_;
  absl::Mutex mutex_;
  bool prompting_ ABSL_GUARDED_BY(mutex_) = false;     // between prompt() and notice()/leave()
  bool prompt_shown_ ABSL_GUARDED_BY(mutex_) = false;  // the screen ends with the prompt
  bool line_open_ ABSL_GUARDED_BY(mutex_) = false;     // ... with output and no newline
};

}  // namespace plexus::client
