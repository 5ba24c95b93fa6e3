#pragma once
// TcpServer: the main reactor's listening socket plus a pool of sub-reactors. Each accepted
// connection goes to one sub-reactor (round-robin or least-connections), which owns it for life.
// With AcceptMode::kReusePort each sub-reactor listens and accepts for itself instead.
//
// Thread safety: construct, set callbacks, start() and stop() on the base loop's thread (callbacks
// before start()). connectionCount(), listenAddress() and stats: any thread. The callbacks run on the
// connection's loop thread.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "plexus/callbacks.h"
#include "plexus/engine.h"
#include "plexus/event_loop.h"
#include "plexus/inet_address.h"
#include "plexus/tcp_connection.h"

namespace plexus {

class EventLoopThreadPool;
class MetricsRegistry;
namespace detail {
class Acceptor;
}

enum class LoadBalance { kRoundRobin, kLeastConnections };

// Who accepts. kHandoff: one listening socket on the base loop (the main reactor), which accepts
// and hands each connection to a sub-reactor (`balance` picks which). kReusePort: every loop of the
// server opens its own SO_REUSEPORT listening socket on the address and accepts for itself, so no
// connection passes through the main reactor; the kernel spreads connections over the sockets by a
// hash of the peer's address and port (`balance` does not apply). Same limits and counters.
enum class AcceptMode { kHandoff, kReusePort };

struct TcpServerOptions {
  InetAddress listen_address{9000};
  // Sub-reactor threads; 0 serves everything on the base loop.
  int threads = 0;
  EngineOptions engine;
  LoadBalance balance = LoadBalance::kRoundRobin;
  // Connections beyond this many are accepted and closed at once. 0: no limit.
  size_t max_connections = 0;
  ConnectionOptions connection;
  // SO_REUSEPORT on the listening socket: other processes (of the same user) may listen on the
  // address too, and the kernel spreads connections over them (a new binary beside an old one).
  bool reuse_port = false;
  int backlog = SOMAXCONN;
  // kReusePort implies reuse_port. With listen_fd, the main loop accepts on that one socket
  // (kHandoff) whatever this says.
  AcceptMode accept_mode = AcceptMode::kHandoff;
  // An already listening socket to accept on instead of binding listen_address (socket activation:
  // an fd inherited from systemd). -1: bind and listen. start() checks that it is a listening TCP
  // stream socket and makes it non-blocking and close-on-exec; the server owns it from start() on
  // (it closes it when it stops), whether start() succeeds or not. reuse_port and backlog do not
  // apply to it.
  int listen_fd = -1;
  // Where the server's series go (metrics.h: connections by listener and loop, the loops' own
  // figures); null: nowhere. The registry must outlive the server.
  MetricsRegistry* metrics = nullptr;
  // Labels added to the server's series besides listener= and loop=, e.g. {"plugin", "echo"}.
  std::vector<std::pair<std::string, std::string>> metric_labels;
};

class TcpServer {
 public:
  // `base_loop` must outlive the server; the server's engine options also apply to the sub-loops.
  TcpServer(EventLoop* base_loop, TcpServerOptions options);
  // A server whose connections go to the loops of `pool`, which other servers may share (several
  // listeners served by one set of sub-reactors). The caller start()s the pool before start() and
  // stops it once every server sharing it has stopped (stop() done) or been destroyed; the server
  // never stops it. options.threads and options.engine are the pool's business then.
  TcpServer(EventLoop* base_loop, TcpServerOptions options,
            std::shared_ptr<EventLoopThreadPool> pool);
  ~TcpServer();  // closes every connection still open and joins the sub-reactor threads
  TcpServer(const TcpServer&) = delete;
  TcpServer& operator=(const TcpServer&) = delete;

  void setConnectionCallback(ConnectionCallback cb) { callbacks_.connection = std::move(cb); }
  void setMessageCallback(MessageCallback cb) { callbacks_.message = std::move(cb); }
  void setWriteCompleteCallback(WriteCompleteCallback cb) { callbacks_.write_complete = std::move(cb); }
  void setHighWaterMarkCallback(HighWaterMarkCallback cb) { callbacks_.high_water_mark = std::move(cb); }
  // Runs on the sub-loop thread right after it started, before it handles any connection.
  void setThreadInitCallback(std::function<void(EventLoop*)> cb) { thread_init_ = std::move(cb); }
  // Called on each loop that serves this server's connections, on that loop's thread, with its
  // index among loops() and their number. Start: after start() began, before the loop is given
  // any connection. Stop: once the server's connections on that loop are gone, when stop()
  // completes (before `done`) or in the destructor, and before the server's own pool stops. Stop is
  // called only for loops whose start was. Set both before start().
  using LoopCallback = std::function<void(EventLoop* loop, size_t index, size_t count)>;
  void setLoopStartCallback(LoopCallback cb) { loop_start_ = std::move(cb); }
  void setLoopStopCallback(LoopCallback cb) { loop_stop_ = std::move(cb); }
  // Runs on the base loop when a sub-loop gave up on its engine (see EventLoop::run()): the server
  // has stopped giving it connections and is closing the ones it had. Without a callback the
  // server logs it and goes on with the other sub-loops.
  void setLoopFailureCallback(std::function<void(EventLoop*, const absl::Status&)> cb) {
    loop_failure_ = std::move(cb);
  }

