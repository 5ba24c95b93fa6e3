#pragma once
// What a terminal shows for the bytes a program wrote to it, as lines, for tests of interactive
// output. Enough of a terminal for plexus-client: text, "\r" (to column 0), "\n" (down one line;
// a terminal in its usual mode turns a program's "\n" into "\r\n" itself) and "\033[K" (erase to
// the end of the line). Any other byte is shown as it is, so a test sees it.

#include <string>
#include <string_view>
#include <vector>

namespace plexus::testing {

std::vector<std::string> renderTerminal(std::string_view bytes);

// Whether `lines` ends with `tail`, line by line.
bool screenEndsWith(const std::vector<std::string>& lines, const std::vector<std::string>& tail);

// The lines as a block for a failure message: each between '|'s.
std::string showScreen(const std::vector<std::string>& lines);

}  // namespace plexus::testing
