#include "plexus/testing/plugin_harness.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <random>
#include <stdexcept>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "plexus/buffer.h"
#include "plexus/log.h"
#include "plexus/plugin_loader.h"

namespace plexus::testing {
namespace detail {

namespace {

// A piece of output that cannot be written yet: behind an unfilled deferred place (kSlot), or
// waiting for the peer to read (setWritable(false)).
struct Segment {
  enum Kind : uint8_t { kBytes, kSlot, kFile };
  Kind kind = kBytes;
  bool close_after = false;  // kBytes from a filled place: close once it is written
  int fd = -1;               // kFile, owned
  uint64_t slot = 0;         // kSlot
  uint64_t offset = 0;       // kFile
  uint64_t length = 0;       // kFile
  std::string data;          // kBytes

  size_t pendingBytes() const {
    return kind == kFile ? static_cast<size_t>(length) : kind == kBytes ? data.size() : 0;
  }
};

void closeFiles(std::deque<Segment>& queue) {
  for (Segment& s : queue) {
    if (s.kind == Segment::kFile && s.fd >= 0) ::close(s.fd);
  }
  queue.clear();
}

// Appends up to `length` bytes of `fd` from `offset` to `out`, 64 KiB at a time (the length is
// the plugin's word, not a size to allocate). False when the file ended early or could not be read.
bool readRange(int fd, uint64_t offset, uint64_t length, std::string* out) {
  constexpr size_t kChunk = 64 * 1024;
  char buf[kChunk];
  while (length > 0) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(length, kChunk));
    const ssize_t n = ::pread(fd, buf, want, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    out->append(buf, static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
    length -= static_cast<uint64_t>(n);
  }
  return true;
}

}  // namespace

class EmbeddedSession;

// Deferred fills, which may come from any thread. The harness's own thread applies them at once;
// other threads leave them here for runPending(). `core` is cleared when the harness goes, so a
// DeferredReply that outlives it finds nobody.
struct Inbox {
  struct Fill {
    uint64_t connection;
    uint64_t slot;
    std::string data;
    bool close_after;
  };
  explicit Inbox(std::thread::id t) : owner(t) {}
  const std::thread::id owner;
  absl::Mutex mu;
  HarnessCore* core ABSL_GUARDED_BY(mu) = nullptr;
  std::vector<Fill> fills ABSL_GUARDED_BY(mu);
};

class HarnessCore {
 public:
  struct TimerKey {
    int64_t deadline;  // ns on the manual clock
    uint64_t seq;      // ties: in the order set
    bool operator<(const TimerKey& o) const {
      return deadline != o.deadline ? deadline < o.deadline : seq < o.seq;
    }
  };

  explicit HarnessCore(std::shared_ptr<PluginFactory> factory)
      : factory_(std::move(factory)),
        owner_(std::this_thread::get_id()),
        inbox_(std::make_shared<Inbox>(owner_)) {
    if (!factory_) throw std::invalid_argument("PluginHarness: null factory");
    {
      absl::MutexLock lock(&inbox_->mu);
      inbox_->core = this;
    }
    factory_->onLoopStart(info_);
  }
  ~HarnessCore();

  void checkThread(const char* what) const {
    if (std::this_thread::get_id() != owner_) {
      std::fprintf(stderr,
                   "plexus::testing::PluginHarness: %s called from a thread other than the one "
                   "that made the harness\n",
                   what);
      std::abort();
    }
  }

  EmbeddedConnection& connect(std::string peer);
  void advance(std::chrono::nanoseconds d);
  void stopServer();
  void runPending();
  void applyFill(uint64_t connection, uint64_t slot, std::string data, bool close_after);

  TimerKey addTimer(EmbeddedSession* session, SessionTimerId id, std::chrono::nanoseconds delay) {
    const TimerKey key{now_ + std::max<int64_t>(delay.count(), 0), ++timer_seq_};
    timers_.emplace(key, std::make_pair(session, id));
    return key;
  }
  void removeTimer(const TimerKey& key) { timers_.erase(key); }

  const LoopInfo& info() const { return info_; }
  MetricsRegistry& metrics() { return metrics_; }
  const std::shared_ptr<Inbox>& inbox() const { return inbox_; }
  int64_t now() const { return now_; }

 private:
  EmbeddedSession& session(size_t i);

