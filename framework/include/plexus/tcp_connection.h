#pragma once
// TcpConnection: one established TCP connection, owned for life by one loop thread.
//
// Lifetime: held by shared_ptr. The owner (TcpServer or TcpClient) keeps a reference until the
// connection has closed, and drops it in a functor queued on the loop, after the events of the
// current iteration: a connection is never destroyed while one of its events or queued tasks runs.
// Tasks queued for a connection hold a shared_ptr (or a weak_ptr, for timers), never a raw `this`.
// An established connection also holds a reference to itself, from connectEstablished() until it
// has closed; its events hand that reference to the callbacks, so dispatching an event touches no
// reference count. The reference is released in a functor queued on the loop once the connection
// has closed (and at the latest when the loop destroys that functor).
//
// Thread safety:
//   any thread: send(std::string_view), shutdown(), closeAfterFlush(), forceClose(), connected(),
//               disconnected(), id(), name(), addresses, getLoop().
//   loop thread only: everything else (buffers, the handler, reading control, the callbacks).
//
// Closing: once closeAfterFlush() or forceClose() was called, send() drops its bytes and no more
// input is delivered; closeAfterFlush() still writes what was queued before it. When the peer
// ends its side (EOF), the connection writes what is queued, including what the handler sends
// meanwhile (from onWriteComplete, say), and closes once its output has drained.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "plexus/buffer.h"
#include "plexus/callbacks.h"
#include "plexus/channel.h"
#include "plexus/event_loop.h"
#include "plexus/inet_address.h"

namespace plexus {

// The callbacks of a connection, shared by all connections of one server or client.
struct ConnectionCallbacks {
  ConnectionCallback connection;
  MessageCallback message;
  WriteCompleteCallback write_complete;
  HighWaterMarkCallback high_water_mark;
};

struct ConnectionOptions {
  // Reading pauses while the output buffer holds at least this many bytes, and resumes once it has
  // drained to low_water_mark (0: half the high-water mark). Bounds the memory a peer that never
  // reads can make us hold. 0 disables it.
  size_t high_water_mark = 4 * 1024 * 1024;
  size_t low_water_mark = 0;
  // Closes a connection that neither received nor sent anything for this long. 0: never.
  Duration idle_timeout{0};
  // A graceful close (closeAfterFlush()) that finds bytes from the peer still unread — a request
  // body the handler refused, requests pipelined behind an error — does not close at once: the
  // kernel would answer those bytes with a reset, which can destroy the reply still on its way to
  // the peer. It shuts down our side, reads and discards until the peer's EOF, and closes then, or
  // after this long (lingering close). 0: close at once.
  std::chrono::milliseconds linger_timeout{2000};
  bool tcp_no_delay = true;
};

// What the connections of one server (or client) share instead of each keeping a copy: the
// callbacks, and the options resolved. Immutable once made; held by ConnectionSettingsPtr, so a
// server that changes its options makes a new one and the connections already open keep theirs.
class ConnectionSettings {
 public:
  ConnectionSettings(ConnectionCallbacks cbs, const ConnectionOptions& options);
  ConnectionSettings(const ConnectionSettings&) = delete;
  ConnectionSettings& operator=(const ConnectionSettings&) = delete;

  const ConnectionCallbacks callbacks;
  const size_t high_water_mark;
  const size_t low_water_mark;  // resolved: half the high-water mark when the options say 0
  const Duration idle_timeout;
  const uint32_t linger_ms;
  const bool tcp_no_delay;

