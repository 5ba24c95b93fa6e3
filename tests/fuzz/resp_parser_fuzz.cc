// Fuzz target resp_parser: the resp plugin's parser, then the whole plugin (parser, commands,
// store) through the in-memory harness.
//
// Checks: the parser never claims bytes it was not given and its arguments lie inside the input;
// the plugin gives the same replies whether the input comes whole or one byte at a time (the same
// lines, in any order: KEYS, SCAN and HGETALL list a hash table, whose order Abseil varies from one
// table to the next in debug builds), and closes the connection in both cases or in neither.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "plexus/testing/plugin_harness.h"
#include "resp_handler.h"
#include "resp_parser.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void fuzzParser(std::string_view data) {
  plexus::resp::ParserLimits limits;
  limits.max_inline = 1024;  // small limits, so the fuzzer reaches them
  limits.max_bulk = 4096;
  limits.max_multibulk = 64;
  plexus::resp::RespParser parser(limits);
  std::string input;
  // Two chunks: the split point comes from the data, so both halves of each state are reached.
  const size_t split = data.empty() ? 0 : static_cast<unsigned char>(data[0]) % (data.size() + 1);
  for (std::string_view chunk : {data.substr(0, split), data.substr(split)}) {
    input.append(chunk.data(), chunk.size());
    for (;;) {
      const auto st = parser.parse(input);
      if (st == plexus::resp::RespParser::Status::kError) {
        check(parser.error().substr(0, 20) == "-ERR Protocol error:");
        return;
      }
      if (st == plexus::resp::RespParser::Status::kNeedMore) {
        check(parser.skippedBytes() <= input.size());
        input.erase(0, parser.skippedBytes());
        break;
      }
      check(parser.consumed() <= input.size() && !parser.args().empty());
      for (std::string_view a : parser.args()) {
        const bool in_input =
            a.data() >= input.data() && a.data() + a.size() <= input.data() + input.size();
        check(in_input || a.size() <= limits.max_inline);  // (unescaped inline arguments)
      }
      input.erase(0, parser.consumed());
    }
  }
}

std::string runPlugin(std::string_view data, bool bytewise, bool* closed) {
  plexus::PluginArgs args{{"max-inline", "1024"}, {"max-bulk", "4096"}, {"max-multibulk", "64"}};
  auto factory = std::make_shared<plexus::resp::RespFactory>(args, [] { return int64_t{1000000}; });
  plexus::testing::PluginHarness harness(factory);
  plexus::testing::EmbeddedConnection& c = harness.connect();
  if (bytewise)
    c.feedBytewise(data);
  else
    c.feed(data);
  *closed = c.closed();
  check(!c.aborted());  // nothing the plugin does may throw
  return c.takeOutput();
}

std::vector<std::string_view> lines(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t nl = s.find('\n'); nl != std::string_view::npos; nl = s.find('\n', start)) {
    out.push_back(s.substr(start, nl + 1 - start));
    start = nl + 1;
  }
  out.push_back(s.substr(start));
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string_view data(reinterpret_cast<const char*>(bytes), size);
  fuzzParser(data);
  bool closed_whole = false, closed_bytewise = false;
  const std::string whole = runPlugin(data, false, &closed_whole);
  const std::string bytewise = runPlugin(data, true, &closed_bytewise);
  check(whole.size() == bytewise.size());
  check(lines(whole) == lines(bytewise));
  check(closed_whole == closed_bytewise);
  return 0;
}
