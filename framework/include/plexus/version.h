#pragma once

#define PLEXUS_VERSION_MAJOR 0
#define PLEXUS_VERSION_MINOR 1
#define PLEXUS_VERSION_PATCH 0
#define PLEXUS_VERSION_STRING "0.1.0"

namespace plexus {
inline constexpr const char* kVersion = PLEXUS_VERSION_STRING;
}  // namespace plexus
