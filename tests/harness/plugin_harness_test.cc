// plexus::testing::PluginHarness: the echo plugin loaded by name, and a probe plugin defined here
// that uses every call of plugin API version 3. Each test checks one promise of plugin.h as the
// harness keeps it, byte for byte.

#include "plexus/testing/plugin_harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "plexus/buffer.h"
#include "support/test_util.h"

namespace plexus {
namespace {

using std::chrono::milliseconds;
using testing::EmbeddedConnection;
using testing::PluginHarness;

// What the probe plugin saw, shared by its factory and handlers (all on the test thread).
struct Record {
  std::vector<std::string> events;  // "loopstart", "connect 1", "close 1", "loopstop", ...
  std::vector<DeferredReply> deferred;  // the places `defer` made, in order
  std::vector<int> files;               // the fds `file` handed to sendFile
  absl::flat_hash_map<std::string, std::string> keys;  // `set`/`get`: one key space per factory
  int nested_close = 0;  // onClose while another callback of the same handler was running
  int nested_data = 0;   // onData from inside another callback (e.g. resumeReading())
  int drained = 0;
  int timers_fired = 0;
  bool null_handler = false;  // newHandler returns nullptr
};

// One command per line:
//   now TEXT               send TEXT\n
//   timer MS TEXT          send TEXT\n after MS        cancel       cancel the last timer
//   chain MS TEXT          after MS, set a timer of MS more that sends TEXT\n
//   defer                  a deferred place, kept in Record::deferred
//   fillsoon MS TEXT       a deferred place, filled with TEXT\n from a timer after MS
//   close / abort / throw  Session::close(), abort(), throw std::runtime_error("boom")
//   pause                  pauseReading() (stops parsing)
//   resumein MS            resumeReading() from a timer after MS
//   resumenow              pause, then resumeReading() from inside onData
//   slices A B C           sendSlices({A, B, C, "\n"})
//   file PATH OFF LEN      sendFile(open(PATH), OFF, LEN)
//   pending                send pendingOutputBytes()\n
//   set K V / get K        the factory's shared key space
//   whoami                 send "ID PEER LOOPINDEX/LOOPCOUNT loop=null|set\n"
class ProbeHandler final : public ProtocolHandler {
 public:
  explicit ProbeHandler(Record* r) : r_(r) {}

  void onConnect(Session& s) override {
    Enter e(this);
    r_->events.push_back(absl::StrCat("connect ", s.id()));
  }
  void onData(Session& s, Buffer& input) override {
    if (depth_ > 0) ++r_->nested_data;
    Enter e(this);
    size_t eol;
    stop_parsing_ = false;
    while (!stop_parsing_ && !s.readingPaused() && !s.closing() &&
           (eol = input.view().find('\n')) != std::string_view::npos) {
      std::string line(input.view().substr(0, eol));
      input.retrieve(eol + 1);
      run(s, line);
    }
  }
  void onDrained(Session& s) override {
    Enter e(this);
    ++r_->drained;
    s.send("drained\n");
  }
  void onStop(Session& s) override {
    Enter e(this);
    r_->events.push_back(absl::StrCat("stop ", s.id()));
    s.send("bye\n");
    s.close();
  }
  void onClose(Session& s) override {
    if (depth_ > 0) ++r_->nested_close;
    r_->events.push_back(absl::StrCat("close ", s.id()));
  }

 private:
  struct Enter {
    explicit Enter(ProbeHandler* h) : h(h) { ++h->depth_; }
    ~Enter() { --h->depth_; }
    ProbeHandler* h;
  };

