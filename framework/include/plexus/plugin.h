#pragma once
// The Plexus plugin API, version 4.
//
// A protocol plugin is a shared object that exports one PluginDescriptor (see plugin_export.h). The
// server loads it, checks the API version and build signature, calls `create` once with the
// --plugin-arg pairs to get a PluginFactory, tells the factory about each event loop that will run
// its connections (onLoopStart), then asks it for one ProtocolHandler per connection.
//
// Threads. There are three kinds of call:
//   - loop thread: a handler belongs to its connection's loop thread; every callback of a handler,
//     every Session call and every timer callback runs there. A factory's onLoopStart/onLoopStop
//     and newHandler() for a loop run on that loop's thread, so per-loop state needs no lock.
//   - any thread: DeferredReply::send() and the factory's create() (on the thread that loads it).
//   - a factory is shared by all loops: what newHandler() reads must be safe to read from several
//     loop threads at once (most factories only read their configuration).
//
// Lifetimes. A handler lives from newHandler() until right after its onClose(); timers set
// through its Session die with it (cancelled at the close, never called after onClose). The
// factory, and the plugin library its code lives in, outlive every handler and every loop state.
//
// Reload. A server may swap in a new factory while it runs (ServedPlugin::replaceFactory in
// plugin_host.h; plexus-server does on SIGHUP, from the plugin loaded again). Live connections
// keep the handler, factory and library they started with; new ones get the new factory. For a
// while a loop may then run handlers of both: each factory gets its own onLoopStart and onLoopStop
// on each loop, the old one's stop once that loop has no handler of it left. Each load of a plugin
// is a library of its own, with its own statics, unloaded after its last factory goes.
//
// Errors: a handler callback (or a timer callback) that throws gets its connection closed and the
// error logged; the server goes on serving every other connection.
//
// Version history: 1 (Plexus 0.1.0) had no build signature; 2 added it; 3 added timers, pausing
// reads, deferred replies, slices and file ranges, per-loop hooks and the stop notice; 4 added
// LoopInfo::metrics at the end of LoopInfo, which version 3 plugins never read: the loader takes
// versions 3 and 4 and refuses every other with a one-line error naming both versions.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace plexus {

class Buffer;
class EventLoop;
class MetricsScope;

inline constexpr uint32_t kPluginApiVersion = 4;
// The oldest version the loader still takes (the versions between are additive).
inline constexpr uint32_t kPluginApiOldestVersion = 3;

// A timer of one connection (Session::runAfter). 0 is no timer.
using SessionTimerId = uint64_t;

// The event loop a handler, or a factory's per-loop state, runs on.
struct LoopInfo {
  EventLoop* loop = nullptr;
  // 0 .. count-1: a dense index for per-loop state (e.g. a std::vector sized in onLoopStart).
  size_t index = 0;
  // How many loops serve this plugin's listener.
  size_t count = 1;
  // Since version 4: where the plugin registers its own counters and gauges for this loop (see
  // metrics.h); its series get the labels loop, listener and plugin. Never null (without an admin
  // listener the series are kept and not exported). Register in onLoopStart (any thread may, but
  // never per message), keep the pointers, and write them on this loop's thread only.
  MetricsScope* metrics = nullptr;
};

// A reply promised now and sent later, maybe from another thread: Session::deferReply() keeps its
// place in the connection's output, and everything the handler sends after it waits behind it, so
// pipelined replies go out in request order however they are computed.
//
// Thread safety: copyable; send() may be called from any thread, while the server runs (until the
// factory's onLoopStop for the connection's loop has returned). The first send() fills the place;
// later ones are ignored. When the last copy is destroyed unfilled, the place is filled with
// nothing, so the replies behind it are not held forever. After the connection has closed, a
// send() does nothing.
class DeferredReply {
 public:
  // What a Session implementation provides; plugins never implement it.
  class Slot {
   public:
    virtual ~Slot() = default;
    // Any thread, at most once per slot (DeferredReply sees to it).
    virtual void fill(std::string data, bool close_after) = 0;
  };

  DeferredReply() = default;
  explicit DeferredReply(std::shared_ptr<Slot> slot) : state_(std::make_shared<State>(std::move(slot))) {}

  // Sends `data` in the reply's place; with close_after the connection then closes gracefully, as
  // Session::close() would (what was queued before the place still goes out; nothing after it).
  void send(std::string data, bool close_after = false) const {
    if (state_ && !state_->done.exchange(true, std::memory_order_acq_rel)) {
      state_->slot->fill(std::move(data), close_after);
    }
  }
  explicit operator bool() const { return state_ != nullptr; }

