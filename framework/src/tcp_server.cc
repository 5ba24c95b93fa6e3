#include "plexus/tcp_server.h"

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/notification.h"
#include "acceptor.h"
#include "loop_metrics.h"
#include "plexus/metrics.h"
#include "plexus/event_loop_thread_pool.h"
#include "plexus/log.h"
#include "socket_ops.h"

namespace plexus {

namespace {
constexpr const char* kRefusedHelp =
    "Connections refused, by reason: limit (--max-connections), emfile (out of fds: accepted and "
    "closed), engine (the engine could not watch it).";
}  // namespace

// The connections owned by one loop, and their owner. Touched on that loop's thread only.
struct TcpServer::LoopConnections final : ConnectionOwner {
  LoopConnections(TcpServer* s, EventLoop* l) : server(s), loop(l) {}
  void connectionClosed(const TcpConnectionPtr& conn) override {
    server->removeConnection(this, conn);
  }
  TcpServer* const server;
  EventLoop* const loop;
  // The established connections of this loop, by address: 8 bytes a slot. No reference of its own:
  // an established connection holds one to itself until it has closed, and removeConnection()
  // takes it out (in the close, before that reference goes) and queues the last call with one.
  absl::flat_hash_set<TcpConnection*> connections;
  // Connections the engine refused (select past FD_SETSIZE, say): the first is logged, the rest
  // counted and summed up once a connection is taken again.
  uint64_t refused_in_burst = 0;
  // AcceptMode::kReusePort: this loop's own listening socket, and its limit-reached log state.
  std::unique_ptr<detail::Acceptor> acceptor;
  bool refusing_logged = false;
  // Connections its listeners shed for lack of fds (written on this loop; read by scrapes).
  SingleWriterCounter shed;
  // This loop's connection series, when the server has a registry (written on this loop only).
  struct Series {
    MetricCounter* accepted;
    MetricGauge* open;
    MetricCounter* closed[4];  // by CloseReason
    MetricCounter* refused_engine;
  };
  std::unique_ptr<Series> series;

