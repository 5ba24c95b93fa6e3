#include "plexus/plugin_host.h"

#include <any>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

#include "plexus/buffer.h"
#include "plexus/log.h"
#include "plexus/tcp_connection.h"
#include "plexus/tcp_server.h"

namespace plexus {
namespace {

// One connection as its handler sees it, kept in the connection's context (through HostedRef) and
// set as the connection's ConnectionHandler, so input reaches it with one virtual call. Loop thread
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
  void onMessage(const TcpConnectionPtr& conn, Buffer* input) override;
  void onWriteComplete(const TcpConnectionPtr& conn) override;

  void start() {
    call("factory newHandler()", [this] {
      handler_ = factory_->newHandler();
      if (!handler_) throw std::runtime_error("the factory made no handler");
      updateUsable();
    });
    if (usable()) call("handler onConnect()", [this] { handler_->onConnect(*this); });
  }

  void data(Buffer& input) {
    if (!usable()) {
      input.retrieveAll();  // a failed connection is closing: drop what it still reads
      return;
    }
    call("handler onData()", [this, &input] { handler_->onData(*this, input); });
  }

  void drained() {
    if (usable()) call("handler onDrained()", [this] { handler_->onDrained(*this); });
  }

  // The connection closed. A close that happens inside one of the handler's own callbacks (it
  // called abort(), or threw) is reported once that callback has returned: a handler never sees
  // onClose while another of its callbacks runs.
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
    }
  }

 private:
  friend class HostedRef;

  // One flag on the per-message path instead of four; updateUsable() after each change.
  bool usable() const { return usable_; }
  void updateUsable() {
    usable_ = handler_ && !failed_ && !close_reported_ && !close_pending_;
  }

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

  // Not a reference of our own (16 bytes per connection): the factory, and the plugin library it
  // keeps loaded, live as long as servePlugin()'s connection callback, which holds them. Every
  // HostedConnection is made by that callback, and lives in the context of a connection whose
  // ConnectionCallbacks hold that callback; a connection's context goes before its callbacks.
  PluginFactory* const factory_;
  std::unique_ptr<ProtocolHandler> handler_;
  TcpConnection* const conn_;  // owns this object, through its context
  int depth_ = 0;              // handler callbacks on the stack
  uint32_t refs_ = 0;          // HostedRefs
  bool failed_ = false;
  bool close_pending_ = false;
  bool close_reported_ = false;
  bool usable_ = false;  // handler_ && !failed_ && !close_reported_ && !close_pending_
};

// An owning, copyable reference to a HostedConnection, as std::any wants. Not a shared_ptr: it fits
// std::any's inline storage (one pointer), so a connection's context costs no allocation of its
// own, and the count is a plain integer since only the loop thread touches it.
class HostedRef {
 public:
  explicit HostedRef(HostedConnection* p) : p_(p) { ++p_->refs_; }
  HostedRef(const HostedRef& other) : p_(other.p_) {
    if (p_) ++p_->refs_;
  }
  HostedRef(HostedRef&& other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
  HostedRef& operator=(HostedRef other) noexcept {
    std::swap(p_, other.p_);
    return *this;
  }
  ~HostedRef() {
    if (p_ && --p_->refs_ == 0) delete p_;
  }
  HostedConnection* operator->() const { return p_; }
  HostedConnection& operator*() const { return *p_; }

 private:
  HostedConnection* p_;
};

// Each entry point takes a reference before calling the handler: a handler callback may close the
// connection, and the close resets the context while the HostedConnection is on the stack.

void HostedConnection::onMessage(const TcpConnectionPtr& /*conn*/, Buffer* input) {
  HostedRef keep(this);
  data(*input);
}

void HostedConnection::onWriteComplete(const TcpConnectionPtr& /*conn*/) {
  HostedRef keep(this);
  drained();
}

void onConnection(const std::shared_ptr<PluginFactory>& factory, const TcpConnectionPtr& conn) {
  if (conn->connected()) {
    HostedRef ref(new HostedConnection(conn.get(), factory.get()));
    conn->setContext(ref);
    conn->setHandler(&*ref);
    ref->start();
    return;
  }
  HostedRef* ref = std::any_cast<HostedRef>(conn->mutableContext());
  if (ref == nullptr) return;
  HostedRef keep = *ref;
  conn->setHandler(nullptr);
  conn->setContext(std::any());
  keep->closed();
}

}  // namespace

void servePlugin(TcpServer& server, std::shared_ptr<PluginFactory> factory) {
  if (!factory) LOG_FATAL("servePlugin: null factory");
  server.setConnectionCallback([factory = std::move(factory)](const TcpConnectionPtr& conn) {
    onConnection(factory, conn);
  });
  // Input and drain notices go to each connection's HostedConnection (its ConnectionHandler);
  // these only see a connection that never got one.
  server.setMessageCallback([](const TcpConnectionPtr&, Buffer* input) { input->retrieveAll(); });
  server.setWriteCompleteCallback(nullptr);
}

}  // namespace plexus
