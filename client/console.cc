#include "client/console.h"

#include <string>

#include "client/fd_io.h"

namespace plexus::client {

bool Console::print(std::string_view data) {
  if (data.empty()) return true;
  absl::MutexLock lock(&mutex_);
  // One write for the whole update, so the terminal shows no half-erased prompt.
  std::string out(clearPrompt());
  out.append(data);
  line_open_ = data.back() != '\n';
  if (prompting_) {
    if (line_open_) out.push_back('\n');
    out.append(kPrompt);
    line_open_ = false;
    prompt_shown_ = true;
  }
  return write(out);
}

bool Console::prompt() {
  absl::MutexLock lock(&mutex_);
  prompting_ = true;
  if (prompt_shown_) return true;
  std::string out = line_open_ ? "\n" : "";
  out.append(kPrompt);
  line_open_ = false;
  prompt_shown_ = true;
  return write(out);
}

void Console::lineEntered() {
  absl::MutexLock lock(&mutex_);
  prompt_shown_ = false;
  line_open_ = false;
}

bool Console::notice(std::string_view line) {
  absl::MutexLock lock(&mutex_);
  prompting_ = false;
  std::string out(clearPrompt());
  if (line_open_) out.push_back('\n');
  out.append(line);
  out.push_back('\n');
  line_open_ = false;
  return write(out);
}

bool Console::leave() {
  absl::MutexLock lock(&mutex_);
  prompting_ = false;
  if (!prompt_shown_ && !line_open_) return true;
  prompt_shown_ = false;
  line_open_ = false;
  return write("\n");
}

bool Console::write(std::string_view data) { return writeAll(fd_, data); }

std::string_view Console::clearPrompt() {
  if (!prompt_shown_) return "";
  prompt_shown_ = false;
  return terminal_ ? "\r\033[K" : "\n";
}

}  // namespace plexus::client
