// embed_echo: the Plexus framework embedded in an application, no plugin and no plexus-server.
//
//   embed_echo [PORT] [THREADS]      PORT 0 (the default) picks a free port
//
// It builds a TcpServer on 127.0.0.1 (one main reactor accepting, THREADS sub-reactors serving),
// echoes every byte back, prints "listening on 127.0.0.1:PORT" once ready, and stops gracefully on
// SIGINT or SIGTERM (exit status 0).

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "plexus/buffer.h"
#include "plexus/event_loop.h"
#include "plexus/inet_address.h"
#include "plexus/tcp_connection.h"
#include "plexus/tcp_server.h"

namespace {

bool parseArg(const char* text, uint32_t max, uint32_t* out) {
  return absl::SimpleAtoi(text, out) && *out <= max;
}

}  // namespace

int main(int argc, char* argv[]) {
  uint32_t port = 0;
  uint32_t threads = 2;
  if (argc > 3 || (argc > 1 && !parseArg(argv[1], 65535, &port)) ||
      (argc > 2 && !parseArg(argv[2], 256, &threads))) {
    std::fprintf(stderr, "usage: embed_echo [PORT] [THREADS]\n");
    return 2;
  }

  // Block the stop signals in every thread (the server's threads inherit this mask), so that only
  // the waiter thread below receives them, with sigwait(), outside any signal handler.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // The main reactor: this thread's loop. It owns the listening socket.
  plexus::EventLoop loop;

  plexus::TcpServerOptions options;
  options.listen_address = plexus::InetAddress(static_cast<uint16_t>(port), /*loopback_only=*/true);
  options.threads = static_cast<int>(threads);
  plexus::TcpServer server(&loop, options);

  // The whole protocol. Callbacks run on the connection's own loop thread, so no locking is needed:
  // send the bytes that arrived straight back (Buffer* overload: no copy when nothing is queued).
  server.setMessageCallback([](const plexus::TcpConnectionPtr& conn, plexus::Buffer* input) {
    conn->send(input);
  });

  if (absl::Status st = server.start(); !st.ok()) {
    std::fprintf(stderr, "embed_echo: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  std::printf("listening on %s\n", server.listenAddress().toIpPort().c_str());
  std::fflush(stdout);

  // On a signal, hand the stop to the loop thread (the only thread allowed to call stop()); the loop
  // quits once every connection has flushed and closed, or after the grace period.
  std::thread signal_waiter([&loop, &server, stop_signals] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    loop.runInLoop([&loop, &server] {
      server.stop(std::chrono::seconds(2), [&loop] { loop.quit(); });
    });
  });

  // If the loop's engine fails for good (its waits keep failing), give up at once.
  loop.setFailureCallback([&loop](const absl::Status&) { loop.quit(); });
  absl::Status ran = loop.run();
  if (!ran.ok()) {
    std::fprintf(stderr, "embed_echo: %s\n", std::string(ran.message()).c_str());
    pthread_kill(signal_waiter.native_handle(), SIGTERM);  // ends its sigwait()
  }
  signal_waiter.join();
  return ran.ok() ? 0 : 1;
}
