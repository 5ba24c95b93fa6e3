#include "plexus/loop_stats.h"

#include "absl/strings/str_format.h"

namespace plexus {

LoopStats& LoopStats::operator+=(const LoopStats& o) {
  iterations += o.iterations;
  events += o.events;
  wait_calls += o.wait_calls;
  read_calls += o.read_calls;
  write_calls += o.write_calls;
  ctl_calls += o.ctl_calls;
  accept_calls += o.accept_calls;
  other_calls += o.other_calls;
  wait_failures += o.wait_failures;
  interest_failures += o.interest_failures;
  return *this;
}

std::string LoopStats::toJson() const {
  return absl::StrFormat(
      "{\"iterations\":%u,\"events\":%u,\"wait_calls\":%u,\"read_calls\":%u,\"write_calls\":%u,"
      "\"ctl_calls\":%u,\"accept_calls\":%u,\"other_calls\":%u,\"syscalls\":%u,"
      "\"wait_failures\":%u,\"interest_failures\":%u}",
      iterations, events, wait_calls, read_calls, write_calls, ctl_calls, accept_calls,
      other_calls, syscalls(), wait_failures, interest_failures);
}

}  // namespace plexus
