#include "plexus/plugin_host.h"

#include <unistd.h>

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "plexus/buffer.h"
#include "plexus/log.h"
#include "plexus/metrics.h"
#include "plexus/tcp_connection.h"
#include "plexus/tcp_server.h"

namespace plexus {
namespace detail {

// One factory as one loop uses it: the handlers it made there and whether its onLoopStart and
// onLoopStop ran there. Made and touched on that loop's thread only. Every handler holds its
// FactoryOnLoop (and so the factory, and the plugin library the factory keeps loaded).
struct FactoryOnLoop {
  FactoryOnLoop(std::shared_ptr<PluginFactory> f, const LoopInfo& i)
      : factory(std::move(f)), info(i) {}
  const std::shared_ptr<PluginFactory> factory;
  const LoopInfo info;
  size_t handlers = 0;
  bool retiring = false;  // a newer factory serves the loop: stop once `handlers` is 0
  bool stopped = false;   // onLoopStop ran (or is not owed)
};

// What one loop serving the plugin knows: the factory it makes handlers from now, and the older
// ones that still have handlers on it. Loop thread only, once made.
struct LoopSlot {
  explicit LoopSlot(const LoopInfo& i) : info(i) {}
  const LoopInfo info;
  std::shared_ptr<FactoryOnLoop> current;
  uint64_t generation = 0;  // PluginService's generation that `current` is the factory of
  std::vector<std::shared_ptr<FactoryOnLoop>> retiring;
  bool stopped = false;  // the server stopped this loop: no factory starts on it any more
};

// What servePlugin() shares between the server's callbacks and its ServedPlugin handles: the
// latest factory and the LoopSlot of each loop serving it. A lock guards the latest factory and
// the map of slots (taken once per connection and once per loop event); each slot's contents
// belong to its loop's thread.
class PluginService {
 public:
  explicit PluginService(std::shared_ptr<PluginFactory> f) : latest_(std::move(f)) {}

  // Loop start callback, on the loop's thread.
  void loopStarted(const LoopInfo& info) {
    EventLoop* loop = info.loop;
    auto made = std::make_unique<LoopSlot>(info);
    LoopSlot* slot = made.get();
    {
      absl::MutexLock lock(&mutex_);
      loops_[loop] = std::move(made);
    }
    sync(slot);
  }

  // Loop stop callback, on the loop's thread: the server's connections there are gone. Every
  // factory still owed its onLoopStop gets it now.
  void loopStopped(EventLoop* loop) {
    LoopSlot* slot = slotFor(loop);
    if (slot == nullptr) return;
    slot->stopped = true;
    for (auto& use : slot->retiring) stop(*use);
    slot->retiring.clear();
    if (slot->current) stop(*slot->current);
    slot->current.reset();
  }

  // On the loop's thread: the factory a new connection there gets (started on the loop, if it was
  // not yet), or null when the loop does not serve this plugin.
  std::shared_ptr<FactoryOnLoop> forNewConnection(EventLoop* loop) {
    LoopSlot* slot;
    uint64_t generation;
    {
      absl::MutexLock lock(&mutex_);
      auto it = loops_.find(loop);
      if (it == loops_.end()) return nullptr;
      slot = it->second.get();
      generation = generation_;
    }
    // A replacement whose switch has not reached this loop yet: switch now.
    if (slot->generation != generation) sync(slot);
    if (slot->current) ++slot->current->handlers;
    return slot->current;
  }

  // On the loop's thread: a handler made from `use` is gone.
  void handlerGone(FactoryOnLoop& use) {
    if (--use.handlers > 0 || !use.retiring) return;
    stop(use);
    LoopSlot* slot = slotFor(use.info.loop);
    if (slot == nullptr) return;
    auto& r = slot->retiring;
    r.erase(std::remove_if(r.begin(), r.end(), [&](const auto& u) { return u.get() == &use; }),
            r.end());
  }

