/* bench-pingpong: a stand-in for `plexus-client bench`, for bench/run to use while that command
 * does not exist (bench/run --client standin forces it). Same options, same one-line JSON.
 *
 *   bench-pingpong [bench] -s HOST -p PORT --connections C --size S --duration D --warmup W
 *                  --threads K [--json] [--quiet]
 *
 * Ping-pong: each connection sends one S-byte message, waits for all S bytes to come back,
 * checks them, and sends the next one. K threads, each with its own level-triggered epoll, share
 * the connections. Messages completed during the first W seconds are not counted; the next D
 * seconds are measured. Always prints the JSON object (--json, --quiet are accepted for
 * compatibility). Exit status: 0, or 1 when no connection could be made, 2 for a bad option. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct options {
  const char* host;
  int port, connections, threads;
  size_t size;
  double duration, warmup;
};

struct conn {
  int fd;
  uint64_t seq;      /* message number: picks the pattern offset */
  size_t sent, received;
  uint64_t start_ns; /* when the current message was sent */
};

struct worker {
  const struct options* opt;
  const unsigned char* pattern; /* size + 256 bytes, pattern[i] = i & 0xff */
  struct conn* conns;
  int count;
  uint64_t messages, connect_errors, mismatches, disconnects;
  uint64_t* latencies; /* ns, of the counted messages */
  size_t n_lat, cap_lat;
};

static pthread_barrier_t start_barrier;
static uint64_t measure_begin_ns, measure_end_ns;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const unsigned char* message(const struct worker* w, const struct conn* c) {
  return w->pattern + (c->seq * 131) % 256;
}

static int set_interest(int epfd, struct conn* c, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  return epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void drop(int epfd, struct conn* c) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
}

/* Sends what is left of the current message; returns -1 when the connection broke. */
static int flush(struct worker* w, int epfd, struct conn* c) {
  const unsigned char* msg = message(w, c);
  while (c->sent < w->opt->size) {
    ssize_t n = write(c->fd, msg + c->sent, w->opt->size - c->sent);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return set_interest(epfd, c, EPOLLIN | EPOLLOUT);
      return -1;
    }
    c->sent += (size_t)n;
  }
  return set_interest(epfd, c, EPOLLIN);
}

static int send_next(struct worker* w, int epfd, struct conn* c) {
  c->sent = c->received = 0;
  c->start_ns = now_ns();
  return flush(w, epfd, c);
}

static void record(struct worker* w, uint64_t ns) {
  if (w->n_lat == w->cap_lat) {
    w->cap_lat = w->cap_lat ? w->cap_lat * 2 : 65536;
    w->latencies = realloc(w->latencies, w->cap_lat * sizeof *w->latencies);
    if (w->latencies == NULL) exit(1);
  }
  w->latencies[w->n_lat++] = ns;
}

static int connect_one(const struct sockaddr_in* addr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (const struct sockaddr*)addr, sizeof *addr) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static void* run_worker(void* arg) {
  struct worker* w = arg;
  const struct options* opt = w->opt;
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)opt->port);
  inet_pton(AF_INET, opt->host, &addr.sin_addr);

  int epfd = epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < w->count; ++i) {
    struct conn* c = &w->conns[i];
    c->fd = connect_one(&addr);
    if (c->fd < 0) {
      ++w->connect_errors;
      continue;
    }
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
  }
  pthread_barrier_wait(&start_barrier); /* every connection is up; main sets the clock */
  pthread_barrier_wait(&start_barrier);
  for (int i = 0; i < w->count; ++i) {
    struct conn* c = &w->conns[i];
    if (c->fd >= 0 && send_next(w, epfd, c) != 0) {
      ++w->disconnects;
      drop(epfd, c);
    }
  }

  unsigned char* buf = malloc(opt->size);
  struct epoll_event events[256];
  for (;;) {
    uint64_t now = now_ns();
    if (now >= measure_end_ns) break;
    int timeout_ms = (int)((measure_end_ns - now) / 1000000u) + 1;
    int n = epoll_wait(epfd, events, 256, timeout_ms);
    for (int i = 0; i < n; ++i) {
      struct conn* c = events[i].data.ptr;
      if (c->fd < 0) continue;
      if (events[i].events & EPOLLOUT) {
        if (flush(w, epfd, c) != 0) {
          ++w->disconnects;
          drop(epfd, c);
          continue;
        }
      }
      if (!(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
      /* Never read past the current message: the server must not send more than it got. */
      ssize_t got = read(c->fd, buf, opt->size - c->received);
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (got <= 0) {
        ++w->disconnects;
        drop(epfd, c);
        continue;
      }
      if (c->received + (size_t)got > c->sent ||
          memcmp(buf, message(w, c) + c->received, (size_t)got) != 0) {
        ++w->mismatches;
        drop(epfd, c);
        continue;
      }
      c->received += (size_t)got;
      if (c->received < opt->size) continue;
      uint64_t done = now_ns();
      if (done >= measure_begin_ns && done < measure_end_ns) {
        ++w->messages;
        record(w, done - c->start_ns);
      }
      ++c->seq;
      if (done < measure_end_ns && send_next(w, epfd, c) != 0) {
        ++w->disconnects;
        drop(epfd, c);
      }
    }
  }
  for (int i = 0; i < w->count; ++i) {
    if (w->conns[i].fd >= 0) close(w->conns[i].fd);
  }
  close(epfd);
  free(buf);
  return NULL;
}

static int cmp_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

static double percentile_us(const uint64_t* sorted, size_t n, double p) {
  if (n == 0) return 0;
  size_t i = (size_t)(p * (double)(n - 1) + 0.5);
  return (double)sorted[i] / 1000.0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: bench-pingpong [bench] -s HOST -p PORT --connections C --size BYTES "
          "--duration S --warmup S --threads K [--json] [--quiet]\n");
  exit(2);
}

