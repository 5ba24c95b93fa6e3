// plexus_fault_shim.so: makes chosen syscalls of a process fail, or write short, for the tests.
//
//   LD_PRELOAD=build/tests/fault/plexus_fault_shim.so
//   PLEXUS_FAULTS='epoll_ctl:ENOMEM:40+61;%write@socket:short=1-7:10..200'
//   PLEXUS_FAULT_LOG=/tmp/faults.log
//   build/bin/plexus-server ...  (the three variables in its environment)
//
// Why seccomp and not symbol interposition: outside sanitizer builds Plexus makes read, readv,
// sendto, epoll_wait and epoll_ctl with the `syscall` instruction (framework/src/fast_syscalls.h),
// which no preloaded libc symbol sees. So the constructor installs a seccomp-BPF filter that traps
// (SIGSYS) the configured syscalls wherever they are made, except from this library's own gateway,
// and the SIGSYS handler decides: fail the call (RAX = -errno), or make it through the gateway,
// with a shortened length for a short write, and put the kernel's answer in RAX.
//
// PLEXUS_FAULTS: rules separated by ';', each  WHAT[@KIND]:ACTION[:WHEN]
//   WHAT    a syscall: read readv recvfrom recvmsg write writev sendto sendmsg accept accept4
//           epoll_ctl epoll_wait epoll_pwait epoll_pwait2 poll ppoll select pselect6;
//           or a class: %read (read readv recvfrom recvmsg), %write (write writev sendto
//           sendmsg), %accept (accept accept4), %wait (epoll_wait epoll_pwait epoll_pwait2 poll
//           ppoll select pselect6)
//   @KIND   only calls whose first argument is an fd of this kind count (for epoll_ctl: the fd
//           it is about): socket, eventfd, pipe, file, epoll, signalfd, timerfd (from readlink
//           /proc/self/fd/N)
//   ACTION  an errno name (ENOMEM, EINTR, ...) or number: the call fails with it, not made;
//           short=N or short=A-B (writes only): the write is made with at most N bytes (A..B,
//           cycling with the call number)
//   WHEN    which of the counted calls (1 = the first): N (that one), N+ (N and every later),
//           N+S (N, N+S, N+2S, ...), N..M (N to M); omitted: every call
// Counting starts at the first call (or, with PLEXUS_FAULT_ARM=PATH, once PATH exists, so that a
// test can place the faults in the middle of its traffic). Each rule counts the calls it matches;
// the first rule whose WHEN hits acts, and later rules do not count that call.
//
// PLEXUS_FAULT_LOG=PATH (appended to) or PLEXUS_FAULT_LOG_FD=N (default: stderr): one line per
// fault that fired, e.g.
//   plexus-fault rule=1 syscall=epoll_ctl call=40 fd=5 kind=epoll op=MOD target=12
//     target_kind=socket errno=ENOMEM                                     (on one line)
//   plexus-fault rule=2 syscall=sendto call=12 fd=9 kind=socket short=3/4096 ret=3
// A bad PLEXUS_FAULTS prints one line on stderr and exits with status 97.
//
// Syscalls a sanitizer runtime (libasan.so, ...) makes from its own code are never trapped.
// Under AddressSanitizer the program needs ASAN_OPTIONS=verify_asan_link_order=0 (this library
// is loaded before the runtime).
//
// Limits: x86_64 only. The process must not exec (the filter outlives this library, so the new
// program's trapped syscalls would have no handler), and no thread may block SIGSYS while making a
// trapped syscall (the kernel then kills the process). A sanitizer linked statically into the
// program (clang's default) is not recognised as one.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "the fault shim is x86_64 only"
#endif

// ---- The gateway: the only `syscall` instruction the filter lets through untouched. ----------
// long fault_gateway(long nr, long a0, long a1, long a2, long a3, long a4, long a5): the kernel's
// raw answer (-errno on failure), errno untouched, so the handler needs nothing from libc.
__attribute__((visibility("hidden"))) long fault_gateway(long nr, long a0, long a1, long a2,
                                                         long a3, long a4, long a5);
