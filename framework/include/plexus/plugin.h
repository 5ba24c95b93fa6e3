#pragma once
// The Plexus plugin API, version 1.
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

inline constexpr uint32_t kPluginApiVersion = 1;

// The connection as a handler sees it. Loop thread only.
class Session {
 public:
  virtual ~Session() = default;
  // Queues bytes for the peer.
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
  // the next call.
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

// What a plugin exports under the symbol name kPluginDescriptorSymbol. `api_version` comes first
// and stays first in every version, so a loader can read it before trusting the rest.
struct PluginDescriptor {
  uint32_t api_version;
  const char* name;         // e.g. "echo"
  const char* description;  // one line
  // Makes the factory. May throw (e.g. std::invalid_argument for a bad argument); the loader turns
  // that into an error message.
  std::unique_ptr<PluginFactory> (*create)(const PluginArgs& args);
};

inline constexpr const char* kPluginDescriptorSymbol = "plexus_plugin_descriptor";

}  // namespace plexus