 private:
  struct State {
    explicit State(std::shared_ptr<Slot> s) : slot(std::move(s)) {}
    ~State() {
      if (!done.load(std::memory_order_acquire)) slot->fill(std::string(), false);
    }
    std::shared_ptr<Slot> slot;
    std::atomic<bool> done{false};
  };
  std::shared_ptr<State> state_;
};

// The connection as a handler sees it. Loop thread only (DeferredReply aside).
//
// Closing: after close() or abort(), send() drops its bytes (close() still writes what was queued
// before it), onData() is not called again, timers do not fire, and onClose() follows once the
// connection has closed (at once for abort(); after the flush for close()) — never while another
// callback of the handler is running. The `input` an onData() call was given stays valid until
// that call returns, even if it called close() or abort(). When the peer ends its side (EOF), the
// connection writes what is queued, and what the handler still sends (from onDrained(), a timer or
// a deferred reply), then closes.
//
// Order: bytes reach the peer in the order they were sent, whatever mix of send(), sendSlices(),
// sendFile() and deferred replies produced them.
class Session {
 public:
  virtual ~Session() = default;

  // --- Output ---
  // Queues bytes for the peer. Dropped once close() or abort() was called.
  virtual void send(std::string_view data) = 0;
  // Queues the readable bytes of `buf` for the peer and empties it (no copy when nothing is queued).
  virtual void send(Buffer& buf) = 0;
  // Sends several slices as one write (writev) without copying them together, e.g. a header and a
  // body. What the socket does not take at once is copied into the output queue.
  virtual void sendSlices(std::span<const std::string_view> slices) = 0;
  // Sends `length` bytes of the file open as `fd`, from `offset` (sendfile), after what is queued.
  // Takes ownership of `fd`: it is closed once the range is sent, or when the connection closes.
  // A file that ends early (truncated meanwhile) closes the connection: the peer was promised
  // `length` bytes. File bytes do not count towards the output buffer's high-water mark.
  virtual void sendFile(int fd, uint64_t offset, uint64_t length) = 0;
  // Reserves the place of a reply that will be sent later (see DeferredReply).
  virtual DeferredReply deferReply() = 0;
  // Bytes queued but not yet written to the socket, file ranges and deferred places included.
  virtual size_t pendingOutputBytes() const = 0;

  // --- Input ---
  // Stops reading from the socket (and calling onData) until resumeReading(); e.g. while too much
  // output is queued behind pipelined requests. Bytes already read stay in the input buffer.
  virtual void pauseReading() = 0;
  // Reads again. If unconsumed input is waiting, onData() is called with it soon (from the loop,
  // never from inside resumeReading()), even if the peer sends nothing more.
  virtual void resumeReading() = 0;
  virtual bool readingPaused() const = 0;

  // --- Timers ---
  // Calls `cb` on the loop thread after `delay`, once, unless cancelled or the connection closed
  // first. Returns an id for cancelTimer().
  virtual SessionTimerId runAfter(std::chrono::nanoseconds delay, std::function<void()> cb) = 0;
  // Cancels a timer of this session; an unknown or fired id is ignored.
  virtual void cancelTimer(SessionTimerId id) = 0;

  // --- Closing ---
  // Graceful close: stop reading, flush what is queued (deferred places included), then close.
  virtual void close() = 0;
  // Closes now, dropping what is queued.
  virtual void abort() = 0;
  virtual bool closing() const = 0;  // close() or abort() was called, or the connection closed

  // --- About the connection ---
  virtual uint64_t id() const = 0;
  virtual std::string peerAddress() const = 0;  // "1.2.3.4:5678"
  virtual const LoopInfo& loopInfo() const = 0;
};

// One per connection.
class ProtocolHandler {
 public:
  virtual ~ProtocolHandler() = default;
  virtual void onConnect(Session& session) { (void)session; }
  // New bytes arrived; they are appended to `input`. Retrieve what you consumed, leave the rest for
  // the next call. Not called while reading is paused, nor after close() or abort().
  virtual void onData(Session& session, Buffer& input) = 0;
  // Bytes that had to be queued have all been written to the socket. A send the socket took whole
  // reports nothing (pendingOutputBytes() is 0 right after it): a producer sends while
  // pendingOutputBytes() is 0 and resumes here.
  virtual void onDrained(Session& session) { (void)session; }
  // The server is stopping gracefully: finish what is in flight and close (an HTTP handler answers
  // the request it is working on with `Connection: close`). Connections still open when the
  // server's grace period ends are aborted. The default closes gracefully at once.
  virtual void onStop(Session& session) { session.close(); }
  // The connection closed; the session can no longer send. The handler is destroyed right after.
  virtual void onClose(Session& session) { (void)session; }
};