__attribute__((visibility("hidden"))) extern const char fault_gateway_end[];
__asm__(
    ".text\n"
    ".globl fault_gateway\n"
    ".hidden fault_gateway\n"
    ".type fault_gateway, @function\n"
    ".p2align 6\n"  // 64-byte aligned and 32 bytes long: never straddles a 4 GiB boundary
    "fault_gateway:\n"
    "  movq %rdi, %rax\n"  // System V arguments to syscall registers
    "  movq %rsi, %rdi\n"
    "  movq %rdx, %rsi\n"
    "  movq %rcx, %rdx\n"
    "  movq %r8, %r10\n"
    "  movq %r9, %r8\n"
    "  movq 8(%rsp), %r9\n"
    "  syscall\n"
    "  ret\n"
    ".globl fault_gateway_end\n"
    ".hidden fault_gateway_end\n"
    "fault_gateway_end:\n"
    ".size fault_gateway, fault_gateway_end - fault_gateway\n");

// ---- What can be trapped. ---------------------------------------------------------------------
// ARG_FD: the first argument is an fd. KIND_OF_ARG2: @KIND looks at the third argument instead
// (epoll_ctl's target; its first is always an epoll fd).
enum { ARG_FD = 1, WRITE_BUF = 2, WRITE_IOV = 4, WRITE_MSG = 8, KIND_OF_ARG2 = 16 };

struct syscall_def {
  const char* name;
  int nr;
  unsigned flags;
};

static const struct syscall_def k_syscalls[] = {
    {"read", SYS_read, ARG_FD},
    {"readv", SYS_readv, ARG_FD},
    {"recvfrom", SYS_recvfrom, ARG_FD},
    {"recvmsg", SYS_recvmsg, ARG_FD},
    {"write", SYS_write, ARG_FD | WRITE_BUF},
    {"writev", SYS_writev, ARG_FD | WRITE_IOV},
    {"sendto", SYS_sendto, ARG_FD | WRITE_BUF},
    {"sendmsg", SYS_sendmsg, ARG_FD | WRITE_MSG},
    {"accept", SYS_accept, ARG_FD},
    {"accept4", SYS_accept4, ARG_FD},
    {"epoll_ctl", SYS_epoll_ctl, ARG_FD | KIND_OF_ARG2},
    {"epoll_wait", SYS_epoll_wait, ARG_FD},
    {"epoll_pwait", SYS_epoll_pwait, ARG_FD},
    {"epoll_pwait2", 441, ARG_FD},  // SYS_epoll_pwait2, missing from older headers
    {"poll", SYS_poll, 0},
    {"ppoll", SYS_ppoll, 0},
    {"select", SYS_select, 0},
    {"pselect6", SYS_pselect6, 0},
};
enum { NUM_SYSCALLS = sizeof k_syscalls / sizeof k_syscalls[0] };
#define BIT(i) (1u << (i))

struct syscall_class {
  const char* name;
  uint32_t members;  // bits of k_syscalls
};

static const struct syscall_class k_classes[] = {
    {"%read", BIT(0) | BIT(1) | BIT(2) | BIT(3)},
    {"%write", BIT(4) | BIT(5) | BIT(6) | BIT(7)},
    {"%accept", BIT(8) | BIT(9)},
    {"%wait", BIT(11) | BIT(12) | BIT(13) | BIT(14) | BIT(15) | BIT(16) | BIT(17)},
};

enum fd_kind {
  KIND_ANY,
  KIND_SOCKET,
  KIND_EVENTFD,
  KIND_PIPE,
  KIND_FILE,
  KIND_EPOLL,
  KIND_SIGNALFD,
  KIND_TIMERFD,
  KIND_OTHER
};
static const char* const k_kind_names[] = {"any",   "socket",   "eventfd", "pipe", "file",
                                           "epoll", "signalfd", "timerfd", "other"};

