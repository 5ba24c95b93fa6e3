// End to end: build/bin/plexus-server --plugin resp over real sockets, with each store and two
// loops, driven by raw RESP, redis-cli, redis-benchmark and the Python client (python3-redis).
// A missing client skips its test with a message saying which.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "integration/child_process.h"
#include "support/test_util.h"

namespace plexus::testing {
namespace {

using child::Child;
using std::chrono::milliseconds;

const std::string kServer = std::string(PLEXUS_BIN_DIR) + "/plexus-server";
const std::string kPlugin = std::string(PLEXUS_PLUGIN_DIR) + "/resp.so";
const std::string kRedisCli = "/usr/bin/redis-cli";
const std::string kRedisBenchmark = "/usr/bin/redis-benchmark";
const std::string kPython = "/usr/bin/python3";

bool executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

bool pythonHasRedis() {
  if (!executable(kPython)) return false;
  Child c = Child::spawn({kPython, "-c", "import redis"}, {.pipe_stdin = false});
  return child::communicate(c, "", milliseconds(20000)).status == 0;
}

// A plexus-server serving resp on 127.0.0.1:port with two loops.
class RespServer {
 public:
  // `variant`: the store ("striped", "sharded"), and "_uring" for the io_uring engine.
  explicit RespServer(const std::string& variant) : port_(freePort()) {
    const size_t cut = variant.find('_');
    const std::string store = variant.substr(0, cut);
    const std::string engine = cut == std::string::npos ? "epoll" : variant.substr(cut + 1);
    child_ = Child::spawn({kServer, "--listen", absl::StrCat("127.0.0.1:", port_), "--threads", "2",
                           "--engine", engine, "--plugin", kPlugin, "--plugin-arg",
                           "store=" + store},
                          {.pipe_stdin = false, .pipe_stdout = false, .pipe_stderr = false});
  }
  ~RespServer() {
    if (child_.started()) {
      child_.signal(SIGTERM);
      child_.wait(milliseconds(10000));
    }
  }
  bool waitUntilAccepting() {
    return waitUntil([this] {
             if (child_.wait(milliseconds(0)) != -1) return true;  // exited: fail below
             int fd = connectBlocking(address());
             if (fd < 0) return false;
             ::close(fd);
             return true;
           }) &&
           child_.wait(milliseconds(0)) == -1;
  }
  InetAddress address() const { return InetAddress(port_, /*loopback_only=*/true); }
  uint16_t port() const { return port_; }

 private:
  uint16_t port_;
  Child child_;
};

// Sends `request` on a new connection and reads `expected.size()` bytes of reply.
std::string roundTrip(const InetAddress& addr, const std::string& request, size_t reply_size) {
  int fd = connectBlocking(addr);
  if (fd < 0) return "<no connection>";
  EXPECT_TRUE(writeAll(fd, request));
  std::string reply = readExactly(fd, reply_size);
  ::close(fd);
  return reply;
}

class RespServerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!executable(kServer)) GTEST_SKIP() << "not built: " << kServer;
    server_.emplace(GetParam());
    ASSERT_TRUE(server_->waitUntilAccepting()) << "plexus-server --plugin resp did not start";
  }
  std::string port() const { return std::to_string(server_->port()); }
  std::optional<RespServer> server_;
};

TEST_P(RespServerTest, RepliesByteExactOverASocket) {
  const std::string request =
      "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"
      "GET key\r\n"
      "INCR key\r\n"
      "RPUSH list a b c\r\n"
      "LRANGE list 0 -1\r\n"
      "HSET h f 1\r\nHINCRBY h f 41\r\nHGETALL h\r\n"
      "LPUSH key x\r\n"
      "foo bar\r\n"
      "GET\r\n";
  const std::string expected =
      "+OK\r\n$5\r\nvalue\r\n-ERR value is not an integer or out of range\r\n:3\r\n"
      "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n:1\r\n:42\r\n*2\r\n$1\r\nf\r\n$2\r\n42\r\n"
      "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
      "-ERR unknown command 'foo', with args beginning with: 'bar' \r\n"
      "-ERR wrong number of arguments for 'get' command\r\n";
  EXPECT_EQ(roundTrip(server_->address(), request, expected.size()), expected);
}