class PluginFactory {
 public:
  virtual ~PluginFactory() = default;
  // A loop starts serving this plugin: set up per-loop state. On that loop's thread, before any of
  // its connections reaches newHandler().
  virtual void onLoopStart(const LoopInfo& loop) { (void)loop; }
  // The loop has closed its last connection of this plugin and stops, or (after a reload) has
  // closed its last connection of this factory: tear per-loop state down. On that loop's thread.
  // Not called for a loop whose onLoopStart was not called.
  virtual void onLoopStop(const LoopInfo& loop) { (void)loop; }
  // One handler per connection, on the connection's loop thread.
  virtual std::unique_ptr<ProtocolHandler> newHandler(const LoopInfo& loop) = 0;
};

// --plugin-arg KEY=VALUE pairs.
using PluginArgs = std::map<std::string, std::string>;

// How a plugin, or the server, was compiled, as far as the C++ types that cross between them depend
// on it (PluginArgs, std::string_view, std::unique_ptr, the classes above). Plain integers, laid out
// alike by every compiler. The loader refuses a plugin whose standard library, its ABI or its debug
// mode differs from the server's, or whose std::string or PluginArgs has another size (see
// plugin_loader.cc for why the compiler itself is not compared).
struct PluginBuildSignature {
  enum Compiler : uint32_t { kOtherCompiler = 0, kGcc = 1, kClang = 2 };
  enum StandardLibrary : uint32_t { kOtherLibrary = 0, kLibstdcxx = 1, kLibcxx = 2 };

  uint32_t compiler;        // a Compiler
  uint32_t compiler_major;  // __GNUC__ or __clang_major__
  uint32_t library;         // a StandardLibrary
  // libstdc++: _GLIBCXX_USE_CXX11_ABI (1: the C++11 std::string and std::list, 0: the old ones);
  // libc++: _LIBCPP_ABI_VERSION.
  uint32_t library_abi;
  uint32_t library_debug;  // 1: libstdc++'s debug mode (_GLIBCXX_DEBUG), other container layouts
  uint32_t string_size;    // sizeof(std::string)
  uint32_t args_size;      // sizeof(PluginArgs)
};

// The signature of the code being compiled, worked out by the compiler: PLEXUS_PLUGIN records the
// plugin's, the loader has the server's.
consteval PluginBuildSignature currentBuildSignature() {
  PluginBuildSignature s{};
#if defined(__clang__)  // before __GNUC__, which Clang defines too
  s.compiler = PluginBuildSignature::kClang;
  s.compiler_major = __clang_major__;
#elif defined(__GNUC__)
  s.compiler = PluginBuildSignature::kGcc;
  s.compiler_major = __GNUC__;
#endif
#if defined(_LIBCPP_VERSION)
  s.library = PluginBuildSignature::kLibcxx;
  s.library_abi = _LIBCPP_ABI_VERSION;
#elif defined(__GLIBCXX__)
  s.library = PluginBuildSignature::kLibstdcxx;
#if defined(_GLIBCXX_USE_CXX11_ABI)
  s.library_abi = _GLIBCXX_USE_CXX11_ABI;
#endif
#if defined(_GLIBCXX_DEBUG)
  s.library_debug = 1;
#endif
#endif
  s.string_size = sizeof(std::string);
  s.args_size = sizeof(PluginArgs);
  return s;
}

// What a plugin exports under the symbol name kPluginDescriptorSymbol (PLEXUS_PLUGIN fills it in).
// `api_version` comes first and stays first in every version, so a loader can read it before
// trusting the rest; the rest is laid out as that version says (version 1 had no `build`: `name`
// followed `api_version`).
struct PluginDescriptor {
  uint32_t api_version;
  // How the plugin was compiled; checked right after the version, before anything is called.
  PluginBuildSignature build;
  const char* name;         // e.g. "echo"
  const char* description;  // one line
  // Makes the factory. May throw (e.g. std::invalid_argument for a bad argument); the loader turns
  // that into an error message.
  std::unique_ptr<PluginFactory> (*create)(const PluginArgs& args);
};

inline constexpr const char* kPluginDescriptorSymbol = "plexus_plugin_descriptor";

}  // namespace plexus