  void replaceFactory(std::shared_ptr<PluginFactory> factory,
                      const std::shared_ptr<PluginService>& self) {
    std::vector<std::pair<EventLoop*, LoopSlot*>> loops;
    {
      absl::MutexLock lock(&mutex_);
      latest_ = std::move(factory);
      ++generation_;
      for (auto& [loop, slot] : loops_) loops.emplace_back(loop, slot.get());
    }
    // Each loop switches on its own thread; one with no connections stops the old factory there.
    for (const auto& entry : loops) {
      LoopSlot* slot = entry.second;  // a plain variable: clang 14 cannot capture a binding
      entry.first->runInLoop([self, slot] { self->sync(slot); });
    }
  }

  uint64_t generation() const {
    absl::MutexLock lock(&mutex_);
    return generation_;
  }

 private:
  LoopSlot* slotFor(EventLoop* loop) const {
    absl::MutexLock lock(&mutex_);
    auto it = loops_.find(loop);
    return it == loops_.end() ? nullptr : it->second.get();
  }

  // On the slot's loop thread: starts the latest factory there if it is not the current one, and
  // retires the one it replaces.
  void sync(LoopSlot* slot) {
    if (slot->stopped) return;
    std::shared_ptr<PluginFactory> latest;
    {
      absl::MutexLock lock(&mutex_);
      if (slot->current && slot->generation == generation_) return;
      latest = latest_;
      slot->generation = generation_;
    }
    auto use = std::make_shared<FactoryOnLoop>(std::move(latest), slot->info);
    try {
      use->factory->onLoopStart(use->info);
    } catch (const std::exception& e) {
      LOG_ERROR("plugin onLoopStart() threw: %s", e.what());
    }
    std::shared_ptr<FactoryOnLoop> old = std::move(slot->current);
    slot->current = std::move(use);
    if (!old) return;
    if (old->handlers == 0) {
      stop(*old);
    } else {
      old->retiring = true;
      slot->retiring.push_back(std::move(old));
    }
  }

  static void stop(FactoryOnLoop& use) {
    if (use.stopped) return;
    use.stopped = true;
    try {
      use.factory->onLoopStop(use.info);
    } catch (const std::exception& e) {
      LOG_ERROR("plugin onLoopStop() threw: %s", e.what());
    }
  }

  mutable absl::Mutex mutex_;
  std::shared_ptr<PluginFactory> latest_ ABSL_GUARDED_BY(mutex_);
 public:
  // Where the plugins' series go when the server has no registry: kept, never exported. Set
  // before the server starts.
  std::unique_ptr<MetricsRegistry> unexported;

 private:
  uint64_t generation_ ABSL_GUARDED_BY(mutex_) = 0;
  absl::flat_hash_map<EventLoop*, std::unique_ptr<LoopSlot>> loops_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace detail

namespace {

using detail::FactoryOnLoop;
using detail::PluginService;

class HostedConnection;

// The part of a HostedConnection that deferred replies and timers reach it through: shared with
// them, cleared (on the loop thread) when the connection goes, so a late reply or timer finds
// nobody instead of a destroyed object.
struct HostLink {
  HostedConnection* host;  // loop thread only; null once the connection has gone
};

// A deferred reply's place. Its fill() may come from any thread: it is carried to the loop.
class HostedSlot final : public DeferredReply::Slot {
 public:
  HostedSlot(EventLoop* loop, std::weak_ptr<HostLink> link, uint64_t id)
      : loop_(loop), link_(std::move(link)), id_(id) {}
  void fill(std::string data, bool close_after) override;