  void run(Session& s, const std::string& line) {
    std::vector<std::string> w = absl::StrSplit(line, ' ');
    const std::string& cmd = w[0];
    auto rest = [&](size_t from) {
      std::vector<std::string> tail(w.begin() + static_cast<ptrdiff_t>(std::min(from, w.size())),
                                    w.end());
      return absl::StrCat(absl::StrJoin(tail, " "), "\n");
    };
    int ms = 0;
    if (w.size() > 1) (void)absl::SimpleAtoi(w[1], &ms);
    Record* r = r_;
    if (cmd == "now") {
      s.send(rest(1));
    } else if (cmd == "timer") {
      last_timer_ = s.runAfter(milliseconds(ms), [&s, r, text = rest(2)] {
        ++r->timers_fired;
        s.send(text);
      });
    } else if (cmd == "chain") {
      s.runAfter(milliseconds(ms), [&s, r, ms, text = rest(2)] {
        s.runAfter(milliseconds(ms), [&s, r, text] {
          ++r->timers_fired;
          s.send(text);
        });
      });
    } else if (cmd == "cancel") {
      s.cancelTimer(last_timer_);
    } else if (cmd == "defer") {
      r_->deferred.push_back(s.deferReply());
    } else if (cmd == "fillsoon") {
      s.runAfter(milliseconds(ms), [reply = s.deferReply(), text = rest(2)] { reply.send(text); });
    } else if (cmd == "close") {
      s.close();
    } else if (cmd == "abort") {
      s.abort();
    } else if (cmd == "throw") {
      throw std::runtime_error("boom");
    } else if (cmd == "pause") {
      s.pauseReading();
    } else if (cmd == "resumein") {
      s.pauseReading();
      s.runAfter(milliseconds(ms), [&s] { s.resumeReading(); });
    } else if (cmd == "resumenow") {
      s.pauseReading();
      s.resumeReading();
      stop_parsing_ = true;  // leave the rest for the redelivery
    } else if (cmd == "slices") {
      std::vector<std::string_view> slices(w.begin() + 1, w.end());
      slices.push_back("\n");
      s.sendSlices(slices);
    } else if (cmd == "file") {
      uint64_t offset = 0, length = 0;
      (void)absl::SimpleAtoi(w[2], &offset);
      (void)absl::SimpleAtoi(w[3], &length);
      const int fd = ::open(w[1].c_str(), O_RDONLY | O_CLOEXEC);
      r_->files.push_back(fd);
      s.sendFile(fd, offset, length);
    } else if (cmd == "pending") {
      s.send(absl::StrCat(s.pendingOutputBytes(), "\n"));
    } else if (cmd == "set") {
      r_->keys[w[1]] = w[2];
    } else if (cmd == "get") {
      s.send(absl::StrCat(r_->keys[w[1]], "\n"));
    } else if (cmd == "whoami") {
      const LoopInfo& info = s.loopInfo();
      s.send(absl::StrCat(s.id(), " ", s.peerAddress(), " ", info.index, "/", info.count,
                          info.loop == nullptr ? " loop=null" : " loop=set", "\n"));
    }
  }

  Record* const r_;
  SessionTimerId last_timer_ = 0;
  int depth_ = 0;
  bool stop_parsing_ = false;
};

class ProbeFactory final : public PluginFactory {
 public:
  explicit ProbeFactory(Record* r) : r_(r) {}
  void onLoopStart(const LoopInfo& loop) override {
    r_->events.push_back(absl::StrCat("loopstart ", loop.index, "/", loop.count));
  }
  void onLoopStop(const LoopInfo& loop) override {
    r_->events.push_back(absl::StrCat("loopstop ", loop.index, "/", loop.count));
  }
  std::unique_ptr<ProtocolHandler> newHandler(const LoopInfo&) override {
    if (r_->null_handler) return nullptr;
    return std::make_unique<ProbeHandler>(r_);
  }

 private:
  Record* const r_;
};

class PluginHarnessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    harness_ = std::make_unique<PluginHarness>(std::make_shared<ProbeFactory>(&r_));
  }
  EmbeddedConnection& connect() { return harness_->connect(); }

  Record r_;
  std::unique_ptr<PluginHarness> harness_;
};

// A temporary file holding `content`; removed by the destructor.
class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    path_ = ::testing::TempDir() + "plexus-harness-XXXXXX";
    const int fd = ::mkstemp(path_.data());
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    ::close(fd);
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

bool fdIsOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

// --- The echo plugin, loaded by name as plexus-server loads it ---

TEST(PluginHarnessEchoTest, EchoesEveryByteHoweverTheInputIsSplit) {
  auto loaded = PluginHarness::load("echo");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  PluginHarness& h = **loaded;
  EmbeddedConnection& c = h.connect();
  c.feed("hello\n");
  EXPECT_EQ(c.takeOutput(), "hello\n");
  EXPECT_EQ(c.output(), "");  // taken

  const std::string data = plexus::testing::randomBytes(256 * 1024, 7);
  c.feedSplit(data, 1);
  EXPECT_TRUE(c.takeOutput() == data) << "256 KiB fed in random pieces came back different";
  c.feedBytewise(data.substr(0, 4096));
  EXPECT_TRUE(c.takeOutput() == data.substr(0, 4096));
  EXPECT_EQ(c.pendingInput(), 0u);

  c.peerClose();
  EXPECT_TRUE(c.closed());
  EXPECT_FALSE(c.aborted());
}

