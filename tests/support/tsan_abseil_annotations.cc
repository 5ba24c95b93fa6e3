// ThreadSanitizer builds only: tells TSan about the happens-before edges of Abseil's Mutex,
// CondVar, Notification and BlockingCounter.
//
// The system Abseil (Debian's libabsl*.so) is not built with -fsanitize=thread, so TSan does not see
// its locks: every access guarded by an absl::Mutex, and everything handed over through a
// Notification, is reported as a race. This file defines those entry points in the test binary,
// which takes precedence over the shared library's definitions (symbol interposition), forwards to
// the real ones found with dlsym(RTLD_NEXT) and adds __tsan_release before / __tsan_acquire after.
// In any other build it compiles to nothing.

#if defined(__SANITIZE_THREAD__)

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/base/options.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);

namespace {

#define PLEXUS_TSAN_STR2(x) #x
#define PLEXUS_TSAN_STR(x) PLEXUS_TSAN_STR2(x)

// The real function from the next object in the lookup order (the Abseil shared library).
// `nested` is the mangled tail after the namespace, e.g. "5Mutex4LockEv"; `is_const` for K methods.
template <typename Fn>
Fn realFn(const char* nested, bool is_const = false) {
  const std::string ns = PLEXUS_TSAN_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name = std::string(is_const ? "_ZNK4absl" : "_ZN4absl") +
                           std::to_string(ns.size()) + ns + nested;
  void* p = ::dlsym(RTLD_NEXT, name.c_str());
  if (p == nullptr) {
    std::fprintf(stderr, "tsan_abseil_annotations: cannot find %s\n", name.c_str());
    std::abort();
  }
  return reinterpret_cast<Fn>(p);
}

void acquire(const void* p) { __tsan_acquire(const_cast<void*>(p)); }
void release(const void* p) { __tsan_release(const_cast<void*>(p)); }

// A Condition is evaluated with the mutex held, by the waiting thread or by whichever thread
// unlocks the mutex, inside the library. The wrapper makes each evaluation acquire the mutex's
// history first and publish its reads after, like a short critical section of its own.
struct WrappedCondition {
  const absl::Mutex* mu;
  const absl::Condition* cond;
  static bool eval(WrappedCondition* w) {
    acquire(w);
    acquire(w->mu);
    const bool r = w->cond->Eval();
    release(w->mu);
    release(w);
    return r;
  }
};

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  static const auto fn = realFn<void (*)(Mutex*)>("5Mutex4LockEv");
  fn(this);
  acquire(this);
}

void Mutex::ReaderLock() {
  static const auto fn = realFn<void (*)(Mutex*)>("5Mutex10ReaderLockEv");
  fn(this);
  acquire(this);
}

bool Mutex::TryLock() {
  static const auto fn = realFn<bool (*)(Mutex*)>("5Mutex7TryLockEv");
  const bool locked = fn(this);
  if (locked) acquire(this);
  return locked;
}

bool Mutex::ReaderTryLock() {
  static const auto fn = realFn<bool (*)(Mutex*)>("5Mutex13ReaderTryLockEv");
  const bool locked = fn(this);
  if (locked) acquire(this);
  return locked;
}

void Mutex::Unlock() {
  static const auto fn = realFn<void (*)(Mutex*)>("5Mutex6UnlockEv");
  release(this);
  fn(this);
}

void Mutex::ReaderUnlock() {
  static const auto fn = realFn<void (*)(Mutex*)>("5Mutex12ReaderUnlockEv");
  release(this);
  fn(this);
}