  std::vector<TcpConnectionPtr> snapshot() const {
    std::vector<TcpConnectionPtr> out;
    out.reserve(connections.size());
    for (TcpConnection* conn : connections) out.push_back(conn->shared_from_this());
    return out;
  }
};

TcpServer::TcpServer(EventLoop* base_loop, TcpServerOptions options)
    : base_loop_(base_loop), options_(std::move(options)), bound_address_(options_.listen_address) {}

TcpServer::TcpServer(EventLoop* base_loop, TcpServerOptions options,
                     std::shared_ptr<EventLoopThreadPool> pool)
    : base_loop_(base_loop),
      options_(std::move(options)),
      pool_(std::move(pool)),
      shared_pool_(true),
      bound_address_(options_.listen_address) {
  if (!pool_) LOG_FATAL("TcpServer: null shared pool");
}

TcpServer::~TcpServer() {
  base_loop_->assertInLoopThread();
  if (acceptor_) acceptor_->close();
  closeLoopListeners();
  closeAllNow();
  detachMetrics();
  runLoopStopCallbacks();
  if (pool_ && !shared_pool_) pool_->stop();
}

// On each loop's thread, waiting for each: the loops must still run (their pool is stopped after).
void TcpServer::runLoopStopCallbacks() {
  if (loop_stop_done_ || !started_ || !loop_stop_) return;
  loop_stop_done_ = true;
  const size_t count = per_loop_.size();
  for (size_t i = 0; i < count; ++i) {
    EventLoop* loop = per_loop_[i]->loop;
    if (loop->isInLoopThread()) {
      loop_stop_(loop, i, count);
      continue;
    }
    absl::Notification done;
    loop->runInLoop([&] {
      loop_stop_(loop, i, count);
      done.Notify();
    });
    done.WaitForNotification();
  }
}

absl::Status TcpServer::start() {
  base_loop_->assertInLoopThread();
  if (started_) return absl::OkStatus();
  if (options_.threads < 0) return absl::InvalidArgumentError("threads must be 0 or more");
  publishSettings();
  // An inherited listening socket (listen_fd) is one socket: the main loop accepts on it.
  const bool per_loop_listeners =
      options_.accept_mode == AcceptMode::kReusePort && options_.listen_fd < 0;

  absl::Status s;
  if (!per_loop_listeners) {
    acceptor_ = std::make_unique<detail::Acceptor>(base_loop_, options_.listen_address,
                                                   options_.reuse_port, options_.backlog);
    s = options_.listen_fd >= 0 ? acceptor_->adopt(options_.listen_fd) : acceptor_->listen();
    if (!s.ok()) {
      acceptor_.reset();
      return s;
    }
    bound_address_ = acceptor_->boundAddress();
  }

  if (shared_pool_) {
    if (!pool_->started()) {
      acceptor_.reset();
      return absl::FailedPreconditionError("TcpServer: the shared pool was not started");
    }
  } else {
    pool_ = std::make_shared<EventLoopThreadPool>(base_loop_, options_.threads, options_.engine);
    s = pool_->start();
    if (!s.ok()) {
      acceptor_.reset();
      pool_.reset();
      return s;
    }
  }
  const std::vector<EventLoop*> loops = pool_->loops();
  for (size_t i = 0; i < loops.size(); ++i) {
    EventLoop* loop = loops[i];
    per_loop_.push_back(std::make_unique<LoopConnections>(this, loop));
    // Queued before any connection is handed to the loop (those are queued behind it).
    if (loop_start_) {
      loop->runInLoop([cb = loop_start_, loop, i, n = loops.size()] { cb(loop, i, n); });
    }
    if (loop == base_loop_ || shared_pool_) continue;  // its owner handles its failure
    loop->runInLoop([this, loop, alive = std::weak_ptr<const bool>(alive_), init = thread_init_] {
      // Called on the sub-loop's thread if it gives up on its engine; the server deals with that
      // on the base loop.
      loop->setFailureCallback([this, loop, alive](const absl::Status& why) {
        base_loop_->queueInLoop([this, loop, alive, why] {
          if (!alive.expired()) loopFailed(loop, why);
        });
      });
      if (init) init(loop);
    });
  }
  if (per_loop_listeners) {
    // Queued behind the loop start callbacks: each loop accepts only once its start ran.
    if (s = listenOnEachLoop(); !s.ok()) {
      closeLoopListeners();
      closeAllNow();
      per_loop_.clear();
      if (!shared_pool_) {
        pool_->stop();
        pool_.reset();
      }
      return s;
    }
  } else {
    acceptor_->setNewConnectionCallback(
        [this](int fd, const InetAddress& peer) { newConnection(fd, peer); });
  }
  attachMetrics();
  started_ = true;
  return absl::OkStatus();
}

std::string TcpServer::loopLabel(EventLoop* loop, size_t index) const {
  return loop == base_loop_ ? "main" : std::to_string(index);
}

// Before any connection reaches a loop: the series pointers are in place when the loops read them
// (the hand-over through runInLoop orders it).
void TcpServer::attachMetrics() {
  MetricsRegistry* registry = options_.metrics;
  if (registry == nullptr) return;
  MetricLabels base = {{"listener", bound_address_.toIpPort()}};
  base.insert(base.end(), options_.metric_labels.begin(), options_.metric_labels.end());
  auto with = [&base](MetricLabels more) {
    MetricLabels all = base;
    all.insert(all.end(), more.begin(), more.end());
    return all;
  };
  detail::attachLoopMetrics(registry, base_loop_, "main");
  for (size_t i = 0; i < per_loop_.size(); ++i) {
    LoopConnections* lc = per_loop_[i].get();
    const std::string loop = loopLabel(lc->loop, i);
    if (lc->loop != base_loop_) detail::attachLoopMetrics(registry, lc->loop, loop);
    auto series = std::make_unique<LoopConnections::Series>();
    series->accepted = registry->counter(
        "plexus_connections_accepted_total",
        "Connections the loop took (accepted = open + closed).", with({{"loop", loop}}));
    series->open = registry->gauge("plexus_connections_open", "Connections open on the loop.",
                                   with({{"loop", loop}}));
    for (CloseReason r : {CloseReason::kServer, CloseReason::kPeer, CloseReason::kError,
                          CloseReason::kIdle}) {
      series->closed[static_cast<size_t>(r)] = registry->counter(
          "plexus_connections_closed_total",
          "Connections closed, by reason: peer_eof (the peer ended it), error (reset, read or "
          "write error), idle_timeout, server (the server or its handler closed it).",
          with({{"loop", loop}, {"reason", closeReasonName(r)}}));
    }
    series->refused_engine = registry->counter(
        "plexus_connections_refused_total", kRefusedHelp,
        with({{"loop", loop}, {"reason", "engine"}}));
    lc->series = std::move(series);
  }
  // Refusals on the base loop: the connection limit (an atomic the server keeps anyway) and
  // connections shed for lack of fds.
  metrics_collector_ = registry->addCollector([this, labels = std::move(base)](MetricSink& sink) {
    MetricLabels l = labels;
    l.emplace_back("loop", "main");
    l.emplace_back("reason", "limit");
    sink.add("plexus_connections_refused_total", kRefusedHelp, MetricType::kCounter, l,
             static_cast<double>(refusedTotal()));
    l.back().second = "emfile";
    sink.add("plexus_connections_refused_total", kRefusedHelp, MetricType::kCounter, l,
             static_cast<double>(shedTotal()));
  });
  metrics_attached_ = true;
}

// Before the loops may go: once this returned no scrape reads them or this server.
void TcpServer::detachMetrics() {
  if (!metrics_attached_) return;
  metrics_attached_ = false;
  MetricsRegistry* registry = options_.metrics;
  registry->removeCollector(metrics_collector_);
  detail::detachLoopMetrics(registry, base_loop_);
  for (const auto& lc : per_loop_) {
    if (lc->loop != base_loop_) detail::detachLoopMetrics(registry, lc->loop);
  }
}

uint64_t TcpServer::shedTotal() const {
  uint64_t total = acceptor_ ? acceptor_->shedTotal() : 0;
  for (const auto& lc : per_loop_) total += lc->shed.get();
  return total;
}

std::vector<EventLoop*> TcpServer::loops() const {
  std::vector<EventLoop*> out;
  for (const auto& lc : per_loop_) out.push_back(lc->loop);
  return out;
}

void TcpServer::newConnection(int sockfd, const InetAddress& peer) {
  base_loop_->assertInLoopThread();
  accepted_total_.fetch_add(1, std::memory_order_relaxed);
  if (options_.max_connections > 0 &&
      num_connections_.load(std::memory_order_relaxed) >= options_.max_connections) {
    refused_total_.fetch_add(1, std::memory_order_relaxed);
    if (!refusing_logged_) {
      LOG_WARN("connection limit (%u) reached: refusing new connections", options_.max_connections);
      refusing_logged_ = true;
    }
    detail::closeFd(sockfd);
    return;
  }
  refusing_logged_ = false;

  EventLoop* io_loop = options_.balance == LoadBalance::kLeastConnections
                           ? pool_->getLeastLoadedLoop()
                           : pool_->getNextLoop();
  LoopConnections* lc = nullptr;
  for (auto& l : per_loop_) {
    if (l->loop == io_loop) lc = l.get();
  }
  pool_->addLoad(io_loop, 1);
  num_connections_.fetch_add(1, std::memory_order_relaxed);

  auto conn = std::make_shared<TcpConnection>(io_loop, next_id_++, sockfd, peer,
                                              currentSettings());
  conn->setOwner(lc);
  io_loop->runInLoop([this, lc, conn] { establishOnLoop(lc, conn); });
}

void TcpServer::publishSettings() {
  published_.push_back(ConnectionSettingsPtr::make(callbacks_, options_.connection));
  settings_.store(published_.back().get(), std::memory_order_release);
}

// Even while stopping: a connection accepted before the stop (its listener closed first) is one a
// client is using; it gets the stop notice like the others, which stop() queues on this loop after
// it (so it is in the map by then). Dropping it here would cut a client off during an upgrade.
void TcpServer::establishOnLoop(LoopConnections* lc, const TcpConnectionPtr& conn) {
  lc->loop->assertInLoopThread();
  // In the map before the connection callback runs: that callback may close it at once.
  lc->connections.insert(conn.get());
  // Counted before the connection callback runs, which may close it at once.
  if (lc->series) {
    lc->series->accepted->add();
    lc->series->open->add();
  }
  absl::Status s = conn->connectEstablished();
  if (!s.ok()) {
    if (lc->refused_in_burst++ == 0) {
      LOG_ERROR("connection from %s refused: %s (further refusals are counted, not logged)",
                conn->peerAddress().toIpPort(), s.message());
    }
    lc->connections.erase(conn.get());
    if (lc->series) {  // accepted = open + closed holds still
      lc->series->open->sub();
      lc->series->closed[static_cast<size_t>(CloseReason::kError)]->add();
      lc->series->refused_engine->add();
    }
    releaseConnection(lc->loop);
  } else {
    if (lc->refused_in_burst > 1) {
      LOG_WARN("taking connections again after refusing %u more", lc->refused_in_burst - 1);
    }
    lc->refused_in_burst = 0;
  }
}

void TcpServer::removeConnection(LoopConnections* lc, const TcpConnectionPtr& conn) {
  lc->loop->assertInLoopThread();
  if (lc->connections.erase(conn.get()) == 0) return;
  if (lc->series) {
    lc->series->open->sub();
    lc->series->closed[static_cast<size_t>(conn->closeReason())]->add();
  }
  // Destroyed after the current event: the connection may be in the middle of handling it.
  lc->loop->queueInLoop([conn] { conn->connectDestroyed(); });
  releaseConnection(lc->loop);
}

void TcpServer::releaseConnection(EventLoop* loop) {
  pool_->addLoad(loop, -1);
  const size_t left = num_connections_.fetch_sub(1, std::memory_order_acq_rel) - 1;
  if (left == 0 && stopping_.load(std::memory_order_acquire)) {
    // Runs on the base loop, where the server is destroyed too: the token tells if it still is.
    base_loop_->queueInLoop([this, alive = std::weak_ptr<const bool>(alive_)] {
      if (!alive.expired()) maybeFinishStop();
    });
  }
}

void TcpServer::stop(Duration grace, std::function<void()> done) {
  base_loop_->assertInLoopThread();
  if (stopping_.exchange(true)) return;
  stop_done_ = std::move(done);
  if (acceptor_) acceptor_->close();
  // Before the stop notices are queued: a connection accepted on a loop is in its map by the time
  // that loop's notice runs, and none is accepted after.
  closeLoopListeners();
  const size_t open = connectionCount();
  LOG_INFO("stopping: %u connection%s to flush and close", open, open == 1 ? "" : "s");
  for (auto& l : per_loop_) {
    LoopConnections* lc = l.get();
    lc->loop->runInLoop([lc, grace] { notifyStopOnLoop(lc->loop, lc->snapshot(), grace); });
  }
  stop_timer_ = base_loop_->runAfter(grace, [this, alive = std::weak_ptr<const bool>(alive_)] {
    if (alive.expired()) return;
    stop_timer_ = TimerId{};
    if (const size_t left = connectionCount(); left > 0) {
      LOG_WARN("shutdown grace period over: closing %u connection%s now", left,
               left == 1 ? "" : "s");
    }
    for (auto& l : per_loop_) {
      LoopConnections* lc = l.get();
      lc->loop->runInLoop([lc] {
        for (const TcpConnectionPtr& conn : lc->snapshot()) conn->forceClose();
      });
    }
  });
  maybeFinishStop();
}

void TcpServer::maybeFinishStop() {
  base_loop_->assertInLoopThread();
  if (!stop_done_ || connectionCount() > 0) return;
  base_loop_->cancel(stop_timer_);
  stop_timer_ = TimerId{};
  // Every connection is gone; the sub-loops can go too.
  if (pool_ && pool_->numThreads() > 0 && !shared_pool_) {
    for (EventLoop* loop : pool_->loops()) final_sub_loop_stats_ += loop->stats();
  }
  closeLoopListeners();  // before their loops stop
  detachMetrics();
  runLoopStopCallbacks();
  if (pool_ && !shared_pool_) pool_->stop();
  auto done = std::move(stop_done_);
  stop_done_ = nullptr;
  done();
}

void TcpServer::loopFailed(EventLoop* loop, const absl::Status& why) {
  base_loop_->assertInLoopThread();
  // The pool hands it no more connections (it checks failed()); the ones it has can do no more
  // I/O, so they close, which the failed loop still does (it runs queued functors).
  for (auto& l : per_loop_) {
    LoopConnections* lc = l.get();
    if (lc->loop != loop) continue;
    LOG_ERROR("a sub-reactor stopped serving I/O (%s): closing its connections", why.message());
    loop->runInLoop([lc] {
      // Its own listener too (kReusePort): connections the kernel queued there would wait forever.
      if (lc->acceptor) lc->acceptor.reset();
      for (const TcpConnectionPtr& conn : lc->snapshot()) conn->forceClose();
    });
  }
  if (loop_failure_) loop_failure_(loop, why);
}

LoopStats TcpServer::stats() const {
  LoopStats total = base_loop_->stats();
  if (pool_ && pool_->started() && pool_->numThreads() > 0) {
    for (EventLoop* loop : pool_->loops()) total += loop->stats();
  } else {
    total += final_sub_loop_stats_;
  }
  return total;
}

void TcpServer::closeAllNow() {
  for (auto& l : per_loop_) {
    LoopConnections* lc = l.get();
    auto close_all = [lc] {
      for (const TcpConnectionPtr& conn : lc->snapshot()) conn->forceClose();
    };
    if (lc->loop == base_loop_ || !pool_ || !pool_->started()) {
      // A stopped pool's loops are gone (with their connections): never touch them.
      if (lc->loop == base_loop_) close_all();
      continue;
    }
    absl::Notification closed;
    lc->loop->runInLoop([&] {
      close_all();
      closed.Notify();
    });
    closed.WaitForNotification();
  }
}

// --- The stop notice ----------------------------------------------------------------------------

namespace {
// Connections that had not received a byte when the stop came, watched until they do.
struct AwaitingFirstBytes {
  std::vector<std::weak_ptr<TcpConnection>> conns;
  Clock::time_point deadline;
  TimerId timer;
};
constexpr Duration kFirstBytesWindow = std::chrono::seconds(1);
constexpr Duration kFirstBytesPoll = std::chrono::milliseconds(2);
}  // namespace

// A connection that has received nothing yet was opened a moment ago, and its client's first
// request is on the way (it may sit unread in the socket): told to stop now, the protocol would
// close it unanswered, and during an upgrade that client would see its connection cut. So it is
// told once its first bytes have been handled, or after kFirstBytesWindow (at most `grace`), by a
// short poll on its loop while any is left: there is no per-read hook to wait on, and the poll
// runs only during a stop. The others are told at once. Touches nothing of the server (the
// watch may outlive it; it ends with the loop).
void TcpServer::notifyStopOnLoop(EventLoop* loop, const std::vector<TcpConnectionPtr>& conns,
                                 Duration grace) {
  auto awaiting = std::make_shared<AwaitingFirstBytes>();
  for (const TcpConnectionPtr& conn : conns) {
    if (conn->bytesReceived() == 0 && conn->connected()) {
      awaiting->conns.push_back(conn);
    } else {
      conn->handler()->onServerStop(conn);
    }
  }
  if (awaiting->conns.empty()) return;
  awaiting->deadline = Clock::now() + std::min(grace, kFirstBytesWindow);
  awaiting->timer = loop->runEvery(kFirstBytesPoll, [loop, awaiting] {
    const bool late = Clock::now() >= awaiting->deadline;
    auto& left = awaiting->conns;
    for (size_t i = 0; i < left.size();) {
      TcpConnectionPtr conn = left[i].lock();
      if (conn && conn->connected() && conn->bytesReceived() == 0 && !late) {
        ++i;
        continue;
      }
      left[i] = std::move(left.back());
      left.pop_back();
      if (conn && conn->connected()) conn->handler()->onServerStop(conn);
    }
    if (left.empty()) loop->cancel(awaiting->timer);
  });
}

// --- AcceptMode::kReusePort: one listening socket per loop --------------------------------------

namespace {
// Runs `f` on `loop`'s thread and returns once it ran. `loop` must be running, or be this thread's.
void runOnLoopAndWait(EventLoop* loop, const std::function<void()>& f) {
  if (loop->isInLoopThread()) {
    f();
    return;
  }
  absl::Notification done;
  loop->runInLoop([&] {
    f();
    done.Notify();
  });
  done.WaitForNotification();
}
}  // namespace

absl::Status TcpServer::listenOnEachLoop() {
  base_loop_->assertInLoopThread();
  // Port 0: the first socket picks the port, the others join it.
  InetAddress address = options_.listen_address;
  for (auto& l : per_loop_) {
    LoopConnections* lc = l.get();
    absl::Status s;
    runOnLoopAndWait(lc->loop, [&] {
      auto acceptor = std::make_unique<detail::Acceptor>(lc->loop, address, /*reuse_port=*/true,
                                                         options_.backlog);
      s = acceptor->listen();
      if (!s.ok()) return;
      // Set before this functor returns: the loop handles no event of the socket before that.
      acceptor->setNewConnectionCallback(
          [this, lc](int fd, const InetAddress& peer) { acceptOnLoop(lc, fd, peer); });
      address = acceptor->boundAddress();
      acceptor->alsoCountShedIn(&lc->shed);
      lc->acceptor = std::move(acceptor);
    });
    if (!s.ok()) return s;
  }
  bound_address_ = address;
  return absl::OkStatus();
}

// Done on return, each on its loop's thread. With tcp_migrate_req=1 the kernel moves what was
// queued on a closed socket to another socket of the port (in this process or another).
void TcpServer::closeLoopListeners() {
  if (options_.accept_mode != AcceptMode::kReusePort) return;
  for (auto& l : per_loop_) {
    LoopConnections* lc = l.get();
    // A stopped pool's loops are gone (and their listeners closed before they went).
    if (lc->loop == base_loop_ || (pool_ && pool_->started())) {
      runOnLoopAndWait(lc->loop, [lc] { lc->acceptor.reset(); });
    }
  }
}

bool TcpServer::reserveConnectionSlot() {
  const size_t limit = options_.max_connections;
  size_t n = num_connections_.load(std::memory_order_relaxed);
  do {
    if (limit > 0 && n >= limit) return false;
  } while (!num_connections_.compare_exchange_weak(n, n + 1, std::memory_order_seq_cst,
                                                   std::memory_order_relaxed));
  return true;
}

void TcpServer::acceptOnLoop(LoopConnections* lc, int sockfd, const InetAddress& peer) {
  lc->loop->assertInLoopThread();
  accepted_total_.fetch_add(1, std::memory_order_relaxed);
  if (!reserveConnectionSlot()) {
    refused_total_.fetch_add(1, std::memory_order_relaxed);
    if (!lc->refusing_logged) {
      LOG_WARN("connection limit (%u) reached: refusing new connections", options_.max_connections);
      lc->refusing_logged = true;
    }
    detail::closeFd(sockfd);
    return;
  }
  lc->refusing_logged = false;
  pool_->addLoad(lc->loop, 1);
  auto conn = std::make_shared<TcpConnection>(lc->loop,
                                              next_loop_id_.fetch_add(1, std::memory_order_relaxed),
                                              sockfd, peer,
                                              currentSettings());
  conn->setOwner(lc);
  establishOnLoop(lc, conn);
}

}  // namespace plexus
