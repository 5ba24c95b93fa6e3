// The resp plugin's commands through the in-memory plugin harness (plexus/testing): each command
// family, the error replies byte for byte as redis-server 7.0 gives them, MULTI/EXEC, expiry on a
// manual clock (lazy and active), protocol errors whole / byte by byte / split, plugin arguments.

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>

#include "absl/strings/str_cat.h"
#include "plexus/testing/plugin_harness.h"
#include "resp_handler.h"

namespace plexus::resp {
namespace {

using plexus::testing::EmbeddedConnection;
using plexus::testing::PluginHarness;

// A harness over a RespFactory whose clock the test moves (milliseconds).
class RespCommandTest : public ::testing::TestWithParam<std::string> {
 protected:
  RespCommandTest() { reset({}); }

  void reset(PluginArgs args) {
    conn_ = nullptr;
    harness_.reset();
    args["store"] = GetParam();
    factory_ = std::make_shared<RespFactory>(args, [this] { return now_ms_.load(); });
    harness_ = std::make_unique<PluginHarness>(factory_);
    conn_ = &harness_->connect();
  }

  // Sends `request` (inline or RESP) and returns everything the plugin answered.
  std::string ask(std::string_view request) {
    conn_->feed(request);
    return conn_->takeOutput();
  }

  std::atomic<int64_t> now_ms_{1'000'000};
  std::shared_ptr<RespFactory> factory_;
  std::unique_ptr<PluginHarness> harness_;
  EmbeddedConnection* conn_ = nullptr;
};

TEST_P(RespCommandTest, ConnectionCommands) {
  EXPECT_EQ(ask("PING\r\n"), "+PONG\r\n");
  EXPECT_EQ(ask("*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n"), "$2\r\nhi\r\n");
  EXPECT_EQ(ask("PING a b\r\n"), "-ERR wrong number of arguments for 'ping' command\r\n");
  EXPECT_EQ(ask("ECHO \"a b\"\r\n"), "$3\r\na b\r\n");
  EXPECT_EQ(
      ask("SELECT 0\r\nSELECT 1\r\nSELECT x\r\n"),
      "+OK\r\n-ERR DB index is out of range\r\n-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ(ask("HELLO 3\r\n"), "-NOPROTO unsupported protocol version\r\n");
  EXPECT_EQ(ask("HELLO x\r\n"), "-ERR Protocol version is not an integer or out of range\r\n");
  EXPECT_EQ(ask("HELLO 2 foo\r\n"), "-ERR Syntax error in HELLO option 'foo'\r\n");
  EXPECT_EQ(
      ask("HELLO 2\r\n"),
      "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n$5\r\nproto\r\n:2\r\n"
      "$2\r\nid\r\n:1\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
      "$7\r\nmodules\r\n*0\r\n");
  EXPECT_EQ(ask("COMMAND DOCS\r\nCOMMAND\r\nCOMMAND COUNT\r\nCOMMAND foo\r\n"),
            "*0\r\n*0\r\n:0\r\n-ERR unknown subcommand 'foo'. Try COMMAND HELP.\r\n");
  EXPECT_EQ(
      ask("CLIENT GETNAME\r\nCLIENT SETNAME app\r\nCLIENT GETNAME\r\nCLIENT SETNAME \"a b\"\r\n"),
      "$-1\r\n+OK\r\n$3\r\napp\r\n"
      "-ERR Client names cannot contain spaces, newlines or special characters.\r\n");
  EXPECT_EQ(ask("CLIENT SETINFO LIB-NAME x\r\nCLIENT SETNAME\r\nCLIENT\r\nCLIENT foo\r\n"),
            "+OK\r\n-ERR wrong number of arguments for 'client|setname' command\r\n"
            "-ERR wrong number of arguments for 'client' command\r\n"
            "-ERR unknown subcommand 'foo'. Try CLIENT HELP.\r\n");
  EXPECT_FALSE(conn_->closed());
  EXPECT_EQ(ask("QUIT\r\nPING\r\n"), "+OK\r\n");
  EXPECT_TRUE(conn_->closed());
}

TEST_P(RespCommandTest, UnknownCommandsAndArity) {
  EXPECT_EQ(ask("foo a b\r\n"),
            "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n");
  EXPECT_EQ(ask("FOO\r\n"), "-ERR unknown command 'FOO', with args beginning with: \r\n");
  // Arguments are quoted while fewer than 128 bytes of them were written; CR/LF become spaces.
  const std::string long_arg(200, 'x');
  EXPECT_EQ(ask(absl::StrCat("foo ", long_arg, " y\r\n")),
            absl::StrCat("-ERR unknown command 'foo', with args beginning with: '",
                         std::string(128, 'x'), "' \r\n"));
  EXPECT_EQ(ask("*2\r\n$3\r\nf\no\r\n$3\r\na\rb\r\n"),
            "-ERR unknown command 'f o', with args beginning with: 'a b' \r\n");
  EXPECT_EQ(ask("get\r\nGET a b\r\nset k\r\nmset a\r\nmset a 1 b\r\nhset h f\r\n"),
            "-ERR wrong number of arguments for 'get' command\r\n"
            "-ERR wrong number of arguments for 'get' command\r\n"
            "-ERR wrong number of arguments for 'set' command\r\n"
            "-ERR wrong number of arguments for 'mset' command\r\n"
            "-ERR wrong number of arguments for 'mset' command\r\n"
            "-ERR wrong number of arguments for 'hset' command\r\n");
}

TEST_P(RespCommandTest, Strings) {
  EXPECT_EQ(ask("SET k v\r\nGET k\r\nGET nokey\r\nSTRLEN k\r\nAPPEND k xyz\r\nGET k\r\n"),
            "+OK\r\n$1\r\nv\r\n$-1\r\n:1\r\n:4\r\n$4\r\nvxyz\r\n");
  EXPECT_EQ(
      ask("SET k v NX\r\nSET k2 v XX\r\nSET k w XX GET\r\nSET k2 v NX GET\r\nGETSET k2 z\r\n"),
      "$-1\r\n$-1\r\n$4\r\nvxyz\r\n$-1\r\n$1\r\nv\r\n");
  EXPECT_EQ(ask("SET k v NX XX\r\nSET k v EX 10 PX 5\r\nSET k v foo\r\nSET k v EX\r\n"),
            "-ERR syntax error\r\n-ERR syntax error\r\n-ERR syntax error\r\n-ERR syntax error\r\n");
  EXPECT_EQ(
      ask("SET k v EX 0\r\nSET k v PX -1\r\nSET k v EX x\r\nSET k v EX 9999999999999999\r\n"),
      "-ERR invalid expire time in 'set' command\r\n-ERR invalid expire time in 'set' command\r\n"
      "-ERR value is not an integer or out of range\r\n-ERR invalid expire time in 'set' "
      "command\r\n");
  EXPECT_EQ(ask("MSET a 1 b 2\r\nMGET a b nokey\r\n"),
            "+OK\r\n*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n");
  // Values of every size, binary included, come back unchanged (inline, integer and boxed forms).
  for (size_t n : {0, 1, 9, 10, 27, 28, 29, 100, 70000}) {
    std::string v(n, 'v');
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<char>(i * 7);
    const std::string key = absl::StrCat("key-", n);
    EXPECT_EQ(ask(absl::StrCat("*3\r\n$3\r\nSET\r\n$", key.size(), "\r\n", key, "\r\n$", n, "\r\n",
                               v, "\r\n")),
              "+OK\r\n");
    EXPECT_EQ(ask(absl::StrCat("GET ", key, "\r\n")), absl::StrCat("$", n, "\r\n", v, "\r\n"));
  }
  const std::string long_key(300, 'k');
  EXPECT_EQ(
      ask(absl::StrCat("SET ", long_key, " 12\r\nINCR ", long_key, "\r\nGET ", long_key, "\r\n")),
      "+OK\r\n:13\r\n$2\r\n13\r\n");
}

TEST_P(RespCommandTest, IntegersAndTheirErrors) {
  EXPECT_EQ(ask("INCR n\r\nINCRBY n 10\r\nDECR n\r\nDECRBY n 5\r\nGET n\r\n"),
            ":1\r\n:11\r\n:10\r\n:5\r\n$1\r\n5\r\n");
  EXPECT_EQ(ask("SET s abc\r\nINCR s\r\nINCRBY n x\r\nSET z 007\r\nINCR z\r\nSET sp \" 1\"\r\nINCR "
                "sp\r\n"),
            "+OK\r\n-ERR value is not an integer or out of range\r\n"
            "-ERR value is not an integer or out of range\r\n+OK\r\n"
            "-ERR value is not an integer or out of range\r\n+OK\r\n"
            "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ(ask("SET m 9223372036854775807\r\nINCR m\r\nINCRBY m -1\r\nSET l "
                "-9223372036854775808\r\nDECR l\r\n"
                "DECRBY l -9223372036854775808\r\nINCRBY l 9223372036854775808\r\n"),
            "+OK\r\n-ERR increment or decrement would overflow\r\n:9223372036854775806\r\n+OK\r\n"
            "-ERR increment or decrement would overflow\r\n-ERR decrement would overflow\r\n"
            "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ(ask("RPUSH list a\r\nINCR list\r\n"),
            ":1\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
}

TEST_P(RespCommandTest, KeySpace) {
  EXPECT_EQ(ask("MSET a 1 b 2 c 3\r\nRPUSH l x\r\nHSET h f v\r\nDBSIZE\r\n"),
            "+OK\r\n:1\r\n:1\r\n:5\r\n");
  EXPECT_EQ(ask("TYPE a\r\nTYPE l\r\nTYPE h\r\nTYPE nokey\r\n"),
            "+string\r\n+list\r\n+hash\r\n+none\r\n");
  EXPECT_EQ(ask("EXISTS a a nokey l\r\nDEL a nokey b\r\nEXISTS a b\r\n"), ":3\r\n:2\r\n:0\r\n");
  EXPECT_EQ(ask("KEYS [a-c]\r\n"), "*1\r\n$1\r\nc\r\n");
  EXPECT_EQ(ask("KEYS l*\r\nKEYS x*\r\n"), "*1\r\n$1\r\nl\r\n*0\r\n");
  EXPECT_EQ(ask("KEYS ?\r\n").substr(0, 4), "*3\r\n");
  EXPECT_EQ(
      ask("SCAN x\r\nSCAN 0 COUNT 0\r\nSCAN 0 MATCH\r\nSCAN 0 FOO x\r\n"),
      "-ERR invalid cursor\r\n-ERR syntax error\r\n-ERR syntax error\r\n-ERR syntax error\r\n");
  // A full SCAN (following the cursor back to 0) returns each matching key once.
  for (int i = 0; i < 200; ++i) ask(absl::StrCat("SET key:", i, " ", i, "\r\n"));
  std::multiset<std::string> found;
  std::string cursor = "0";
  int calls = 0;
  do {
    const std::string out = ask(absl::StrCat("SCAN ", cursor, " MATCH key:1* COUNT 10\r\n"));
    // *2 $<n> <cursor> *<count> ($<n> <key>)...
    size_t pos = 0;
    auto line = [&] {
      const size_t end = out.find("\r\n", pos);
      std::string l = out.substr(pos, end - pos);
      pos = end + 2;
      return l;
    };
    ASSERT_EQ(line(), "*2");
    line();
    cursor = line();
    const int count = std::stoi(line().substr(1));
    for (int i = 0; i < count; ++i) {
      line();
      found.insert(line());
    }
    ASSERT_EQ(pos, out.size());
  } while (cursor != "0" && ++calls < 1000);
  EXPECT_EQ(found.size(), 111u);  // key:1, key:10..19, key:100..199
  EXPECT_EQ(std::set<std::string>(found.begin(), found.end()).size(), 111u);
  EXPECT_EQ(found.count("key:150"), 1u);
  EXPECT_EQ(ask("SCAN 0 TYPE list MATCH l\r\n").substr(0, 4), "*2\r\n");
  EXPECT_EQ(ask("FLUSHALL x\r\nFLUSHDB\r\nDBSIZE\r\nFLUSHALL ASYNC\r\n"),
            "-ERR syntax error\r\n+OK\r\n:0\r\n+OK\r\n");
}

TEST_P(RespCommandTest, Lists) {
  EXPECT_EQ(ask("LPUSH l c b a\r\nRPUSH l d e\r\nLLEN l\r\nLRANGE l 0 -1\r\n"),
            ":3\r\n:5\r\n:5\r\n*5\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n");
  EXPECT_EQ(
      ask("LRANGE l 1 -2\r\nLRANGE l -100 1\r\nLRANGE l 3 1\r\nLRANGE l 9 10\r\nLRANGE l a 1\r\n"),
      "*3\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n*0\r\n*0\r\n"
      "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ(ask("LINDEX l 0\r\nLINDEX l -1\r\nLINDEX l 5\r\nLINDEX l x\r\nLINDEX nokey x\r\n"),
            "$1\r\na\r\n$1\r\ne\r\n$-1\r\n-ERR value is not an integer or out of range\r\n$-1\r\n");
  EXPECT_EQ(
      ask("LPOP l\r\nRPOP l\r\nLPOP l 2\r\nRPOP l 0\r\nLPOP l -1\r\nLPOP l x\r\nLPOP l 1 2\r\n"),
      "$1\r\na\r\n$1\r\ne\r\n*2\r\n$1\r\nb\r\n$1\r\nc\r\n*0\r\n"
      "-ERR value is out of range, must be positive\r\n-ERR value is out of range, must be "
      "positive\r\n"
      "-ERR wrong number of arguments for 'lpop' command\r\n");
  // The last element popped deletes the key.
  EXPECT_EQ(ask("RPOP l 10\r\nEXISTS l\r\nLPOP l\r\nLPOP l 1\r\nLLEN l\r\nLRANGE l 0 -1\r\n"),
            "*1\r\n$1\r\nd\r\n:0\r\n$-1\r\n*-1\r\n:0\r\n*0\r\n");
  EXPECT_EQ(ask("SET s x\r\nLPUSH s a\r\nLPOP s\r\nLLEN s\r\nLRANGE s 0 1\r\n"),
            "+OK\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
}

TEST_P(RespCommandTest, Hashes) {
  EXPECT_EQ(ask("HSET h a 1 b 2\r\nHSET h a 3 c 4\r\nHGET h a\r\nHGET h z\r\nHLEN h\r\nHEXISTS h "
                "b\r\nHEXISTS h z\r\n"),
            ":2\r\n:1\r\n$1\r\n3\r\n$-1\r\n:3\r\n:1\r\n:0\r\n");
  EXPECT_EQ(
      ask("HINCRBY h a 10\r\nHINCRBY h new -2\r\nHINCRBY h a x\r\nHSET h s str\r\nHINCRBY h s 1\r\n"
          "HSET h big 9223372036854775807\r\nHINCRBY h big 1\r\n"),
      ":13\r\n:-2\r\n-ERR value is not an integer or out of range\r\n:1\r\n"
      "-ERR hash value is not an integer\r\n:1\r\n-ERR increment or decrement would overflow\r\n");
  EXPECT_EQ(ask("HDEL h a b nope s big new\r\nHGETALL h\r\nHDEL h c\r\nEXISTS h\r\nHGETALL h\r\n"),
            ":5\r\n*2\r\n$1\r\nc\r\n$1\r\n4\r\n:1\r\n:0\r\n*0\r\n");
  EXPECT_EQ(ask("SET s x\r\nHGET s f\r\n"),
            "+OK\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
}

TEST_P(RespCommandTest, ExpiryIsLazyOnTheManualClock) {
  EXPECT_EQ(ask("SET k v PX 100\r\nPTTL k\r\nTTL k\r\n"), "+OK\r\n:100\r\n:0\r\n");
  now_ms_ += 99;
  EXPECT_EQ(ask("GET k\r\nPTTL k\r\n"), "$1\r\nv\r\n:1\r\n");
  now_ms_ += 1;
  EXPECT_EQ(ask("DBSIZE\r\nGET k\r\nDBSIZE\r\nTTL k\r\n"), ":1\r\n$-1\r\n:0\r\n:-2\r\n");

  EXPECT_EQ(ask("SET k v EX 10\r\nTTL k\r\nSET k w KEEPTTL\r\nTTL k\r\nSET k x\r\nTTL k\r\n"),
            "+OK\r\n:10\r\n+OK\r\n:10\r\n+OK\r\n:-1\r\n");
  EXPECT_EQ(ask("EXPIRE k 5\r\nINCR n\r\nEXPIRE n 5\r\nINCR n\r\nTTL n\r\nPERSIST n\r\nPERSIST "
                "n\r\nTTL n\r\n"),
            ":1\r\n:1\r\n:1\r\n:2\r\n:5\r\n:1\r\n:0\r\n:-1\r\n");
  EXPECT_EQ(ask("EXPIRE k 100 NX\r\nEXPIRE k 100 XX\r\nEXPIRE k 50 GT\r\nEXPIRE k 200 GT\r\nEXPIRE "
                "k 150 LT\r\nTTL k\r\n"),
            ":0\r\n:1\r\n:0\r\n:1\r\n:1\r\n:150\r\n");
  EXPECT_EQ(
      ask("EXPIRE k 1 NX XX\r\nEXPIRE k 1 GT LT\r\nEXPIRE k 1 foo\r\nEXPIRE k x\r\nEXPIRE nokey "
          "10\r\n"),
      "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"
      "-ERR GT and LT options at the same time are not compatible\r\n"
      "-ERR Unsupported option foo\r\n-ERR value is not an integer or out of range\r\n:0\r\n");
  EXPECT_EQ(ask("EXPIRE k 9223372036854775807\r\nPEXPIRE k 9223372036854775807\r\n"),
            "-ERR invalid expire time in 'expire' command\r\n-ERR invalid expire time in 'pexpire' "
            "command\r\n");
  // A deadline now or past deletes at once.
  EXPECT_EQ(ask("EXPIRE k 0\r\nEXISTS k\r\nSET p v\r\nPEXPIRE p -5\r\nEXISTS p\r\n"),
            ":1\r\n:0\r\n+OK\r\n:1\r\n:0\r\n");
  EXPECT_EQ(ask(absl::StrCat("SET a v PXAT ", now_ms_.load() + 50,
                             "\r\nPTTL a\r\nSET b v EXAT 1\r\nEXISTS b\r\n")),
            "+OK\r\n:50\r\n+OK\r\n:0\r\n");
}

TEST_P(RespCommandTest, ActiveExpiryDeletesKeysNobodyReads) {
  for (int i = 0; i < 500; ++i) ask(absl::StrCat("SET t", i, " v PX ", 10 + i % 2 * 1000, "\r\n"));
  ask("SET keep v\r\n");
  EXPECT_EQ(ask("DBSIZE\r\n"), ":501\r\n");
  now_ms_ += 20;  // half of them expired, none read
  size_t deleted = 0;
  for (int round = 0; round < 200 && deleted < 250; ++round) {
    deleted += factory_->store().activeExpireCycle(0, 1);
  }
  EXPECT_EQ(deleted, 250u);
  EXPECT_EQ(ask("DBSIZE\r\nGET t1\r\n"), ":251\r\n$1\r\nv\r\n");
}

TEST_P(RespCommandTest, MultiExec) {
  EXPECT_EQ(ask("MULTI\r\nSET a 1\r\nINCR a\r\nLPUSH a x\r\nGET a\r\nEXEC\r\n"),
            "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n"
            "*4\r\n+OK\r\n:2\r\n-WRONGTYPE Operation against a key holding the wrong kind of "
            "value\r\n$1\r\n2\r\n");
  EXPECT_EQ(ask("EXEC\r\nDISCARD\r\nMULTI\r\nMULTI\r\nSET b 1\r\nDISCARD\r\nGET b\r\n"),
            "-ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n+OK\r\n"
            "-ERR MULTI calls can not be nested\r\n+QUEUED\r\n+OK\r\n$-1\r\n");
  // A command refused while queueing aborts the whole transaction.
  EXPECT_EQ(ask("MULTI\r\nSET c 1\r\nfoo\r\nGET\r\nEXEC\r\nGET c\r\n"),
            "+OK\r\n+QUEUED\r\n-ERR unknown command 'foo', with args beginning with: \r\n"
            "-ERR wrong number of arguments for 'get' command\r\n"
            "-EXECABORT Transaction discarded because of previous errors.\r\n$-1\r\n");
  EXPECT_EQ(ask("MULTI\r\nEXEC\r\nMULTI\r\nPING\r\nMSET x 1 y 2\r\nGET x\r\nDBSIZE\r\nEXEC\r\n"),
            "+OK\r\n*0\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n"
            "*4\r\n+PONG\r\n+OK\r\n$1\r\n1\r\n:3\r\n");
  EXPECT_EQ(ask("MULTI\r\nQUIT\r\n"), "+OK\r\n+OK\r\n");
  EXPECT_TRUE(conn_->closed());
}

TEST_P(RespCommandTest, TransactionsAreAtomicForOtherConnections) {
  EmbeddedConnection& other = harness_->connect();
  EXPECT_EQ(ask("MULTI\r\nSET a 1\r\n"), "+OK\r\n+QUEUED\r\n");
  other.feed("SET a 2\r\nGET a\r\n");
  EXPECT_EQ(other.takeOutput(), "+OK\r\n$1\r\n2\r\n");
  EXPECT_EQ(ask("GET a\r\nEXEC\r\n"), "+QUEUED\r\n*2\r\n+OK\r\n$1\r\n1\r\n");
}

TEST_P(RespCommandTest, PipelinedRepliesComeInOneBatchAndInOrder) {
  std::string request, expected;
  for (int i = 0; i < 300; ++i) {
    absl::StrAppend(&request, "*3\r\n$3\r\nSET\r\n$", std::to_string(i).size() + 1, "\r\nk", i,
                    "\r\n$1\r\nv\r\nGET k", i, "\r\n");
    absl::StrAppend(&expected, "+OK\r\n$1\r\nv\r\n");
  }
  for (uint32_t seed : {1u, 2u, 3u}) {
    conn_->feedSplit(request, seed);
    EXPECT_EQ(conn_->takeOutput(), expected) << "seed " << seed;
  }
  conn_->feedBytewise(request.substr(0, 200));
  conn_->feed(request.substr(200));
  EXPECT_EQ(conn_->takeOutput(), expected);
  EXPECT_EQ(conn_->pendingInput(), 0u);
}

TEST_P(RespCommandTest, ProtocolErrorsReplyAndCloseHoweverSplit) {
  const std::pair<std::string, std::string> cases[] = {
      {"*3000000000\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
      {"*2\r\n$blabla\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
      {"*1\r\n$999999999999\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
      {"set \"a b\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
      {"*1\r\nx\r\n", "-ERR Protocol error: expected '$', got 'x'\r\n"},
      {"PING\r\n*-10\r\nPING\r\n*1\r\n$-1\r\n",
       "+PONG\r\n+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"},
  };
  for (const auto& [request, reply] : cases) {
    for (int way = 0; way < 3; ++way) {
      EmbeddedConnection& c = harness_->connect();
      if (way == 0)
        c.feed(request);
      else if (way == 1)
        c.feedBytewise(request);
      else
        c.feedSplit(request, 42);
      EXPECT_EQ(c.takeOutput(), reply) << request << " way " << way;
      EXPECT_TRUE(c.closed()) << request << " way " << way;
      EXPECT_FALSE(c.aborted());
    }
  }
}

TEST_P(RespCommandTest, LimitsComeFromPluginArguments) {
  reset({{"max-inline", "16"}, {"max-bulk", "8"}, {"max-multibulk", "2"}});
  EXPECT_EQ(ask("*1\r\n$8\r\nPINGPING\r\nPING\r\n"),
            "-ERR unknown command 'PINGPING', with args beginning with: \r\n+PONG\r\n");
  EXPECT_EQ(ask(std::string(17, 'a')), "-ERR Protocol error: too big inline request\r\n");
  EXPECT_TRUE(conn_->closed());
  EmbeddedConnection& c2 = harness_->connect();
  c2.feed("*1\r\n$9\r\n");
  EXPECT_EQ(c2.takeOutput(), "-ERR Protocol error: invalid bulk length\r\n");
  EmbeddedConnection& c3 = harness_->connect();
  c3.feed("*3\r\n");
  EXPECT_EQ(c3.takeOutput(), "-ERR Protocol error: invalid multibulk length\r\n");
}

TEST_P(RespCommandTest, AWaitingBulkHoldsOnlyItsBytes) {
  // A command declaring 100 MB holds only what arrived: pendingInput() is the bytes fed.
  conn_->feed("*2\r\n$3\r\nSET\r\n$100000000\r\nabc");
  EXPECT_EQ(conn_->takeOutput(), "");
  EXPECT_EQ(conn_->pendingInput(), 28u);
  EXPECT_FALSE(conn_->closed());
}

TEST(RespPluginArgsTest, UnknownOrBadArgumentsAreRefused) {
  auto make = [](PluginArgs args) { RespFactory f(args); };
  EXPECT_THROW(make({{"nope", "1"}}), std::invalid_argument);
  EXPECT_THROW(make({{"store", "other"}}), std::invalid_argument);
  EXPECT_THROW(make({{"max-bulk", "0"}}), std::invalid_argument);
  EXPECT_THROW(make({{"max-inline", "12X"}}), std::invalid_argument);
  try {
    make({{"nope", "1"}});
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(
        e.what(),
        "resp: unknown argument 'nope' (known: store, max-inline, max-bulk, max-multibulk)");
  }
  EXPECT_EQ(parseOptions({{"max-inline", "64K"}, {"max-bulk", "1G"}, {"max-multibulk", "10"}})
                .limits.max_bulk,
            1024ull * 1024 * 1024);
  EXPECT_EQ(parseOptions({{"max-inline", "64K"}}).limits.max_inline, 65536u);
  EXPECT_TRUE(parseOptions({{"store", "sharded"}}).sharded);
  EXPECT_FALSE(parseOptions({}).sharded);
}

TEST(RespPluginLoadTest, LoadsByNameThroughThePluginLoader) {
  auto h =
      plexus::testing::PluginHarness::load("resp", {{"store", "sharded"}}, {PLEXUS_PLUGIN_DIR});
  ASSERT_TRUE(h.ok()) << h.status();
  EmbeddedConnection& c = (*h)->connect();
  c.feed("SET a 1\r\nINCR a\r\n");
  EXPECT_EQ(c.takeOutput(), "+OK\r\n:2\r\n");
  auto bad = plexus::testing::PluginHarness::load("resp", {{"bogus", "1"}}, {PLEXUS_PLUGIN_DIR});
  EXPECT_FALSE(bad.ok());
}

INSTANTIATE_TEST_SUITE_P(Stores, RespCommandTest, ::testing::Values("striped", "sharded"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace plexus::resp
