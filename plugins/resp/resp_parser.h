#pragma once
// RespParser: splits a connection's input into commands, RESP2 multibulk (`*2\r\n$3\r\nGET\r\n...`)
// or inline (`GET key\r\n`), the way redis-server 7.0 reads them (networking.c): the same limits,
// the same `-ERR Protocol error: ...` replies.
//
// The parser works in place. The bytes of a command stay in the caller's input buffer until the
// whole command has arrived; the parser remembers how far it got (offsets, never pointers, since
// the buffer may move between calls) and resumes there, so a command that arrives byte by byte is
// scanned once. Nothing is allocated for a declared length: a `$` length only says how many more
// bytes to wait for, and each argument costs one small offset pair, pushed as it is read.
//
// Thread safety: none; one parser per connection, on its loop thread.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace plexus::resp {

struct ParserLimits {
  size_t max_inline = 64 * 1024;           // an inline command, or a `*`/`$` header line
  size_t max_bulk = 512ull * 1024 * 1024;  // one argument (`$` length)
  size_t max_multibulk = 1024 * 1024;      // arguments in one command (`*` count)
};

class RespParser {
 public:
  enum class Status {
    kCommand,   // args() holds a command; consumed() bytes of the input make it up
    kNeedMore,  // no complete command yet; call again with the same input plus more bytes
    kError,     // error() is the reply (`-ERR Protocol error: ...\r\n`); close the connection
  };

  explicit RespParser(ParserLimits limits = {}) : limits_(limits) {}

  // Parses from the start of `input` (the unconsumed bytes: what an earlier kNeedMore left, plus
  // what came since). On kCommand the arguments are views into `input` (or into the parser, for an
  // inline command with quotes) until the next parse() or reset(); the caller then drops
  // consumed() bytes from its input. Commands with no arguments (an empty line, `*0`, `*-1`) are
  // skipped: their bytes count in consumed() of the next command, or of a kNeedMore
  // (skippedBytes()).
  Status parse(std::string_view input);

  const std::vector<std::string_view>& args() const { return args_; }
  size_t consumed() const { return consumed_; }
  // On kNeedMore: leading bytes of the input that held only skipped empty commands; the caller may
  // drop them (the parser already forgot them).
  size_t skippedBytes() const { return skipped_; }
  std::string_view error() const { return error_; }
  const ParserLimits& limits() const { return limits_; }

 private:
  enum class State { kStart, kMultibulkArg, kBulkBody };

  Status fail(std::string_view message);
  Status parseInline(std::string_view input, size_t start);
  // Splits one inline line like sdssplitargs: spaces separate, "..." with \n \r \t \b \a \\ \"
  // \xHH escapes, '...' with \'. False for unbalanced quotes.
  bool splitInline(std::string_view line);
  // Reads a `*`/`$` header line's number from input[pos..]. 1: ok (*value, *next past the \r\n);
  // 0: need more; -1: too long a line.
  int readHeaderNumber(std::string_view input, size_t pos, bool* parsed, long long* value,
                       size_t* next) const;

  ParserLimits limits_;
  State state_ = State::kStart;
  size_t cmd_start_ = 0;     // where the current command begins in the input
  size_t pos_ = 0;           // how far the current command has been read (absolute in input)
  long long remaining_ = 0;  // arguments still to come (multibulk)
  long long bulk_len_ = 0;   // length of the argument being read
  struct Span {
    size_t offset;  // from cmd_start_
    size_t length;
  };
  std::vector<Span> spans_;
  std::vector<std::string_view> args_;
  std::string inline_storage_;  // unescaped inline arguments, back to back
  size_t consumed_ = 0;
  size_t skipped_ = 0;
  std::string error_;
};

}  // namespace plexus::resp
