#include "plexus/tcp_connection.h"

#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>

#include "absl/strings/str_format.h"
#include "plexus/log.h"
#include "buffer_read.h"
#include "current_loop.h"
#include "fast_syscalls.h"
#include "socket_ops.h"

namespace plexus {

namespace {

// What one connection may move in one turn of its loop, so that a bulk transfer cannot hold the
// loop while other connections wait: their latency grows by a turn of each busy connection. A turn
// is one read (at most the read buffer's 64 KiB) and at most this much sent. Level and oneshot
// modes get a turn per event; edge mode, where no new edge says that more is waiting, carries on
// in a functor queued behind the other ready connections (continueTurn()). Measured with 50
// ping-pong connections beside a 256 MiB stream on one loop (tests/soak/fairness_test.cc): edge
// mode's ping p99 rose 2-11x with no bound, about 4x with 4 reads and 256 KiB, 1.2-1.9x with this.
constexpr size_t kWriteBytesPerTurn = Buffer::kReadChunk;

}  // namespace

// The handler of a connection that has none of its own: it calls the shared callbacks. Stateless,
// so one object serves every connection.
class TcpConnection::CallbacksHandler final : public ConnectionHandler {
 public:
  void onMessage(const TcpConnectionPtr& conn, Buffer* input) override {
    if (const MessageCallback& cb = conn->settings_->callbacks.message) {
      cb(conn, input);
    } else {
      input->retrieveAll();
    }
  }
  void onWriteComplete(const TcpConnectionPtr& conn) override {
    if (const WriteCompleteCallback& cb = conn->settings_->callbacks.write_complete) cb(conn);
  }
};

constinit TcpConnection::CallbacksHandler TcpConnection::callbacks_handler_;

void ConnectionHandler::onServerStop(const TcpConnectionPtr& conn) { conn->closeAfterFlush(); }

// File ranges waiting to be sent, in order, behind output_. The bytes sent while a range is queued
// go into its `after` buffer, which becomes output_ once the range is sent.
struct TcpConnection::FileQueue {
  struct Range {
    int fd;
    uint64_t offset;
    uint64_t length;  // left to send
    Buffer after;
  };
  std::deque<Range> ranges;
  size_t after_bytes = 0;  // sum of the `after` buffers' readable bytes
};

void TcpConnection::HandlerDeleter::operator()(ConnectionHandler* h) const {
  if (h != &callbacks_handler_) delete h;
}

ConnectionSettings::ConnectionSettings(ConnectionCallbacks cbs, const ConnectionOptions& options)
    : callbacks(std::move(cbs)),
      high_water_mark(options.high_water_mark),
      low_water_mark(options.low_water_mark ? options.low_water_mark
                                            : options.high_water_mark / 2),
      idle_timeout(options.idle_timeout),
      linger_ms(static_cast<uint32_t>(std::max<int64_t>(0, options.linger_timeout.count()))),
      tcp_no_delay(options.tcp_no_delay) {}

TcpConnection::TcpConnection(EventLoop* loop, uint64_t id, int sockfd, const InetAddress& peer,
                             ConnectionSettingsPtr settings)
    : id_(id),
      channel_(loop, sockfd, this),
      peer_(peer),
      settings_(std::move(settings)),
      handler_(&callbacks_handler_) {
  // Here rather than in connectEstablished(): the socket is set up once, before any traffic.
  if (settings_->tcp_no_delay) detail::setTcpNoDelay(sockfd, true);
}

TcpConnection::~TcpConnection() {
  if (fd_open_) detail::closeFd(channel_.fd());
  closeFiles();
}

TcpConnection::Extras& TcpConnection::extras() {
  if (!extras_) extras_ = std::make_unique<Extras>();
  return *extras_;
}

void TcpConnection::cancelTimer() {
  if (!extras_ || !extras_->timer.valid()) return;
  getLoop()->cancel(extras_->timer);
  extras_->timer = TimerId{};
}

void TcpConnection::closeFiles() {
  FileQueue* files = this->files();
  if (files == nullptr) return;
  for (const FileQueue::Range& r : files->ranges) detail::closeFd(r.fd);
  extras_->files.reset();
}

size_t TcpConnection::bufferedBytes() const {
  const FileQueue* files = this->files();
  return inFlight() + output_.readableBytes() + (files ? files->after_bytes : 0);
}

size_t TcpConnection::pendingOutputBytes() const {
  size_t total = inFlight() + output_.readableBytes();
  if (const FileQueue* files = this->files()) {
    for (const FileQueue::Range& r : files->ranges) {
      total += static_cast<size_t>(r.length) + r.after.readableBytes();
    }
  }
  return total;
}

InetAddress TcpConnection::localAddress() const { return detail::localAddressOf(channel_.fd()); }

std::string TcpConnection::name() const {
  return absl::StrFormat("#%u %s", id_, peer_.toIpPort());
}

void TcpConnection::setHandler(std::unique_ptr<ConnectionHandler> handler) {
  getLoop()->assertInLoopThread();
  HandlerPtr old = std::move(handler_);
  handler_.reset(handler ? handler.release() : &callbacks_handler_);
  if (old.get() != &callbacks_handler_) {
    // The old handler may be the caller, still on the stack: destroy it once this pass of the loop
    // is over.
    std::shared_ptr<ConnectionHandler> later(old.release(), HandlerDeleter());
    getLoop()->queueInLoop([later] {});
  }
}

absl::Status TcpConnection::connectEstablished() {
  getLoop()->assertInLoopThread();
  // An engine that receives for connections (io_uring) is asked to: kEventReceive.
  absl::Status s =
      channel_.setInterest(kEventRead | (getLoop()->completesIo() ? kEventReceive : 0));
  if (!s.ok()) {
    state_.store(kDisconnected, std::memory_order_release);
    closeFdNow();
    return s;
  }
  state_.store(kConnected, std::memory_order_release);
  self_ = shared_from_this();
  if (settings_->idle_timeout.count() > 0) {
    idle_timed_ = true;
    extras().last_active = Clock::now();
    armIdleTimer(settings_->idle_timeout);
  }
  if (settings_->callbacks.connection) settings_->callbacks.connection(self_);
  return absl::OkStatus();
}

void TcpConnection::connectDestroyed() {
  getLoop()->assertInLoopThread();
  if (state_.load(std::memory_order_relaxed) != kDisconnected) {
    // The owner is going away with the connection still open.
    state_.store(kDisconnected, std::memory_order_release);
    cancelTimer();
    removeAndCloseFd();
    reportClosed(shared_from_this());
  }
  // The handler goes now, on the loop thread, not whenever the last reference does.
  handler_.reset(&callbacks_handler_);
  input_.retrieveAll();
  input_.releaseIfEmpty();
  releaseSelf();
}

void TcpConnection::releaseSelf() {
  // During an event the callbacks hold self_ by reference: handleEvent() comes back here once
  // they have returned.
  if (!self_ || in_event_) return;
  getLoop()->queueInLoop([self = std::move(self_)] {});
}

// Out of the engine before the fd is closed. The socket came from accept4 or socket() with
// CLOEXEC and Plexus never dups it, so this close is its last reference: the epoll engine may skip
// the epoll_ctl DEL (Engine::removeBeforeClose()). An fd the connection no longer owns is
// removed the long way.
void TcpConnection::removeAndCloseFd() {
  if (fd_open_) {
    channel_.removeBeforeClose();
  } else {
    channel_.remove();
  }
  closeFdNow();
}

void TcpConnection::closeFdNow() {
  if (!fd_open_) return;
  fd_open_ = false;
  detail::closeFd(channel_.fd());
}

// Inlined into handleEvent(), its only caller: one call frame fewer per message.
__attribute__((always_inline)) inline void TcpConnection::handleRead(const TcpConnectionPtr& self,
                                                                     uint32_t revents) {
  const bool edge = getLoop()->edgeTriggered();
  for (;;) {
    // Reads land in the loop's shared buffer while this connection has no partial input of its
    // own; only bytes the message callback leaves behind are copied into input_. So an echo-style
    // handler allocates nothing per message and an idle connection holds no input memory.
    Buffer& shared = getLoop()->readBuffer();
    Buffer* in = input_.empty() ? &shared : &input_;
    int saved_errno = 0;
    const size_t room = edge ? in->readCapacity() : 0;
    ssize_t n;
    if (__builtin_expect((revents & kEventReceive) != 0, 0)) {
      // The engine received for us (io_uring): its bytes, EOF or error; no syscall here.
      const Engine::IoResult& r = getLoop()->engine().received();
      if (r.err != 0) {
        readFailed(r.err);
        return;
      }
      in->append(r.data, r.len);
      n = static_cast<ssize_t>(r.len);
    } else {
      n = detail::readInto(*in, channel_.fd(), &saved_errno);
      getLoop()->noteReadCall();
    }
    if (n > 0) {
      bytes_received_ += static_cast<uint64_t>(n);
      getLoop()->addBytesReceived(static_cast<uint64_t>(n));
      noteActivity();
      // `in` stays valid through the call, even if the handler closes the connection: a close
      // during an event leaves input_'s memory alone until the event is over.
      handler_->onMessage(self, in);
      if (in == &shared) {
        if (!shared.empty()) {
          // Keep the unconsumed tail with this connection, unless it has closed meanwhile.
          if (state_.load(std::memory_order_relaxed) != kDisconnected) {
            input_.append(shared.peek(), shared.readableBytes());
          }
          shared.retrieveAll();
        }
      } else {
        input_.releaseIfEmpty();  // the handler took the rest: an idle connection holds no input
      }
      // Edge-triggered: a read that filled the room offered may have left bytes behind, so read
      // again (until EAGAIN), in the next turn. A short read drained the socket: bytes arriving
      // later raise a new edge. A FIN that came before the wait has no edge of its own, but the
      // wait reported it (kEventReadHangup; the engine asks for it in edge mode): then read on
      // until EOF.
      if (edge && wantsToRead() &&
          (static_cast<size_t>(n) >= room || (revents & kEventReadHangup))) {
        queueNextTurn(self);
      }
      return;
    }
    if (n == 0) {
      handlePeerClosed();
      return;
    }
    if (saved_errno == EINTR) continue;
    if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK) return;
    readFailed(saved_errno);
    return;
  }
}