void Mutex::LockWhen(const Condition& cond) {
  WrappedCondition w{this, &cond};
  const Condition wc(&WrappedCondition::eval, &w);
  release(&w);  // publishes `w` and the caller's condition to the evaluating thread
  static const auto fn = realFn<void (*)(Mutex*, const Condition&)>("5Mutex8LockWhenERKNS0_9ConditionE");
  fn(this, wc);
  acquire(&w);
  acquire(this);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  WrappedCondition w{this, &cond};
  const Condition wc(&WrappedCondition::eval, &w);
  release(&w);  // publishes `w` and the caller's condition to the evaluating thread
  static const auto fn =
      realFn<void (*)(Mutex*, const Condition&)>("5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  fn(this, wc);
  acquire(&w);
  acquire(this);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  WrappedCondition w{this, &cond};
  const Condition wc(&WrappedCondition::eval, &w);
  release(&w);  // publishes `w` and the caller's condition to the evaluating thread
  static const auto fn = realFn<bool (*)(Mutex*, const Condition&, absl::Duration)>(
      "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  const bool r = fn(this, wc, timeout);
  acquire(&w);
  acquire(this);  // held on return either way
  return r;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  WrappedCondition w{this, &cond};
  const Condition wc(&WrappedCondition::eval, &w);
  release(&w);  // publishes `w` and the caller's condition to the evaluating thread
  static const auto fn = realFn<bool (*)(Mutex*, const Condition&, absl::Time)>(
      "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  const bool r = fn(this, wc, deadline);
  acquire(&w);
  acquire(this);
  return r;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  WrappedCondition w{this, &cond};
  const Condition wc(&WrappedCondition::eval, &w);
  release(&w);  // publishes `w` and the caller's condition to the evaluating thread
  static const auto fn = realFn<bool (*)(Mutex*, const Condition&, absl::Duration)>(
      "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  const bool r = fn(this, wc, timeout);
  acquire(&w);
  acquire(this);
  return r;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  WrappedCondition w{this, &cond};
  const Condition wc(&WrappedCondition::eval, &w);
  release(&w);  // publishes `w` and the caller's condition to the evaluating thread
  static const auto fn = realFn<bool (*)(Mutex*, const Condition&, absl::Time)>(
      "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  const bool r = fn(this, wc, deadline);
  acquire(&w);
  acquire(this);
  return r;
}

// Await* release the mutex while they wait and hold it again on return.
void Mutex::Await(const Condition& cond) {
  WrappedCondition w{this, &cond};
  const Condition wc(&WrappedCondition::eval, &w);
  release(&w);  // publishes `w` and the caller's condition to the evaluating thread
  static const auto fn =
      realFn<void (*)(Mutex*, const Condition&)>("5Mutex5AwaitERKNS0_9ConditionE");
  release(this);
  fn(this, wc);
  acquire(&w);
  acquire(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  WrappedCondition w{this, &cond};
  const Condition wc(&WrappedCondition::eval, &w);
  release(&w);  // publishes `w` and the caller's condition to the evaluating thread
  static const auto fn = realFn<bool (*)(Mutex*, const Condition&, absl::Duration)>(
      "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  release(this);
  const bool r = fn(this, wc, timeout);
  acquire(&w);
  acquire(this);
  return r;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  WrappedCondition w{this, &cond};
  const Condition wc(&WrappedCondition::eval, &w);
  release(&w);  // publishes `w` and the caller's condition to the evaluating thread
  static const auto fn = realFn<bool (*)(Mutex*, const Condition&, absl::Time)>(
      "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  release(this);
  const bool r = fn(this, wc, deadline);
  acquire(&w);
  acquire(this);
  return r;
}

void CondVar::Wait(Mutex* mu) {
  static const auto fn = realFn<void (*)(CondVar*, Mutex*)>("7CondVar4WaitEPNS0_5MutexE");
  release(mu);
  fn(this, mu);
  acquire(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  static const auto fn = realFn<bool (*)(CondVar*, Mutex*, absl::Duration)>(
      "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  release(mu);
  const bool r = fn(this, mu, timeout);
  acquire(mu);
  return r;
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  static const auto fn = realFn<bool (*)(CondVar*, Mutex*, absl::Time)>(
      "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  release(mu);
  const bool r = fn(this, mu, deadline);
  acquire(mu);
  return r;
}

void Notification::Notify() {
  static const auto fn = realFn<void (*)(Notification*)>("12Notification6NotifyEv");
  release(this);
  fn(this);
}

void Notification::WaitForNotification() const {
  static const auto fn =
      realFn<void (*)(const Notification*)>("12Notification19WaitForNotificationEv", true);
  fn(this);
  acquire(this);
}

bool Notification::WaitForNotificationWithTimeout(absl::Duration timeout) const {
  static const auto fn = realFn<bool (*)(const Notification*, absl::Duration)>(
      "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE", true);
  const bool r = fn(this, timeout);
  if (r) acquire(this);
  return r;
}

bool Notification::WaitForNotificationWithDeadline(absl::Time deadline) const {
  static const auto fn = realFn<bool (*)(const Notification*, absl::Time)>(
      "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE", true);
  const bool r = fn(this, deadline);
  if (r) acquire(this);
  return r;
}

bool BlockingCounter::DecrementCount() {
  static const auto fn = realFn<bool (*)(BlockingCounter*)>("15BlockingCounter14DecrementCountEv");
  release(this);
  const bool r = fn(this);
  acquire(this);
  return r;
}

void BlockingCounter::Wait() {
  static const auto fn = realFn<void (*)(BlockingCounter*)>("15BlockingCounter4WaitEv");
  fn(this);
  acquire(this);
}

ABSL_NAMESPACE_END
}  // namespace absl

#endif  // __SANITIZE_THREAD__