#define E(x) {#x, x}
static const struct {
  const char* name;
  int value;
} k_errnos[] = {E(EPERM),        E(ENOENT),     E(EINTR),    E(EIO),         E(EBADF),
                E(EAGAIN),       E(ENOMEM),     E(EACCES),   E(EFAULT),      E(EINVAL),
                E(ENFILE),       E(EMFILE),     E(ENOSPC),   E(EPIPE),       E(ENOSYS),
                E(ENOTSOCK),     E(EOPNOTSUPP), E(ENETDOWN), E(ENETUNREACH), E(ECONNABORTED),
                E(ECONNRESET),   E(ENOBUFS),    E(ENOTCONN), E(ETIMEDOUT),   E(ECONNREFUSED),
                E(EHOSTUNREACH), E(EPROTO),     E(EEXIST)};
#undef E

// ---- The configuration, written once by the constructor, read by the handler. ----------------
enum { MAX_RULES = 16, LOG_LIMIT = 10000 };

struct rule {
  uint32_t syscalls;  // bits of k_syscalls
  enum fd_kind kind;
  int err;                          // > 0: fail with this errno
  unsigned short_min, short_max;    // > 0: make the write with at most this many bytes
  unsigned long first, step, last;  // WHEN
  atomic_ulong calls;               // calls counted so far (after arming)
};

static struct rule g_rules[MAX_RULES];
static int g_num_rules;
static uint32_t g_trapped;  // union of the rules' syscalls
static int g_log_fd = 2;
static atomic_ulong g_log_lines;
static char g_arm_path[PATH_MAX];
static atomic_int g_armed;

// ---- Async-signal-safe helpers (no libc: only the gateway and plain code). -------------------
struct line {
  char buf[256];
  size_t len;
};

static void put(struct line* l, const char* s) {
  while (*s && l->len < sizeof l->buf - 1) l->buf[l->len++] = *s++;
}