// Edge mode: the connection spent its turn's budget with more to read or write; no new edge will
// say so, so it carries on in a functor, which runs after the other connections of this batch.
void TcpConnection::queueNextTurn(const TcpConnectionPtr& self) {
  if (turn_queued_) return;
  turn_queued_ = true;
  getLoop()->queueInLoop([self] { self->continueTurn(); });
}

void TcpConnection::continueTurn() {
  turn_queued_ = false;
  if (!self_) return;  // closed meanwhile
  uint32_t events = 0;
  // As if new edges had come: read on until EAGAIN (or the budget), write what is queued.
  if (wantsToRead()) events |= kEventRead | kEventReadHangup;
  if (channel_.isWriting()) events |= kEventWrite;
  if (events != 0) handleEvent(events);
}

void TcpConnection::handleEvent(uint32_t revents) {
  // The engine reports events only while the channel is registered, that is while the connection
  // is established and self_ is set: self_ keeps it alive through the event and is the reference
  // every callback gets.
  const TcpConnectionPtr& self = self_;
  in_event_ = true;
  if (__builtin_expect((revents & kEventFailed) != 0 || lingering_, 0)) {
    if (revents & kEventFailed) {
      interestFailed(absl::InternalError("the engine could not re-arm it"));
    } else {
      lingerEvent(revents);
    }
  } else if (__builtin_expect((revents & kEventSent) != 0, 0)) {
    handleSent(self);
  } else if ((revents & kEventHangup) && !(revents & kEventRead)) {
    close_reason_ = static_cast<uint8_t>(CloseReason::kError);
    handleClose();
  } else if (revents & kEventError) {
    handleError();
  } else {
    if (revents & (kEventRead | kEventPriority | kEventReadHangup)) handleRead(self, revents);
    if ((revents & kEventWrite) && state_.load(std::memory_order_relaxed) != kDisconnected) {
      handleWrite(self);
    }
  }
  in_event_ = false;
  if (state_.load(std::memory_order_relaxed) == kDisconnected) eventClosedIt();
}