TEST_P(RespServerTest, ProtocolErrorRepliesThenCloses) {
  for (const auto& [request, reply] : std::vector<std::pair<std::string, std::string>>{
           {"PING\r\n*3000000000\r\n",
            "+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n"},
           {"*1\r\n$blabla\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
           {"set \"a\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
           {"*1\r\nx\r\n", "-ERR Protocol error: expected '$', got 'x'\r\n"}}) {
    int fd = connectBlocking(server_->address());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(writeAll(fd, request));
    bool eof = false;
    EXPECT_EQ(readUntilEof(fd, &eof), reply);
    EXPECT_TRUE(eof) << "not closed after " << request;
    ::close(fd);
  }
}

TEST_P(RespServerTest, PipelinedWritesAreSeenInOrderAcrossLoops) {
  // One pipeline: SETs to keys of every shard, then commands that read them all at once (they run
  // under locks, after the forwarded SETs), then a transaction.
  std::string request, expected;
  std::string mget = "MGET";
  std::string mget_reply = "*100\r\n";
  for (int i = 0; i < 100; ++i) {
    absl::StrAppend(&request, "SET k", i, " v", i, "\r\n");
    absl::StrAppend(&expected, "+OK\r\n");
    absl::StrAppend(&mget, " k", i);
    const std::string v = absl::StrCat("v", i);
    absl::StrAppend(&mget_reply, "$", v.size(), "\r\n", v, "\r\n");
  }
  absl::StrAppend(&request, mget,
                  "\r\nDBSIZE\r\nMULTI\r\nINCR n\r\nINCR n\r\nGET k7\r\nEXEC\r\nGET n\r\n");
  absl::StrAppend(&expected, mget_reply, ":100\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n",
                  "*3\r\n:1\r\n:2\r\n$2\r\nv7\r\n$1\r\n2\r\n");
  EXPECT_EQ(roundTrip(server_->address(), request, expected.size()), expected);
}

TEST_P(RespServerTest, ConcurrentIncrementsFromManyConnectionsAllCount) {
  constexpr int kClients = 8, kIncrements = 500;
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      std::string request, expected;
      for (int i = 0; i < kIncrements; ++i) {
        absl::StrAppend(&request, "INCR counter\r\nINCR own", c, "\r\n");
      }
      int fd = connectBlocking(server_->address());
      ASSERT_GE(fd, 0);
      ASSERT_TRUE(writeAll(fd, request));
      // Each reply is an integer: count the lines.
      std::string got;
      size_t lines = 0;
      while (lines < 2 * kIncrements) {
        std::string chunk = readExactly(fd, 1);
        if (chunk.empty()) break;
        if (chunk[0] == '\n') ++lines;
        got += chunk;
      }
      EXPECT_EQ(lines, 2u * kIncrements);
      EXPECT_NE(got.find(absl::StrCat(":", kIncrements, "\r\n")), std::string::npos);
      ::close(fd);
    });
  }
  for (auto& t : threads) t.join();
  const std::string total = std::to_string(kClients * kIncrements);
  const std::string expected = absl::StrCat("$", total.size(), "\r\n", total, "\r\n");
  EXPECT_EQ(roundTrip(server_->address(), "GET counter\r\n", expected.size()), expected);
}

TEST_P(RespServerTest, ActiveExpiryDeletesKeysNobodyReads) {
  // 200 keys that expire in 50 ms, never read again: each loop's 100 ms timer samples them away,
  // so DBSIZE (which counts keys not yet deleted) falls to the one key without a TTL.
  std::string request, expected;
  for (int i = 0; i < 200; ++i) {
    absl::StrAppend(&request, "SET tmp", i, " v PX 50\r\n");
    expected += "+OK\r\n";
  }
  request += "SET keep v\r\nDBSIZE\r\n";
  expected += "+OK\r\n:201\r\n";
  ASSERT_EQ(roundTrip(server_->address(), request, expected.size()), expected);
  EXPECT_TRUE(waitUntil([&] { return roundTrip(server_->address(), "DBSIZE\r\n", 4) == ":1\r\n"; },
                        milliseconds(10000)));
}

