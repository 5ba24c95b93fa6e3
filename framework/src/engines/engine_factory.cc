// makeEngine(): the one place that knows the concrete engines.

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engines/epoll_engine.h"
#include "engines/poll_engine.h"
#include "engines/select_engine.h"
#include "plexus/engine.h"

namespace plexus {

absl::StatusOr<EpollMode> parseEpollMode(std::string_view name) {
  if (name == "oneshot") return EpollMode::kOneshot;
  if (name == "level") return EpollMode::kLevel;
  if (name == "edge") return EpollMode::kEdge;
  return absl::InvalidArgumentError(
      absl::StrFormat("unknown epoll mode '%s' (known: oneshot, level, edge)", name));
}

std::string_view epollModeName(EpollMode mode) {
  switch (mode) {
    case EpollMode::kOneshot: return "oneshot";
    case EpollMode::kLevel: return "level";
    case EpollMode::kEdge: return "edge";
  }
  return "unknown";
}

const std::vector<std::string>& engineNames() {
  static const std::vector<std::string> names = {"epoll", "poll", "select"};
  return names;
}

absl::StatusOr<std::unique_ptr<Engine>> makeEngine(const EngineOptions& options) {
  if (options.name == "epoll") {
    auto engine = detail::EpollEngine::create(options.epoll_mode);
    if (!engine.ok()) return engine.status();
    return std::unique_ptr<Engine>(std::move(*engine));
  }
  if (options.name == "poll") return std::make_unique<detail::PollEngine>();
  if (options.name == "select") return std::make_unique<detail::SelectEngine>();
  return absl::InvalidArgumentError(absl::StrFormat("unknown engine '%s' (known: %s)", options.name,
                                                    absl::StrJoin(engineNames(), ", ")));
}

}  // namespace plexus