// The connection closed during an event: report it now that the event is over, and free what
// handleClose() left alone while a callback might still be reading it.
void TcpConnection::eventClosedIt() {
  if (close_report_pending_) {
    close_report_pending_ = false;
    TcpConnectionPtr guard = self_ ? self_ : shared_from_this();
    reportClosed(guard);
  }
  input_.retrieveAll();
  input_.releaseIfEmpty();
  releaseSelf();
}

void TcpConnection::readFailed(int err) {
  LOG_DEBUG("connection %s: read: %s", name(), std::strerror(err));
  close_reason_ = static_cast<uint8_t>(CloseReason::kError);
  handleClose();
}

void TcpConnection::writeFailed(int err) {
  LOG_DEBUG("connection %s: write: %s", name(), std::strerror(err));
  close_reason_ = static_cast<uint8_t>(CloseReason::kError);
  handleClose();
}

void TcpConnection::interestFailed(const absl::Status& why) {
  // An fd whose interest cannot change would wait forever for events that never come: close it,
  // so that its peer sees the end instead of a hang.
  LOG_WARN("connection %s: cannot change what it waits for (%s): closing it", name(),
           why.message());
  getLoop()->counters().interest_failures.add();
  close_reason_ = static_cast<uint8_t>(CloseReason::kError);
  handleClose();
}