  const std::shared_ptr<PluginFactory> factory_;
  MetricsRegistry metrics_;
  const LoopInfo info_{nullptr, 0, 1, metrics_.scope({{"loop", "0"}})};
  const std::thread::id owner_;
  const std::shared_ptr<Inbox> inbox_;
  int64_t now_ = 0;
  uint64_t timer_seq_ = 0;
  std::map<TimerKey, std::pair<EmbeddedSession*, SessionTimerId>> timers_;
  // Index i holds the connection with id i + 1; closed ones stay, for the test to inspect.
  std::vector<std::unique_ptr<EmbeddedConnection>> connections_;
};

// A deferred reply's place.
class HarnessSlot final : public DeferredReply::Slot {
 public:
  HarnessSlot(std::shared_ptr<Inbox> inbox, uint64_t connection, uint64_t slot)
      : inbox_(std::move(inbox)), connection_(connection), slot_(slot) {}
  void fill(std::string data, bool close_after) override {
    HarnessCore* direct = nullptr;
    {
      absl::MutexLock lock(&inbox_->mu);
      if (inbox_->core == nullptr) return;
      if (std::this_thread::get_id() != inbox_->owner) {
        inbox_->fills.push_back(Inbox::Fill{connection_, slot_, std::move(data), close_after});
        return;
      }
      // Only the owner thread clears `core`, and it is this thread: it stays valid below.
      direct = inbox_->core;
    }
    direct->applyFill(connection_, slot_, std::move(data), close_after);
  }

 private:
  const std::shared_ptr<Inbox> inbox_;
  const uint64_t connection_;
  const uint64_t slot_;
};

// One connection: the Session its handler sees, and the peer's side the test drives.
class EmbeddedSession final : public Session {
 public:
  EmbeddedSession(HarnessCore* core, uint64_t id, std::string peer)
      : core_(core), id_(id), peer_(std::move(peer)) {}
  ~EmbeddedSession() override {
    closeFiles(held_);
    closeFiles(unwritten_);
  }

  void start(PluginFactory& factory) {
    call("factory newHandler()", [&] {
      handler_ = factory.newHandler(core_->info());
      if (!handler_) throw std::runtime_error("the factory made no handler");
    });
    if (usable()) call("handler onConnect()", [this] { handler_->onConnect(*this); });
  }

  // --- Session: output ---
  void send(std::string_view data) override {
    if (closing_ || data.empty()) return;
    Segment s;
    s.data.assign(data);
    output(std::move(s));
  }
  void send(Buffer& buf) override {
    send(buf.view());
    buf.retrieveAll();
  }
  void sendSlices(std::span<const std::string_view> slices) override {
    if (closing_) return;
    Segment s;
    for (std::string_view slice : slices) s.data.append(slice);
    if (!s.data.empty()) output(std::move(s));
  }
  void sendFile(int fd, uint64_t offset, uint64_t length) override {
    if (closing_) {
      if (fd >= 0) ::close(fd);
      return;
    }
    Segment s;
    s.kind = Segment::kFile;
    s.fd = fd;
    s.offset = offset;
    s.length = length;
    output(std::move(s));
  }
  DeferredReply deferReply() override {
    if (closing_) return DeferredReply();
    Segment s;
    s.kind = Segment::kSlot;
    s.slot = ++next_slot_;
    held_.push_back(std::move(s));
    return DeferredReply(std::make_shared<HarnessSlot>(core_->inbox(), id_, next_slot_));
  }
  size_t pendingOutputBytes() const override {
    size_t total = 0;
    for (const Segment& s : held_) total += s.pendingBytes();
    for (const Segment& s : unwritten_) total += s.pendingBytes();
    return total;
  }

  // --- Session: input ---
  void pauseReading() override { paused_ = true; }
  void resumeReading() override {
    if (closing_ || !paused_) return;
    paused_ = false;
    // Handed over "soon": by the harness's next runPending(), never from inside this call.
    if (!input_.empty() && !peer_closed_) redeliver_ = true;
  }
  bool readingPaused() const override { return paused_; }

  // --- Session: timers ---
  SessionTimerId runAfter(std::chrono::nanoseconds delay, std::function<void()> cb) override {
    if (closing_ || !cb) return 0;
    const SessionTimerId id = ++next_timer_;
    timers_.emplace(id, Timer{core_->addTimer(this, id, delay), std::move(cb)});
    return id;
  }
  void cancelTimer(SessionTimerId id) override {
    auto it = timers_.find(id);
    if (it == timers_.end()) return;
    core_->removeTimer(it->second.key);
    timers_.erase(it);
  }

  // --- Session: closing ---
  void close() override {
    if (closing_) return;
    closing_ = true;
    close_when_flushed_ = true;
    finishIfFlushed();
  }
  void abort() override {
    if (closed_) return;
    closing_ = true;
    aborted_ = true;
    terminate();
  }
  bool closing() const override { return closing_ || closed_; }