static void put_long(struct line* l, long v) {
  char digits[24];
  int n = 0;
  unsigned long u = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
  do {
    digits[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) put(l, "-");
  while (n > 0 && l->len < sizeof l->buf - 1) l->buf[l->len++] = digits[--n];
}

static const char* errno_name(int err) {
  for (size_t i = 0; i < sizeof k_errnos / sizeof k_errnos[0]; ++i) {
    if (k_errnos[i].value == err) return k_errnos[i].name;
  }
  return NULL;
}

static int starts_with(const char* s, const char* prefix) {
  while (*prefix) {
    if (*s++ != *prefix++) return 0;
  }
  return 1;
}

// The kind of fd `fd`: readlink of /proc/self/fd/N ("socket:[123]", "anon_inode:[eventfd]", ...).
// readlink is never trapped, and goes through the gateway anyway.
static enum fd_kind fd_kind_of(long fd) {
  struct line path;  // no initializer: a large one may become a memset call
  path.len = 0;
  put(&path, "/proc/self/fd/");
  put_long(&path, fd);
  path.buf[path.len] = '\0';
  char target[64];
  long n = fault_gateway(SYS_readlink, (long)path.buf, (long)target, sizeof target - 1, 0, 0, 0);
  if (n <= 0) return KIND_OTHER;
  target[n] = '\0';
  if (starts_with(target, "socket:")) return KIND_SOCKET;
  if (starts_with(target, "pipe:")) return KIND_PIPE;
  if (starts_with(target, "anon_inode:[eventfd]")) return KIND_EVENTFD;
  if (starts_with(target, "anon_inode:[eventpoll]")) return KIND_EPOLL;
  if (starts_with(target, "anon_inode:[signalfd]")) return KIND_SIGNALFD;
  if (starts_with(target, "anon_inode:[timerfd]")) return KIND_TIMERFD;
  if (target[0] == '/') return KIND_FILE;
  return KIND_OTHER;
}

static int when_hits(const struct rule* r, unsigned long call) {
  return call >= r->first && call <= r->last && (call - r->first) % r->step == 0;
}

// One line per fault, one write(2): lines from several threads never interleave (O_APPEND).
static void log_fault(int rule, int sc, unsigned long call, const long a[6], int err, long cut,
                      long len, long ret) {
  const unsigned long n = atomic_fetch_add_explicit(&g_log_lines, 1, memory_order_relaxed);
  if (n > LOG_LIMIT) return;
  struct line l;
  l.len = 0;
  if (n == LOG_LIMIT) {
    put(&l, "plexus-fault log limit reached: later faults are not logged\n");
  } else {
    put(&l, "plexus-fault rule=");
    put_long(&l, rule);
    put(&l, " syscall=");
    put(&l, k_syscalls[sc].name);
    put(&l, " call=");
    put_long(&l, (long)call);
    if (k_syscalls[sc].flags & ARG_FD) {
      put(&l, " fd=");
      put_long(&l, a[0]);
      put(&l, " kind=");
      put(&l, k_kind_names[fd_kind_of(a[0])]);
    }
    if (k_syscalls[sc].nr == SYS_epoll_ctl) {  // which fd it was about, and how
      put(&l, a[1] == EPOLL_CTL_ADD ? " op=ADD" : a[1] == EPOLL_CTL_MOD ? " op=MOD" : " op=DEL");
      put(&l, " target=");
      put_long(&l, a[2]);
      put(&l, " target_kind=");
      put(&l, k_kind_names[fd_kind_of(a[2])]);
    }
    if (err > 0) {
      put(&l, " errno=");
      const char* name = errno_name(err);
      if (name) {
        put(&l, name);
      } else {
        put_long(&l, err);
      }
    } else {
      put(&l, " short=");
      put_long(&l, cut);
      put(&l, "/");
      put_long(&l, len);
      put(&l, " ret=");
      put_long(&l, ret);
    }
    put(&l, "\n");
  }
  fault_gateway(SYS_write, g_log_fd, (long)l.buf, (long)l.len, 0, 0, 0);
}

// Makes write-like syscall `sc` with at most `cut` bytes. The caller's iovec and msghdr are
// const to us: a one-element copy carries the shortened first non-empty piece. *len gets the
// length the caller asked for.
static long short_write(int sc, long a[6], unsigned long cut, long* len) {
  const unsigned flags = k_syscalls[sc].flags;
  if (flags & WRITE_BUF) {
    *len = a[2];
    const long n = (unsigned long)a[2] < cut ? a[2] : (long)cut;
    return fault_gateway(k_syscalls[sc].nr, a[0], a[1], n, a[3], a[4], a[5]);
  }
  const struct iovec* iov;
  long count;
  struct msghdr msg;
  if (flags & WRITE_IOV) {
    iov = (const struct iovec*)a[1];
    count = a[2];
  } else {
    const struct msghdr* m = (const struct msghdr*)a[1];
    msg.msg_name = m->msg_name;
    msg.msg_namelen = m->msg_namelen;
    msg.msg_control = m->msg_control;
    msg.msg_controllen = m->msg_controllen;
    msg.msg_flags = m->msg_flags;
    iov = m->msg_iov;
    count = (long)m->msg_iovlen;
  }
  struct iovec one = {NULL, 0};
  *len = 0;
  for (long i = 0; i < count; ++i) {
    *len += (long)iov[i].iov_len;
    if (one.iov_len == 0 && iov[i].iov_len > 0) {
      one.iov_base = iov[i].iov_base;
      one.iov_len = iov[i].iov_len < cut ? iov[i].iov_len : cut;
    }
  }
  if (flags & WRITE_IOV) return fault_gateway(SYS_writev, a[0], (long)&one, 1, 0, 0, 0);
  msg.msg_iov = &one;
  msg.msg_iovlen = 1;
  return fault_gateway(SYS_sendmsg, a[0], (long)&msg, a[2], 0, 0, 0);
}

// The decision for one trapped call: the value the caller's `syscall` instruction returns.
static long handle(int sc, long a[6]) {
  const int nr = k_syscalls[sc].nr;
  if (!atomic_load_explicit(&g_armed, memory_order_acquire)) {
    // Not armed yet: look for the arm file (an access(2) per trapped call until it appears).
    if (fault_gateway(SYS_access, (long)g_arm_path, F_OK, 0, 0, 0, 0) != 0) {
      return fault_gateway(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    }
    atomic_store_explicit(&g_armed, 1, memory_order_release);
  }
  enum fd_kind kind = KIND_ANY;  // looked up once, for the first rule that needs it
  for (int i = 0; i < g_num_rules; ++i) {
    struct rule* r = &g_rules[i];
    if (!(r->syscalls & BIT(sc))) continue;
    if (r->kind != KIND_ANY) {
      if (kind == KIND_ANY) kind = fd_kind_of(k_syscalls[sc].flags & KIND_OF_ARG2 ? a[2] : a[0]);
      if (kind != r->kind) continue;
    }
    const unsigned long call = atomic_fetch_add_explicit(&r->calls, 1, memory_order_relaxed) + 1;
    if (!when_hits(r, call)) continue;
    if (r->err > 0) {
      log_fault(i + 1, sc, call, a, r->err, 0, 0, 0);
      return -r->err;
    }
    const unsigned long cut = r->short_min + (call - r->first) % (r->short_max - r->short_min + 1);
    long len = 0;
    const long ret = short_write(sc, a, cut, &len);
    log_fault(i + 1, sc, call, a, 0, (long)cut, len, ret);
    return ret;
  }
  return fault_gateway(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

static void on_sigsys(int sig, siginfo_t* info, void* context) {
  (void)sig;
  // A SIGSYS someone sent with kill(2) carries no syscall: nothing to do.
  if (info->si_code != 1 /* SYS_SECCOMP, in <asm/siginfo.h> only */) return;
  greg_t* regs = ((ucontext_t*)context)->uc_mcontext.gregs;
  int sc = -1;
  for (int i = 0; i < NUM_SYSCALLS; ++i) {
    if (k_syscalls[i].nr == info->si_syscall) sc = i;
  }
  // Not one of ours (cannot happen: the filter traps only ours): the call is lost, say ENOSYS.
  if (sc < 0) {
    regs[REG_RAX] = -ENOSYS;
    return;
  }
  // The syscall's arguments, in the kernel's registers; RAX on return is what the program sees.
  long a[6] = {regs[REG_RDI], regs[REG_RSI], regs[REG_RDX],
               regs[REG_R10], regs[REG_R8],  regs[REG_R9]};
  regs[REG_RAX] = handle(sc, a);
}

// ---- Configuration (constructor only: libc is fine here). -------------------------------------
static const char* g_config_text;

__attribute__((noreturn)) static void bad_config(const char* rule, const char* why) {
  fprintf(stderr, "plexus-fault: bad PLEXUS_FAULTS '%s': rule '%s': %s\n", g_config_text, rule,
          why);
  _exit(97);
}

static int parse_ulong(const char* s, char** end, unsigned long* out) {
  if (*s < '0' || *s > '9') return 0;
  errno = 0;
  *out = strtoul(s, end, 10);
  return errno == 0;
}

static void parse_when(const char* rule, const char* s, struct rule* r) {
  char* end;
  r->first = 1;
  r->step = 1;
  r->last = ULONG_MAX;
  if (s == NULL) return;
  if (!parse_ulong(s, &end, &r->first) || r->first == 0)
    bad_config(rule, "WHEN must start with N >= 1");
  if (*end == '\0') {
    r->last = r->first;
  } else if (strcmp(end, "+") == 0) {
    // N and every later call
  } else if (*end == '+') {
    if (!parse_ulong(end + 1, &end, &r->step) || *end || r->step == 0)
      bad_config(rule, "bad N+STEP");
  } else if (end[0] == '.' && end[1] == '.') {
    if (!parse_ulong(end + 2, &end, &r->last) || *end || r->last < r->first)
      bad_config(rule, "bad N..M");
  } else {
    bad_config(rule, "WHEN is N, N+, N+STEP or N..M");
  }
}

static void parse_action(const char* rule, const char* s, struct rule* r) {
  char* end;
  unsigned long a, b;
  if (strncmp(s, "short=", 6) == 0) {
    if (!parse_ulong(s + 6, &end, &a) || a == 0) bad_config(rule, "short=N needs N >= 1");
    b = a;
    if (*end == '-' && (!parse_ulong(end + 1, &end, &b) || b < a))
      bad_config(rule, "bad short=A-B");
    if (*end) bad_config(rule, "bad short=");
    for (int i = 0; i < NUM_SYSCALLS; ++i) {
      if ((r->syscalls & BIT(i)) && !(k_syscalls[i].flags & (WRITE_BUF | WRITE_IOV | WRITE_MSG))) {
        bad_config(rule, "short= applies to writes only");
      }
    }
    r->short_min = (unsigned)a;
    r->short_max = (unsigned)b;
    return;
  }
  for (size_t i = 0; i < sizeof k_errnos / sizeof k_errnos[0]; ++i) {
    if (strcmp(s, k_errnos[i].name) == 0) {
      r->err = k_errnos[i].value;
      return;
    }
  }
  if (parse_ulong(s, &end, &a) && *end == '\0' && a > 0 && a < 4096) {
    r->err = (int)a;
    return;
  }
  bad_config(rule, "ACTION is an errno name or number, short=N or short=A-B");
}

static void parse_rule(char* text, struct rule* r) {
  char rule[256];
  snprintf(rule, sizeof rule, "%s", text);
  char* action = strchr(text, ':');
  if (action == NULL) bad_config(rule, "expected WHAT[@KIND]:ACTION[:WHEN]");
  *action++ = '\0';
  char* when = strchr(action, ':');
  if (when) *when++ = '\0';
  char* kind = strchr(text, '@');
  if (kind) *kind++ = '\0';
  for (int i = 0; i < NUM_SYSCALLS; ++i) {
    if (strcmp(text, k_syscalls[i].name) == 0) r->syscalls = BIT(i);
  }
  for (size_t i = 0; i < sizeof k_classes / sizeof k_classes[0]; ++i) {
    if (strcmp(text, k_classes[i].name) == 0) r->syscalls = k_classes[i].members;
  }
  if (r->syscalls == 0) bad_config(rule, "unknown syscall or class");
  r->kind = KIND_ANY;
  if (kind) {
    int found = 0;
    for (int k = 1; k < KIND_OTHER; ++k) {
      if (strcmp(kind, k_kind_names[k]) == 0) {
        r->kind = (enum fd_kind)k;
        found = 1;
      }
    }
    if (!found) bad_config(rule, "unknown fd kind");
    for (int i = 0; i < NUM_SYSCALLS; ++i) {
      if ((r->syscalls & BIT(i)) && !(k_syscalls[i].flags & ARG_FD)) {
        bad_config(rule, "@KIND needs syscalls whose first argument is an fd");
      }
    }
  }
  parse_action(rule, action, r);
  parse_when(rule, when, r);
}

static void parse_config(const char* text) {
  char copy[4096];
  if (snprintf(copy, sizeof copy, "%s", text) >= (int)sizeof copy) bad_config(text, "too long");
  char* save = NULL;
  for (char* tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
    if (*tok == '\0') continue;
    if (g_num_rules == MAX_RULES) bad_config(tok, "too many rules");
    parse_rule(tok, &g_rules[g_num_rules]);
    g_trapped |= g_rules[g_num_rules].syscalls;
    ++g_num_rules;
  }
}

// Code whose syscalls pass the filter untouched: the gateway, and a sanitizer runtime's own code.
// A sanitizer makes its internal syscalls with its own `syscall` instructions (the program's calls
// through its interceptors still reach libc's and are trapped). They must pass: LeakSanitizer
// reads /proc from a tracer task that blocks every signal, and a trapped syscall with SIGSYS
// blocked kills the process. Each range lies within one 4 GiB block (split when it does not), so
// that the filter compares the high and low words of the instruction pointer one at a time.
enum { MAX_RANGES = 16 };
static struct { uint64_t start, end; } g_ranges[MAX_RANGES];
static int g_num_ranges;

static void add_range(uint64_t start, uint64_t end) {
  while (start < end && g_num_ranges < MAX_RANGES) {
    const uint64_t block_end = (start | 0xffffffffull) + 1;
    const uint64_t stop = end < block_end ? end : block_end;
    g_ranges[g_num_ranges].start = start;
    g_ranges[g_num_ranges].end = stop;
    ++g_num_ranges;
    start = stop;
  }
}

static int add_sanitizer_code(struct dl_phdr_info* info, size_t size, void* data) {
  (void)size;
  (void)data;
  static const char* const k_runtimes[] = {"/libasan.so", "/libubsan.so", "/liblsan.so",
                                           "/libtsan.so", "/libhwasan.so"};
  int runtime = 0;
  for (size_t i = 0; i < sizeof k_runtimes / sizeof k_runtimes[0]; ++i) {
    runtime |= info->dlpi_name != NULL && strstr(info->dlpi_name, k_runtimes[i]) != NULL;
  }
  if (!runtime) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)* ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
      add_range(info->dlpi_addr + ph->p_vaddr, info->dlpi_addr + ph->p_vaddr + ph->p_memsz);
    }
  }
  return 0;
}

// The filter: on x86_64, syscalls made from the ranges above pass; the configured ones trap; all
// else passes. seccomp_data holds the instruction pointer (the address after the `syscall`
// instruction) as two 32-bit words.
static void install_filter(void) {
  add_range((uint64_t)(uintptr_t)&fault_gateway, (uint64_t)(uintptr_t)fault_gateway_end);
  dl_iterate_phdr(add_sanitizer_code, NULL);
  struct sock_filter f[8 + 6 * MAX_RANGES + NUM_SYSCALLS];
  int n = 0;
  const uint32_t ip = offsetof(struct seccomp_data, instruction_pointer);
  f[n++] =
      (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
  f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  for (int r = 0; r < g_num_ranges; ++r) {
    // Outside the range: on to the next one (skip what is left of this block of six).
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ip + 4);  // high word
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                          (uint32_t)(g_ranges[r].start >> 32), 0, 4);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ip);  // low word
    f[n++] =
        (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (uint32_t)g_ranges[r].start, 0, 2);
    // The end may be the next block's start, low word 0: compare with the last byte instead.
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K,
                                          (uint32_t)(g_ranges[r].end - 1), 1, 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  }
  f[n++] =
      (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
  int k = 0;
  for (int i = 0; i < NUM_SYSCALLS; ++i) k += (g_trapped & BIT(i)) != 0;
  for (int i = 0, j = 0; i < NUM_SYSCALLS; ++i) {
    if (!(g_trapped & BIT(i))) continue;
    // Matched: jump over the remaining tests and the ALLOW, to the TRAP.
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)k_syscalls[i].nr,
                                          (uint8_t)(k - j), 0);
    ++j;
  }
  f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
  struct sock_fprog prog = {.len = (unsigned short)n, .filter = f};

  // Without privileges a filter may only be installed after giving up new privileges.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    perror("plexus-fault: prctl(PR_SET_NO_NEW_PRIVS)");
    _exit(97);
  }
  // TSYNC: every thread that already exists (a sanitizer's, say) gets the filter too.
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0) {
    perror("plexus-fault: seccomp");
    _exit(97);
  }
}

__attribute__((constructor)) static void fault_shim_init(void) {
  g_config_text = getenv("PLEXUS_FAULTS");
  if (g_config_text == NULL || *g_config_text == '\0') return;
  parse_config(g_config_text);
  if (g_num_rules == 0) return;

  const char* log_path = getenv("PLEXUS_FAULT_LOG");
  const char* log_fd = getenv("PLEXUS_FAULT_LOG_FD");
  if (log_path && *log_path) {
    g_log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (g_log_fd < 0) {
      fprintf(stderr, "plexus-fault: cannot open PLEXUS_FAULT_LOG '%s': %s\n", log_path,
              strerror(errno));
      _exit(97);
    }
  } else if (log_fd && *log_fd) {
    g_log_fd = atoi(log_fd);
  }
  const char* arm = getenv("PLEXUS_FAULT_ARM");
  if (arm && *arm) {
    snprintf(g_arm_path, sizeof g_arm_path, "%s", arm);
  } else {
    atomic_store(&g_armed, 1);
  }

  // The handler first: from the filter's installation on, a trapped call without it kills.
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigsys;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSYS, &sa, NULL) != 0) {
    perror("plexus-fault: sigaction(SIGSYS)");
    _exit(97);
  }
  install_filter();
}