void TcpConnection::handlePeerClosed() {
  // The peer sent EOF. Everything it sent has been handed to the handler; finish sending the
  // replies (and whatever the handler still sends), then close.
  peer_closed_ = true;
  close_reason_ = static_cast<uint8_t>(CloseReason::kPeer);
  if (outputEmpty() && !handler_->holdsOutput()) {
    handleClose();
    return;
  }
  updateReadInterest();
}

void TcpConnection::handleWrite(const TcpConnectionPtr& self) {
  if (!channel_.isWriting()) return;
  if (inFlight() > 0) {
    // Bytes the engine sends go first: wait for their completion (handleSent()), which turns
    // writing back on for what is queued behind them.
    if (absl::Status s = channel_.disableWriting(); !s.ok()) interestFailed(s);
    return;
  }
  // At most kWriteBytesPerTurn per turn. Edge-triggered: write until the output is empty or the
  // socket says EAGAIN (a short write alone does not prove the socket full, and no new edge would
  // come while it has room), going on in the next turn once the budget is spent. Level and
  // oneshot: go on only while the socket takes all that is offered.
  const bool edge = getLoop()->edgeTriggered();
  size_t budget = kWriteBytesPerTurn;
  for (;;) {
    size_t len = 0;
    const ssize_t n = writeSome(budget, &len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        writeFailed(errno);
        return;
      }
      break;
    }
    if (len == 0) break;  // nothing left to write
    if (n == 0) {
      // sendfile(2) found the file shorter than the range it was asked to send.
      LOG_WARN("connection %s: a file it was sending ended early: closing it", name());
      handleClose();
      return;
    }
    budget -= static_cast<size_t>(n);
    if (outputEmpty()) break;
    if (!edge && static_cast<size_t>(n) < len) break;
    if (budget == 0) {
      if (edge) queueNextTurn(self);
      break;
    }
  }
  if (outputEmpty()) {
    if (absl::Status s = channel_.disableWriting(); !s.ok()) {
      interestFailed(s);
      return;
    }
    output_.releaseIfEmpty();
    handler_->onWriteComplete(self);
    afterOutputDrained();
  } else if (backpressured_ && bufferedBytes() <= settings_->low_water_mark) {
    backpressured_ = false;
    updateReadInterest();
    inputResumed();
  }
}

ssize_t TcpConnection::writeSome(size_t budget, size_t* len) {
  if (output_.empty() && files()) {
    FileQueue::Range& r = extras_->files->ranges.front();  // never empty: finished ranges are popped
    *len = static_cast<size_t>(std::min<uint64_t>(r.length, budget));
    off_t offset = static_cast<off_t>(r.offset);
    const ssize_t n = ::sendfile(channel_.fd(), r.fd, &offset, *len);
    getLoop()->noteWriteCall();
    if (n > 0) {
      noteSent(static_cast<size_t>(n));
      r.offset += static_cast<uint64_t>(n);
      r.length -= static_cast<uint64_t>(n);
      if (r.length == 0) finishFrontFile();
    }
    return n;
  }
  *len = std::min(output_.readableBytes(), budget);
  if (*len == 0) return 0;
  const ssize_t n = detail::sys::send(channel_.fd(), output_.peek(), *len, MSG_NOSIGNAL);
  getLoop()->noteWriteCall();
  if (n > 0) {
    noteSent(static_cast<size_t>(n));
    output_.retrieve(static_cast<size_t>(n));
  }
  return n;
}

// The first file range is sent: close its file; the bytes sent after it are next.
void TcpConnection::finishFrontFile() {
  FileQueue& files = *extras_->files;
  FileQueue::Range& r = files.ranges.front();
  detail::closeFd(r.fd);
  files.after_bytes -= r.after.readableBytes();
  output_.swap(r.after);
  files.ranges.pop_front();
  if (files.ranges.empty()) extras_->files.reset();
}

