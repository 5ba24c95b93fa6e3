#pragma once
// AdminServer: a small HTTP/1.1 server on a loop thread of its own, for operators and their
// monitoring: GET /metrics (the registry in the Prometheus text format, Content-Type: text/plain;
// version=0.0.4) and GET /healthz (200 "ok\n" while serving, 503 "stopping\n" once
// setServing(false)).
// HEAD works as GET without the body; other methods get 405, other paths 404, a malformed request
// 400 and a request head past max_request_bytes 431, each of those closing the connection.
// Keep-alive is HTTP/1.1's default; "Connection: close" (or HTTP/1.0 without keep-alive) closes
// after the answer.
//
// Scrapes run on the admin thread: they read the serving loops' counters (relaxed loads) and take
// only the registry's lock, which no loop takes per message, so scraping never stalls serving.
//
// Thread safety: start(), stop() and the destructor on one thread (the owner's); setServing(),
// serving() and listenAddress() (after start()) from any thread.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>

#include "absl/status/status.h"
#include "plexus/inet_address.h"

namespace plexus {

class MetricsRegistry;

struct AdminServerOptions {
  InetAddress listen_address{InetAddress(9100, /*loopback_only=*/true)};
  // A request head (request line and headers) larger than this is answered 431 and closed; a
  // body larger than this, 413.
  size_t max_request_bytes = 8192;
  // Admin connections beyond this many are closed at once.
  size_t max_connections = 64;
  // An admin connection idle this long is closed.
  std::chrono::milliseconds idle_timeout{30000};
};

class AdminServer {
 public:
  // `registry` must outlive the server.
  AdminServer(MetricsRegistry* registry, AdminServerOptions options);
  ~AdminServer();  // stop()s
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Starts the admin thread and listens. Errors: the address (in use, permission), the engine.
  absl::Status start();
  // Closes the admin connections and joins the thread. Idempotent.
  void stop();
  // The bound address (the real port when asked for port 0). Valid after start().
  const InetAddress& listenAddress() const { return bound_; }

  // What /healthz answers: 200 while serving (the default), 503 once set false (stopping).
  void setServing(bool serving) { serving_.store(serving, std::memory_order_relaxed); }
  bool serving() const { return serving_.load(std::memory_order_relaxed); }

 private:
  struct Impl;
  MetricsRegistry* const registry_;
  const AdminServerOptions options_;
  InetAddress bound_;
  std::atomic<bool> serving_{true};
  std::unique_ptr<Impl> impl_;
};

}  // namespace plexus