 private:
  friend class ConnectionSettingsPtr;
  mutable std::atomic<uint32_t> refs_{0};
};

// A counted reference to ConnectionSettings: one pointer (a shared_ptr is two), since every
// connection holds one. Copies from any thread, like a shared_ptr's.
class ConnectionSettingsPtr {
 public:
  ConnectionSettingsPtr() = default;
  explicit ConnectionSettingsPtr(const ConnectionSettings* s) : p_(s) { acquire(); }
  ConnectionSettingsPtr(const ConnectionSettingsPtr& o) : p_(o.p_) { acquire(); }
  ConnectionSettingsPtr(ConnectionSettingsPtr&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
  ConnectionSettingsPtr& operator=(ConnectionSettingsPtr o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~ConnectionSettingsPtr() {
    if (p_ && p_->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete p_;
  }
  static ConnectionSettingsPtr make(ConnectionCallbacks cbs, const ConnectionOptions& options) {
    return ConnectionSettingsPtr(new ConnectionSettings(std::move(cbs), options));
  }

  const ConnectionSettings* get() const { return p_; }
  const ConnectionSettings* operator->() const { return p_; }
  const ConnectionSettings& operator*() const { return *p_; }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  void acquire() {
    if (p_) p_->refs_.fetch_add(1, std::memory_order_relaxed);
  }
  const ConnectionSettings* p_ = nullptr;
};

// Why a connection closed, as far as it knows: the server (or the handler) closed it; the peer
// ended its side (EOF) and the connection closed after flushing; a read or write failed, the
// peer reset it or the engine could not watch it any more; it was idle past its idle timeout.
enum class CloseReason : uint8_t { kServer, kPeer, kError, kIdle };
// "server", "peer_eof", "error", "idle_timeout".
const char* closeReasonName(CloseReason reason);

// The protocol side of one connection: it takes the connection's input, drain and close notices.
// There is one input path: every connection has a handler. Until setHandler() gives it one of its
// own, a connection uses a built-in handler that calls the shared ConnectionCallbacks (so
// setMessageCallback() servers keep working), and a protocol that keeps state per connection
// gives each connection its own handler, usually from the connection callback.
//
// Every call happens on the connection's loop thread. The connection owns its handler: it is
// destroyed when the connection's owner lets go of the connection after the close (on the loop
// thread), or when setHandler() replaces it.
class ConnectionHandler {
 public:
  virtual ~ConnectionHandler() = default;
  // As MessageCallback: new bytes were read; retrieve what you consumed, leave the rest in
  // `input` for the next call. `input` stays valid until this returns, whatever it calls (even
  // forceClose()).
  virtual void onMessage(const TcpConnectionPtr& conn, Buffer* input) = 0;
  // As WriteCompleteCallback.
  virtual void onWriteComplete(const TcpConnectionPtr& conn) { (void)conn; }
  // The connection has closed (after the connection callback reported it). Called once, never
  // while another call of this handler for the same event is running: a close that happens
  // during an event (a callback called forceClose(), say) is reported once the event is over.
  virtual void onClose(const TcpConnectionPtr& conn) { (void)conn; }
  // Its server is stopping gracefully (TcpServer::stop()): finish what is in flight and close.
  // The default closes once the output has drained (closeAfterFlush()).
  virtual void onServerStop(const TcpConnectionPtr& conn);
  // True while the handler still has output of its own to send (a reply it will send later, say).
  // A connection whose peer has ended its side (EOF) waits for it before closing; the handler
  // calls TcpConnection::handlerOutputDrained() once it holds none.
  virtual bool holdsOutput() const { return false; }
};

// The owner of a connection (TcpServer, TcpClient): told once, on the loop thread, when the
// connection has closed, so it can let go of it. It must drop its reference in a functor queued on
// the loop (the close may be reported in the middle of one of the connection's events), and call
// connectDestroyed() there.
class ConnectionOwner {
 public:
  virtual void connectionClosed(const TcpConnectionPtr& conn) = 0;

 protected:
  ~ConnectionOwner() = default;
};

class TcpConnection final : public std::enable_shared_from_this<TcpConnection>,
                            private EventHandler {
 public:
  // Takes ownership of `sockfd` (connected, non-blocking). Call connectEstablished() on the loop
  // next. `settings` is shared by the connections of one server or client.
  TcpConnection(EventLoop* loop, uint64_t id, int sockfd, const InetAddress& peer,
                ConnectionSettingsPtr settings);
  ~TcpConnection();
  TcpConnection(const TcpConnection&) = delete;
  TcpConnection& operator=(const TcpConnection&) = delete;

  EventLoop* getLoop() const { return channel_.loop(); }
  uint64_t id() const { return id_; }
  std::string name() const;  // "#id peer-address"
  // Asked of the socket (getsockname) rather than kept: one fewer address per connection.
  InetAddress localAddress() const;
  const InetAddress& peerAddress() const { return peer_; }
  int fd() const { return channel_.fd(); }
  bool connected() const { return state_.load(std::memory_order_acquire) == kConnected; }
  bool disconnected() const { return state_.load(std::memory_order_acquire) == kDisconnected; }

  // Sends bytes. From another thread the bytes are copied and the send is queued to the loop.
  // Bytes sent once closeAfterFlush() or forceClose() was called are dropped (see Closing above).
  void send(std::string_view data);
  // Sends the readable bytes of `buf` and empties it. Loop thread only.
  void send(Buffer* buf);
  // Sends `count` slices with one writev(2), without copying them together; what the socket does
  // not take is copied into the output buffer. Loop thread only.
  void sendSlices(const std::string_view* slices, size_t count);
  // Sends `length` bytes of the file open as `fd` from `offset` (sendfile(2)), after everything
  // queued before; bytes sent later follow it. Takes ownership of `fd`: it is closed once the range
  // is sent, or when the connection closes. A file that ends before `length` closes the connection
  // (the peer was promised those bytes). Queued file bytes do not count towards the high-water
  // mark. Loop thread only.
  void sendFile(int fd, uint64_t offset, uint64_t length);
  // Bytes accepted by send()/sendSlices()/sendFile() but not yet written to the socket. Loop
  // thread only.
  size_t pendingOutputBytes() const;
  // Shuts down our write side once the output buffer has drained; reading goes on.
  void shutdown();
  // Stops reading, then closes once the output buffer has drained (graceful close).
  void closeAfterFlush();
  // Closes now, discarding unsent output.
  void forceClose();

  // Loop thread only. startReading() after stopReading() (or once the output has drained below the
  // low-water mark) hands input that was left unconsumed to the handler again, from a functor
  // queued on the loop, even if the peer sends nothing more.
  void startReading();
  void stopReading();
  bool isReading() const { return reading_; }
  // Unconsumed input kept between message callbacks. During a message callback use the Buffer the
  // callback was given: fresh bytes may sit in a per-thread buffer until the callback returns.
  Buffer* inputBuffer() { return &input_; }
  // The bytes queued before any queued file range (see sendFile()).
  Buffer* outputBuffer() { return &output_; }
  // Who is told when the connection has closed (nullptr: nobody). Loop thread only, or before
  // connectEstablished().
  void setOwner(ConnectionOwner* owner) { owner_ = owner; }
  // Gives the connection its own handler (see ConnectionHandler); nullptr goes back to the shared
  // callbacks. The old handler is destroyed, after its callback returned if it called this from
  // one. Loop thread only.
  void setHandler(std::unique_ptr<ConnectionHandler> handler);
  // The handler input goes to: this connection's own, or the built-in one that calls the shared
  // callbacks. Loop thread only.
  ConnectionHandler* handler() const { return handler_.get(); }

  // Called by the owner on the loop thread. connectEstablished() registers the fd with the engine
  // and runs the connection callback; on failure (the engine refused the fd) nothing was run and the
  // caller drops the connection. connectDestroyed() is the last call; it runs the connection callback
  // (and the handler's onClose) if the connection was still established, then destroys the
  // handler.
  absl::Status connectEstablished();
  void connectDestroyed();

  // The handler no longer holds output (see ConnectionHandler::holdsOutput()): a connection whose
  // peer has ended its side closes now if nothing else is queued. Loop thread only.
  void handlerOutputDrained();

  // Number of bytes the peer sent us / we wrote to the peer. Loop thread only.
  uint64_t bytesReceived() const { return bytes_received_; }
  uint64_t bytesSent() const { return bytes_sent_; }
  // Why it closed (meaningful once disconnected()). Loop thread only.
  CloseReason closeReason() const { return static_cast<CloseReason>(close_reason_); }

 private:
  enum State : uint8_t { kConnecting, kConnected, kDisconnecting, kDisconnected };

  // Deletes a connection's own handler; leaves the built-in one (a static object) alone.
  struct HandlerDeleter {
    void operator()(ConnectionHandler* h) const;
  };
  using HandlerPtr = std::unique_ptr<ConnectionHandler, HandlerDeleter>;
  class CallbacksHandler;
  struct FileQueue;
  // What few connections need, made on first use: queued file ranges, and the idle or linger timer
  // (every connection of a server with an idle timeout has one).
  struct Extras {
    std::unique_ptr<FileQueue> files;  // null while no file range is queued
    Clock::time_point last_active{};   // idle timeout: when it last received or sent
    TimerId timer;                     // the idle timer, or the linger timer while lingering
  };
  static CallbacksHandler callbacks_handler_;

  void handleEvent(uint32_t revents) override;
  void handleRead(const TcpConnectionPtr& self, uint32_t revents);
  // Each write of handleWrite(): a send of output_, or a sendfile of the first queued file range.
  // Returns what send(2)/sendfile(2) returned; `len` gets the size asked for.
  ssize_t writeSome(size_t budget, size_t* len);
  void finishFrontFile();
  void closeFiles();
  FileQueue* files() const { return extras_ ? extras_->files.get() : nullptr; }
  bool outputEmpty() const { return output_.empty() && files() == nullptr && inFlight() == 0; }
  // Bytes handed to an engine that sends for connections (io_uring) and not yet sent: the
  // engine keeps the count, so a connection on another engine pays no field for it.
  size_t inFlight() const {
    // Registered: once closed, the fd number may be another connection's.
    return getLoop()->completesIo() && channel_.registered()
               ? getLoop()->engine().sendingBytes(channel_.fd())
               : 0;
  }
  Extras& extras();
  void cancelTimer();
  size_t bufferedBytes() const;
  void inputResumed();
  void deliverPendingInput();
  void finishGracefulClose();
  void lingerEvent(uint32_t revents);
  void eventClosedIt();
  void queueNextTurn(const TcpConnectionPtr& self);
  void continueTurn();
  void handleWrite(const TcpConnectionPtr& self);
  void handleClose();
  void handleError();
  void sendInLoop(const char* data, size_t len);
  void sendRest(const char* data, size_t len, ssize_t n);
  void sendQueued(const char* data, size_t len);
  void queueOutput(const char* data, size_t len);
  void noteQueued(size_t before, size_t len);
  void sendThroughEngine(const char* data, size_t len);
  void handleSent(const TcpConnectionPtr& self);
  void readFailed(int err);
  void writeFailed(int err);
  void shutdownInLoop();
  void closeAfterFlushInLoop();
  void updateReadInterest();
  void interestFailed(const absl::Status& why);
  void reportClosed(const TcpConnectionPtr& guard);
  void armIdleTimer(Duration delay);
  void onIdleTimer();
  void afterOutputDrained();
  void handlePeerClosed();
  void closeFdNow();
  void removeAndCloseFd();
  void releaseSelf();
  bool wantsToRead() const;
  // For the idle timeout: the connection just received or sent something.
  void noteActivity() {
    if (idle_timed_) extras_->last_active = Clock::now();
  }
  void noteSent(size_t n) {
    bytes_sent_ += n;
    getLoop()->addBytesSent(n);
    noteActivity();
  }

  // The order packs the flags into the padding after peer_ (sizeof is checked in
  // tests/net/tcp_connection_test.cc): an idle connection's bytes are mostly this object.
  const uint64_t id_;
  Channel channel_;
  Buffer input_;
  Buffer output_;
  std::unique_ptr<Extras> extras_;  // null until a file or a timer needs it
  const InetAddress peer_;
  std::atomic<State> state_{kConnecting};
  // Loop thread only. The bit-fields share bytes; state_, which any thread reads, is apart.
  bool in_event_ = false;               // handleEvent() is on the stack (a byte: set per event)
  bool reading_ : 1 = true;             // wanted by the user (startReading/stopReading)
  bool backpressured_ : 1 = false;      // paused by the high-water mark
  bool peer_closed_ : 1 = false;        // the peer sent EOF: flush the output, then close
  bool shutdown_pending_ : 1 = false;   // shutdown() asked, waiting for the output to drain
  bool write_shut_ : 1 = false;
  bool fd_open_ : 1 = true;
  bool turn_queued_ : 1 = false;        // edge mode: continueTurn() is queued (budget spent)
  bool redeliver_queued_ : 1 = false;   // deliverPendingInput() is queued
  bool close_report_pending_ : 1 = false;  // closed during an event: reported when it ends
  bool lingering_ : 1 = false;          // closing: discarding the peer's bytes until its EOF
  bool idle_timed_ : 1 = false;         // has an idle timeout: extras_ holds last_active
  uint8_t close_reason_ : 2 = 0;        // a CloseReason
  ConnectionSettingsPtr settings_;
  // This connection, while it is established (see Lifetime above).
  TcpConnectionPtr self_;
  ConnectionOwner* owner_ = nullptr;
  // After settings_, so destroyed before them: a handler may rely on what the callbacks hold (the
  // plugin host's handlers do). Never null: the built-in CallbacksHandler until setHandler().
  HandlerPtr handler_;
  uint64_t bytes_received_ = 0;
  uint64_t bytes_sent_ = 0;
};

}  // namespace plexus
