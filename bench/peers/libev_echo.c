/* libev_echo: an echo server on libev (ev_io watchers).
 *
 *   libev_echo --port P --threads N
 *
 * N = 1: one loop (the default loop) on the main thread. N > 1: the usual libev idiom for
 * threads, one ev_loop per thread, each with its own SO_REUSEPORT listener; nothing is shared.
 * libev has no buffers of its own: each read (64 KiB buffer) is written back at once, and what
 * the socket does not take is kept while the connection watches for writability only.
 * SIGTERM/SIGINT: an ev_signal on the main loop exits 0. */
#define _GNU_SOURCE
#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <signal.h>

#include "peer_common.h"

struct conn {
  ev_io io; /* first, so the watcher pointer is the connection */
  struct peer_out out; /* unsent bytes */
};

struct worker {
  struct ev_loop* loop;
  ev_io accept_io;
  int listen_fd;
};

static __thread char buf[kPeerReadSize];

static void conn_close(struct ev_loop* loop, struct conn* c) {
  ev_io_stop(loop, &c->io);
  close(c->io.fd);
  free(c->out.buf);
  free(c);
}

static void conn_watch(struct ev_loop* loop, struct conn* c, int events) {
  ev_io_stop(loop, &c->io);
  ev_io_set(&c->io, c->io.fd, events);
  ev_io_start(loop, &c->io);
}

static void on_conn(struct ev_loop* loop, ev_io* w, int revents) {
  struct conn* c = (struct conn*)w;
  int r;
  if (revents & EV_READ) {
    r = peer_echo_read(w->fd, buf, &c->out);
    if (r > 0) conn_watch(loop, c, EV_WRITE);
  } else if (revents & EV_WRITE) {
    r = peer_out_flush(&c->out, w->fd);
    if (r > 0) conn_watch(loop, c, EV_READ);
  } else {
    return;
  }
  if (r < 0) conn_close(loop, c);
}

static void on_accept(struct ev_loop* loop, ev_io* w, int revents) {
  (void)revents;
  for (;;) {
    int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    peer_set_nodelay(fd);
    struct conn* c = calloc(1, sizeof *c);
    if (c == NULL) {
      close(fd);
      continue;
    }
    ev_io_init(&c->io, on_conn, fd, EV_READ);
    ev_io_start(loop, &c->io);
  }
}

static void on_signal(struct ev_loop* loop, ev_signal* w, int revents) {
  (void)w;
  (void)revents;
  ev_break(loop, EVBREAK_ALL);
}

static void* run_worker(void* arg) {
  struct worker* wk = arg;
  ev_run(wk->loop, 0);
  return NULL;
}

int main(int argc, char** argv) {
  int port, threads;
  peer_parse_args(argc, argv, &port, &threads);
  signal(SIGPIPE, SIG_IGN);

  struct worker* workers = calloc((size_t)threads, sizeof *workers);
  workers[0].loop = ev_default_loop(EVFLAG_AUTO);
  /* Watched before anything listens: the runner may signal as soon as a connect succeeds. */
  ev_signal term, intr;
  ev_signal_init(&term, on_signal, SIGTERM);
  ev_signal_init(&intr, on_signal, SIGINT);
  ev_signal_start(workers[0].loop, &term);
  ev_signal_start(workers[0].loop, &intr);
  for (int i = 0; i < threads; ++i) {
    if (i > 0) workers[i].loop = ev_loop_new(EVFLAG_AUTO);
    workers[i].listen_fd = peer_listen(port);
    ev_io_init(&workers[i].accept_io, on_accept, workers[i].listen_fd, EV_READ);
    ev_io_start(workers[i].loop, &workers[i].accept_io);
  }

  for (int i = 1; i < threads; ++i) {
    if (peer_start_worker(run_worker, &workers[i]) != 0) return 1;
  }

  ev_run(workers[0].loop, 0);
  return 0; /* the other loops end with the process */
}
