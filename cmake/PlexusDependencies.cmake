# Every dependency comes from Debian 12 packages.
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(Boost 1.74 REQUIRED COMPONENTS program_options)
if(PLEXUS_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
endif()
