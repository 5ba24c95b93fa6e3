// plexus-server out of file descriptors: with a tiny RLIMIT_NOFILE the server sheds the connections
// it cannot hold, logs that once per burst, does not spin, keeps serving the connections it has,
// and serves new ones once fds free up.

#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "integration/child_process.h"
#include "support/test_util.h"

namespace plexus::testing {
namespace {

// User + system CPU time of a process, in clock ticks.
long cpuTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  // Fields after the command name, which is in parentheses and may hold spaces.
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

int countOf(const std::string& text, std::string_view needle) {
  int n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) ++n;
  return n;
}

TEST(FdExhaustionTest, ShedsLogsOnceDoesNotSpinAndRecovers) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizer runtimes need fds of their own (UBSan's vptr check probes memory through a
  // pipe), so with none left they report false errors. The plain build runs this test.
  GTEST_SKIP() << "not under sanitizers: they need file descriptors of their own";
#endif
  const uint16_t port = freePort();
  const std::string server = std::string(PLEXUS_BIN_DIR) + "/plexus-server";
  child::Child c = child::Child::spawn(
      {"/bin/sh", "-c",
       "ulimit -n 32 && exec " + server + " --port " + std::to_string(port) +
           " --threads 1 --listen 127.0.0.1:" + std::to_string(port)});
  ASSERT_TRUE(c.started());
  std::string err;
  ASSERT_TRUE(child::readUntilContains(c.err(), &err, "listening", milliseconds(10000))) << err;
  const InetAddress addr(port, true);

  // Far more connections than the server has fds for.
  std::vector<int> clients;
  for (int i = 0; i < 60; ++i) {
    int fd = connectBlocking(addr, milliseconds(5000));
    ASSERT_GE(fd, 0);
    clients.push_back(fd);
  }
  int served = 0, shed = 0;
  std::vector<int> alive;
  for (int fd : clients) {
    // A served connection echoes; a shed one reads EOF or a reset.
    if (writeAll(fd, "ping") && readExactly(fd, 4) == "ping") {
      ++served;
      alive.push_back(fd);
    } else {
      ++shed;
      ::close(fd);
    }
  }
  EXPECT_GT(served, 5);
  EXPECT_GT(shed, 10);
  ASSERT_TRUE(child::readUntilContains(c.err(), &err, "shedding", milliseconds(5000))) << err;

  // Not spinning: over half a second of overload the server uses little CPU.
  const long before = cpuTicks(c.pid());
  for (int i = 0; i < 20; ++i) {
    int fd = connectBlocking(addr, milliseconds(5000));
    if (fd >= 0) ::close(fd);
  }
  usleep(500 * 1000);  // a measuring window, not synchronisation
  const long used = cpuTicks(c.pid()) - before;
  EXPECT_LT(used, 25) << "ticks of CPU in 0.5 s of fd exhaustion";

  // The connections it kept still work.
  for (int fd : alive) {
    ASSERT_TRUE(writeAll(fd, "still"));
    EXPECT_EQ(readExactly(fd, 5), "still");
  }
  // Free the fds; new connections are served again.
  for (int fd : alive) ::close(fd);
  bool recovered = waitUntil([&] {
    int fd = connectBlocking(addr, milliseconds(2000));
    if (fd < 0) return false;
    bool ok = writeAll(fd, "back") && readExactly(fd, 4) == "back";
    ::close(fd);
    return ok;
  });
  EXPECT_TRUE(recovered);
  c.signal(SIGTERM);
  EXPECT_EQ(c.wait(milliseconds(10000)), 0);
  child::readUntilContains(c.err(), &err, "\x01never", milliseconds(200));
  EXPECT_EQ(countOf(err, "shedding new connections"), 1) << "one line per burst:\n" << err;
}

}  // namespace
}  // namespace plexus::testing
