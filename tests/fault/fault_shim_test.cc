// The fault shim on its own: fault_probe makes raw syscalls (as Plexus does) and libc ones under
// it; the results and the fault log must follow PLEXUS_FAULTS exactly. The fault matrix relies on
// this: a case's verdict means something only if the shim did what the case asked.

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "fault/fault_test_util.h"

namespace plexus::testing::fault {
namespace {

struct ProbeRun {
  int status = -1;
  std::string out;  // "NAME RESULT" lines
  std::string log;  // the shim's fault log
  std::string err;
};

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

ProbeRun runProbe(std::vector<std::string> args, const std::string& faults,
                  std::vector<std::string> extra_env = {}) {
  const std::string base =
      ::testing::TempDir() + "plexus_fault_probe_" + std::to_string(::getpid());
  const std::string out = base + ".out", log = base + ".log";
  ::unlink(log.c_str());
  extra_env.push_back("PLEXUS_FAULTS=" + faults);
  extra_env.push_back("PLEXUS_FAULT_LOG=" + log);
  args.insert(args.begin(), kProbe);
  ProbeRun run;
  {
    Process p(args, shimEnvironment(extra_env), out);
    run.status = p.wait(milliseconds(20000));
    run.err = p.stderrText();
  }
  run.out = readFile(out);
  run.log = readFile(log);
  ::unlink(out.c_str());
  ::unlink(log.c_str());
  return run;
}

// The results the probe printed for `name`, in order, as one string: "8 8 -32 8".
std::string resultsOf(const std::string& out, const std::string& name) {
  std::istringstream lines(out);
  std::string line, results;
  while (std::getline(lines, line)) {
    if (line.compare(0, name.size() + 1, name + " ") != 0) continue;
    if (!results.empty()) results += " ";
    results += line.substr(name.size() + 1);
  }
  return results;
}

// The call numbers in the log, in order: "3 6".
std::string loggedCalls(const std::string& log) {
  std::istringstream words(log);
  std::string word, calls;
  while (words >> word) {
    if (word.compare(0, 5, "call=") != 0) continue;
    if (!calls.empty()) calls += " ";
    calls += word.substr(5);
  }
  return calls;
}

TEST(FaultShimTest, WhenSelectsTheCountedCalls) {
  struct Case {
    const char* faults;
    const char* sendto;  // results of 10 sendto calls of 8 bytes
    const char* calls;   // call numbers logged
  };
  const Case cases[] = {
      {"sendto:EPIPE:3", "8 8 -32 8 8 8 8 8 8 8", "3"},
      {"sendto:EPIPE:8+", "8 8 8 8 8 8 8 -32 -32 -32", "8 9 10"},
      {"sendto:EPIPE:2+4", "8 -32 8 8 8 -32 8 8 8 -32", "2 6 10"},
      {"sendto:EPIPE:4..6", "8 8 8 -32 -32 -32 8 8 8 8", "4 5 6"},
      {"sendto:32", "-32 -32 -32 -32 -32 -32 -32 -32 -32 -32", "1 2 3 4 5 6 7 8 9 10"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.faults);
    const ProbeRun run = runProbe({"io", "10"}, c.faults);
    ASSERT_EQ(run.status, 0) << run.err;
    EXPECT_EQ(resultsOf(run.out, "sendto"), c.sendto);
    EXPECT_EQ(loggedCalls(run.log), c.calls) << run.log;
  }
}

TEST(FaultShimTest, KindsSelectTheFds) {
  const ProbeRun run =
      runProbe({"io", "3"}, "write@eventfd:EINTR:2;%read@pipe:EIO:1;write@pipe:ENOSPC:3");
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(resultsOf(run.out, "sendto"), "8 8 8");
  EXPECT_EQ(resultsOf(run.out, "efd-write"), "8 -4 8");
  EXPECT_EQ(resultsOf(run.out, "efd-read"), "8 -11 8");  // nothing to read after the failed write
  EXPECT_EQ(resultsOf(run.out, "pipe-write"), "1 1 -28");
  EXPECT_EQ(resultsOf(run.out, "pipe-read"), "-5 2 -11");  // the first byte waits for round 2
  EXPECT_NE(run.log.find("plexus-fault rule=1 syscall=write call=2 fd="), std::string::npos);
  EXPECT_NE(run.log.find(" kind=eventfd errno=EINTR\n"), std::string::npos) << run.log;
  EXPECT_NE(run.log.find(" kind=pipe errno=EIO\n"), std::string::npos) << run.log;
  EXPECT_NE(run.log.find("plexus-fault rule=2 syscall=read call=1 fd="), std::string::npos);
  EXPECT_NE(run.log.find("plexus-fault rule=3 syscall=write call=3 fd="), std::string::npos);
}

TEST(FaultShimTest, ShortWritesCutTheLength) {
  const ProbeRun run = runProbe({"io", "4"}, "%write@socket:short=1-3");
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(resultsOf(run.out, "sendto"), "1 2 3 1");
  EXPECT_EQ(resultsOf(run.out, "efd-write"), "8 8 8 8");
  const std::string fd = resultsOf(run.out, "socket-fd");
  EXPECT_NE(run.log.find("syscall=sendto call=3 fd=" + fd + " kind=socket short=3/8 ret=3\n"),
            std::string::npos)
      << run.log;

  // writev and sendmsg: the first non-empty piece, cut.
  const ProbeRun iov = runProbe({"iov"}, "%write@socket:short=1");
  ASSERT_EQ(iov.status, 0) << iov.err;
  EXPECT_EQ(resultsOf(iov.out, "writev"), "1");
  EXPECT_EQ(resultsOf(iov.out, "sendmsg"), "1");
  EXPECT_EQ(resultsOf(iov.out, "received"), "2");
  const std::string iov_fd = resultsOf(iov.out, "socket-fd");
  EXPECT_EQ(iov.log, "plexus-fault rule=1 syscall=writev call=1 fd=" + iov_fd +
                         " kind=socket short=1/7 ret=1\n"
                         "plexus-fault rule=1 syscall=sendmsg call=2 fd=" +
                         iov_fd + " kind=socket short=1/7 ret=1\n");
}

TEST(FaultShimTest, CountsAcrossThreadsExactly) {
  const ProbeRun run = runProbe({"threads", "4", "1000"}, "read@eventfd:EIO:1+100");
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(resultsOf(run.out, "eagain"), "3960");
  EXPECT_EQ(resultsOf(run.out, "failed"), "40");
  std::istringstream calls(loggedCalls(run.log));
  std::vector<bool> seen(4001);
  int n = 0;
  for (int call; calls >> call; ++n) {
    ASSERT_EQ(call % 100, 1) << call;
    ASSERT_FALSE(seen[call]) << call;
    seen[call] = true;
  }
  EXPECT_EQ(n, 40);
}

TEST(FaultShimTest, WaitsAndAcceptThroughLibc) {
  const ProbeRun run = runProbe({"waits"}, "%wait:EINTR;accept4:EMFILE");
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(resultsOf(run.out, "epoll_wait"), "-4");
  EXPECT_EQ(resultsOf(run.out, "poll"), "-4");
  EXPECT_EQ(resultsOf(run.out, "select"), "-4");
  EXPECT_EQ(resultsOf(run.out, "accept4"), "-24");
}

TEST(FaultShimTest, EpollCtlKindIsTheTargetFds) {
  const ProbeRun run = runProbe({"waits"}, "epoll_ctl@socket:ENOMEM");
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(resultsOf(run.out, "ctl-eventfd"), "0");
  EXPECT_EQ(resultsOf(run.out, "ctl-socket"), "-12");
  EXPECT_EQ(resultsOf(run.out, "epoll_wait"), "0");  // nothing ready: the eventfd is 0
  EXPECT_NE(run.log.find(" kind=epoll op=ADD target="), std::string::npos) << run.log;
  EXPECT_NE(run.log.find(" target_kind=socket errno=ENOMEM\n"), std::string::npos) << run.log;
}

TEST(FaultShimTest, CountingStartsWhenArmed) {
  const std::string arm = ::testing::TempDir() + "plexus_fault_arm_" + std::to_string(::getpid());
  ::unlink(arm.c_str());
  const ProbeRun run = runProbe({"arm", arm, "3"}, "sendto:EPIPE:2", {"PLEXUS_FAULT_ARM=" + arm});
  ::unlink(arm.c_str());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(resultsOf(run.out, "sendto"), "4 4 4 4 -32 4");
}

TEST(FaultShimTest, NoRulesNoEffect) {
  const ProbeRun run = runProbe({"io", "2"}, "");
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(resultsOf(run.out, "sendto"), "8 8");
  EXPECT_EQ(run.log, "");
}

TEST(FaultShimTest, BadRulesExit97WithOneLine) {
  for (const char* faults :
       {"nope:EIO", "read", "read:EWHAT", "sendto:EIO:0", "sendto:EIO:3+x", "sendto:EIO:5..2",
        "read:short=3", "sendto:short=0", "poll@socket:EINTR", "read@thing:EIO"}) {
    SCOPED_TRACE(faults);
    const ProbeRun run = runProbe({"io", "1"}, faults);
    EXPECT_EQ(run.status, 97);
    EXPECT_EQ(run.err.rfind(std::string("plexus-fault: bad PLEXUS_FAULTS '") + faults + "'", 0), 0u)
        << run.err;
    EXPECT_EQ(run.out, "");  // the constructor stopped it before main
  }
}

}  // namespace
}  // namespace plexus::testing::fault
