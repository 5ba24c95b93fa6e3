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
# liburing (Debian's liburing-dev) for the io_uring engine (--engine uring) and the epoll engine's
# batched re-arms. A private dependency of the shared framework library: its users never see it.
find_package(PkgConfig REQUIRED)
pkg_check_modules(URING REQUIRED IMPORTED_TARGET liburing>=2.2)