void TcpConnection::afterOutputDrained() {
  if (backpressured_) {
    backpressured_ = false;
    updateReadInterest();
    inputResumed();
  }
  // The write-complete callback may have queued more (then this waits for the next drain), or
  // closed the connection.
  const State st = state_.load(std::memory_order_relaxed);
  if (st == kDisconnected || !outputEmpty()) return;
  if (st == kDisconnecting && !peer_closed_) {
    finishGracefulClose();
  } else if (st == kDisconnecting || peer_closed_) {
    // After EOF the handler may still have replies to send (handlerOutputDrained() follows).
    if (st == kConnected && handler_->holdsOutput()) return;
    handleClose();
  } else if (shutdown_pending_) {
    shutdown_pending_ = false;
    write_shut_ = true;
    ::shutdown(channel_.fd(), SHUT_WR);
  }
}

bool TcpConnection::wantsToRead() const {
  return (reading_ && !backpressured_ && !peer_closed_ &&
          state_.load(std::memory_order_relaxed) == kConnected) ||
         lingering_;
}

// The output of a graceful close has drained. See ConnectionOptions::linger_timeout.
void TcpConnection::finishGracefulClose() {
  int unread = 0;
  const uint32_t linger_ms = settings_->linger_ms;
  if (linger_ms == 0 || write_shut_ ||
      (input_.empty() && (::ioctl(channel_.fd(), FIONREAD, &unread) != 0 || unread == 0))) {
    handleClose();
    return;
  }
  lingering_ = true;
  write_shut_ = true;
  ::shutdown(channel_.fd(), SHUT_WR);  // the peer sees our EOF after the reply
  if (!in_event_) {
    input_.retrieveAll();
    input_.releaseIfEmpty();
  }
  cancelTimer();
  std::weak_ptr<TcpConnection> weak = weak_from_this();
  extras().timer = getLoop()->runAfter(std::chrono::milliseconds(linger_ms), [weak] {
    if (auto self = weak.lock()) {
      self->extras_->timer = TimerId{};
      self->handleClose();
    }
  });
  updateReadInterest();
}

// Lingering: read and drop what the peer still sends, until its EOF.
void TcpConnection::lingerEvent(uint32_t revents) {
  if (revents & (kEventError | kEventHangup)) {
    handleClose();
    return;
  }
  if (revents & kEventReceive) {
    // The engine received it: drop the bytes; EOF or an error ends the linger.
    if (getLoop()->engine().received().len == 0) handleClose();
    return;
  }
  if (revents & kEventSent) return;  // nothing is sent while lingering
  char scratch[16384];
  for (int i = 0; i < 16; ++i) {
    const ssize_t n = ::read(channel_.fd(), scratch, sizeof scratch);
    getLoop()->noteReadCall();
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    handleClose();  // EOF, or an error
    return;
  }
  // More to drop: level and oneshot modes come back; edge mode needs a turn of its own.
  if (getLoop()->edgeTriggered()) queueNextTurn(self_);
}

void TcpConnection::updateReadInterest() {
  if (!channel_.registered()) return;
  absl::Status s = wantsToRead() ? channel_.enableReading() : channel_.disableReading();
  if (!s.ok()) interestFailed(s);
}

void TcpConnection::handleClose() {
  getLoop()->assertInLoopThread();
  if (state_.load(std::memory_order_relaxed) == kDisconnected) return;
  state_.store(kDisconnected, std::memory_order_release);
  cancelTimer();
  removeAndCloseFd();
  output_.retrieveAll();
  output_.releaseIfEmpty();
  closeFiles();
  // The input is freed here only outside an event: inside one, a message callback may be on the
  // stack with a view of it (it called forceClose(), say); handleEvent() frees it at its end.
  if (!in_event_) {
    input_.retrieveAll();
    input_.releaseIfEmpty();
  }
  TcpConnectionPtr guard = shared_from_this();
  if (in_event_) {
    // A callback of this event closed it (or the event did, under a callback's feet): the close is
    // reported once the event is over, so no handler sees onClose while it is still running.
    close_report_pending_ = true;
  } else {
    reportClosed(guard);
  }
  // The owner drops its reference in a functor queued on this loop, after this event. It may count
  // the close in a metric: the loop's byte counters include this connection's bytes first.
  getLoop()->flushIoCounts();
  if (owner_ != nullptr) owner_->connectionClosed(guard);
  releaseSelf();
}