 private:
  EventLoop* const loop_;
  const std::weak_ptr<HostLink> link_;
  const uint64_t id_;
};

// One connection as its plugin handler sees it: the connection's own ConnectionHandler (owned by
// the connection), so input reaches the plugin with two virtual calls and no lookup. Loop thread
// only, like the connection.
class HostedConnection final : public Session, public ConnectionHandler {
 public:
  HostedConnection(TcpConnection* conn, PluginService* service,
                   std::shared_ptr<FactoryOnLoop> use)
      : use_(std::move(use)), service_(service), conn_(conn) {}
  ~HostedConnection() override {
    if (extras_) {
      if (extras_->link) extras_->link->host = nullptr;
      cancelTimers();
      for (Segment& s : extras_->queue) {
        if (s.kind == Segment::kFile) ::close(s.fd);
      }
    }
    handler_.reset();
    releaseFactory();
  }

  // Session: output. While a deferred place is unfilled, everything sent waits behind it
  // (Extras::queue).
  void send(std::string_view data) override {
    if (__builtin_expect(holding(), 0)) {
      if (!closing_) queueBytes(data);
      return;
    }
    if (!closing_) conn_->send(data);
  }
  void send(Buffer& buf) override {
    if (__builtin_expect(holding(), 0)) {
      if (!closing_) queueBytes(buf.view());
      buf.retrieveAll();
      return;
    }
    if (closing_) {
      buf.retrieveAll();
      return;
    }
    conn_->send(&buf);
  }
  void sendSlices(std::span<const std::string_view> slices) override {
    if (closing_) return;
    if (holding()) {
      for (std::string_view s : slices) queueBytes(s);
      return;
    }
    conn_->sendSlices(slices.data(), slices.size());
  }
  void sendFile(int fd, uint64_t offset, uint64_t length) override {
    if (closing_) {
      ::close(fd);
      return;
    }
    if (holding()) {
      Segment s;
      s.kind = Segment::kFile;
      s.fd = fd;
      s.offset = offset;
      s.length = length;
      extras().queue.push_back(std::move(s));
      return;
    }
    conn_->sendFile(fd, offset, length);
  }
  DeferredReply deferReply() override {
    if (closing_) return DeferredReply();
    Segment s;
    s.kind = Segment::kSlot;
    s.slot = ++extras().next_slot;
    extras_->queue.push_back(std::move(s));
    return DeferredReply(
        std::make_shared<HostedSlot>(conn_->getLoop(), link(), extras_->next_slot));
  }
  size_t pendingOutputBytes() const override {
    size_t total = conn_->pendingOutputBytes();
    if (holding()) {
      for (const Segment& s : extras_->queue) {
        total += s.kind == Segment::kFile ? s.length : s.data.size();
      }
    }
    return total;
  }

  // Session: input.
  void pauseReading() override { conn_->stopReading(); }
  void resumeReading() override {
    if (!closing_) conn_->startReading();
  }
  bool readingPaused() const override { return !conn_->isReading(); }

  // Session: timers.
  SessionTimerId runAfter(std::chrono::nanoseconds delay, std::function<void()> cb) override {
    if (closing_ || !cb) return 0;
    const SessionTimerId id = ++extras().next_timer;
    std::weak_ptr<HostLink> weak = link();
    const TimerId t = conn_->getLoop()->runAfter(delay, [weak, id] {
      if (auto l = weak.lock(); l && l->host) l->host->fireTimer(id);
    });
    extras_->timers.emplace(id, Timer{t, std::move(cb)});
    return id;
  }
  void cancelTimer(SessionTimerId id) override {
    if (!extras_) return;
    auto it = extras_->timers.find(id);
    if (it == extras_->timers.end()) return;
    conn_->getLoop()->cancel(it->second.timer);
    extras_->timers.erase(it);
  }

  // Session: closing.
  void close() override {
    if (closing_) return;
    closing_ = true;
    updateUsable();
    if (!holding()) {
      conn_->closeAfterFlush();
    } else {
      // The deferred places still go out first: stop reading now, close once they are sent.
      close_after_queue_ = true;
      conn_->stopReading();
    }
  }
  void abort() override {
    closing_ = true;
    updateUsable();
    conn_->forceClose();
  }
  bool closing() const override { return closing_ || !conn_->connected(); }