  uint64_t id() const override { return id_; }
  std::string peerAddress() const override { return peer_; }
  const LoopInfo& loopInfo() const override { return core_->info(); }

  // --- The peer's side (EmbeddedConnection) ---
  // Checks the thread, then applies what other threads filled and hands resumed input over.
  void loopRunPending() { core_->runPending(); }
  bool acceptsInput() const { return handler_ && !closing_ && !closed_ && !peer_closed_; }
  void appendInput(std::string_view bytes) { input_.append(bytes); }
  // One read's worth: onData() with everything unconsumed, if reading.
  void deliver() {
    redeliver_ = false;
    if (!usable() || paused_ || peer_closed_ || input_.empty()) return;
    call("handler onData()", [this] { handler_->onData(*this, input_); });
  }
  void deliverIfResumed() {
    if (redeliver_) deliver();
  }
  void peerClose() {
    if (closed_ || peer_closed_) return;
    peer_closed_ = true;
    redeliver_ = false;
    finishIfFlushed();
  }
  void setWritable(bool writable) {
    writable_ = writable;
    if (!writable) return;
    while (!unwritten_.empty() && !closed_) {
      Segment s = std::move(unwritten_.front());
      unwritten_.pop_front();
      emit(s);
    }
    if (closed_) return;
    if (had_to_queue_) {
      had_to_queue_ = false;
      if (usable()) call("handler onDrained()", [this] { handler_->onDrained(*this); });
    }
    finishIfFlushed();
  }
  void stop() {
    if (usable()) call("handler onStop()", [this] { handler_->onStop(*this); });
  }
  void fillSlot(uint64_t slot, std::string data, bool close_after) {
    if (closed_) return;
    for (Segment& s : held_) {
      if (s.kind == Segment::kSlot && s.slot == slot) {
        s.kind = Segment::kBytes;
        s.data = std::move(data);
        s.close_after = close_after;
        break;
      }
    }
    flushHeld();
  }
  void fireTimer(SessionTimerId id) {
    auto it = timers_.find(id);
    if (it == timers_.end()) return;
    std::function<void()> cb = std::move(it->second.cb);
    timers_.erase(it);
    if (usable()) call("timer callback", cb);
  }
  // The harness goes: the connection closes without a flush, as at the end of a server's grace
  // period.
  void shutDown() { terminate(); }

  std::string takeOutput() { return std::exchange(output_, std::string()); }
  std::string_view outputView() const { return output_; }
  bool closed() const { return closed_; }
  bool aborted() const { return aborted_; }
  const std::string& error() const { return error_; }
  size_t pendingInput() const { return input_.readableBytes(); }

 private:
  struct Timer {
    HarnessCore::TimerKey key;
    std::function<void()> cb;
  };

  bool usable() const { return handler_ && !closing_ && !closed_; }

  // Everything sent goes through here: behind an unfilled place, or towards the peer.
  void output(Segment s) {
    if (!held_.empty()) {
      if (s.kind == Segment::kBytes && held_.back().kind == Segment::kBytes &&
          !held_.back().close_after) {
        held_.back().data.append(s.data);
      } else {
        held_.push_back(std::move(s));
      }
      return;
    }
    write(std::move(s));
  }

  // Towards the peer: into the output at once, or queued while the peer does not read.
  void write(Segment s) {
    if (s.kind == Segment::kBytes && s.data.empty()) return;
    if (!writable_ || !unwritten_.empty()) {
      had_to_queue_ = true;
      unwritten_.push_back(std::move(s));
      return;
    }
    emit(s);
  }

  void emit(Segment& s) {
    if (s.kind == Segment::kBytes) {
      output_.append(s.data);
      return;
    }
    const bool whole = readRange(s.fd, s.offset, s.length, &output_);
    ::close(s.fd);
    s.fd = -1;
    if (!whole) {
      // The peer was promised `length` bytes: like the real connection, close.
      LOG_WARN("embedded connection %d: a file it was sending ended early: closing it", id_);
      terminate();
    }
  }

  // Writes what waits behind the places filled so far, up to the first unfilled one.
  void flushHeld() {
    while (!held_.empty() && held_.front().kind != Segment::kSlot && !closed_) {
      Segment s = std::move(held_.front());
      held_.pop_front();
      const bool close_after = s.close_after;
      write(std::move(s));
      if (close_after && !closed_) {
        // Nothing after this reply goes out.
        closeFiles(held_);
        closing_ = true;
        close_when_flushed_ = true;
      }
    }
    finishIfFlushed();
  }