TEST_P(RespServerTest, RedisCliCommandsPipeAndSession) {
  if (!executable(kRedisCli))
    GTEST_SKIP() << "redis-cli is not installed (apt-get install redis-tools)";
  auto cli = [&](std::vector<std::string> args, const std::string& input) {
    args.insert(args.begin(), {kRedisCli, "-p", port()});
    Child c = Child::spawn(args);
    return child::communicate(c, input, milliseconds(30000));
  };
  auto o = cli({"PING"}, "");
  EXPECT_EQ(o.status, 0);
  EXPECT_EQ(o.out, "PONG\n");
  EXPECT_EQ(cli({"SET", "greeting", "hello world"}, "").out, "OK\n");
  EXPECT_EQ(cli({"GET", "greeting"}, "").out, "hello world\n");
  EXPECT_EQ(cli({"--no-raw", "INCR", "greeting"}, "").out,
            "(error) ERR value is not an integer or out of range\n");

  // --pipe: raw protocol on stdin, a summary at the end.
  std::string pipe_input;
  for (int i = 0; i < 1000; ++i)
    absl::StrAppend(&pipe_input, "*3\r\n$5\r\nRPUSH\r\n$4\r\npipe\r\n$", std::to_string(i).size(),
                    "\r\n", i, "\r\n");
  o = cli({"--pipe"}, pipe_input);
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_NE(o.out.find("errors: 0, replies: 1000"), std::string::npos) << o.out;
  EXPECT_EQ(cli({"LLEN", "pipe"}, "").out, "1000\n");

  // A session on stdin, as a user types it (redis-cli asks COMMAND DOCS first). As against
  // redis-server, redis-cli prints an empty line after an error.
  o = cli({}, "set a 1\nincr a\nget a\nlpush a x\nhset h f v\nhgetall h\nquit\n");
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(
      o.out,
      "OK\n2\n2\nWRONGTYPE Operation against a key holding the wrong kind of value\n\n1\nf\nv\n");
}