  uint64_t id() const override { return conn_->id(); }
  std::string peerAddress() const override { return conn_->peerAddress().toIpPort(); }
  const LoopInfo& loopInfo() const override { return use_->info; }

  // ConnectionHandler
  // The per-message path: no depth bookkeeping here, because the connection itself reports a
  // close that happens during an event (onData included) only once the event is over.
  void onMessage(const TcpConnectionPtr& /*conn*/, Buffer* input) override {
    if (__builtin_expect(!usable_, 0)) {
      input->retrieveAll();  // a failed or closing connection: drop what it still reads
      return;
    }
    try {
      handler_->onData(*this, *input);
    } catch (const std::exception& e) {
      fail("handler onData()", e.what());
    } catch (...) {
      fail("handler onData()", "an exception not derived from std::exception");
    }
  }
  void onWriteComplete(const TcpConnectionPtr& /*conn*/) override {
    if (usable_) call("handler onDrained()", [this] { handler_->onDrained(*this); });
  }
  void onServerStop(const TcpConnectionPtr& /*conn*/) override {
    if (usable_) {
      call("handler onStop()", [this] { handler_->onStop(*this); });
    } else if (!close_reported_) {
      conn_->closeAfterFlush();
    }
  }
  void onClose(const TcpConnectionPtr& /*conn*/) override { closed(); }
  bool holdsOutput() const override { return holding(); }

  void start() {
    call("factory newHandler()", [this] {
      handler_ = use_->factory->newHandler(use_->info);
      if (!handler_) throw std::runtime_error("the factory made no handler");
      updateUsable();
    });
    if (usable_) call("handler onConnect()", [this] { handler_->onConnect(*this); });
  }

  // A deferred place was filled (on the loop thread).
  void fillSlot(uint64_t id, std::string data, bool close_after) {
    if (!holding()) return;
    for (Segment& s : extras_->queue) {
      if (s.kind == Segment::kSlot && s.slot == id) {
        s.kind = Segment::kBytes;
        s.data = std::move(data);
        s.close_after = close_after;
        break;
      }
    }
    flushQueue();
  }

  void fireTimer(SessionTimerId id) {
    if (!extras_) return;
    auto it = extras_->timers.find(id);
    if (it == extras_->timers.end()) return;
    std::function<void()> cb = std::move(it->second.cb);
    extras_->timers.erase(it);
    if (usable_) call("timer callback", cb);
  }

 private:
  struct Segment {
    enum Kind : uint8_t { kBytes, kSlot, kFile };
    Kind kind = kBytes;
    bool close_after = false;  // kBytes from a filled place: close once it is sent
    int fd = -1;               // kFile
    uint64_t slot = 0;         // kSlot
    uint64_t offset = 0;       // kFile
    uint64_t length = 0;       // kFile
    std::string data;          // kBytes
  };
  struct Timer {
    TimerId timer;
    std::function<void()> cb;
  };
  // Segments in order: a vector with a moving front, which allocates nothing until it is used
  // (std::deque allocates when constructed: hundreds of bytes per idle connection) and frees its
  // memory once emptied.
  class HeldQueue {
   public:
    bool empty() const { return head_ == v_.size(); }
    Segment& front() { return v_[head_]; }
    Segment& back() { return v_.back(); }
    void push_back(Segment&& s) { v_.push_back(std::move(s)); }
    void pop_front() {
      if (++head_ == v_.size()) clear();
    }
    void clear() {
      std::vector<Segment>().swap(v_);
      head_ = 0;
    }
    Segment* begin() { return v_.data() + head_; }
    Segment* end() { return v_.data() + v_.size(); }
    const Segment* begin() const { return v_.data() + head_; }
    const Segment* end() const { return v_.data() + v_.size(); }

