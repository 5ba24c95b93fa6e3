# Fuzz targets. A fuzz target is a source file defining
#
#   extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
#
# declared from any directory of the tree with
#
#   plexus_add_fuzzer(NAME SOURCES <srcs...> [LIBS <libs...>] CORPUS <dir>)
#
# (CORPUS relative to the calling directory; its files are the seed inputs, kept small).
#
#   - Every build (GCC included): NAME is linked with tests/fuzz/replay_main.cc, which runs the
#     target over every file of the directories and files on its command line, and the ctest
#     fuzz_replay_NAME (label `fuzz`) replays the corpus: the seeds stay regression tests, under
#     the sanitizers of build-asan/ too.
#   - -DPLEXUS_FUZZ=ON, clang only: the whole tree is compiled with
#     -fsanitize=fuzzer-no-link,address,undefined (coverage for libFuzzer in every library a
#     target links, AddressSanitizer and UBSan, every UB report fatal) and NAME is a libFuzzer
#     binary (-fsanitize=fuzzer,address,undefined). fuzz_replay_NAME then runs it with -runs=0.
#
# Every target lands in <build>/fuzz/, and one line "NAME BINARY CORPUS" per target is written to
# <build>/fuzz/fuzzers.txt, which .ci/run reads to fuzz each of them; the custom target
# plexus_fuzzers builds them all. To fuzz one locally:
#
#   cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
#     -DPLEXUS_FUZZ=ON && cmake --build build-fuzz --target plexus_fuzzers
#   mkdir -p /tmp/corpus && cp tests/fuzz/corpus/config_parser/* /tmp/corpus/
#   build-fuzz/fuzz/config_parser -max_total_time=60 /tmp/corpus
include_guard(GLOBAL)

option(PLEXUS_FUZZ "Build the fuzz targets as libFuzzer binaries with ASan and UBSan (clang)" OFF)

set(PLEXUS_FUZZ_OUTPUT_DIR ${CMAKE_BINARY_DIR}/fuzz)
set(PLEXUS_FUZZ_LIST ${PLEXUS_FUZZ_OUTPUT_DIR}/fuzzers.txt)
# Written afresh at each configure; plexus_add_fuzzer appends.
file(MAKE_DIRECTORY ${PLEXUS_FUZZ_OUTPUT_DIR})
file(WRITE ${PLEXUS_FUZZ_LIST} "")

if(PLEXUS_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "PLEXUS_FUZZ=ON needs clang (libFuzzer): configure with "
                        "-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++")
  endif()
  if(PLEXUS_SANITIZE)
    message(FATAL_ERROR "PLEXUS_FUZZ=ON brings its own sanitizers: leave PLEXUS_SANITIZE empty")
  endif()
  # Everything, so that the libraries a target links report coverage and are checked too. The
  # programs and tests of this build directory link the sanitizer runtimes without libFuzzer.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

if(NOT TARGET plexus_fuzzers)
  add_custom_target(plexus_fuzzers)
endif()

function(plexus_add_fuzzer name)
  cmake_parse_arguments(PARSE_ARGV 1 FUZZ "" "CORPUS" "SOURCES;LIBS")
  if(NOT FUZZ_SOURCES OR NOT FUZZ_CORPUS)
    message(FATAL_ERROR
            "plexus_add_fuzzer(${name} SOURCES <srcs...> [LIBS <libs...>] CORPUS <dir>)")
  endif()
  get_filename_component(corpus ${FUZZ_CORPUS} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
  if(NOT IS_DIRECTORY ${corpus})
    message(FATAL_ERROR "plexus_add_fuzzer(${name}): no corpus directory ${corpus}")
  endif()

  add_executable(${name} ${FUZZ_SOURCES})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PLEXUS_FUZZ_OUTPUT_DIR})
  target_link_libraries(${name} PRIVATE ${FUZZ_LIBS} plexus_warnings)
  if(PLEXUS_FUZZ)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    set(replay_args -runs=0)
  else()
    target_sources(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/fuzz/replay_main.cc)
    set(replay_args)
  endif()
  add_dependencies(plexus_fuzzers ${name})

  if(PLEXUS_BUILD_TESTS)
    add_test(NAME fuzz_replay_${name} COMMAND ${name} ${replay_args} ${corpus})
    set_tests_properties(fuzz_replay_${name} PROPERTIES LABELS fuzz TIMEOUT 300)
  endif()
  file(APPEND ${PLEXUS_FUZZ_LIST} "${name} ${PLEXUS_FUZZ_OUTPUT_DIR}/${name} ${corpus}\n")
endfunction()
