/* Shared by the C peer echo servers: the command line, the listening socket, and for the peers
 * that do their own reads and writes (epoll_echo, libev) the echo step and its output buffer.
 *
 *   PEER --port P --threads N
 *
 * Every peer reads into a 64 KiB buffer (kPeerReadSize), sets TCP_NODELAY on each accepted
 * socket and listens on all interfaces, as plexus-server --port does. */
#ifndef PLEXUS_BENCH_PEER_COMMON_H
#define PLEXUS_BENCH_PEER_COMMON_H

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { kPeerReadSize = 64 * 1024, kPeerMaxThreads = 1024 };

static inline void peer_usage(const char* prog) {
  fprintf(stderr, "usage: %s --port P [--threads N]\n", prog);
  exit(2);
}

/* Parses --port P --threads N (both required to be positive integers; threads default 1). */
static inline void peer_parse_args(int argc, char** argv, int* port, int* threads) {
  *port = 0;
  *threads = 1;
  for (int i = 1; i < argc; ++i) {
    if (i + 1 >= argc) peer_usage(argv[0]);
    char* end = NULL;
    long value = strtol(argv[i + 1], &end, 10);
    if (*end != '\0') peer_usage(argv[0]);
    if (strcmp(argv[i], "--port") == 0 && value > 0 && value < 65536) {
      *port = (int)value;
    } else if (strcmp(argv[i], "--threads") == 0 && value > 0 && value <= kPeerMaxThreads) {
      *threads = (int)value;
    } else {
      peer_usage(argv[0]);
    }
    ++i;
  }
  if (*port == 0) peer_usage(argv[0]);
}

/* A nonblocking listener on 0.0.0.0:port with SO_REUSEADDR and SO_REUSEPORT, so that each loop
 * thread can own one and the kernel spreads new connections over them. Exits on failure. */
static inline int peer_listen(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons((uint16_t)port);
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      bind(fd, (struct sockaddr*)&addr, sizeof addr) != 0 || listen(fd, SOMAXCONN) != 0) {
    perror("listen");
    exit(1);
  }
  return fd;
}

static inline void peer_set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Starts `fn(arg)` on a thread that has SIGTERM and SIGINT blocked, so that only the main loop
 * sees them (the thread runs until the process exits). Returns 0, or -1 when it cannot be made. */
static inline int peer_start_worker(void* (*fn)(void*), void* arg) {
  sigset_t mask, old;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  pthread_sigmask(SIG_BLOCK, &mask, &old);
  pthread_t tid;
  int rc = pthread_create(&tid, NULL, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc == 0 ? 0 : -1;
}

/* Bytes read but not yet written back: buf[off, len). */
struct peer_out {
  char* buf;
  size_t len, off, cap;
};

/* Keeps data[0, len) for later; returns 0, or -1 when out of memory. */
static inline int peer_out_keep(struct peer_out* o, const char* data, size_t len) {
  if (o->len + len > o->cap) {
    size_t cap = o->cap ? o->cap : kPeerReadSize;
    while (cap < o->len + len) cap *= 2;
    char* grown = realloc(o->buf, cap);
    if (grown == NULL) return -1;
    o->buf = grown;
    o->cap = cap;
  }
  memcpy(o->buf + o->len, data, len);
  o->len += len;
  return 0;
}

/* Writes what is kept. Returns 1 when all of it went out, 0 when the socket is full, -1 on an
 * error (close the connection). */
static inline int peer_out_flush(struct peer_out* o, int fd) {
  while (o->off < o->len) {
    ssize_t w = write(fd, o->buf + o->off, o->len - o->off);
    if (w < 0) {
      if (errno == EAGAIN) return 0;
      if (errno == EINTR) continue;
      return -1;
    }
    o->off += (size_t)w;
  }
  o->off = o->len = 0;
  return 1;
}

/* The echo step: one read into buf (kPeerReadSize bytes), written straight back; what the socket
 * does not take is kept in *o. Returns -1 on EOF or an error (close the connection), 1 when bytes
 * were kept (stop reading, wait for writability, then peer_out_flush), else 0. */
static inline int peer_echo_read(int fd, char* buf, struct peer_out* o) {
  ssize_t n = read(fd, buf, kPeerReadSize);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return -1;
  if (n < 0) return 0;
  ssize_t w = write(fd, buf, (size_t)n);
  if (w < 0) {
    if (errno != EAGAIN && errno != EINTR) return -1;
    w = 0;
  }
  if (w == n) return 0;
  return peer_out_keep(o, buf + w, (size_t)(n - w)) == 0 ? 1 : -1;
}

#endif
