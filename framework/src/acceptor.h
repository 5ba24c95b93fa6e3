#pragma once
// Acceptor: the listening socket of a TcpServer, on the main reactor (or, in reuseport accept
// mode, one per sub-reactor). Watches it level-triggered in every engine mode (kEventLevel), accepts
// a bounded batch with accept4 per wake-up and hands each new fd to the server; connections still
// queued wake the loop again. Loop thread only.
//
// Out of fds (EMFILE/ENFILE): a reserve fd on /dev/null is closed, the pending connection accepted
// and closed at once, and the reserve reopened; so the listening socket never stays readable and
// the loop never spins. If even that fails, accepting pauses briefly. Logged once per burst.
// If the engine cannot re-arm the listening fd (kEventFailed), accepting pauses briefly too, and
// resumes once the engine takes the fd again: the server never stops accepting for good.

#include <functional>

#include "absl/status/status.h"
#include "plexus/channel.h"
#include "plexus/event_loop.h"
#include "plexus/inet_address.h"

namespace plexus::detail {

class Acceptor final : private EventHandler {
 public:
  using NewConnectionCallback = std::function<void(int sockfd, const InetAddress& peer)>;

  Acceptor(EventLoop* loop, const InetAddress& listen_address, bool reuse_port, int backlog);
  ~Acceptor();

  void setNewConnectionCallback(NewConnectionCallback cb) { new_connection_ = std::move(cb); }
  // socket, bind, listen and watch. Errors name the address: "cannot listen on 0.0.0.0:80: ...".
  absl::Status listen();
  // Accepts on `fd`, a socket already listening (inherited through socket activation), instead:
  // checks that it is a listening TCP socket, makes it non-blocking and close-on-exec, and
  // watches it. Takes `fd` either way (closed on error, or by close()). Errors name the fd.
  absl::Status adopt(int fd);
  // Stops watching and closes the listening socket.
  void close();
  const InetAddress& boundAddress() const { return bound_; }
  // Connections shed for lack of fds (EMFILE, ENFILE, ...). Any thread.
  uint64_t shedTotal() const { return shed_total_.get(); }
  // Also counts each connection shed in `*counter` (written on this loop's thread; it must outlive
  // the acceptor): per-loop listeners add into their loop's count, which outlives them.
  void alsoCountShedIn(SingleWriterCounter* counter) { shed_also_ = counter; }

 private:
  void handleEvent(uint32_t revents) override;
  void shedOne();
  // A connection accepted (by accept4 or by the engine): to the new-connection callback.
  void admit(int conn, const InetAddress& peer);
  bool acceptFailed(int err);
  // Readable, level-triggered; on an engine that accepts for its listeners (io_uring), kEventAccept.
  uint32_t listenInterest() const;
  // Stops watching for a short while, then watches again (retrying until the engine takes it).
  void pause();

  EventLoop* const loop_;
  InetAddress bound_;
  const bool reuse_port_;
  const int backlog_;
  int fd_ = -1;
  int reserve_fd_ = -1;
  Channel* channel_ = nullptr;
  std::unique_ptr<Channel> channel_owner_;
  NewConnectionCallback new_connection_;
  bool shedding_ = false;
  uint64_t shed_in_burst_ = 0;
  SingleWriterCounter shed_total_;  // written on the loop thread
  SingleWriterCounter* shed_also_ = nullptr;
  TimerId resume_timer_;
};

}  // namespace plexus::detail
