# Runs at install time (install(SCRIPT), from cmake/PlexusPackaging.cmake): installs the systemd
# units and the sample config for the prefix being installed to. CMAKE_INSTALL_PREFIX is that
# prefix here (`--prefix` included); file(INSTALL) adds DESTDIR.
set(prefix "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/+$" "" prefix "${prefix}")
# GNU convention (GNUInstallDirs does the same): /usr keeps its config in /etc.
if(prefix STREQUAL "/usr" OR prefix STREQUAL "")
  set(etc_dir "/etc/plexus")
else()
  set(etc_dir "${prefix}/etc/plexus")
endif()
if(IS_ABSOLUTE "${PLEXUS_SYSTEMD_UNIT_DIR}")
  set(unit_dir "${PLEXUS_SYSTEMD_UNIT_DIR}")
else()
  set(unit_dir "${prefix}/${PLEXUS_SYSTEMD_UNIT_DIR}")
endif()
if(IS_ABSOLUTE "${PLEXUS_INSTALL_BINDIR}")
  set(server "${PLEXUS_INSTALL_BINDIR}/plexus-server")
else()
  set(server "${prefix}/${PLEXUS_INSTALL_BINDIR}/plexus-server")
endif()

# The units name /usr/bin/plexus-server and /etc/plexus/ as written in the tree.
file(MAKE_DIRECTORY "${PLEXUS_DEPLOY_WORK_DIR}")
foreach(unit plexus-server.service plexus-server.socket)
  file(READ "${PLEXUS_DEPLOY_DIR}/systemd/${unit}" text)
  string(REPLACE "/usr/bin/plexus-server" "${server}" text "${text}")
  string(REPLACE "/etc/plexus/" "${etc_dir}/" text "${text}")
  file(WRITE "${PLEXUS_DEPLOY_WORK_DIR}/${unit}" "${text}")
endforeach()
file(INSTALL DESTINATION "${unit_dir}" TYPE FILE
     FILES "${PLEXUS_DEPLOY_WORK_DIR}/plexus-server.service"
           "${PLEXUS_DEPLOY_WORK_DIR}/plexus-server.socket")

# A config edited in place is never replaced (the .deb marks it a conffile instead).
if(EXISTS "$ENV{DESTDIR}${etc_dir}/plexus-server.conf")
  message(STATUS "Keeping: $ENV{DESTDIR}${etc_dir}/plexus-server.conf")
else()
  file(INSTALL DESTINATION "${etc_dir}" TYPE FILE
       FILES "${PLEXUS_DEPLOY_DIR}/plexus-server.conf")
endif()
