#pragma once
// The syscalls of the echo path (read, readv, send, epoll_wait, epoll_ctl), made without glibc's
// wrappers where that is safe.
//
// Why: read, readv, send and epoll_wait are POSIX cancellation points. Once a process has a second
// thread, glibc wraps each of them in __pthread_enable_asynccancel/__pthread_disable_asynccancel,
// which costs about 60 user-space instructions per call: more than the rest of a loop iteration's
// bookkeeping. Plexus never cancels threads, so it makes these calls with the `syscall`
// instruction directly. Each function has the libc signature and contract: -1 with errno set on
// failure.
//
// Under a sanitizer the libc functions are called instead: ThreadSanitizer learns happens-before
// edges from its read/write interceptors, and AddressSanitizer checks the buffers passed to them.
//
// Any thread.

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PLEXUS_LIBC_SYSCALLS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define PLEXUS_LIBC_SYSCALLS 1
#endif
#endif

#if !defined(PLEXUS_LIBC_SYSCALLS) && defined(__linux__) && defined(__x86_64__)
#define PLEXUS_RAW_SYSCALLS 1
#endif

namespace plexus::detail::sys {

#ifdef PLEXUS_RAW_SYSCALLS

// The kernel returns -errno in [-4095, -1] on failure.
inline long result(long r) {
  if (__builtin_expect(static_cast<unsigned long>(r) > -4096UL, 0)) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return r;
}

inline long call4(long n, long a, long b, long c, long d) {
  long r;
  register long r10 __asm__("r10") = d;
  __asm__ volatile("syscall"
                   : "=a"(r)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                   : "rcx", "r11", "memory");
  return r;
}

inline long call6(long n, long a, long b, long c, long d, long e, long f) {
  long r;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(r)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return r;
}

inline ssize_t read(int fd, void* buf, size_t n) {
  return result(call4(SYS_read, fd, reinterpret_cast<long>(buf), static_cast<long>(n), 0));
}

inline ssize_t readv(int fd, const iovec* iov, int count) {
  return result(call4(SYS_readv, fd, reinterpret_cast<long>(iov), count, 0));
}

inline ssize_t send(int fd, const void* buf, size_t n, int flags) {
  return result(call6(SYS_sendto, fd, reinterpret_cast<long>(buf), static_cast<long>(n), flags, 0,
                      0));
}

inline int epollWait(int epfd, epoll_event* events, int max, int timeout_ms) {
  return static_cast<int>(
      result(call4(SYS_epoll_wait, epfd, reinterpret_cast<long>(events), max, timeout_ms)));
}

inline int epollCtl(int epfd, int op, int fd, epoll_event* ev) {
  return static_cast<int>(result(call4(SYS_epoll_ctl, epfd, op, fd, reinterpret_cast<long>(ev))));
}

#else  // libc

inline ssize_t read(int fd, void* buf, size_t n) { return ::read(fd, buf, n); }
inline ssize_t readv(int fd, const iovec* iov, int count) { return ::readv(fd, iov, count); }
inline ssize_t send(int fd, const void* buf, size_t n, int flags) {
  return ::send(fd, buf, n, flags);
}
inline int epollWait(int epfd, epoll_event* events, int max, int timeout_ms) {
  return ::epoll_wait(epfd, events, max, timeout_ms);
}
inline int epollCtl(int epfd, int op, int fd, epoll_event* ev) {
  return ::epoll_ctl(epfd, op, fd, ev);
}

#endif

}  // namespace plexus::detail::sys
