// RespParser on its own: commands whole, byte by byte and split anywhere; every protocol error
// with redis-server 7.0's exact reply; limits; no allocation for a declared length.

#include "resp_parser.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace plexus::resp {
namespace {

using Cmds = std::vector<std::vector<std::string>>;

struct Result {
  Cmds commands;
  std::string error;  // empty: no protocol error
  size_t left = 0;    // unconsumed bytes at the end
};

// Feeds `chunks` one after another into an input buffer, parsing after each, as a handler would.
Result run(const std::vector<std::string>& chunks, ParserLimits limits = {}) {
  RespParser p(limits);
  std::string input;
  Result r;
  for (const std::string& chunk : chunks) {
    input += chunk;
    for (;;) {
      const auto st = p.parse(input);
      if (st == RespParser::Status::kNeedMore) {
        input.erase(0, p.skippedBytes());
        break;
      }
      if (st == RespParser::Status::kError) {
        r.error = std::string(p.error());
        r.left = input.size();
        return r;
      }
      r.commands.emplace_back(p.args().begin(), p.args().end());
      input.erase(0, p.consumed());
    }
  }
  r.left = input.size();
  return r;
}

std::vector<std::string> bytewise(const std::string& s) {
  std::vector<std::string> v;
  for (char c : s) v.emplace_back(1, c);
  return v;
}

std::vector<std::string> randomSplit(const std::string& s, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::string> v;
  size_t i = 0;
  while (i < s.size()) {
    const size_t n = std::min<size_t>(s.size() - i, 1 + rng() % 7);
    v.push_back(s.substr(i, n));
    i += n;
  }
  return v;
}

// The same result whole, byte by byte and in random pieces.
void expectEverySplit(const std::string& input, const Cmds& commands,
                      const std::string& error = "") {
  std::vector<std::vector<std::string>> ways = {{input}, bytewise(input)};
  for (uint32_t seed = 1; seed <= 20; ++seed) ways.push_back(randomSplit(input, seed));
  for (const auto& way : ways) {
    const Result r = run(way);
    EXPECT_EQ(r.commands, commands) << testing::PrintToString(input);
    EXPECT_EQ(r.error, error) << testing::PrintToString(input);
  }
}

TEST(RespParserTest, MultibulkCommands) {
  expectEverySplit("*1\r\n$4\r\nPING\r\n", {{"PING"}});
  expectEverySplit("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
                   {{"SET", "k", "hello"}, {"GET", "k"}});
  // binary-safe: CR, LF, NUL inside an argument; an empty argument
  static constexpr char kBinary[] = "*2\r\n$4\r\na\r\n\0\r\n$0\r\n\r\n";
  expectEverySplit(std::string(kBinary, sizeof(kBinary) - 1), {{std::string("a\r\n\0", 4), ""}});
}

TEST(RespParserTest, InlineCommands) {
  expectEverySplit("PING\r\nset k v\r\n  get   k  \n", {{"PING"}, {"set", "k", "v"}, {"get", "k"}});
  expectEverySplit("set \"a b\" 'c d'\r\n", {{"set", "a b", "c d"}});
  expectEverySplit("set \"\\x41\\n\\\"\" 'it\\'s'\r\n", {{"set", "A\n\"", "it's"}});
  expectEverySplit("echo \"\"\r\n", {{"echo", ""}});
}

TEST(RespParserTest, EmptyCommandsAreSkipped) {
  // As redis-server: empty lines, *0 and a negative count run nothing.
  expectEverySplit("\r\n\r\n\nPING\r\n", {{"PING"}});
  expectEverySplit("*0\r\n*-1\r\n*-10\r\nPING\r\n", {{"PING"}});
  expectEverySplit("   \r\n*1\r\n$1\r\nx\r\n", {{"x"}});
}

TEST(RespParserTest, TrailingBytesOfABulkAreNotChecked) {
  // redis-server skips the two bytes after a bulk whatever they are.
  expectEverySplit("*1\r\n$4\r\nPINGxy*1\r\n$1\r\nz\r\n", {{"PING"}, {"z"}});
}

TEST(RespParserTest, ProtocolErrorsHaveRedisReplies) {
  struct Case {
    std::string input;
    std::string reply;
  } cases[] = {
      {"*3000000000\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
      {"*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
      {"*1048577\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
      {"*2\r\n$blabla\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
      {"*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
      {"*1\r\n$999999999999\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
      {"*1\r\n$536870913\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
      {"*1\r\nx\r\n", "-ERR Protocol error: expected '$', got 'x'\r\n"},
      {"*2\r\n$1\r\na\r\n:1\r\n", "-ERR Protocol error: expected '$', got ':'\r\n"},
      {"set \"a b\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
      {"set 'a\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
      {"set \"a\"b\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
  };
  for (const Case& c : cases) expectEverySplit(c.input, {}, c.reply);
  // The commands before the bad one still run.
  expectEverySplit("PING\r\n*x\r\n", {{"PING"}},
                   "-ERR Protocol error: invalid multibulk length\r\n");
}

TEST(RespParserTest, LinesLongerThanTheInlineLimitAreRefused) {
  ParserLimits limits;
  limits.max_inline = 16;
  Result r = run({std::string(17, 'a')}, limits);
  EXPECT_EQ(r.error, "-ERR Protocol error: too big inline request\r\n");
  r = run({std::string(16, 'a')}, limits);  // at the limit: waits for its end
  EXPECT_EQ(r.error, "");
  r = run({"*" + std::string(20, '1')}, limits);
  EXPECT_EQ(r.error, "-ERR Protocol error: too big mbulk count string\r\n");
  r = run({"*1\r\n$" + std::string(20, '1')}, limits);
  EXPECT_EQ(r.error, "-ERR Protocol error: too big bulk count string\r\n");
  // A bulk may be longer than the inline limit.
  r = run({"*1\r\n$20\r\n" + std::string(20, 'b') + "\r\n"}, limits);
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.commands, (Cmds{{std::string(20, 'b')}}));
}

TEST(RespParserTest, ConfiguredBulkAndCountLimits) {
  ParserLimits limits;
  limits.max_bulk = 10;
  limits.max_multibulk = 3;
  EXPECT_EQ(run({"*1\r\n$11\r\n"}, limits).error, "-ERR Protocol error: invalid bulk length\r\n");
  EXPECT_EQ(run({"*1\r\n$10\r\n0123456789\r\n"}, limits).commands, (Cmds{{"0123456789"}}));
  EXPECT_EQ(run({"*4\r\n"}, limits).error, "-ERR Protocol error: invalid multibulk length\r\n");
  EXPECT_EQ(run({"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"}, limits).commands,
            (Cmds{{"a", "b", "c"}}));
}

TEST(RespParserTest, DeclaredLengthsAreNotAllocatedBeforeTheBytesCome) {
  // A huge declared count and bulk: the parser waits with nothing reserved for them.
  RespParser p;
  std::string input = "*1000000\r\n$500000000\r\nabc";
  EXPECT_EQ(p.parse(input), RespParser::Status::kNeedMore);
  EXPECT_EQ(p.skippedBytes(), 0u);
  EXPECT_TRUE(p.args().empty());
  EXPECT_LT(p.args().capacity(), 16u);
}

TEST(RespParserTest, PartialCommandKeepsItsBytesUntilComplete) {
  RespParser p;
  std::string input = "\r\n*2\r\n$3\r\nGET\r\n$1\r";
  EXPECT_EQ(p.parse(input), RespParser::Status::kNeedMore);
  EXPECT_EQ(p.skippedBytes(), 2u);  // only the empty line may go
  input.erase(0, 2);
  input += "\nk\r\n";
  ASSERT_EQ(p.parse(input), RespParser::Status::kCommand);
  EXPECT_EQ(p.consumed(), input.size());
  EXPECT_EQ(std::vector<std::string>(p.args().begin(), p.args().end()),
            (std::vector<std::string>{"GET", "k"}));
}

}  // namespace
}  // namespace plexus::resp