void TcpConnection::reportClosed(const TcpConnectionPtr& guard) {
  if (settings_->callbacks.connection) settings_->callbacks.connection(guard);
  handler_->onClose(guard);
}

const char* closeReasonName(CloseReason reason) {
  switch (reason) {
    case CloseReason::kServer:
      return "server";
    case CloseReason::kPeer:
      return "peer_eof";
    case CloseReason::kError:
      return "error";
    case CloseReason::kIdle:
      return "idle_timeout";
  }
  return "server";
}

void TcpConnection::handleError() {
  const int err = detail::socketError(channel_.fd());
  LOG_DEBUG("connection %s: %s", name(), err ? std::strerror(err) : "socket error");
  close_reason_ = static_cast<uint8_t>(CloseReason::kError);
  handleClose();
}

// Inline into both send()s. The common case, one send(2) that takes everything, stays here; the
// rest is out of line, so this path needs few registers.
inline void TcpConnection::sendInLoop(const char* data, size_t len) {
  if (output_.empty() && files() == nullptr &&
      state_.load(std::memory_order_relaxed) == kConnected && !write_shut_ && len != 0) {
    if (getLoop()->completesIo()) {
      sendThroughEngine(data, len);
      return;
    }
    const ssize_t n = detail::sys::send(channel_.fd(), data, len, MSG_NOSIGNAL);
    getLoop()->noteWriteCall();
    if (static_cast<size_t>(n) == len) {  // -1 never equals len
      noteSent(len);
      // All written at once: nothing was queued, so no write-complete follows.
      return;
    }
    sendRest(data, len, n);
    return;
  }
  sendQueued(data, len);
}

// The direct send took `n` of `len` bytes, or failed (-1, errno set). noinline: kept off the
// fast path above, which the compiler would otherwise grow with it.
__attribute__((noinline)) void TcpConnection::sendRest(const char* data, size_t len, ssize_t n) {
  while (n < 0 && errno == EINTR) {
    n = detail::sys::send(channel_.fd(), data, len, MSG_NOSIGNAL);
    getLoop()->noteWriteCall();
  }
  if (n >= 0) {
    const auto written = static_cast<size_t>(n);
    noteSent(written);
    if (written < len) queueOutput(data + written, len - written);
    return;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    queueOutput(data, len);
    return;
  }
  writeFailed(errno);
}

// The engine sends for connections (io_uring): it copies the bytes and sends them, in order behind
// those it holds already; they count as queued output until handleSent() hears they are sent.
__attribute__((noinline)) void TcpConnection::sendThroughEngine(const char* data, size_t len) {
  const size_t before = bufferedBytes();
  if (absl::Status s = getLoop()->engine().send(channel_.fd(), data, len); !s.ok()) {
    LOG_WARN("connection %s: the engine cannot send: %s", name(), s.message());
    close_reason_ = static_cast<uint8_t>(CloseReason::kError);
    handleClose();
    return;
  }
  noteQueued(before, len);
}

// A send of the engine's completed (kEventSent).
void TcpConnection::handleSent(const TcpConnectionPtr& self) {
  const Engine::IoResult& r = getLoop()->engine().sent();
  if (r.err != 0) {
    writeFailed(r.err);
    return;
  }
  noteSent(r.len);
  if (inFlight() > 0) {
    if (backpressured_ && bufferedBytes() <= settings_->low_water_mark) {
      backpressured_ = false;
      updateReadInterest();
      inputResumed();
    }
    return;
  }
  if (!outputEmpty()) {
    // Files or bytes queued behind the engine's sends: written as the socket takes them.
    if (absl::Status s = channel_.enableWriting(); !s.ok()) interestFailed(s);
    return;
  }
  // Every byte handed to the engine is sent: as a queued output that drained.
  handler_->onWriteComplete(self);
  afterOutputDrained();
}

// No direct send: output is queued already, or the connection cannot send.
void TcpConnection::sendQueued(const char* data, size_t len) {
  // Only while connected: once a close was asked for (kDisconnecting) the bytes are dropped.
  if (state_.load(std::memory_order_relaxed) != kConnected || write_shut_ || len == 0) return;
  queueOutput(data, len);  // behind what is queued already
}

