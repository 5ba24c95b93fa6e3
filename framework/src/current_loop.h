#pragma once
// The calling thread's EventLoop, as a thread-local the library's hot paths read directly.

namespace plexus {

class EventLoop;

namespace detail {

// Set by the EventLoop constructor on its thread, cleared by its destructor. initial-exec: a plain
// %fs-relative load, no __tls_get_addr call (libplexus is linked, never dlopen()ed); hidden: not
// part of the library's interface; constinit: no dynamic initialisation, so no TLS wrapper call.
extern __attribute__((tls_model("initial-exec"), visibility("hidden"))) constinit thread_local
    EventLoop* t_current_loop;

}  // namespace detail
}  // namespace plexus