TEST_P(RespServerTest, RedisBenchmarkCompletes) {
  if (!executable(kRedisBenchmark))
    GTEST_SKIP() << "redis-benchmark is not installed (apt-get install redis-tools)";
  for (const char* pipeline : {"1", "16"}) {
    Child c = Child::spawn({kRedisBenchmark, "-p", port(), "-q", "-n", "20000", "-c", "50", "-P",
                            pipeline, "-t", "ping,set,get,incr,lpush,hset"});
    auto o = child::communicate(c, "", milliseconds(240000));
    ASSERT_EQ(o.status, 0) << o.err;
    std::string out = o.out;
    std::replace(out.begin(), out.end(), '\r', '\n');
    for (const char* test : {"PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "LPUSH", "HSET"}) {
      // The summary line "\nSET: 81234.56 requests per second, p50=..." (progress lines, "SET:
      // rps=...", ended in \r, made \n above).
      const std::string label = std::string("\n") + test + ": ";
      std::string line;
      for (size_t at = out.find(label); at != std::string::npos; at = out.find(label, at + 1)) {
        const size_t start = at + label.size();
        line = out.substr(start, out.find('\n', start) - start);
        if (line.find(" requests per second") != std::string::npos) break;
        line.clear();
      }
      ASSERT_FALSE(line.empty()) << "no summary for " << test << " -P " << pipeline << "\n" << out;
      EXPECT_GT(std::stod(line), 0.0) << line;
    }
  }
}

TEST_P(RespServerTest, PythonClientStringsListsHashesExpiryPipelineTransaction) {
  if (!pythonHasRedis())
    GTEST_SKIP()
        << "/usr/bin/python3 with the redis module is missing (apt-get install python3-redis)";
  const std::string script = absl::StrCat(R"PY(
import redis, sys
r = redis.Redis(host="127.0.0.1", port=)PY",
                                          port(), R"PY(, decode_responses=True)
assert r.ping() is True
assert r.set("s", "v") is True
assert r.get("s") == "v"
assert r.set("s", "w", nx=True) is None
assert r.set("n", 10) and r.incr("n") == 11 and r.incrby("n", 9) == 20 and r.decr("n") == 19
assert r.append("s", "xyz") == 4 and r.strlen("s") == 4
assert r.mset({"a": "1", "b": "2"}) and r.mget("a", "b", "zz") == ["1", "2", None]
assert r.getset("a", "3") == "1"
try:
    r.incr("s"); sys.exit("incr on a string did not fail")
except redis.ResponseError as e:
    assert str(e) == "value is not an integer or out of range", str(e)
assert r.rpush("l", 1, 2, 3) == 3 and r.lpush("l", 0) == 4
assert r.lrange("l", 0, -1) == ["0", "1", "2", "3"] and r.lindex("l", -1) == "3"
assert r.lpop("l") == "0" and r.rpop("l", 2) == ["3", "2"] and r.llen("l") == 1
assert r.hset("h", mapping={"f1": "a", "f2": "b"}) == 2 and r.hget("h", "f1") == "a"
assert r.hgetall("h") == {"f1": "a", "f2": "b"} and r.hlen("h") == 2 and r.hexists("h", "f2")
assert r.hincrby("h", "c", 5) == 5 and r.hdel("h", "f1", "nope") == 1
try:
    r.lpush("h", "x"); sys.exit("lpush on a hash did not fail")
except redis.ResponseError as e:
    assert str(e).startswith("WRONGTYPE"), str(e)
assert r.type("h") == "hash" and r.type("l") == "list" and r.type("s") == "string" and r.type("q") == "none"
assert r.expire("s", 100) and 99 <= r.ttl("s") <= 100 and 0 < r.pttl("s") <= 100000
assert r.persist("s") and r.ttl("s") == -1 and r.ttl("missing") == -2
assert r.set("tmp", "x", px=1) and r.pexpire("tmp", 1) is not None
assert r.set("e", "x", ex=50) and r.ttl("e") in (49, 50)
p = r.pipeline(transaction=False)
for i in range(100): p.set(f"p{i}", i)
for i in range(100): p.get(f"p{i}")
res = p.execute()
assert res[:100] == [True] * 100 and res[100:] == [str(i) for i in range(100)]
t = r.pipeline(transaction=True)
t.incr("tx").incr("tx").get("tx")
assert t.execute() == [1, 2, "2"]
assert sorted(r.keys("p1?")) == sorted(f"p1{i}" for i in range(10))
assert set(r.scan_iter(match="p9*")) == {"p9"} | {f"p9{i}" for i in range(10)}
assert r.exists("a", "b", "zz") == 2 and r.delete("a", "b", "zz") == 2
assert r.client_setname("py") and r.client_getname() == "py"
assert r.dbsize() > 100 and r.flushdb() and r.dbsize() == 0
print("ok")
)PY");
  Child c = Child::spawn({kPython, "-c", script}, {.pipe_stdin = false});
  auto o = child::communicate(c, "", milliseconds(60000));
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, "ok\n") << o.err;
}

TEST(RespServerArgsTest, UnknownPluginArgumentStopsTheServer) {
  if (!executable(kServer)) GTEST_SKIP() << "not built: " << kServer;
  Child c = Child::spawn({kServer, "--port", std::to_string(freePort()), "--plugin", kPlugin,
                          "--plugin-arg", "colour=blue"},
                         {.pipe_stdin = false});
  auto o = child::communicate(c, "", milliseconds(20000));
  EXPECT_EQ(o.status, 2);
  EXPECT_NE(o.err.find("resp: unknown argument 'colour' (known: store, max-inline, max-bulk, "
                       "max-multibulk)"),
            std::string::npos)
      << o.err;
}

INSTANTIATE_TEST_SUITE_P(Stores, RespServerTest,
                         ::testing::Values("striped", "sharded", "striped_uring", "sharded_uring"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace plexus::testing
