#pragma once
// Serving a protocol with a TcpServer: one ProtocolHandler per connection, made by a PluginFactory
// that came from a plugin (plugin_loader.h) or from the program itself.
//
// For each connection the host makes a handler on the connection's loop thread, gives the
// connection a ConnectionHandler that calls it, and calls it: onConnect once established, onData after each read, onDrained
// when the output has drained after a send that could not finish at once, onClose once closed. The
// handler is destroyed right after onClose, on the loop thread. A handler callback that throws gets
// one error line logged (naming the connection and what()) and its connection closed at once
// (forceClose); no exception reaches the loop, and the other connections are served as before.
//
// Each handler holds a reference to its factory, so the factory (and the plugin library its code
// lives in) outlives every handler it made.
//
// The host also tells the factory about each loop serving the server (onLoopStart/onLoopStop, on
// that loop's thread, through TcpServer's loop callbacks) and hands each handler the stop notice
// when the server stops gracefully (ProtocolHandler::onStop). Session timers are loop timers that
// the host cancels when the connection closes; deferred places hold back what the handler sends
// after them until they are filled (see plugin.h).
//
// Replacing the factory (live reload): servePlugin() returns a ServedPlugin whose
// replaceFactory() swaps in another factory while the server runs. New connections get handlers
// of the new factory; a live connection keeps the handler, and so the factory and library, it
// started with. Per loop, for each factory version:
//   - the new factory's onLoopStart runs on each loop's thread before that loop makes a handler
//     from it (soon after replaceFactory(), or at that loop's next connection if sooner);
//   - the old factory's onLoopStop runs on each loop, on its thread, once that loop has no handler
//     of the old factory left (at once if it had none), or when the server stops that loop;
//   - the old factory (and the plugin library it keeps loaded) is released after its last handler
//     and its last onLoopStop, on whichever loop thread finished last.
//
// Thread safety: call servePlugin() where TcpServer's callbacks may be set (the base loop's thread,
// before start()). It replaces the server's connection, message and write-complete callbacks and
// its loop start and stop callbacks. ServedPlugin: any thread (replaceFactory() takes a lock and
// queues the switch on each loop); a copy is a handle to the same service.

#include <cstdint>
#include <memory>

#include "plexus/plugin.h"

namespace plexus {

class TcpServer;
namespace detail {
class PluginService;
}

class ServedPlugin {
 public:
  ServedPlugin() = default;  // serves nothing; replaceFactory() on it is a fatal error
  explicit ServedPlugin(std::shared_ptr<detail::PluginService> service);

  // New connections, from now on, get handlers made by `factory` (not null). Any thread.
  void replaceFactory(std::shared_ptr<PluginFactory> factory);
  // How many times the factory was replaced. Any thread.
  uint64_t generation() const;

 private:
  std::shared_ptr<detail::PluginService> service_;
};

ServedPlugin servePlugin(TcpServer& server, std::shared_ptr<PluginFactory> factory);

}  // namespace plexus
