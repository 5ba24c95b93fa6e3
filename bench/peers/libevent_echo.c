/* libevent_echo: an echo server on libevent 2 bufferevents.
 *
 *   libevent_echo --port P --threads N
 *
 * N = 1: one event_base on the main thread. N > 1: the usual libevent idiom for threads, one
 * event_base per thread, each with its own evconnlistener on the port (LEV_OPT_REUSEABLE_PORT,
 * i.e. SO_REUSEPORT); nothing is shared, so no evthread locking is needed. Each read is at most
 * 64 KiB (bufferevent_set_max_single_read), each write too (..._write; libevent's default is
 * 16 KiB for both); the input evbuffer is moved to the output without a copy. Past 4 MiB of unsent output a connection stops reading until its output has drained (as
 * plexus-server's default --high-water-mark). SIGTERM/SIGINT: an evsignal on the main base
 * exits 0. */
#define _GNU_SOURCE
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <pthread.h>
#include <signal.h>

#include "peer_common.h"

enum { kHighWaterMark = 4 * 1024 * 1024 };

static void on_read(struct bufferevent* bev, void* arg) {
  (void)arg;
  struct evbuffer* output = bufferevent_get_output(bev);
  bufferevent_write_buffer(bev, bufferevent_get_input(bev));
  if (evbuffer_get_length(output) > kHighWaterMark) bufferevent_disable(bev, EV_READ);
}

/* Called when the output has drained to its low-water mark (0). */
static void on_write(struct bufferevent* bev, void* arg) {
  (void)arg;
  if (!(bufferevent_get_enabled(bev) & EV_READ)) bufferevent_enable(bev, EV_READ);
}

static void on_event(struct bufferevent* bev, short events, void* arg) {
  (void)arg;
  if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) bufferevent_free(bev);
}

static void on_accept(struct evconnlistener* listener, evutil_socket_t fd, struct sockaddr* addr,
                      int len, void* arg) {
  (void)addr;
  (void)len;
  (void)arg;
  peer_set_nodelay(fd);
  struct event_base* base = evconnlistener_get_base(listener);
  struct bufferevent* bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (bev == NULL) {
    close(fd);
    return;
  }
  bufferevent_set_max_single_read(bev, kPeerReadSize);
  bufferevent_set_max_single_write(bev, kPeerReadSize); /* default 16 KiB: as the reads */
  bufferevent_setcb(bev, on_read, on_write, on_event, NULL);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_signal(evutil_socket_t sig, short events, void* arg) {
  (void)sig;
  (void)events;
  event_base_loopbreak(arg);
}

static void* run_base(void* arg) {
  event_base_dispatch(arg);
  return NULL;
}

int main(int argc, char** argv) {
  int port, threads;
  peer_parse_args(argc, argv, &port, &threads);
  signal(SIGPIPE, SIG_IGN);

  struct event_base** bases = calloc((size_t)threads, sizeof *bases);
  for (int i = 0; i < threads; ++i) bases[i] = event_base_new();
  /* Watched before anything listens: the runner may signal as soon as a connect succeeds. */
  struct event* term = evsignal_new(bases[0], SIGTERM, on_signal, bases[0]);
  struct event* intr = evsignal_new(bases[0], SIGINT, on_signal, bases[0]);
  evsignal_add(term, NULL);
  evsignal_add(intr, NULL);

  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons((uint16_t)port);
  const unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE |
                         LEV_OPT_REUSEABLE_PORT;
  for (int i = 0; i < threads; ++i) {
    if (evconnlistener_new_bind(bases[i], on_accept, NULL, flags, SOMAXCONN,
                                (struct sockaddr*)&addr, sizeof addr) == NULL) {
      perror("listen");
      return 1;
    }
  }

  for (int i = 1; i < threads; ++i) {
    if (peer_start_worker(run_base, bases[i]) != 0) return 1;
  }

  event_base_dispatch(bases[0]);
  return 0; /* the other bases end with the process */
}