TEST(PluginHarnessEchoTest, LoadReportsTheLoadersErrors) {
  auto missing = PluginHarness::load("no_such_plugin", {}, {"/no/such/dir"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(),
            "plugin 'no_such_plugin' not found (searched: /no/such/dir)");

  auto bad_args = PluginHarness::load("echo", {{"x", "1"}});
  ASSERT_FALSE(bad_args.ok());
  EXPECT_EQ(bad_args.status().code(), absl::StatusCode::kInvalidArgument);

  auto by_path = PluginHarness::load(PLEXUS_PLUGIN_DIR "/echo.so");
  ASSERT_TRUE(by_path.ok()) << by_path.status();
}

// --- Loop hooks, connections, the factory ---

TEST_F(PluginHarnessTest, OneSimulatedLoopWithoutAnEventLoop) {
  EmbeddedConnection& a = harness_->connect("10.0.0.1:1234");
  EmbeddedConnection& b = harness_->connect("[::1]:5");
  a.feed("whoami\n");
  b.feed("whoami\n");
  EXPECT_EQ(a.takeOutput(), "1 10.0.0.1:1234 0/1 loop=null\n");
  EXPECT_EQ(b.takeOutput(), "2 [::1]:5 0/1 loop=null\n");
  EXPECT_EQ(a.id(), 1u);
  EXPECT_EQ(b.id(), 2u);
  EXPECT_EQ(harness_->loopInfo().loop, nullptr);
}

TEST_F(PluginHarnessTest, ConnectionsShareTheFactory) {
  EmbeddedConnection& a = connect();
  EmbeddedConnection& b = connect();
  a.feed("set color blue\n");
  b.feed("get color\n");
  EXPECT_EQ(b.takeOutput(), "blue\n");
  EXPECT_EQ(a.takeOutput(), "");
}

TEST_F(PluginHarnessTest, DestructionClosesOpenConnectionsThenStopsTheLoop) {
  EmbeddedConnection& a = connect();
  connect();
  a.feed("close\n");
  harness_.reset();
  EXPECT_EQ(r_.events, (std::vector<std::string>{"loopstart 0/1", "connect 1", "connect 2",
                                                  "close 1", "close 2", "loopstop 0/1"}));
  EXPECT_EQ(r_.nested_close, 0);
}

TEST_F(PluginHarnessTest, AFactoryThatMakesNoHandlerLeavesTheConnectionAborted) {
  r_.null_handler = true;
  EmbeddedConnection& c = connect();
  EXPECT_TRUE(c.closed());
  EXPECT_TRUE(c.aborted());
  EXPECT_EQ(c.error(), "factory newHandler() threw: the factory made no handler");
  c.feed("now x\n");
  EXPECT_EQ(c.output(), "");
}

// --- Input ---

TEST_F(PluginHarnessTest, UnconsumedInputWaitsForTheNextBytes) {
  EmbeddedConnection& c = connect();
  c.feedBytewise("now a\nnow b\nno");
  EXPECT_EQ(c.takeOutput(), "a\nb\n");
  EXPECT_EQ(c.pendingInput(), 2u);
  c.feed("w c\n");
  EXPECT_EQ(c.takeOutput(), "c\n");
  EXPECT_EQ(c.pendingInput(), 0u);
}

TEST_F(PluginHarnessTest, SplitFeedingGivesTheSameBytesAsOneFeed) {
  std::string script;
  for (int i = 0; i < 200; ++i) absl::StrAppend(&script, "now line ", i, "\nslices a b ", i, "\n");
  std::string expected;
  for (int i = 0; i < 200; ++i) absl::StrAppend(&expected, "line ", i, "\nab", i, "\n");
  for (uint32_t seed : {1u, 2u, 3u, 42u}) {
    EmbeddedConnection& c = connect();
    c.feedSplit(script, seed);
    EXPECT_EQ(c.takeOutput(), expected) << "seed " << seed;
  }
}

TEST_F(PluginHarnessTest, PausedReadingHoldsInputAndResumeHandsItOverLater) {
  EmbeddedConnection& c = connect();
  c.feed("resumein 10\nnow a\n");
  EXPECT_TRUE(c.readingPaused());
  c.feed("now b\n");  // read from the socket, but onData is not called
  EXPECT_EQ(c.output(), "");
  EXPECT_EQ(c.pendingInput(), 12u);
  harness_->advance(milliseconds(9));
  EXPECT_EQ(c.output(), "");
  // The timer resumes reading; the waiting input is handed over without new bytes from the peer.
  harness_->advance(milliseconds(1));
  EXPECT_FALSE(c.readingPaused());
  EXPECT_EQ(c.takeOutput(), "a\nb\n");
  EXPECT_EQ(c.pendingInput(), 0u);
}

TEST_F(PluginHarnessTest, ResumeNeverCallsOnDataFromInsideIt) {
  EmbeddedConnection& c = connect();
  c.feed("resumenow\nnow a\n");
  EXPECT_EQ(r_.nested_data, 0);
  EXPECT_EQ(c.output(), "");  // "now a" waits for the loop's next turn
  harness_->runPending();
  EXPECT_EQ(c.takeOutput(), "a\n");
  EXPECT_EQ(r_.nested_data, 0);
}

TEST_F(PluginHarnessTest, NoOnDataAfterClose) {
  EmbeddedConnection& c = connect();
  c.feed("close\nnow never\n");
  EXPECT_TRUE(c.closed());
  c.feed("now later\n");
  EXPECT_EQ(c.output(), "");
}

// --- Timers ---

TEST_F(PluginHarnessTest, TimersFireInDeadlineOrderOnTheManualClock) {
  EmbeddedConnection& c = connect();
  c.feed("timer 30 c\ntimer 10 a\ntimer 20 b\ntimer 20 b2\nchain 5 d\n");
  harness_->advance(milliseconds(9));
  EXPECT_EQ(c.takeOutput(), "");
  // 15 ms: "a" at 10, and the chain's second timer, set at 5 for 10, fires in the same advance
  // (after "a": equal deadlines go in the order set).
  harness_->advance(milliseconds(6));
  EXPECT_EQ(c.takeOutput(), "a\nd\n");
  EXPECT_EQ(harness_->now(), milliseconds(15));
  harness_->advance(milliseconds(100));
  EXPECT_EQ(c.takeOutput(), "b\nb2\nc\n");  // equal deadlines: in the order set
  EXPECT_EQ(r_.timers_fired, 5);
}

TEST_F(PluginHarnessTest, ACancelledTimerNeverFires) {
  EmbeddedConnection& c = connect();
  c.feed("timer 10 a\ntimer 10 b\ncancel\n");
  harness_->advance(milliseconds(50));
  EXPECT_EQ(c.takeOutput(), "a\n");
}

TEST_F(PluginHarnessTest, NoTimerFiresAfterTheClose) {
  EmbeddedConnection& a = connect();
  EmbeddedConnection& b = connect();
  a.feed("timer 10 x\nclose\n");
  b.feed("timer 10 y\nabort\n");
  harness_->advance(milliseconds(50));
  EXPECT_EQ(r_.timers_fired, 0);
  EXPECT_EQ(a.output(), "");
  EXPECT_EQ(b.output(), "");
}

// --- Output ---

TEST_F(PluginHarnessTest, SlicesAndBuffersKeepSendOrder) {
  EmbeddedConnection& c = connect();
  c.feed("now a\nslices HTTP/1.1 _200 _OK\nnow b\n");
  EXPECT_EQ(c.takeOutput(), "a\nHTTP/1.1_200_OK\nb\n");
}

TEST_F(PluginHarnessTest, AFileRangeIsReadInAtItsPlaceAndItsFdClosed) {
  TempFile f("0123456789");
  EmbeddedConnection& c = connect();
  c.feed(absl::StrCat("now a\nfile ", f.path(), " 2 5\nnow b\n"));
  EXPECT_EQ(c.takeOutput(), "a\n23456b\n");
  ASSERT_EQ(r_.files.size(), 1u);
  EXPECT_FALSE(fdIsOpen(r_.files[0]));
  EXPECT_FALSE(c.closed());
}

TEST_F(PluginHarnessTest, AFileThatEndsEarlyClosesTheConnection) {
  TempFile f("0123456789");
  EmbeddedConnection& c = connect();
  c.feed(absl::StrCat("file ", f.path(), " 6 10\nnow never\n"));
  EXPECT_EQ(c.takeOutput(), "6789");
  EXPECT_TRUE(c.closed());
  EXPECT_FALSE(c.aborted());
  EXPECT_FALSE(fdIsOpen(r_.files[0]));
  EXPECT_EQ(r_.events.back(), "close 1");
}

TEST_F(PluginHarnessTest, DeferredReplyFromAnotherThreadKeepsRequestOrder) {
  EmbeddedConnection& c = connect();
  c.feed("now a\ndefer\nnow c\ndefer\nnow e\npending\n");
  EXPECT_EQ(c.takeOutput(), "a\n");
  // Held behind the places: "c\n", "e\n" and "4\n" (what was pending when `pending` ran).
  EXPECT_EQ(c.pendingOutputBytes(), 6u);
  ASSERT_EQ(r_.deferred.size(), 2u);
  // Filled in reverse order, from another thread: nothing moves until the harness applies them.
  std::thread([&] {
    r_.deferred[1].send("d\n");
    r_.deferred[0].send("b\n");
  }).join();
  EXPECT_EQ(c.output(), "");
  harness_->runPending();
  EXPECT_EQ(c.takeOutput(), "b\nc\nd\ne\n4\n");
  EXPECT_EQ(c.pendingOutputBytes(), 0u);
}

TEST_F(PluginHarnessTest, TakeOutputAppliesFillsFromOtherThreads) {
  EmbeddedConnection& c = connect();
  c.feed("defer\nnow after\n");
  std::thread([reply = r_.deferred[0]] { reply.send("first\n"); }).join();
  EXPECT_EQ(c.takeOutput(), "first\nafter\n");
}

TEST_F(PluginHarnessTest, AFillOnTheHarnessThreadAppliesAtOnce) {
  EmbeddedConnection& c = connect();
  c.feed("fillsoon 10 late\nnow after\n");
  harness_->advance(milliseconds(10));  // the timer fills the place; no runPending() needed
  EXPECT_EQ(c.output(), "late\nafter\n");
}

TEST_F(PluginHarnessTest, OnlyTheFirstFillCountsAndADroppedPlaceReleasesWhatWaits) {
  EmbeddedConnection& c = connect();
  c.feed("defer\nnow x\ndefer\nnow y\n");
  r_.deferred[0].send("1\n");
  r_.deferred[0].send("ignored\n");
  EXPECT_EQ(c.takeOutput(), "1\nx\n");
  r_.deferred.pop_back();  // the last copy, unfilled: filled with nothing
  EXPECT_EQ(c.takeOutput(), "y\n");
}

TEST_F(PluginHarnessTest, ADeferredReplyWithCloseAfterEndsTheOutput) {
  EmbeddedConnection& c = connect();
  c.feed("now a\ndefer\nnow never\n");
  r_.deferred[0].send("last\n", /*close_after=*/true);
  EXPECT_EQ(c.takeOutput(), "a\nlast\n");
  EXPECT_TRUE(c.closed());
  EXPECT_FALSE(c.aborted());
}

TEST_F(PluginHarnessTest, ADeferredReplyOutlivingTheHarnessDoesNothing) {
  connect().feed("defer\n");
  DeferredReply reply = r_.deferred[0];
  harness_.reset();
  reply.send("late\n");  // must not touch the destroyed harness
  std::thread([reply] { reply.send("later\n"); }).join();
  SUCCEED();
}

TEST_F(PluginHarnessTest, UnwritablePeerQueuesThenDrains) {
  EmbeddedConnection& c = connect();
  c.feed("now sent-whole\n");
  EXPECT_EQ(r_.drained, 0);  // a send taken whole reports nothing
  c.setWritable(false);
  c.feed("now a\nnow b\n");
  EXPECT_EQ(c.takeOutput(), "sent-whole\n");
  EXPECT_EQ(c.pendingOutputBytes(), 4u);
  c.setWritable(true);
  EXPECT_EQ(r_.drained, 1);
  EXPECT_EQ(c.takeOutput(), "a\nb\ndrained\n");
  EXPECT_EQ(c.pendingOutputBytes(), 0u);
}

TEST_F(PluginHarnessTest, AFileWaitsForAnUnwritablePeerToo) {
  TempFile f("abcdef");
  EmbeddedConnection& c = connect();
  c.setWritable(false);
  c.feed(absl::StrCat("now 1\nfile ", f.path(), " 0 6\nnow 2\n"));
  EXPECT_EQ(c.pendingOutputBytes(), 2u + 6u + 2u);
  EXPECT_TRUE(fdIsOpen(r_.files[0]));
  c.setWritable(true);
  EXPECT_EQ(c.takeOutput(), "1\nabcdef2\ndrained\n");
  EXPECT_FALSE(fdIsOpen(r_.files[0]));
}

// --- Closing ---

TEST_F(PluginHarnessTest, CloseFlushesWhatWasQueuedThenCloses) {
  EmbeddedConnection& c = connect();
  c.setWritable(false);
  c.feed("now a\ndefer\nnow b\nclose\nnow dropped\n");
  EXPECT_FALSE(c.closed());
  r_.deferred[0].send("x\n");
  EXPECT_FALSE(c.closed());  // the peer has not read yet
  c.setWritable(true);
  EXPECT_EQ(c.takeOutput(), "a\nx\nb\n");  // no onDrained once closing
  EXPECT_TRUE(c.closed());
  EXPECT_FALSE(c.aborted());
  EXPECT_EQ(r_.events.back(), "close 1");
}

TEST_F(PluginHarnessTest, AbortDropsWhatIsQueuedAndReportsTheCloseAfterTheCallback) {
  EmbeddedConnection& c = connect();
  c.setWritable(false);
  c.feed("now a\nabort\n");
  EXPECT_TRUE(c.closed());
  EXPECT_TRUE(c.aborted());
  EXPECT_EQ(c.pendingOutputBytes(), 0u);
  c.setWritable(true);
  EXPECT_EQ(c.output(), "");
  EXPECT_EQ(r_.nested_close, 0);
  EXPECT_EQ(r_.events, (std::vector<std::string>{"loopstart 0/1", "connect 1", "close 1"}));
}

TEST_F(PluginHarnessTest, AThrowingCallbackAbortsTheConnectionOnly) {
  EmbeddedConnection& a = connect();
  EmbeddedConnection& b = connect();
  a.feed("now before\nthrow\nnow never\n");
  EXPECT_TRUE(a.closed());
  EXPECT_TRUE(a.aborted());
  EXPECT_EQ(a.error(), "handler onData() threw: boom");
  EXPECT_EQ(a.takeOutput(), "before\n");
  EXPECT_EQ(r_.nested_close, 0);
  b.feed("now fine\n");
  EXPECT_EQ(b.takeOutput(), "fine\n");
  EXPECT_FALSE(b.closed());
}

TEST_F(PluginHarnessTest, PeerCloseWithNothingQueuedClosesAtOnce) {
  EmbeddedConnection& c = connect();
  c.feed("timer 10 never\n");
  c.peerClose();
  EXPECT_TRUE(c.closed());
  EXPECT_FALSE(c.aborted());
  harness_->advance(milliseconds(20));
  EXPECT_EQ(r_.timers_fired, 0);
}

TEST_F(PluginHarnessTest, PeerCloseWritesWhatIsStillComingThenCloses) {
  EmbeddedConnection& c = connect();
  c.feed("defer\nnow b\n");
  c.peerClose();
  EXPECT_FALSE(c.closed());
  c.feed("now ignored\n");  // nothing is read after the EOF
  std::thread([reply = r_.deferred[0]] { reply.send("a\n"); }).join();
  EXPECT_EQ(c.takeOutput(), "a\nb\n");
  EXPECT_TRUE(c.closed());
  EXPECT_FALSE(c.aborted());
}

TEST_F(PluginHarnessTest, StopServerNotifiesEveryOpenConnection) {
  EmbeddedConnection& a = connect();
  EmbeddedConnection& b = connect();
  EmbeddedConnection& gone = connect();
  gone.feed("close\n");
  b.feed("defer\n");
  harness_->stopServer();
  EXPECT_EQ(a.takeOutput(), "bye\n");
  EXPECT_TRUE(a.closed());
  EXPECT_FALSE(b.closed());  // its deferred reply still goes out first
  r_.deferred[0].send("answer\n");
  EXPECT_EQ(b.takeOutput(), "answer\nbye\n");
  EXPECT_TRUE(b.closed());
  EXPECT_EQ(std::count(r_.events.begin(), r_.events.end(), "stop 3"), 0);
  EXPECT_EQ(std::count(r_.events.begin(), r_.events.end(), "stop 1"), 1);
}

TEST(PluginHarnessDeathTest, AnotherThreadMayNotDriveTheHarness) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Record r;
  PluginHarness h(std::make_shared<ProbeFactory>(&r));
  EXPECT_DEATH(std::thread([&] { h.advance(milliseconds(1)); }).join(),
               "advance called from a thread other than the one that made the harness");
}

}  // namespace
}  // namespace plexus