   private:
    std::vector<Segment> v_;
    size_t head_ = 0;
  };
  // What only connections using deferred replies or timers need, made on first use: an idle
  // connection pays one pointer for it.
  struct Extras {
    std::shared_ptr<HostLink> link;  // for deferred replies and timers
    HeldQueue queue;                 // output waiting behind an unfilled deferred place
    uint64_t next_slot = 0;
    SessionTimerId next_timer = 0;
    absl::flat_hash_map<SessionTimerId, Timer> timers;
  };

  std::shared_ptr<HostLink> link() {
    Extras& e = extras();
    if (!e.link) e.link = std::make_shared<HostLink>(HostLink{this});
    return e.link;
  }
  Extras& extras() {
    if (!extras_) extras_ = std::make_unique<Extras>();
    return *extras_;
  }
  bool holding() const { return extras_ && !extras_->queue.empty(); }

  void queueBytes(std::string_view data) {
    if (data.empty()) return;
    HeldQueue& queue = extras().queue;
    if (!queue.empty() && queue.back().kind == Segment::kBytes && !queue.back().close_after) {
      queue.back().data.append(data);
      return;
    }
    Segment s;
    s.kind = Segment::kBytes;
    s.data.assign(data);
    queue.push_back(std::move(s));
  }

  // Sends what waits in the queue up to the first unfilled place.
  void flushQueue() {
    while (holding() && extras_->queue.front().kind != Segment::kSlot) {
      Segment s = std::move(extras_->queue.front());
      extras_->queue.pop_front();
      if (s.kind == Segment::kFile) {
        conn_->sendFile(s.fd, s.offset, s.length);
        continue;
      }
      conn_->send(s.data);
      if (s.close_after) {
        // Nothing after this reply goes out.
        for (Segment& rest : extras_->queue) {
          if (rest.kind == Segment::kFile) ::close(rest.fd);
        }
        extras_->queue.clear();
        closing_ = true;
        updateUsable();
        conn_->closeAfterFlush();
        return;
      }
    }
    if (!holding() && close_after_queue_) {
      close_after_queue_ = false;
      conn_->closeAfterFlush();
    } else if (!holding()) {
      conn_->handlerOutputDrained();  // the peer may have ended its side meanwhile
    }
  }

  void cancelTimers() {
    if (!extras_) return;
    for (auto& [id, t] : extras_->timers) conn_->getLoop()->cancel(t.timer);
    extras_->timers.clear();
  }

  // The connection closed. A close that happens inside one of the handler's own callbacks (it
  // called abort(), or threw) is reported once that callback has returned: a handler never sees
  // onClose while another of its callbacks runs. The handler is destroyed right after onClose.
  void closed() {
    cancelTimers();
    if (depth_ > 0) {
      close_pending_ = true;
      updateUsable();
      return;
    }
    closeNow();
  }

  void closeNow() {
    close_pending_ = false;
    closing_ = true;
    if (handler_ && !close_reported_) {
      close_reported_ = true;
      updateUsable();
      call("handler onClose()", [this] { handler_->onClose(*this); });
      handler_.reset();
    }
    updateUsable();
    releaseFactory();
  }

  // The handler is gone: the loop may stop its factory if a newer one serves it (the factory
  // itself stays alive while use_ does).
  void releaseFactory() {
    if (released_) return;
    released_ = true;
    service_->handlerGone(*use_);
  }

  // One flag on the per-message path instead of five; updateUsable() after each change.
  void updateUsable() {
    usable_ = handler_ && !failed_ && !close_reported_ && !close_pending_ && !closing_;
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
    if (--depth_ == 0 && close_pending_) closeNow();
  }

  void fail(const char* what, const char* why) {
    LOG_ERROR("connection %s: plugin %s threw: %s; closing the connection", conn_->name(), what,
              why);
    failed_ = true;
    updateUsable();
    conn_->forceClose();
  }

