// makeEngine(): the one place that maps names to engines (through engine_list.h).

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "plexus/engine.h"

namespace plexus {

namespace detail {
#define PLEXUS_ENGINE(name, make) \
  absl::StatusOr<std::unique_ptr<Engine>> make(const EngineOptions& options);
#include "engines/engine_list.h"
#undef PLEXUS_ENGINE
}  // namespace detail

namespace {

struct EngineEntry {
  const char* name;
  absl::StatusOr<std::unique_ptr<Engine>> (*make)(const EngineOptions&);
};

constexpr EngineEntry kEngines[] = {
#define PLEXUS_ENGINE(name, make) {name, &detail::make},
#include "engines/engine_list.h"
#undef PLEXUS_ENGINE
};

}  // namespace

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
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const EngineEntry& e : kEngines) out.emplace_back(e.name);
    return out;
  }();
  return names;
}

absl::StatusOr<std::unique_ptr<Engine>> makeEngine(const EngineOptions& options) {
  for (const EngineEntry& e : kEngines) {
    if (options.name == e.name) return e.make(options);
  }
  return absl::InvalidArgumentError(absl::StrFormat("unknown engine '%s' (known: %s)", options.name,
                                                    absl::StrJoin(engineNames(), ", ")));
}

}  // namespace plexus
