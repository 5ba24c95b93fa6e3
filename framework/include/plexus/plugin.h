#pragma once
// The Plexus plugin API, version 2.
//
// A protocol plugin is a shared object that exports one PluginDescriptor (see plugin_export.h). The
// server loads it, checks the API version, calls `create` once with the --plugin-arg pairs to get a
// PluginFactory, then asks the factory for one ProtocolHandler per connection.
//
// Threading: a handler belongs to its connection's loop thread; every callback of a handler, and
// every Session call, happens on that thread. newHandler() is called on the loop thread of the new
// connection, so a factory shared by several sub-reactors must be thread-safe there (most factories
// only read their configuration).
//
// Errors: a handler callback that throws gets its connection closed and the error logged; the server
// goes on serving every other connection.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace plexus {

class Buffer;
class EventLoop;

// 2: the descriptor carries the plugin's build signature. (1, in Plexus 0.1.0, had none.)
inline constexpr uint32_t kPluginApiVersion = 2;

// The connection as a handler sees it. Loop thread only.
//
// Closing: after close() or abort(), send() drops its bytes (close() still writes what was queued
// before it), onData() is not called again, and onClose() follows once the connection has closed
// (at once for abort(); after the flush for close()) — never while another callback of the
// handler is running. The `input` an onData() call was given stays valid until that call returns,
// even if it called close() or abort(). When the peer ends its side (EOF), the connection writes
// what is queued, and what the handler still sends (from onDrained(), say), then closes.
class Session {
 public:
  virtual ~Session() = default;
  // Queues bytes for the peer. Dropped once close() or abort() was called.
  virtual void send(std::string_view data) = 0;
  // Queues the readable bytes of `buf` for the peer and empties it (no copy when nothing is queued).
  virtual void send(Buffer& buf) = 0;
  // Graceful close: stop reading, flush what is queued, then close.
  virtual void close() = 0;
  // Closes now, dropping what is queued.
  virtual void abort() = 0;
  virtual uint64_t id() const = 0;
  virtual std::string peerAddress() const = 0;  // "1.2.3.4:5678"
  virtual EventLoop* loop() const = 0;
  // Bytes queued but not yet written to the socket.
  virtual size_t pendingOutputBytes() const = 0;
};

// One per connection.
class ProtocolHandler {
 public:
  virtual ~ProtocolHandler() = default;
  virtual void onConnect(Session& session) { (void)session; }
  // New bytes arrived; they are appended to `input`. Retrieve what you consumed, leave the rest for
  // the next call. Not called again after close() or abort() (see Session).
  virtual void onData(Session& session, Buffer& input) = 0;
  // Bytes that send() had to queue have all been written to the socket. A send the socket took
  // whole reports nothing (pendingOutputBytes() is 0 right after it): a producer sends while
  // pendingOutputBytes() is 0 and resumes here.
  virtual void onDrained(Session& session) { (void)session; }
  // The connection closed; the session can no longer send.
  virtual void onClose(Session& session) { (void)session; }
};

class PluginFactory {
 public:
  virtual ~PluginFactory() = default;
  virtual std::unique_ptr<ProtocolHandler> newHandler() = 0;
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