  // Declared first, so destroyed last: the factory (and the plugin library whose code the handler,
  // its timers and its deferred places run) outlives everything below.
  const std::shared_ptr<FactoryOnLoop> use_;
  // Not a reference of our own: the service lives as long as servePlugin()'s connection callback,
  // which holds it. Every HostedConnection is made by that callback and owned by a connection
  // whose ConnectionCallbacks hold that callback; a connection destroys its handler before its
  // callbacks.
  PluginService* const service_;
  std::unique_ptr<ProtocolHandler> handler_;
  TcpConnection* const conn_;  // owns this object
  // One byte with the seven flags: eight bytes in all, so this object (part of every connection
  // a plugin serves) fits a smaller malloc size class. Callbacks nest a few deep at most.
  uint8_t depth_ = 0;  // handler callbacks on the stack
  bool failed_ = false;
  bool close_pending_ = false;
  bool close_reported_ = false;
  bool released_ = false;  // releaseFactory() ran
  bool closing_ = false;            // close() or abort() was called, or the connection closed
  bool close_after_queue_ = false;  // close() came while deferred places were unfilled
  bool usable_ = false;  // handler_ && !failed_ && !close_reported_ && !close_pending_ && !closing_
  std::unique_ptr<Extras> extras_;
};

void HostedSlot::fill(std::string data, bool close_after) {
  loop_->runInLoop([link = link_, id = id_, data = std::move(data), close_after]() mutable {
    if (auto l = link.lock(); l && l->host) l->host->fillSlot(id, std::move(data), close_after);
  });
}

}  // namespace

ServedPlugin::ServedPlugin(std::shared_ptr<detail::PluginService> service)
    : service_(std::move(service)) {}

void ServedPlugin::replaceFactory(std::shared_ptr<PluginFactory> factory) {
  if (!service_) LOG_FATAL("ServedPlugin::replaceFactory: serves nothing");
  if (!factory) LOG_FATAL("ServedPlugin::replaceFactory: null factory");
  service_->replaceFactory(std::move(factory), service_);
}

uint64_t ServedPlugin::generation() const { return service_ ? service_->generation() : 0; }

ServedPlugin servePlugin(TcpServer& server, std::shared_ptr<PluginFactory> factory) {
  if (!factory) LOG_FATAL("servePlugin: null factory");
  auto service = std::make_shared<PluginService>(std::move(factory));
  MetricsRegistry* registry = server.options().metrics;
  if (registry == nullptr) {
    service->unexported = std::make_unique<MetricsRegistry>();
    registry = service->unexported.get();
  }
  // The server outlives its callbacks. Every factory serving a loop (the first and each one a
  // reload brings) gets the same LoopInfo, so its series stay the same series across reloads.
  TcpServer* srv = &server;
  server.setLoopStartCallback([service, registry, srv](EventLoop* loop, size_t index,
                                                       size_t count) {
    MetricLabels labels = {{"loop", srv->loopLabel(loop, index)},
                           {"listener", srv->listenAddress().toIpPort()}};
    for (const auto& l : srv->options().metric_labels) labels.push_back(l);
    service->loopStarted(LoopInfo{loop, index, count, registry->scope(labels)});
  });
  server.setLoopStopCallback([service](EventLoop* loop, size_t /*index*/, size_t /*count*/) {
    service->loopStopped(loop);
  });
  server.setConnectionCallback([service](const TcpConnectionPtr& conn) {
    // The close reaches the connection's HostedConnection as onClose().
    if (!conn->connected()) return;
    std::shared_ptr<FactoryOnLoop> use = service->forNewConnection(conn->getLoop());
    if (!use) {
      LOG_ERROR("connection %s: its loop does not serve this plugin; closing it", conn->name());
      conn->forceClose();
      return;
    }
    auto hosted = std::make_unique<HostedConnection>(conn.get(), service.get(), std::move(use));
    HostedConnection* h = hosted.get();
    conn->setHandler(std::move(hosted));
    h->start();
  });
  // Input and drain notices go to each connection's HostedConnection.
  server.setMessageCallback(nullptr);
  server.setWriteCompleteCallback(nullptr);
  return ServedPlugin(std::move(service));
}

}  // namespace plexus
