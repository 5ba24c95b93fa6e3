/* epoll_echo: the "bare syscalls" floor. A level-triggered epoll echo server in plain C.
 *
 *   epoll_echo --port P --threads N
 *
 * One loop is single-threaded: accept4 nonblocking, read into a 64 KiB buffer, write it back.
 * What the socket does not take is kept in the connection's buffer; the connection then waits
 * for EPOLLOUT only (it stops reading: backpressure) and reads again once everything is sent.
 * With N > 1, N such loops run on N threads, each with its own epoll and its own SO_REUSEPORT
 * listener; nothing is shared between them. SIGTERM/SIGINT (a signalfd on loop 0) exit 0. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>

#include "peer_common.h"

struct conn {
  int fd;
  struct peer_out out; /* bytes read but not yet written */
};

struct loop {
  int epfd;
  int listen_fd;
  int signal_fd; /* -1 except on loop 0 */
};

/* The listener and the signalfd are told apart from connections by these addresses. */
static char listener_tag, signal_tag;

static void conn_close(struct loop* lp, struct conn* c) {
  epoll_ctl(lp->epfd, EPOLL_CTL_DEL, c->fd, NULL); /* remove before close */
  close(c->fd);
  free(c->out.buf);
  free(c);
}

static int conn_interest(struct loop* lp, struct conn* c, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  return epoll_ctl(lp->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void on_accept(struct loop* lp) {
  for (;;) {
    int fd = accept4(lp->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return; /* EAGAIN, or an error the next readiness will show again */
    peer_set_nodelay(fd);
    struct conn* c = calloc(1, sizeof *c);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (c == NULL || epoll_ctl(lp->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      free(c);
      close(fd);
      continue;
    }
    c->fd = fd;
  }
}

static void on_readable(struct loop* lp, struct conn* c, char* buf) {
  int r = peer_echo_read(c->fd, buf, &c->out);
  if (r < 0 || (r > 0 && conn_interest(lp, c, EPOLLOUT) != 0)) conn_close(lp, c);
}

static void on_writable(struct loop* lp, struct conn* c) {
  int r = peer_out_flush(&c->out, c->fd);
  if (r < 0 || (r > 0 && conn_interest(lp, c, EPOLLIN) != 0)) conn_close(lp, c);
}

static void* run_loop(void* arg) {
  struct loop* lp = arg;
  static __thread char buf[kPeerReadSize];
  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(lp->epfd, events, 256, -1);
    if (n < 0 && errno != EINTR) exit(1);
    for (int i = 0; i < n; ++i) {
      void* p = events[i].data.ptr;
      if (p == &listener_tag) {
        on_accept(lp);
      } else if (p == &signal_tag) {
        return NULL;
      } else {
        struct conn* c = p;
        /* Errors and hang-ups surface through read() or write(). */
        if (events[i].events & EPOLLOUT) {
          on_writable(lp, c);
        } else {
          on_readable(lp, c, buf);
        }
      }
    }
  }
}

static void loop_init(struct loop* lp, int port, int signal_fd) {
  lp->epfd = epoll_create1(EPOLL_CLOEXEC);
  lp->listen_fd = peer_listen(port);
  lp->signal_fd = signal_fd;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener_tag};
  if (lp->epfd < 0 || epoll_ctl(lp->epfd, EPOLL_CTL_ADD, lp->listen_fd, &ev) != 0) exit(1);
  if (signal_fd >= 0) {
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &signal_tag};
    if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, signal_fd, &sev) != 0) exit(1);
  }
}

int main(int argc, char** argv) {
  int port, threads;
  peer_parse_args(argc, argv, &port, &threads);
  signal(SIGPIPE, SIG_IGN);

  /* Blocked in every thread (they inherit the mask); read by loop 0 through its signalfd. */
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  pthread_sigmask(SIG_BLOCK, &mask, NULL);
  int signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) return 1;

  struct loop* loops = calloc((size_t)threads, sizeof *loops);
  for (int i = 0; i < threads; ++i) loop_init(&loops[i], port, i == 0 ? signal_fd : -1);
  for (int i = 1; i < threads; ++i) {
    if (peer_start_worker(run_loop, &loops[i]) != 0) return 1;
  }
  run_loop(&loops[0]);
  return 0; /* the other loops end with the process */
}
