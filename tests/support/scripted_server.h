#pragma once
// ScriptedServer: a loopback TCP server written with plain blocking sockets, no Plexus code, for
// running clients against protocols other than echo (a server that answers with other lengths,
// speaks first, reads a little and closes, never answers, ...).
//
// Each accepted connection runs `script` on a thread of its own with the connected, blocking fd;
// the server closes the fd when the script returns (with unread input pending, the kernel answers
// with a reset). The destructor stops accepting, shuts down every connection still open, so that a
// script blocked in read() or write() returns, and joins all the threads.

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "plexus/inet_address.h"

namespace plexus::testing {

class ScriptedServer {
 public:
  using Script = std::function<void(int fd)>;

  explicit ScriptedServer(Script script);
  ~ScriptedServer();
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  bool listening() const { return listen_fd_ >= 0; }
  uint16_t port() const { return port_; }
  InetAddress address() const { return InetAddress(port_, /*loopback_only=*/true); }
  // Connections accepted so far.
  int accepted() const;

 private:
  void acceptLoop();
  void serve(int fd);

  const Script script_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread acceptor_;
  mutable absl::Mutex mutex_;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  int accepted_ ABSL_GUARDED_BY(mutex_) = 0;
  std::set<int> open_fds_ ABSL_GUARDED_BY(mutex_);
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(mutex_);
};

// Reads from a blocking fd up to and including the next '\n', keeping what follows in *pending.
// False at EOF or on an error before a whole line came; *line is then what there was.
bool readLine(int fd, std::string* pending, std::string* line);

}  // namespace plexus::testing