  // A graceful close (close(), a reply with close_after, or the peer's EOF) completes once
  // nothing is held or queued.
  void finishIfFlushed() {
    if (!closed_ && (close_when_flushed_ || peer_closed_) && held_.empty() && unwritten_.empty()) {
      terminate();
    }
  }

  // The connection is closed: nothing more goes out, no timer fires. onClose() follows at once,
  // or when the handler callback running now returns.
  void terminate() {
    if (closed_) return;
    closing_ = true;
    closed_ = true;
    redeliver_ = false;
    closeFiles(held_);
    closeFiles(unwritten_);
    for (auto& [id, t] : timers_) core_->removeTimer(t.key);
    timers_.clear();
    if (depth_ > 0) {
      close_pending_ = true;
      return;
    }
    reportClose();
  }

  void reportClose() {
    close_pending_ = false;
    if (!handler_ || close_reported_) return;
    close_reported_ = true;
    call("handler onClose()", [this] { handler_->onClose(*this); });
    // Destroying the handler may fill its deferred places (with nothing): the closed session
    // ignores them.
    handler_.reset();
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
    if (--depth_ == 0 && close_pending_) reportClose();
  }

  void fail(const char* what, const char* why) {
    if (error_.empty()) error_ = absl::StrCat(what, " threw: ", why);
    LOG_ERROR("embedded connection %d: plugin %s threw: %s; closing the connection", id_, what,
              why);
    if (!closed_) aborted_ = true;
    closing_ = true;
    terminate();
  }

