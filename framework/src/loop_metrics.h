#pragma once
// A loop's own figures in a MetricsRegistry: wakeups, events, syscalls by kind, bytes, time in
// handlers and loop lag, each series labelled loop="LABEL". Several servers may share a loop (and a
// registry): attach counts them, and the last detach takes the loop's series out.
//
// Threads: any thread. detachLoopMetrics() must be called before the loop is destroyed: once it
// returned, no scrape reads the loop any more.

#include <string>

namespace plexus {
class EventLoop;
class MetricsRegistry;
}  // namespace plexus

namespace plexus::detail {

void attachLoopMetrics(MetricsRegistry* registry, EventLoop* loop, const std::string& label);
void detachLoopMetrics(MetricsRegistry* registry, EventLoop* loop);

}  // namespace plexus::detail
