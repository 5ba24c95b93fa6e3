#include "support/terminal_screen.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace plexus::testing {

std::vector<std::string> renderTerminal(std::string_view bytes) {
  std::vector<std::string> lines(1);
  size_t row = 0, col = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const char ch = bytes[i];
    if (ch == '\r') {
      col = 0;
    } else if (ch == '\n') {
      if (++row == lines.size()) lines.emplace_back();
    } else if (bytes.substr(i, 3) == "\033[K") {
      lines[row].resize(std::min(col, lines[row].size()));
      i += 2;
    } else {
      std::string& line = lines[row];
      if (col >= line.size()) line.resize(col + 1, ' ');
      line[col++] = ch;
    }
  }
  return lines;
}

bool screenEndsWith(const std::vector<std::string>& lines, const std::vector<std::string>& tail) {
  return lines.size() >= tail.size() && std::equal(tail.rbegin(), tail.rend(), lines.rbegin());
}

std::string showScreen(const std::vector<std::string>& lines) {
  return absl::StrCat("|", absl::StrJoin(lines, "|\n|"), "|");
}

}  // namespace plexus::testing
