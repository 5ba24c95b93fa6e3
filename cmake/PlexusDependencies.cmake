# Every dependency comes from Debian 12 packages.
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
# Boost.DLL (headers) loads plugins and plexus/plugin_export.h exports them; program_options is for
# plexus-server. plexusConfig.cmake asks installed consumers for the same version.
set(PLEXUS_BOOST_MIN_VERSION 1.74)
find_package(Boost ${PLEXUS_BOOST_MIN_VERSION} REQUIRED COMPONENTS program_options)
if(PLEXUS_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
endif()
