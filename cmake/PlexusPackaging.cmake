# What a service installation needs beyond the library and programs (cmake/PlexusInstall.cmake):
#
# - the systemd units (deploy/systemd/) in ${PREFIX}/lib/systemd/system, or PLEXUS_SYSTEMD_UNIT_DIR,
#   their paths rewritten for the prefix installed to;
# - the sample config (deploy/plexus-server.conf) as etc/plexus/plexus-server.conf under the prefix,
#   /etc/plexus when the prefix is /usr; an existing one is kept;
# - plexus.pc (pkg-config) in LIBDIR/pkgconfig, relocatable like the CMake package;
# - the .deb: `cpack -G DEB` in a build directory configured with -DCMAKE_INSTALL_PREFIX=/usr
#   (Release) makes plexus_<version>_amd64.deb (.ci/deb-test builds, installs and checks it).
#
# Both paths are worked out when installing, not when configuring: `cmake --install --prefix P`
# and the .deb's staging (DESTDIR) get the right ones.
include_guard(GLOBAL)
include(GNUInstallDirs)

set(PLEXUS_SYSTEMD_UNIT_DIR "lib/systemd/system" CACHE STRING
    "Where the systemd units are installed (a relative path is under the install prefix)")

install(CODE "
  set(PLEXUS_DEPLOY_DIR \"${PROJECT_SOURCE_DIR}/deploy\")
  set(PLEXUS_DEPLOY_WORK_DIR \"${PROJECT_BINARY_DIR}/deploy\")
  set(PLEXUS_SYSTEMD_UNIT_DIR \"${PLEXUS_SYSTEMD_UNIT_DIR}\")
  set(PLEXUS_INSTALL_BINDIR \"${CMAKE_INSTALL_BINDIR}\")")
install(SCRIPT ${PROJECT_SOURCE_DIR}/cmake/PlexusInstallDeploy.cmake)

# plexus.pc: the framework library for projects built without CMake. Its prefix is found from the
# file's own place (${pcfiledir}), so a moved prefix still works. Abseil comes through its own .pc
# files (Debian's libabsl-dev has them); Boost has none: plugins (plexus/plugin_export.h) also need
# the Boost headers, which are in the default include path on Debian.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(PLEXUS_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH plexus_pc_up "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
  string(REGEX REPLACE "/$" "" plexus_pc_up "${plexus_pc_up}")
  set(PLEXUS_PC_PREFIX "\${pcfiledir}/${plexus_pc_up}")
endif()
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(PLEXUS_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(PLEXUS_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
configure_file(${PROJECT_SOURCE_DIR}/cmake/plexus.pc.in ${PROJECT_BINARY_DIR}/plexus.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/plexus.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The .deb: one package with the programs, plugins, library, headers, CMake package, plexus.pc,
# units and config (a conffile). Dependencies from dpkg-shlibdeps (package dpkg-dev); a shlibs
# file for libplexus.so.0 (CPack warns that the plugins have no soname: they are modules, not
# libraries, and need none).
set(CPACK_PACKAGE_NAME plexus)
set(CPACK_PACKAGE_VENDOR "Plexus")
set(CPACK_PACKAGE_CONTACT "Plexus maintainers <plexus@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "multi-reactor TCP server with protocol plugins, and its C++20 framework")
set(CPACK_PACKAGE_DESCRIPTION
    "plexus-server serves TCP with protocol plugins (echo, http, resp) on a pool of event loops;\n\
plexus-client talks to it. The framework library, its headers, CMake package and pkg-config file\n\
build programs and plugins of your own. Includes systemd units (Type=notify, socket activation).")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Install with DESTDIR and the real prefix, so that the install script sees /usr (and puts the
# config in /etc, the units' paths in /usr/bin).
set(CPACK_SET_DESTDIR ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # plexus_<version>_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "libabsl-dev, libboost-dev, pkg-config")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
    ${PROJECT_SOURCE_DIR}/deploy/debian/postrm ${PROJECT_SOURCE_DIR}/deploy/debian/triggers)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_GENERATOR DEB)
include(CPack)
