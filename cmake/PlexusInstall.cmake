# Installs Plexus: the framework library (as the CMake package `plexus`, target plexus::framework),
# its public headers, the two programs and the plugins (plexus_add_plugin installs those). A consumer
# project does
#
#   find_package(plexus 0.1 REQUIRED)
#   target_link_libraries(app PRIVATE plexus::framework)
#   target_link_libraries(plugin_tests PRIVATE plexus::testing)   # the in-memory plugin harness
#
# or builds a plugin with plexus_add_plugin(NAME SOURCES...) (see examples/plugin/).
#
# Included from the top-level CMakeLists.txt after every target is defined.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(PLEXUS_INSTALL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/plexus)

install(TARGETS plexus_framework plexus_testing EXPORT plexusTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/framework/include/plexus
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")

# The programs find libplexus.so next to them (../lib), wherever the prefix is. (server/ installs
# plexus-server itself.)
foreach(program plexus-server plexus-client)
  if(TARGET ${program})
    set_target_properties(${program} PROPERTIES INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
  endif()
endforeach()
install(TARGETS plexus-client RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(EXPORT plexusTargets NAMESPACE plexus:: FILE plexusTargets.cmake
        DESTINATION ${PLEXUS_INSTALL_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/plexusConfig.cmake.in
  ${PROJECT_BINARY_DIR}/plexusConfig.cmake INSTALL_DESTINATION ${PLEXUS_INSTALL_CMAKE_DIR})
# 0.x: a new minor version may break the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/plexusConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/plexusConfig.cmake ${PROJECT_BINARY_DIR}/plexusConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/PlexusPlugin.cmake
        DESTINATION ${PLEXUS_INSTALL_CMAKE_DIR})

# The systemd units, the sample config, plexus.pc and the .deb (CPack).
include(PlexusPackaging)