void TcpConnection::queueOutput(const char* data, size_t len) {
  const size_t before = bufferedBytes();
  if (FileQueue* files = this->files()) {
    // Behind the last queued file range.
    files->ranges.back().after.append(data, len);
    files->after_bytes += len;
  } else {
    output_.append(data, len);
  }
  if (absl::Status s = channel_.enableWriting(); !s.ok()) {
    interestFailed(s);
    return;
  }
  noteQueued(before, len);
}

// `len` bytes were queued behind `before`: past the high-water mark, reading pauses.
void TcpConnection::noteQueued(size_t before, size_t len) {
  const size_t hwm = settings_->high_water_mark;
  if (hwm > 0 && before < hwm && before + len >= hwm) {
    // The peer reads slower than it sends: stop reading from it until the output drains.
    backpressured_ = true;
    updateReadInterest();
    if (settings_->callbacks.high_water_mark &&
        state_.load(std::memory_order_relaxed) == kConnected) {
      settings_->callbacks.high_water_mark(shared_from_this(), bufferedBytes());
    }
  }
}

void TcpConnection::send(std::string_view data) {
  if (getLoop()->isInLoopThread()) {
    sendInLoop(data.data(), data.size());
    return;
  }
  getLoop()->queueInLoop([self = shared_from_this(), bytes = std::string(data)] {
    self->sendInLoop(bytes.data(), bytes.size());
  });
}

void TcpConnection::send(Buffer* buf) {
  // The thread-local check is two instructions; assertInLoopThread() confirms and reports.
  if (__builtin_expect(detail::t_current_loop != getLoop(), 0)) getLoop()->assertInLoopThread();
  // Emptied first: its storage (and so `data`) stays as it is, and the buffer is looked at once.
  // sendInLoop() reads `data` only before anything it calls could touch `buf` (a callback, a
  // close that frees an input buffer).
  const char* data = buf->peek();
  const size_t len = buf->readableBytes();
  buf->retrieveAll();
  sendInLoop(data, len);
}

void TcpConnection::sendSlices(const std::string_view* slices, size_t count) {
  getLoop()->assertInLoopThread();
  if (getLoop()->completesIo()) {
    // The engine copies and sends them in order, with no syscall each.
    for (size_t i = 0; i < count; ++i) sendInLoop(slices[i].data(), slices[i].size());
    return;
  }
  size_t total = 0;
  for (size_t i = 0; i < count; ++i) total += slices[i].size();
  if (total == 0) return;
  if (!outputEmpty() || state_.load(std::memory_order_relaxed) != kConnected || write_shut_) {
    for (size_t i = 0; i < count; ++i) sendQueued(slices[i].data(), slices[i].size());
    return;
  }
  // One writev(2) of up to kMaxSlices slices; any further slices are queued behind.
  constexpr size_t kMaxSlices = 64;
  iovec iov[kMaxSlices];
  const size_t direct = std::min(count, kMaxSlices);
  for (size_t i = 0; i < direct; ++i) {
    iov[i].iov_base = const_cast<char*>(slices[i].data());
    iov[i].iov_len = slices[i].size();
  }
  ssize_t n;
  do {
    n = ::writev(channel_.fd(), iov, static_cast<int>(direct));
    getLoop()->noteWriteCall();
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      writeFailed(errno);
      return;
    }
    n = 0;
  }
  noteSent(static_cast<size_t>(n));
  if (static_cast<size_t>(n) == total) return;
  // Queue what the socket did not take, slice by slice.
  size_t skip = static_cast<size_t>(n);
  for (size_t i = 0; i < count; ++i) {
    std::string_view rest = slices[i];
    if (skip >= rest.size()) {
      skip -= rest.size();
      continue;
    }
    rest.remove_prefix(skip);
    skip = 0;
    queueOutput(rest.data(), rest.size());
    if (state_.load(std::memory_order_relaxed) == kDisconnected) return;
  }
}

