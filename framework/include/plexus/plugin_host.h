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
// Each handler holds a reference to the factory, so the factory (and the plugin library its code
// lives in) outlives every handler it made.
//
// The host also tells the factory about each loop serving the server (onLoopStart/onLoopStop, on
// that loop's thread, through TcpServer's loop callbacks) and hands each handler the stop notice
// when the server stops gracefully (ProtocolHandler::onStop). Session timers are loop timers that
// the host cancels when the connection closes; deferred places hold back what the handler sends
// after them until they are filled (see plugin.h).
//
// Thread safety: call servePlugin() where TcpServer's callbacks may be set (the base loop's thread,
// before start()). It replaces the server's connection, message and write-complete callbacks and
// its loop start and stop callbacks.

#include <memory>

#include "plexus/plugin.h"

namespace plexus {

class TcpServer;

void servePlugin(TcpServer& server, std::shared_ptr<PluginFactory> factory);

}  // namespace plexus
