// Uses the installed Plexus package: a loop, a server on a free loopback port, one loop iteration.

#include <cstdio>

#include "plexus/event_loop.h"
#include "plexus/inet_address.h"
#include "plexus/tcp_server.h"
#include "plexus/version.h"

int main() {
  plexus::EventLoop loop;
  plexus::TcpServerOptions options;
  options.listen_address = plexus::InetAddress(0, /*loopback_only=*/true);
  plexus::TcpServer server(&loop, options);
  if (absl::Status st = server.start(); !st.ok()) {
    std::fprintf(stderr, "consumer: %s\n", st.ToString().c_str());
    return 1;
  }
  loop.queueInLoop([&loop] { loop.quit(); });
  if (absl::Status ran = loop.run(); !ran.ok()) {
    std::fprintf(stderr, "consumer: %s\n", ran.ToString().c_str());
    return 1;
  }
  std::printf("consumer: plexus %s listened on %s\n", plexus::kVersion,
              server.listenAddress().toIpPort().c_str());
  return 0;
}
