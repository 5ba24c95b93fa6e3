#include "plexus/plugin_host.h"

#include <exception>
#include <stdexcept>
#include <string>

#include "plexus/buffer.h"
#include "plexus/log.h"
#include "plexus/tcp_connection.h"
#include "plexus/tcp_server.h"

namespace plexus {
namespace {

// One connection as its plugin handler sees it: the connection's own ConnectionHandler (owned by
// the connection), so input reaches the plugin with two virtual calls and no lookup. Loop thread
// only, like the connection.
class HostedConnection final : public Session, public ConnectionHandler {
 public:
  HostedConnection(TcpConnection* conn, PluginFactory* factory) : factory_(factory), conn_(conn) {}

  // Session
  void send(std::string_view data) override { conn_->send(data); }
  void send(Buffer& buf) override { conn_->send(&buf); }
  void close() override { conn_->closeAfterFlush(); }
  void abort() override { conn_->forceClose(); }
  uint64_t id() const override { return conn_->id(); }
  std::string peerAddress() const override { return conn_->peerAddress().toIpPort(); }
  EventLoop* loop() const override { return conn_->getLoop(); }
  size_t pendingOutputBytes() const override { return conn_->outputBuffer()->readableBytes(); }

  // ConnectionHandler
  void onMessage(const TcpConnectionPtr& /*conn*/, Buffer* input) override {
    if (!usable_) {
      input->retrieveAll();  // a failed connection is closing: drop what it still reads
      return;
    }
    call("handler onData()", [this, input] { handler_->onData(*this, *input); });
  }
  void onWriteComplete(const TcpConnectionPtr& /*conn*/) override {
    if (usable_) call("handler onDrained()", [this] { handler_->onDrained(*this); });
  }
  void onClose(const TcpConnectionPtr& /*conn*/) override { closed(); }

  void start() {
    call("factory newHandler()", [this] {
      handler_ = factory_->newHandler();
      if (!handler_) throw std::runtime_error("the factory made no handler");
      updateUsable();
    });
    if (usable_) call("handler onConnect()", [this] { handler_->onConnect(*this); });
  }

 private:
  // The connection closed. A close that happens inside one of the handler's own callbacks (it
  // called abort(), or threw) is reported once that callback has returned: a handler never sees
  // onClose while another of its callbacks runs. The handler is destroyed right after onClose.
  void closed() {
    if (depth_ > 0) {
      close_pending_ = true;
      updateUsable();
      return;
    }
    if (handler_ && !close_reported_) {
      close_reported_ = true;
      updateUsable();
      call("handler onClose()", [this] { handler_->onClose(*this); });
      handler_.reset();
    }
  }

  // One flag on the per-message path instead of four; updateUsable() after each change.
  void updateUsable() { usable_ = handler_ && !failed_ && !close_reported_ && !close_pending_; }

  template <typename F>
  void call(const char* what, F&& f) {
    ++depth_;
    try {
      f();
    } catch (const std::exception& e) {
      fail(what, e.what());
    } catch (...) {
      fail(what, "an exception not derived from std::exception");
    }
    --depth_;
    if (depth_ == 0 && close_pending_) {
      close_pending_ = false;
      updateUsable();
      closed();
    }
  }

  void fail(const char* what, const char* why) {
    LOG_ERROR("connection %s: plugin %s threw: %s; closing the connection", conn_->name(), what,
              why);
    failed_ = true;
    updateUsable();
    conn_->forceClose();
  }

  // Not a reference of our own: the factory, and the plugin library it keeps loaded, live as long
  // as servePlugin()'s connection callback, which holds them. Every HostedConnection is made by
  // that callback and owned by a connection whose ConnectionCallbacks hold that callback; a
  // connection destroys its handler before its callbacks.
  PluginFactory* const factory_;
  std::unique_ptr<ProtocolHandler> handler_;
  TcpConnection* const conn_;  // owns this object
  int depth_ = 0;              // handler callbacks on the stack
  bool failed_ = false;
  bool close_pending_ = false;
  bool close_reported_ = false;
  bool usable_ = false;  // handler_ && !failed_ && !close_reported_ && !close_pending_
};

}  // namespace

void servePlugin(TcpServer& server, std::shared_ptr<PluginFactory> factory) {
  if (!factory) LOG_FATAL("servePlugin: null factory");
  server.setConnectionCallback([factory = std::move(factory)](const TcpConnectionPtr& conn) {
    // The close reaches the connection's HostedConnection as onClose().
    if (!conn->connected()) return;
    auto hosted = std::make_unique<HostedConnection>(conn.get(), factory.get());
    HostedConnection* h = hosted.get();
    conn->setHandler(std::move(hosted));
    h->start();
  });
  // Input and drain notices go to each connection's HostedConnection.
  server.setMessageCallback(nullptr);
  server.setWriteCompleteCallback(nullptr);
}

}  // namespace plexus
