# ctest's install_and_consume: installs the build tree into a scratch directory, then configures,
# builds and runs examples/consumer against that installation only.
#   cmake -DPLEXUS_BUILD_DIR=... -DCONSUMER_SOURCE_DIR=... -DWORK_DIR=... -DGENERATOR=...
#         -DCXX_COMPILER=... [-DBUILD_TYPE=...] [-DSANITIZE=...] [-DLAUNCHER=...] -P install_and_build.cmake
cmake_minimum_required(VERSION 3.22)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
# DESTDIR as well as --prefix: a destination that is an absolute path in the build (not relative to
# the prefix) then still lands under WORK_DIR instead of in the system.
set(ENV{DESTDIR} ${WORK_DIR}/stage)
run(${CMAKE_COMMAND} --install ${PLEXUS_BUILD_DIR} --prefix ${prefix})
unset(ENV{DESTDIR})
set(root ${WORK_DIR}/stage${prefix})

foreach(f include/plexus/tcp_server.h lib/cmake/plexus/plexusConfig.cmake bin/plexus-client)
  if(NOT EXISTS ${root}/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()

set(flags "")
if(SANITIZE)
  # The installed library is instrumented; the consumer must link the same runtime.
  set(flags "-fsanitize=${SANITIZE}")
endif()
set(launcher "")
if(LAUNCHER)
  set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()
run(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/build -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${root} -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=${BUILD_TYPE}
    -DCMAKE_CXX_FLAGS=${flags} -DCMAKE_EXE_LINKER_FLAGS=${flags} ${launcher})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/consumer)
# The installed programs run from the prefix alone (RPATH $ORIGIN/../lib).
run(${root}/bin/plexus-client --version)
run(${root}/bin/plexus-server --version)
