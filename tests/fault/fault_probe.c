// fault_probe: makes syscalls the way Plexus does (the raw `syscall` instruction, no libc wrapper)
// and prints each result (the count, or -errno), so that fault_shim_test.cc can check the shim.
//
//   fault_probe io N          N rounds of: sendto on a socket, write and read on an eventfd,
//                             write and read on a pipe
//   fault_probe iov           writev and sendmsg of 2+0+5 bytes on a socket
//   fault_probe threads T N   T threads, N reads each on an empty non-blocking eventfd; prints
//                             how many failed with EAGAIN and with any other errno
//   fault_probe waits         epoll_ctl ADD of an eventfd and a socket, epoll_wait (raw), poll,
//                             select and accept4 (libc), none blocking
//   fault_probe arm PATH N    N sendto calls, then creates PATH, then N more

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

// The fifth and sixth arguments are 0 (sendto's address, for one).
static long raw(long nr, long a, long b, long c, long d) {
  long r;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = 0;
  register long r9 __asm__("r9") = 0;
  __asm__ volatile("syscall"
                   : "=a"(r)
                   : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return r;
}

static long libc_result(long r) { return r < 0 ? -errno : r; }

static void show(const char* what, long r) { printf("%s %ld\n", what, r); }

static int sockets[2];

static void io(int rounds) {
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  int p[2];
  if (efd < 0 || pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) exit(1);
  char buf[64];
  for (int i = 0; i < rounds; ++i) {
    show("sendto", raw(SYS_sendto, sockets[0], (long)"12345678", 8, MSG_DONTWAIT));
    raw(SYS_recvfrom, sockets[1], (long)buf, sizeof buf, MSG_DONTWAIT);  // keep the socket empty
    unsigned long long one = 1;
    show("efd-write", raw(SYS_write, efd, (long)&one, sizeof one, 0));
    show("efd-read", raw(SYS_read, efd, (long)buf, 8, 0));
    show("pipe-write", raw(SYS_write, p[1], (long)"x", 1, 0));
    show("pipe-read", raw(SYS_read, p[0], (long)buf, sizeof buf, 0));
  }
}

static void iov(void) {
  char a[] = "ab", c[] = "cdefg";
  struct iovec v[3] = {{a, 2}, {NULL, 0}, {c, 5}};
  show("writev", raw(SYS_writev, sockets[0], (long)v, 3, 0));
  struct msghdr m;
  memset(&m, 0, sizeof m);
  m.msg_iov = v;
  m.msg_iovlen = 3;
  show("sendmsg", raw(SYS_sendmsg, sockets[0], (long)&m, MSG_DONTWAIT, 0));
  char buf[64];
  show("received", raw(SYS_recvfrom, sockets[1], (long)buf, sizeof buf, MSG_DONTWAIT));
}

static int g_efd;
static int g_reads;

static void* reader(void* arg) {
  long* counts = arg;  // [0]: EAGAIN, [1]: any other failure
  char buf[8];
  for (int i = 0; i < g_reads; ++i) {
    long r = raw(SYS_read, g_efd, (long)buf, sizeof buf, 0);
    if (r == -EAGAIN)
      ++counts[0];
    else if (r < 0)
      ++counts[1];
  }
  return NULL;
}

static void threads(int n, int reads) {
  g_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  g_reads = reads;
  pthread_t t[64];
  long counts[64][2];
  memset(counts, 0, sizeof counts);
  for (int i = 0; i < n && i < 64; ++i) pthread_create(&t[i], NULL, reader, counts[i]);
  long eagain = 0, other = 0;
  for (int i = 0; i < n && i < 64; ++i) {
    pthread_join(t[i], NULL);
    eagain += counts[i][0];
    other += counts[i][1];
  }
  show("eagain", eagain);
  show("failed", other);
}

static void waits(void) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN};
  show("ctl-eventfd", raw(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, eventfd(0, EFD_CLOEXEC), (long)&ev));
  show("ctl-socket", raw(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, sockets[1], (long)&ev));
  show("epoll_wait", raw(SYS_epoll_wait, ep, (long)&ev, 1, 0));
  show("poll", libc_result(poll(NULL, 0, 0)));
  struct timeval tv = {0, 0};
  show("select", libc_result(select(0, NULL, NULL, NULL, &tv)));
  int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(l, (struct sockaddr*)&a, sizeof a) != 0 || listen(l, 1) != 0) exit(1);
  show("accept4", libc_result(accept4(l, NULL, NULL, SOCK_CLOEXEC)));
}

static void arm(const char* path, int n) {
  char buf[64];
  for (int i = 0; i < 2 * n; ++i) {
    if (i == n) close(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    show("sendto", raw(SYS_sendto, sockets[0], (long)"1234", 4, MSG_DONTWAIT));
    raw(SYS_recvfrom, sockets[1], (long)buf, sizeof buf, MSG_DONTWAIT);
  }
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOFBF, 1 << 16);  // one write at exit
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) != 0) return 1;
  show("socket-fd", sockets[0]);  // the fd the log names
  const char* mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "io") == 0 && argc == 3) {
    io(atoi(argv[2]));
  } else if (strcmp(mode, "iov") == 0) {
    iov();
  } else if (strcmp(mode, "threads") == 0 && argc == 4) {
    threads(atoi(argv[2]), atoi(argv[3]));
  } else if (strcmp(mode, "waits") == 0) {
    waits();
  } else if (strcmp(mode, "arm") == 0 && argc == 4) {
    arm(argv[2], atoi(argv[3]));
  } else {
    fprintf(stderr, "usage: fault_probe io N | iov | threads T N | waits | arm PATH N\n");
    return 2;
  }
  return 0;
}