void TcpConnection::sendFile(int fd, uint64_t offset, uint64_t length) {
  getLoop()->assertInLoopThread();
  if (state_.load(std::memory_order_relaxed) != kConnected || write_shut_ || length == 0) {
    detail::closeFd(fd);
    return;
  }
  if (outputEmpty()) {
    // Straight to the socket, as far as it takes the file.
    off_t off = static_cast<off_t>(offset);
    ssize_t n;
    do {
      n = ::sendfile(channel_.fd(), fd, &off, static_cast<size_t>(std::min<uint64_t>(length, kWriteBytesPerTurn)));
      getLoop()->noteWriteCall();
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      detail::closeFd(fd);
      writeFailed(errno);
      return;
    }
    if (n == 0) {
      detail::closeFd(fd);
      LOG_WARN("connection %s: a file it was sending ended early: closing it", name());
      handleClose();
      return;
    }
    if (n > 0) {
      noteSent(static_cast<size_t>(n));
      offset += static_cast<uint64_t>(n);
      length -= static_cast<uint64_t>(n);
      if (length == 0) {
        detail::closeFd(fd);
        return;
      }
    }
  }
  Extras& e = extras();
  if (!e.files) e.files = std::make_unique<FileQueue>();
  e.files->ranges.push_back(FileQueue::Range{fd, offset, length, Buffer()});
  if (absl::Status s = channel_.enableWriting(); !s.ok()) interestFailed(s);
}

void TcpConnection::handlerOutputDrained() {
  getLoop()->assertInLoopThread();
  if (peer_closed_ && state_.load(std::memory_order_relaxed) == kConnected && outputEmpty() &&
      !handler_->holdsOutput()) {
    handleClose();
  }
}

void TcpConnection::shutdown() {
  getLoop()->runInLoop([self = shared_from_this()] { self->shutdownInLoop(); });
}

void TcpConnection::shutdownInLoop() {
  if (state_.load(std::memory_order_relaxed) != kConnected || write_shut_) return;
  if (outputEmpty()) {
    write_shut_ = true;
    ::shutdown(channel_.fd(), SHUT_WR);
  } else {
    shutdown_pending_ = true;
  }
}

void TcpConnection::closeAfterFlush() {
  getLoop()->runInLoop([self = shared_from_this()] { self->closeAfterFlushInLoop(); });
}

void TcpConnection::closeAfterFlushInLoop() {
  if (state_.load(std::memory_order_relaxed) != kConnected) return;
  state_.store(kDisconnecting, std::memory_order_release);
  if (outputEmpty()) {
    finishGracefulClose();
    return;
  }
  updateReadInterest();
}

void TcpConnection::forceClose() {
  getLoop()->runInLoop([self = shared_from_this()] { self->handleClose(); });
}

void TcpConnection::startReading() {
  getLoop()->assertInLoopThread();
  const bool was_reading = reading_;
  reading_ = true;
  updateReadInterest();
  if (!was_reading) inputResumed();
}

// Reading may go on again: input left unconsumed while it was paused would otherwise wait for the
// peer's next bytes, which may never come (it sent its pipelined requests and waits for answers).
void TcpConnection::inputResumed() {
  if (lingering_ || input_.empty() || redeliver_queued_ || !wantsToRead()) return;
  redeliver_queued_ = true;
  getLoop()->queueInLoop([self = shared_from_this()] { self->deliverPendingInput(); });
}

void TcpConnection::deliverPendingInput() {
  redeliver_queued_ = false;
  if (!self_ || lingering_ || input_.empty() || !wantsToRead()) return;
  // As an event: the input stays valid while the handler reads it, whatever it calls.
  in_event_ = true;
  handler_->onMessage(self_, &input_);
  in_event_ = false;
  if (state_.load(std::memory_order_relaxed) == kDisconnected) {
    eventClosedIt();
  } else {
    input_.releaseIfEmpty();
  }
}

void TcpConnection::stopReading() {
  getLoop()->assertInLoopThread();
  reading_ = false;
  updateReadInterest();
}

void TcpConnection::armIdleTimer(Duration delay) {
  std::weak_ptr<TcpConnection> weak = weak_from_this();
  extras().timer = getLoop()->runAfter(delay, [weak] {
    if (auto self = weak.lock()) self->onIdleTimer();
  });
}

void TcpConnection::onIdleTimer() {
  extras_->timer = TimerId{};
  if (state_.load(std::memory_order_relaxed) == kDisconnected) return;
  const Duration idle = Clock::now() - extras_->last_active;
  const Duration timeout = settings_->idle_timeout;
  if (idle >= timeout) {
    LOG_INFO("connection %s idle for %.1f s: closing", name(),
             std::chrono::duration<double>(idle).count());
    close_reason_ = static_cast<uint8_t>(CloseReason::kIdle);
    handleClose();
  } else {
    armIdleTimer(timeout - idle);
  }
}

}  // namespace plexus