int main(int argc, char** argv) {
  struct options opt = {"127.0.0.1", 9000, 1, 1, 16, 5.0, 1.0};
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (strcmp(a, "bench") == 0 || strcmp(a, "--json") == 0 || strcmp(a, "--quiet") == 0) continue;
    if (i + 1 >= argc) usage();
    const char* v = argv[++i];
    if (strcmp(a, "-s") == 0 || strcmp(a, "--server") == 0) {
      opt.host = v;
    } else if (strcmp(a, "-p") == 0 || strcmp(a, "--port") == 0) {
      opt.port = atoi(v);
    } else if (strcmp(a, "--connections") == 0) {
      opt.connections = atoi(v);
    } else if (strcmp(a, "--size") == 0) {
      opt.size = (size_t)strtoull(v, NULL, 10);
    } else if (strcmp(a, "--duration") == 0) {
      opt.duration = atof(v);
    } else if (strcmp(a, "--warmup") == 0) {
      opt.warmup = atof(v);
    } else if (strcmp(a, "--threads") == 0) {
      opt.threads = atoi(v);
    } else {
      usage();
    }
  }
  struct in_addr probe;
  if (opt.port <= 0 || opt.port > 65535 || opt.connections <= 0 || opt.threads <= 0 ||
      opt.size == 0 || opt.duration <= 0 || opt.warmup < 0 ||
      inet_pton(AF_INET, opt.host, &probe) != 1) {
    usage();
  }
  if (opt.threads > opt.connections) opt.threads = opt.connections;
  signal(SIGPIPE, SIG_IGN);

  unsigned char* pattern = malloc(opt.size + 256);
  for (size_t i = 0; i < opt.size + 256; ++i) pattern[i] = (unsigned char)i;
  struct conn* conns = calloc((size_t)opt.connections, sizeof *conns);
  struct worker* workers = calloc((size_t)opt.threads, sizeof *workers);
  pthread_t* tids = calloc((size_t)opt.threads, sizeof *tids);
  pthread_barrier_init(&start_barrier, NULL, (unsigned)opt.threads + 1);
  for (int t = 0, first = 0; t < opt.threads; ++t) {
    int count = opt.connections / opt.threads + (t < opt.connections % opt.threads);
    workers[t] = (struct worker){.opt = &opt, .pattern = pattern, .conns = conns + first,
                                 .count = count};
    first += count;
    pthread_create(&tids[t], NULL, run_worker, &workers[t]);
  }
  pthread_barrier_wait(&start_barrier);
  measure_begin_ns = now_ns() + (uint64_t)(opt.warmup * 1e9);
  measure_end_ns = measure_begin_ns + (uint64_t)(opt.duration * 1e9);
  pthread_barrier_wait(&start_barrier);

  uint64_t messages = 0, connect_errors = 0, mismatches = 0, disconnects = 0;
  size_t n_lat = 0;
  for (int t = 0; t < opt.threads; ++t) {
    pthread_join(tids[t], NULL);
    messages += workers[t].messages;
    connect_errors += workers[t].connect_errors;
    mismatches += workers[t].mismatches;
    disconnects += workers[t].disconnects;
    n_lat += workers[t].n_lat;
  }
  uint64_t* lat = malloc((n_lat + 1) * sizeof *lat);
  double sum = 0;
  for (int t = 0, k = 0; t < opt.threads; ++t) {
    for (size_t i = 0; i < workers[t].n_lat; ++i) {
      lat[k++] = workers[t].latencies[i];
      sum += (double)workers[t].latencies[i];
    }
  }
  qsort(lat, n_lat, sizeof *lat, cmp_u64);
  double rate = (double)messages / opt.duration;
  printf("{\"mode\":\"pingpong\",\"connections\":%d,\"size\":%zu,\"threads\":%d,"
         "\"duration_s\":%.3f,\"messages\":%llu,\"msgs_per_sec\":%.1f,\"mib_per_sec\":%.3f,"
         "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,"
         "\"mean\":%.1f},\"connect_errors\":%llu,\"mismatches\":%llu,\"disconnects\":%llu,"
         "\"verify\":true}\n",
         opt.connections, opt.size, opt.threads, opt.duration, (unsigned long long)messages, rate,
         rate * (double)opt.size / (1024.0 * 1024.0), percentile_us(lat, n_lat, 0.50),
         percentile_us(lat, n_lat, 0.90), percentile_us(lat, n_lat, 0.99),
         percentile_us(lat, n_lat, 0.999), n_lat ? (double)lat[n_lat - 1] / 1000.0 : 0.0,
         n_lat ? sum / (double)n_lat / 1000.0 : 0.0, (unsigned long long)connect_errors,
         (unsigned long long)mismatches, (unsigned long long)disconnects);
  return connect_errors == (uint64_t)opt.connections ? 1 : 0;
}
