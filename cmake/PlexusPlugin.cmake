# plexus_add_plugin(NAME SOURCES...): builds a Plexus protocol plugin, NAME.so (no "lib" in front,
# as plexus-server looks for it), linked with plexus::framework and the Boost headers that
# plexus/plugin_export.h uses, and installs it into ${CMAKE_INSTALL_LIBDIR}/plexus/plugins under
# the install prefix, where plexus-server looks for plugin names (beside its bin/ directory).
#
# One helper for both uses:
#   - in the Plexus tree (plugins/CMakeLists.txt includes this file): built into build/plugins/,
#     with the project's warnings;
#   - in a project of your own, after find_package(plexus), which includes this file: built where
#     the project builds its libraries (the build directory unless CMAKE_LIBRARY_OUTPUT_DIRECTORY
#     or PLEXUS_PLUGIN_OUTPUT_DIR says otherwise). See examples/plugin/.
#
# plexus::framework requires C++20, so a project set to an older standard builds its plugins with
# C++20 anyway.
include_guard(GLOBAL)
include(GNUInstallDirs)

function(plexus_add_plugin name)
  if(NOT ARGN)
    message(FATAL_ERROR "plexus_add_plugin(${name}): no source files")
  endif()
  add_library(${name} MODULE ${ARGN})
  set_target_properties(${name} PROPERTIES PREFIX "" SUFFIX ".so")
  if(PLEXUS_PLUGIN_OUTPUT_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${PLEXUS_PLUGIN_OUTPUT_DIR})
  endif()
  target_link_libraries(${name} PRIVATE plexus::framework Boost::headers)
  # GCC makes the static variables of inline functions and templates (Boost.System's error
  # categories, which plugin_export.h brings in, among them) STB_GNU_UNIQUE symbols, and glibc never
  # unloads a library that has one: each live reload (SIGHUP) would then keep another copy mapped.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${name} PRIVATE -fno-gnu-unique)
  endif()
  # Only the Plexus tree itself defines plexus_warnings (cmake/PlexusWarnings.cmake).
  if(TARGET plexus_warnings)
    target_link_libraries(${name} PRIVATE plexus_warnings)
  endif()
  install(TARGETS ${name} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/plexus/plugins)
endfunction()
