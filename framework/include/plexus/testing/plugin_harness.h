#pragma once
// An in-memory host for unit-testing a protocol plugin: no sockets, no EventLoop, no threads of its
// own. A PluginHarness drives one PluginFactory as a single simulated loop would; each
// EmbeddedConnection is one connection whose input the test feeds and whose output it takes back,
// byte for byte, with a manual clock for the session timers.
//
//   plexus::testing::PluginHarness harness(std::make_shared<MyFactory>());
//   plexus::testing::EmbeddedConnection& c = harness.connect();
//   c.feedSplit("GET / HTTP/1.1\r\n\r\n", /*seed=*/7);
//   EXPECT_EQ(c.takeOutput(), "HTTP/1.1 200 OK\r\n...");
//   harness.advance(std::chrono::seconds(30));      // fires the idle timer
//   EXPECT_TRUE(c.closed());
//
// It keeps every promise of plugin.h (API version 3) as the real host does: output in send order
// whatever mixes send(), sendSlices(), sendFile() (the file range is read into the output at its
// place and the fd closed) and deferred replies (bytes sent after an unfilled place wait behind
// it); pauseReading()/resumeReading() (input left unconsumed is handed over again "soon": at the
// next feed*(), advance() or runPending()); close() flushes then closes, abort() drops what is
// queued; onClose() is never called while another callback of the handler runs, onData() never
// after close()/abort(), timers never after the close; a callback that throws gets its connection
// aborted (aborted() is true, error() says what it threw); after the peer's EOF the connection
// writes what is queued, deferred places included, then closes.
//
// Not modelled: LoopInfo::loop is nullptr (index 0, count 1), so a plugin that posts work to an
// EventLoop (its own or another one) cannot run under the harness; the high-water mark (the real
// connection pauses reading itself while too much output is queued) and the idle timeout, which
// belong to the server, not to the plugin.
//
// Threads. A harness and its connections belong to the thread that made the harness: every method
// here, and every plugin callback the harness makes, runs on that thread (a call from another
// thread aborts the program with a message). The one exception is DeferredReply::send(), which
// may come from any thread, as plugin.h allows: from the harness's thread it is applied at once
// (as the real loop's runInLoop() would); from another thread it is queued under a mutex and
// applied by runPending(), which feed*(), peerClose(), setWritable(), takeOutput(), advance() and
// stopServer() also call first. A DeferredReply may outlive its harness; its send() then does
// nothing.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "plexus/metrics.h"
#include "plexus/plugin.h"

namespace plexus::testing {

namespace detail {
class HarnessCore;
class EmbeddedSession;
}  // namespace detail

// One simulated connection. Owned by its PluginHarness, valid until the harness is destroyed (a
// closed connection stays inspectable).
class EmbeddedConnection {
 public:
  ~EmbeddedConnection();
  EmbeddedConnection(const EmbeddedConnection&) = delete;
  EmbeddedConnection& operator=(const EmbeddedConnection&) = delete;

  // Input from the peer. The bytes are appended to the connection's input buffer and onData() is
  // called (unless reading is paused, the connection is closing or closed, or the peer has ended;
  // bytes fed after close() or the EOF are dropped, as the real connection stops reading).
  // Unconsumed input stays for the next call, as on the real connection.
  void feed(std::string_view bytes);            // all at once: one onData()
  void feedBytewise(std::string_view bytes);    // one onData() per byte
  void feedSplit(std::string_view bytes, uint32_t seed);  // at random split points, reproducible
  // The peer ends its side (EOF): what is queued is written (deferred places included), then the
  // connection closes; at once when nothing is queued.
  void peerClose();

  // What the handler has sent so far and the peer has "received" (everything, unless
  // setWritable(false)): takeOutput() returns it and clears it; output() only looks.
  std::string takeOutput();
  std::string_view output() const;
  // false: the peer stops reading; sends queue up (pendingOutputBytes() grows). true: the queue is
  // written to the output and, if anything had queued, onDrained() is called.
  void setWritable(bool writable);

  bool closed() const;   // closed, gracefully or not; onClose() has been called (or is due)
  bool aborted() const;  // abort() was used, or a callback threw
  const std::string& error() const;  // what a throwing callback said ("" if none threw)
  bool readingPaused() const;
  size_t pendingInput() const;         // unconsumed input bytes
  size_t pendingOutputBytes() const;   // as Session::pendingOutputBytes()
  uint64_t id() const;                 // as Session::id(): 1, 2, ... per harness

 private:
  friend class detail::HarnessCore;
  explicit EmbeddedConnection(std::unique_ptr<detail::EmbeddedSession> session);
  std::unique_ptr<detail::EmbeddedSession> session_;
};

class PluginHarness {
 public:
  // Calls the factory's onLoopStart(LoopInfo{nullptr, 0, 1}) (its exceptions propagate).
  explicit PluginHarness(std::shared_ptr<PluginFactory> factory);
  // Loads a plugin as plexus-server does (plexus/plugin_loader.h): `name_or_path` is a path, or a
  // name looked for as NAME.so in `plugin_dirs` (empty: defaultPluginDirs(), which for a test
  // program in a Plexus build tree's bin/ is that tree's plugins/). The loader's errors as they
  // are.
  static absl::StatusOr<std::unique_ptr<PluginHarness>> load(
      std::string_view name_or_path, const PluginArgs& args = {},
      const std::vector<std::string>& plugin_dirs = {});
  // Closes every open connection (each handler gets onClose()), then onLoopStop.
  ~PluginHarness();
  PluginHarness(const PluginHarness&) = delete;
  PluginHarness& operator=(const PluginHarness&) = delete;

  // A new connection: newHandler() then onConnect(). A factory that throws or returns null leaves
  // it aborted.
  EmbeddedConnection& connect(std::string peer = "127.0.0.1:40000");
  // Moves the manual clock forward by `d`, firing the session timers that fall due, in deadline
  // order (ties in the order they were set), each with the clock at its deadline. advance(0) fires
  // those already due.
  void advance(std::chrono::nanoseconds d);
  std::chrono::nanoseconds now() const;  // since the harness was made
  // The server stops gracefully: onStop() on every open connection.
  void stopServer();
  // Applies deferred replies filled from other threads, then hands input left unconsumed while
  // reading was paused to each connection that has resumed reading.
  void runPending();

  const LoopInfo& loopInfo() const;
  // Where the plugin's series go (LoopInfo::metrics, with the label loop="0"): render() shows
  // them.
  MetricsRegistry& metrics();

 private:
  std::unique_ptr<detail::HarnessCore> core_;
};

}  // namespace plexus::testing