  HarnessCore* const core_;
  const uint64_t id_;
  const std::string peer_;
  std::unique_ptr<ProtocolHandler> handler_;
  Buffer input_;
  std::string output_;              // what the peer has received, not yet taken
  std::deque<Segment> held_;        // behind an unfilled deferred place
  std::deque<Segment> unwritten_;   // written, but the peer does not read (setWritable(false))
  absl::flat_hash_map<SessionTimerId, Timer> timers_;
  std::string error_;
  uint64_t next_slot_ = 0;
  SessionTimerId next_timer_ = 0;
  int depth_ = 0;  // handler callbacks on the stack
  bool writable_ = true;
  bool had_to_queue_ = false;  // onDrained() is due once unwritten_ empties
  bool paused_ = false;
  bool redeliver_ = false;     // resumed with input waiting: onData() at the next runPending()
  bool peer_closed_ = false;
  bool close_when_flushed_ = false;
  bool closing_ = false;  // close() or abort() was called, or the connection closed
  bool closed_ = false;
  bool aborted_ = false;
  bool close_pending_ = false;  // closed inside a callback: onClose() once it returns
  bool close_reported_ = false;
};

HarnessCore::~HarnessCore() {
  checkThread("~PluginHarness");
  for (auto& c : connections_) c->session_->shutDown();
  {
    absl::MutexLock lock(&inbox_->mu);
    inbox_->core = nullptr;
    inbox_->fills.clear();
  }
  try {
    factory_->onLoopStop(info_);
  } catch (const std::exception& e) {
    LOG_ERROR("plugin onLoopStop() threw: %s", e.what());
  }
}

EmbeddedSession& HarnessCore::session(size_t i) { return *connections_[i]->session_; }

EmbeddedConnection& HarnessCore::connect(std::string peer) {
  checkThread("connect");
  const uint64_t id = connections_.size() + 1;
  auto s = std::make_unique<EmbeddedSession>(this, id, std::move(peer));
  EmbeddedSession* raw = s.get();
  connections_.push_back(std::unique_ptr<EmbeddedConnection>(new EmbeddedConnection(std::move(s))));
  EmbeddedConnection& c = *connections_.back();
  raw->start(*factory_);
  return c;
}

void HarnessCore::advance(std::chrono::nanoseconds d) {
  checkThread("advance");
  runPending();
  const int64_t target = now_ + std::max<int64_t>(d.count(), 0);
  // One at a time: a callback may set or cancel timers, which may fall due before `target` too.
  while (!timers_.empty() && timers_.begin()->first.deadline <= target) {
    auto node = timers_.extract(timers_.begin());
    now_ = node.key().deadline;
    node.mapped().first->fireTimer(node.mapped().second);
  }
  now_ = target;
  runPending();
}

void HarnessCore::stopServer() {
  checkThread("stopServer");
  runPending();
  for (size_t i = 0; i < connections_.size(); ++i) session(i).stop();
}

void HarnessCore::runPending() {
  checkThread("runPending");
  std::vector<Inbox::Fill> fills;
  {
    absl::MutexLock lock(&inbox_->mu);
    fills.swap(inbox_->fills);
  }
  for (Inbox::Fill& f : fills) {
    applyFill(f.connection, f.slot, std::move(f.data), f.close_after);
  }
  for (size_t i = 0; i < connections_.size(); ++i) session(i).deliverIfResumed();
}

void HarnessCore::applyFill(uint64_t connection, uint64_t slot, std::string data,
                            bool close_after) {
  if (connection == 0 || connection > connections_.size()) return;
  session(connection - 1).fillSlot(slot, std::move(data), close_after);
}

}  // namespace detail

// --- EmbeddedConnection ---

EmbeddedConnection::EmbeddedConnection(std::unique_ptr<detail::EmbeddedSession> session)
    : session_(std::move(session)) {}
EmbeddedConnection::~EmbeddedConnection() = default;

// Every public call goes through the harness's thread check (HarnessCore::checkThread, reached
// through runPending() where the call applies pending work first).
void EmbeddedConnection::feed(std::string_view bytes) {
  session_->loopRunPending();
  if (bytes.empty() || !session_->acceptsInput()) return;
  session_->appendInput(bytes);
  session_->deliver();
}

void EmbeddedConnection::feedBytewise(std::string_view bytes) {
  session_->loopRunPending();
  for (char c : bytes) {
    if (!session_->acceptsInput()) return;
    session_->appendInput(std::string_view(&c, 1));
    session_->deliver();
  }
}

void EmbeddedConnection::feedSplit(std::string_view bytes, uint32_t seed) {
  session_->loopRunPending();
  std::mt19937 rng(seed);
  while (!bytes.empty() && session_->acceptsInput()) {
    // Mostly short pieces (1-64 bytes), now and then a long one.
    const size_t most = rng() % 8 == 0 ? bytes.size() : std::min<size_t>(bytes.size(), 64);
    const size_t n = 1 + rng() % most;
    session_->appendInput(bytes.substr(0, n));
    bytes.remove_prefix(n);
    session_->deliver();
  }
}

void EmbeddedConnection::peerClose() {
  session_->loopRunPending();
  session_->peerClose();
}

std::string EmbeddedConnection::takeOutput() {
  session_->loopRunPending();
  return session_->takeOutput();
}

std::string_view EmbeddedConnection::output() const { return session_->outputView(); }

void EmbeddedConnection::setWritable(bool writable) {
  session_->loopRunPending();
  session_->setWritable(writable);
}

bool EmbeddedConnection::closed() const { return session_->closed(); }
bool EmbeddedConnection::aborted() const { return session_->aborted(); }
const std::string& EmbeddedConnection::error() const { return session_->error(); }
bool EmbeddedConnection::readingPaused() const { return session_->readingPaused(); }
size_t EmbeddedConnection::pendingInput() const { return session_->pendingInput(); }
size_t EmbeddedConnection::pendingOutputBytes() const { return session_->pendingOutputBytes(); }
uint64_t EmbeddedConnection::id() const { return session_->id(); }

// --- PluginHarness ---

PluginHarness::PluginHarness(std::shared_ptr<PluginFactory> factory)
    : core_(std::make_unique<detail::HarnessCore>(std::move(factory))) {}
PluginHarness::~PluginHarness() = default;

absl::StatusOr<std::unique_ptr<PluginHarness>> PluginHarness::load(
    std::string_view name_or_path, const PluginArgs& args,
    const std::vector<std::string>& plugin_dirs) {
  auto loaded =
      loadPlugin(name_or_path, plugin_dirs.empty() ? defaultPluginDirs() : plugin_dirs, args);
  if (!loaded.ok()) return loaded.status();
  try {
    // The factory keeps the library loaded.
    return std::make_unique<PluginHarness>((*loaded)->factory());
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("plugin '", (*loaded)->name(), "' onLoopStart() threw: ", e.what()));
  }
}

EmbeddedConnection& PluginHarness::connect(std::string peer) {
  return core_->connect(std::move(peer));
}
void PluginHarness::advance(std::chrono::nanoseconds d) { core_->advance(d); }
std::chrono::nanoseconds PluginHarness::now() const {
  return std::chrono::nanoseconds(core_->now());
}
void PluginHarness::stopServer() { core_->stopServer(); }
void PluginHarness::runPending() { core_->runPending(); }
const LoopInfo& PluginHarness::loopInfo() const { return core_->info(); }

MetricsRegistry& PluginHarness::metrics() { return core_->metrics(); }

}  // namespace plexus::testing
