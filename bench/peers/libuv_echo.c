/* libuv_echo: an echo server on libuv streams.
 *
 *   libuv_echo --port P --threads N
 *
 * N = 1: one uv_loop on the main thread. N > 1: the usual libuv idiom for threads, one uv_loop
 * per thread, each with its own SO_REUSEPORT listener (made by hand and given to uv_tcp_open:
 * libuv 1.44 has no UV_TCP_REUSEPORT); nothing is shared. Reads land in the loop's 64 KiB buffer
 * and are written back with uv_try_write; what the socket does not take is copied into a
 * uv_write request and the stream stops reading until that write completes.
 * SIGTERM/SIGINT: a uv_signal on the main loop exits 0. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <uv.h>

#include "peer_common.h"

struct pending_write {
  uv_write_t req;
  char data[]; /* the bytes uv_try_write left */
};

static __thread char buf[kPeerReadSize];

static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* out) {
  (void)handle;
  (void)suggested;
  /* One buffer per loop is enough: on_read is done with it before the next read. */
  *out = uv_buf_init(buf, sizeof buf);
}

static void on_close(uv_handle_t* handle) { free(handle); }

static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* in);

static void on_write(uv_write_t* req, int status) {
  uv_stream_t* stream = req->handle;
  free(req);
  if (status < 0) {
    if (!uv_is_closing((uv_handle_t*)stream)) uv_close((uv_handle_t*)stream, on_close);
    return;
  }
  uv_read_start(stream, on_alloc, on_read);
}

static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* in) {
  if (nread < 0) {
    uv_close((uv_handle_t*)stream, on_close);
    return;
  }
  if (nread == 0) return;
  uv_buf_t data = uv_buf_init(in->base, (unsigned)nread);
  int sent = uv_try_write(stream, &data, 1);
  if (sent == UV_EAGAIN) sent = 0;
  if (sent < 0) {
    uv_close((uv_handle_t*)stream, on_close);
    return;
  }
  if (sent == nread) return;
  size_t rest = (size_t)(nread - sent);
  struct pending_write* w = malloc(sizeof *w + rest);
  if (w == NULL) {
    uv_close((uv_handle_t*)stream, on_close);
    return;
  }
  memcpy(w->data, in->base + sent, rest);
  uv_buf_t tail = uv_buf_init(w->data, (unsigned)rest);
  uv_read_stop(stream); /* backpressure: read again once the tail is written */
  if (uv_write(&w->req, stream, &tail, 1, on_write) != 0) {
    free(w);
    uv_close((uv_handle_t*)stream, on_close);
  }
}

static void on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;
  uv_tcp_t* client = malloc(sizeof *client);
  if (client == NULL) return;
  uv_tcp_init(server->loop, client);
  if (uv_accept(server, (uv_stream_t*)client) != 0) {
    uv_close((uv_handle_t*)client, on_close);
    return;
  }
  uv_tcp_nodelay(client, 1);
  uv_read_start((uv_stream_t*)client, on_alloc, on_read);
}

static void on_signal(uv_signal_t* handle, int signum) {
  (void)signum;
  uv_stop(handle->loop);
}

static void* run_loop(void* arg) {
  uv_run(arg, UV_RUN_DEFAULT);
  return NULL;
}

int main(int argc, char** argv) {
  int port, threads;
  peer_parse_args(argc, argv, &port, &threads);
  signal(SIGPIPE, SIG_IGN);

  uv_loop_t* loops = calloc((size_t)threads, sizeof *loops);
  uv_tcp_t* servers = calloc((size_t)threads, sizeof *servers);
  for (int i = 0; i < threads; ++i) uv_loop_init(&loops[i]);
  /* Watched before anything listens: the runner may signal as soon as a connect succeeds. */
  uv_signal_t term, intr;
  uv_signal_init(&loops[0], &term);
  uv_signal_init(&loops[0], &intr);
  uv_signal_start(&term, on_signal, SIGTERM);
  uv_signal_start(&intr, on_signal, SIGINT);
  for (int i = 0; i < threads; ++i) {
    uv_tcp_init(&loops[i], &servers[i]);
    if (uv_tcp_open(&servers[i], peer_listen(port)) != 0 ||
        uv_listen((uv_stream_t*)&servers[i], SOMAXCONN, on_connection) != 0) {
      fprintf(stderr, "listen failed\n");
      return 1;
    }
  }

  for (int i = 1; i < threads; ++i) {
    if (peer_start_worker(run_loop, &loops[i]) != 0) return 1;
  }

  uv_run(&loops[0], UV_RUN_DEFAULT);
  return 0; /* the other loops end with the process */
}