  // Binds, listens (or adopts options.listen_fd) and starts the sub-reactors. Errors: address in
  // use, permission, bad engine, a listen_fd that is not a listening TCP socket.
  absl::Status start();

  // Graceful stop: stops accepting (closes every listening socket: with kReusePort, each loop's)
  // and tells (a connection that has received nothing yet: once its first bytes were handled, or
  // after at most 1 s, so that a request on its way is answered) each connection's handler
  // (ConnectionHandler::onServerStop(), whose default flushes the output and closes); after
  // `grace`, closes what is left. `done` runs on the base loop once every connection is gone and
  // the sub-reactor threads have been joined.
  void stop(Duration grace, std::function<void()> done);

  // The bound address (the real port when options asked for port 0). Valid after start().
  const InetAddress& listenAddress() const { return bound_address_; }
  size_t connectionCount() const { return num_connections_.load(std::memory_order_relaxed); }
  uint64_t acceptedTotal() const { return accepted_total_.load(std::memory_order_relaxed); }
  uint64_t refusedTotal() const { return refused_total_.load(std::memory_order_relaxed); }
  const TcpServerOptions& options() const { return options_; }
  // Changes the connection limit and the options of connections accepted from now on (those
  // already open keep theirs). Base loop thread only, like the accepting that reads them.
  void setConnectionLimits(size_t max_connections, const ConnectionOptions& connection) {
    base_loop_->assertInLoopThread();
    options_.max_connections = max_connections;
    options_.connection = connection;
    if (started_) publishSettings();
  }
  // The sub-loops (or {base loop}). Valid after start().
  std::vector<EventLoop*> loops() const;
  std::string engineDescription() const { return base_loop_->engineDescription(); }
  // The label of `loop`, loops()[index], in metrics: "main" for the base loop, else the index.
  // Any thread.
  std::string loopLabel(EventLoop* loop, size_t index) const;
  // The counters of the base loop and every sub-loop, summed. After stop() completed: as they
  // were when the sub-loops stopped. Base loop thread.
  LoopStats stats() const;

 private:
  struct LoopConnections;
  void newConnection(int sockfd, const InetAddress& peer);
  void removeConnection(LoopConnections* lc, const TcpConnectionPtr& conn);
  void releaseConnection(EventLoop* loop);
  void maybeFinishStop();
  void closeAllNow();
  void loopFailed(EventLoop* loop, const absl::Status& why);
  void runLoopStopCallbacks();
  // AcceptMode::kReusePort (tcp_server_reuseport.cc): a listening socket per loop, opened and
  // closed on that loop's thread; connections accepted there stay there.
  absl::Status listenOnEachLoop();
  void closeLoopListeners();
  void acceptOnLoop(LoopConnections* lc, int sockfd, const InetAddress& peer);
  // Counts a new connection against max_connections; false (and nothing counted) at the limit.
  bool reserveConnectionSlot();
  static void notifyStopOnLoop(EventLoop* loop, const std::vector<TcpConnectionPtr>& conns,
                               Duration grace);
  // On the connection's loop: registers it and starts it (or lets it go if the server stops).
  void establishOnLoop(LoopConnections* lc, const TcpConnectionPtr& conn);
  void attachMetrics();
  // Connections shed for lack of fds, by every listener of the server. Any thread.
  uint64_t shedTotal() const;
  void detachMetrics();

  EventLoop* const base_loop_;
  TcpServerOptions options_;
  ConnectionCallbacks callbacks_;
  // The callbacks and options.connection every new connection points at; replaced (not changed)
  // by setConnectionLimits(), so open connections keep theirs. Read by the accepting loops (each
  // sub-loop accepts in AcceptMode::kReusePort), hence atomic; every one published stays in
  // published_ (base loop) until the server goes, so a loaded pointer is always alive.
  std::atomic<const ConnectionSettings*> settings_{nullptr};
  std::vector<ConnectionSettingsPtr> published_;
  void publishSettings();
  ConnectionSettingsPtr currentSettings() const {
    return ConnectionSettingsPtr(settings_.load(std::memory_order_acquire));
  }
  std::function<void(EventLoop*)> thread_init_;
  std::function<void(EventLoop*, const absl::Status&)> loop_failure_;
  std::unique_ptr<detail::Acceptor> acceptor_;
  std::shared_ptr<EventLoopThreadPool> pool_;
  const bool shared_pool_ = false;  // pool_ came from the caller: never stopped here
  LoopCallback loop_start_;
  LoopCallback loop_stop_;
  bool loop_stop_done_ = false;
  // One set of connections per loop, touched only on that loop's thread.
  std::vector<std::unique_ptr<LoopConnections>> per_loop_;
  InetAddress bound_address_;
  bool started_ = false;
  std::atomic<bool> stopping_{false};
  std::function<void()> stop_done_;
  TimerId stop_timer_;
  uint64_t next_id_ = 1;
  std::atomic<uint64_t> next_loop_id_{1};  // kReusePort: ids handed out on every loop
  std::atomic<size_t> num_connections_{0};
  std::atomic<uint64_t> accepted_total_{0};
  std::atomic<uint64_t> refused_total_{0};
  bool refusing_logged_ = false;
  LoopStats final_sub_loop_stats_;  // set once the sub-loops stopped
  bool metrics_attached_ = false;
  uint64_t metrics_collector_ = 0;
  // Expires with the server: work queued on the base loop checks it before touching `this`.
  const std::shared_ptr<const bool> alive_ = std::make_shared<const bool>(true);
};

}  // namespace plexus
